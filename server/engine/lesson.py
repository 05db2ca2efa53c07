"""The guided lesson "what exactly is self.hidden?": its steps, each a question asked first and
an answer computed afterwards from the live network or a real run (never canned where the
network can answer). The page asks `lesson:steps` for the questions (their choices follow the
setup: a 100-unit layer is asked about (100, 784)) and `lesson:reveal` for one step's answer; a
class poll (polls.py) reveals the same way, from the shared run. Here: the steps and their
questions; what each answer computes, and the fields of a reveal: lesson_answers.py.

Each question says which views of the page hold its answer (`hides`: the page veils them until
the learner commits, on a class poll's screens too) and which control the learner needs while
answering (`asks_for`: kept in sight), so the page asks first and shows afterwards.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Optional

from ..errors import UserError
from ..experiment import TrainConfig
from .lesson_answers import (
    LR_CHOICES, MODULE_CHOICES, ROW_CHOICES, SQUASH_CHOICES, TRAINED_STEPS, TRAP_CHOICES, LessonContext,
    example_question, hidden_shape_choices, keras_choices, lr_question, reveal_count, reveal_example,
    reveal_keras, reveal_lr, reveal_module, reveal_prediction, reveal_row, reveal_shape, reveal_squash,
    reveal_trap,
)

__all__ = ["STEPS", "TRAINED_STEPS", "LessonContext", "Step", "questions", "reveal", "step_at"]


@dataclass(frozen=True)
class Step:
    key: str
    title: str
    lead: str  # what the learner needs to know to answer, in plain words
    kind: str  # "choice", "number" or "drawing" (a drawing, then a choice)
    view: str  # data-testid of the part of the page it talks about
    question: Callable[[TrainConfig], str]
    choices: Callable[[TrainConfig], list[str]]
    reveal: Callable[[LessonContext], dict]
    hides: tuple[str, ...] = ()  # data-testids of the views that hold the answer: veiled while it asks
    asks_for: Optional[str] = None  # data-testid of the control the learner needs while answering
    needs_training: int = 0  # training steps the run needs before the answer can be judged

    def ask(self, config: TrainConfig) -> dict:
        return {"key": self.key, "title": self.title, "lead": self.lead, "kind": self.kind, "view": self.view,
                "question": self.question(config), "choices": self.choices(config), "hides": list(self.hides),
                "asks_for": self.asks_for, "needs_training": self.needs_training}


# ---- the steps -------------------------------------------------------------------------------------------

# The views that print the layer's shapes and counts, and those that show the drawing's prediction.
SHAPE_VIEWS = ("explain-shapes", "code-selection", "keras-side-by-side", "tiles-caption", "forward-steps")
PREDICTION_VIEWS = ("prediction", "probabilities", "forward-steps", "network-diagram", "prediction-by")

STEPS: list[Step] = [
    Step("weight-shape", "The shape of hidden.weight",
         "A neural network is made of layers of numbers that a computer adjusts until the network gives good "
         "answers. This one reads a 28×28 drawing as 784 numbers (one per pixel, 0 = paper, 1 = ink). In "
         "PyTorch, self.hidden = nn.Linear(784, 256) is a layer of 256 \"neurons\"; each neuron has one weight "
         "per pixel. PyTorch keeps all those weights in one table, hidden.weight.",
         "choice", "explain-shapes",
         lambda c: f"nn.Linear(784, {c.hidden_sizes[0]}): what shape (rows, columns) is hidden.weight?",
         hidden_shape_choices, reveal_shape, hides=SHAPE_VIEWS + ("sandbox-w-shape",)),
    Step("parameter-count", "How many numbers it learns",
         "Besides its weights, each neuron has one more number of its own, its bias, added at the end. "
         "Weights and biases together are the layer's parameters: what training changes.",
         "number", "shapes-table",
         lambda c: f"How many numbers does self.hidden = nn.Linear(784, {c.hidden_sizes[0]}) learn, weights and biases together?",
         lambda c: [], reveal_count, hides=SHAPE_VIEWS),
    Step("linear-example", "y = x Wᵀ + b by hand",
         "What a neuron does with its input: multiply each input number by its weight, add them up, add the "
         "bias. nn.Linear does that for every neuron at once; written as matrices it is y = x Wᵀ + b. (Python "
         "counts from 0: y[0] is the first output, W[0] the first row of weights, W[0][1] its second number.)",
         "number", "sandbox-y", example_question, lambda c: [], reveal_example,
         hides=("sandbox-y", "sandbox-formulas", "sandbox-printed", "sandbox-note"), asks_for="sandbox-inputs"),
    Step("row-before-after", "Row j of hidden.weight, before and after training",
         "Row j of hidden.weight holds neuron j's 784 weights, one per pixel, so it can be shown as a 28×28 "
         "picture: red pixels push the neuron up when they are inked, blue ones push it down. The tiles on the "
         "page show all 256 rows. The replay below them goes back to any step.",
         "choice", "hidden-weights",
         lambda c: "What does such a row look like when the network is new, and after it has trained?",
         lambda c: list(ROW_CHOICES), reveal_row,
         hides=("hidden-weights", "neuron-inspector"), asks_for="train-start", needs_training=TRAINED_STEPS),
    Step("sigmoid", "What the sigmoid does to z",
         "For a drawing x, neuron j's number z = x · W[j] + b[j] can be any size, positive or negative. The "
         "question's forward then applies F.sigmoid to each z before the next layer sees it.",
         "choice", "activation-histogram",
         lambda c: f"The {c.hidden_sizes[0]} z's of a drawing run from large negative to large positive numbers. "
                   f"What range are they in after {c.activation}?",
         lambda c: list(SQUASH_CHOICES), reveal_squash,
         hides=("forward-steps", "activation-histogram", "network-diagram", "neuron-inspector")),
    Step("prediction", "What the output layer says for your drawing",
         "self.output = nn.Linear(256, 10) turns the 256 neuron values into 10 numbers, one per digit; the "
         "largest is the network's answer. Draw a digit on the canvas (or put a real one on it) first.",
         "drawing", "probabilities",
         lambda c: "Which digit will the network say your drawing is?",
         lambda c: [str(d) for d in range(10)], reveal_prediction,
         hides=PREDICTION_VIEWS, asks_for="canvas"),
    Step("softmax-trap", "Why the question's forward learns slowly",
         "The question's forward ends with F.softmax, which turns the 10 numbers into probabilities (0 to 1, "
         "adding up to 1). Training measures how wrong the network is with nn.CrossEntropyLoss, the \"loss\" "
         "(0 = perfect). But CrossEntropyLoss applies softmax itself, so given forward's output it applies it twice.",
         "choice", "trap-explained",
         lambda c: "Given probabilities, how low can that loss go, even for a perfect, certain answer?",
         lambda c: list(TRAP_CHOICES), reveal_trap, hides=("softmax-trap",)),
    Step("learning-rate", "A far too large learning rate",
         "Training works in small steps: look at a few digits, see which way each weight should move to be a "
         "bit less wrong (the gradient), and move it that way by a step whose size is the learning rate, lr.",
         "choice", "loss-chart", lr_question, lambda c: list(LR_CHOICES), reveal_lr),
    Step("keras", "What Keras calls the same layer",
         "Keras (part of TensorFlow) is another popular way to write the same networks. Every layer kind has "
         "a name there too.",
         "choice", "keras-table",
         lambda c: f"What is nn.Linear(784, {c.hidden_sizes[0]}) called in Keras?",
         keras_choices, reveal_keras, hides=("keras-side-by-side",)),
    Step("module", "So what exactly is self.hidden?",
         "Back to the question in the title. In the network's code, __init__ says self.hidden = "
         "nn.Linear(784, 256), and forward says x = F.sigmoid(self.hidden(x)). Training then runs "
         "optimizer = torch.optim.Adam(model.parameters(), lr=...) and calls optimizer.step() after each batch.",
         "choice", "model-code",
         lambda c: "What is self.hidden, as a Python thing?",
         lambda c: list(MODULE_CHOICES), reveal_module),
]


def step_at(number: int) -> Step:
    """Step `number`, counting from 1 as the page's ?lesson=N does."""
    if not isinstance(number, int) or not 1 <= number <= len(STEPS):
        raise UserError(f"step: the lesson has steps 1 to {len(STEPS)}, got {number!r}")
    return STEPS[number - 1]


def questions(config: TrainConfig) -> list[dict]:
    return [step.ask(config) for step in STEPS]


def reveal(number: int, context: LessonContext) -> dict:
    step = step_at(number)
    return {"step": number, "key": step.key, "view": step.view, "run_id": context.weights.run_id,
            "weights_step": context.weights.step, **step.reveal(context)}
