"""The lesson's answers (lesson.py asks the questions): what each step's reveal computes, from
the live network or a real run, never canned where the network can answer; the choices a
question offers live here because the answer says which of them is right.

A reveal returns `said` (the answer in words), `correct` (the right choice's index, or None for
a number question), `value` and `tolerance` (number questions), `details` (lines of what was
computed and from which weights) and, for some, `pictures`, `code` or `curve`; a step that needs
a trained network and is asked on one that has hardly trained says so (`judged`: false).
"""
from __future__ import annotations

import math
import threading
from collections import OrderedDict
from dataclasses import dataclass
from typing import Optional

import numpy as np
import torch
import torch.nn.functional as F

from ..errors import UserError
from ..experiment import ACTIVATIONS, N_INPUTS, TrainConfig
from ..link.arrays import float32_bytes
from ..link.replica import Weights, forward
from . import codegen, explain
from .trainer import Trainer, make_optimizer

TRIAL_STEPS = 40  # the learning-rate step's two real runs train this many mini-batches each
BIG_LR = 10.0  # the largest learning rate the setup allows
GRADIENT_DIGITS = 64  # real training digits for the softmax trap's gradient comparison
TRAINED_STEPS = 50  # steps of training before "after training" means something (the row step)


@dataclass
class LessonContext:
    """What a reveal may read: the newest consistent weights of the run, its setup and state,
    its replay (the first kept weights), the data."""

    weights: Weights
    network: torch.nn.Module
    config: TrainConfig
    state: dict
    replay: object  # replay.Replay
    dataset: object
    pixels: Optional[np.ndarray] = None  # the learner's drawing (784 floats), if any
    record: Optional[int] = None  # the run's id in the runs list (#N), once it is recorded


def fmt(value: float, digits: int = 3) -> str:
    if value is None or not math.isfinite(value):
        return "not a number (it blew up)"
    return f"{value:.{digits}f}"


def hidden_shape_choices(config: TrainConfig) -> list[str]:
    n = config.hidden_sizes[0]
    return [f"({N_INPUTS}, {n})", f"({n}, {N_INPUTS})", f"({n},)", f"({N_INPUTS},)"]


def weights_from(context: LessonContext) -> str:
    w = context.weights
    # One numbering for runs everywhere: the runs list's #N (not the engine's count of resets).
    which = f"run #{context.record} in Runs" if context.record is not None else "not in Runs yet: no step taken"
    return f"the live network's weights at training step {w.step} ({which})"


# ---- 1. the shapes ---------------------------------------------------------------------------

def reveal_shape(context: LessonContext) -> dict:
    hidden = context.network.hidden
    shape = tuple(hidden.weight.shape)
    bias = tuple(hidden.bias.shape)
    said = f"({shape[0]}, {shape[1]})"
    return {
        "said": f"hidden.weight.shape is torch.Size([{shape[0]}, {shape[1]}]); hidden.bias.shape is torch.Size([{bias[0]}])",
        "correct": hidden_shape_choices(context.config).index(said),
        "details": [
            f"{shape[0]} rows, one per neuron (out_features = {shape[0]}); {shape[1]} columns, one per input pixel "
            f"(in_features = {shape[1]}). PyTorch stores (out, in): the other way round from how it is called.",
            f"One bias per neuron: {bias[0]} numbers.",
            f"Why (out, in): row j of the table is neuron j's {shape[1]} weights, one per pixel (the tiles show each "
            f"row as a 28×28 picture). self.hidden(x) computes x @ W.T + b: for a batch x of shape (N, {shape[1]}), "
            f"Wᵀ has shape ({shape[1]}, {shape[0]}), so (N, {shape[1]}) @ ({shape[1]}, {shape[0]}) gives (N, {shape[0]}): "
            "each pixel meets its weight in every neuron, and out comes one number per neuron.",
            f"Read from {weights_from(context)}.",
        ],
    }


# ---- 2. how many numbers -----------------------------------------------------------------------

def reveal_count(context: LessonContext) -> dict:
    hidden = context.network.hidden
    weights, biases = hidden.weight.numel(), hidden.bias.numel()
    total = weights + biases
    return {
        "said": f"{total:,} numbers: {weights:,} weights and {biases:,} biases",
        "correct": None, "value": total, "tolerance": 0,
        "details": [f"{hidden.weight.shape[0]} × {hidden.weight.shape[1]} = {weights:,} weights, plus {biases:,} biases "
                    f"(counted with .numel() on {weights_from(context)}).",
                    "Training changes every one of them, a little at each step."],
    }


# ---- 3. y = x W^T + b -----------------------------------------------------------------------------

EXAMPLE = explain.SANDBOX_DEFAULTS


def example_question(config: TrainConfig) -> str:
    w, b, x = EXAMPLE["weight"], EXAMPLE["bias"], EXAMPLE["x"][0]
    return (f"Here is the question's nn.Linear(2, 2): weight W = [[{w[0][0]:.3f}, {w[0][1]:.3f}], "
            f"[{w[1][0]:.3f}, {w[1][1]:.3f}]], bias b = [{b[0]:.3f}, {b[1]:.3f}]. For the input x = "
            f"[{x[0]:g}, {x[1]:g}], what is the first output y[0] = x[0]·W[0][0] + x[1]·W[0][1] + b[0]? "
            "(Two decimals are enough.)")


def reveal_example(context: LessonContext) -> dict:
    result = explain.linear_sandbox([EXAMPLE["x"][0]], EXAMPLE["weight"], EXAMPLE["bias"])
    y = result["y"][0]
    w, b, x = EXAMPLE["weight"], EXAMPLE["bias"], EXAMPLE["x"][0]
    return {
        "said": f"y = [{y[0]:.4f}, {y[1]:.4f}], so y[0] = {y[0]:.4f}",
        "correct": None, "value": y[0], "tolerance": 0.01,
        "details": [
            f"y[0] = {x[0]:g}×({w[0][0]:.4f}) + {x[1]:g}×({w[0][1]:.4f}) + ({b[0]:.4f}) = {y[0]:.4f}: "
            "row 0 of W times x, plus b[0]. That is y = x Wᵀ + b, one output per row of W.",
            "The shapes: x is (1, 2), one row per example; W is (out, in) = (2, 2), one row per output; Wᵀ is "
            "(in, out), so x @ W.T is (1, in) @ (in, out) = (1, out). The transpose puts each input beside its "
            "weight in every row.",
            f"Computed by a real nn.Linear(2, 2) on the server: PyTorch printed {result['printed']}.",
            "self.hidden does exactly this with 784 inputs and 256 rows: (1, 784) @ (784, 256) = (1, 256).",
        ],
    }


# ---- 4. a row before and after training -------------------------------------------------------------

ROW_CHOICES = [
    "Random speckle before training; smooth strokes and blobs, parts of digits, after",
    "A clear digit, before and after",
    "Blank (all zeros) before; a digit after",
    "Random speckle before and after: training changes little",
]


def neighbour_correlation(row: np.ndarray) -> float:
    """How much each weight agrees with its right and lower neighbour on the 28x28 grid: about 0
    for random weights, clearly positive for strokes and blobs."""
    picture = row.reshape(28, 28).astype(np.float64)
    pairs = [(picture[:, :-1].ravel(), picture[:, 1:].ravel()), (picture[:-1, :].ravel(), picture[1:, :].ravel())]
    values = []
    for a, b in pairs:
        a, b = a - a.mean(), b - b.mean()
        scale = math.sqrt(float((a * a).sum() * (b * b).sum()))
        values.append(float((a * b).sum()) / scale if scale > 0 else 0.0)
    return sum(values) / len(values)


def reveal_row(context: LessonContext) -> dict:
    points = context.replay.points() if context.replay is not None else []
    now = np.asarray(context.weights.layers[0][0], dtype=np.float32)
    if not points or points[0].weights.run_id != context.weights.run_id:
        raise UserError("the first weights of this run are not kept (a new run is starting): try again in a moment")
    first = points[0]
    before = np.asarray(first.weights.layers[0][0], dtype=np.float32)
    change = np.abs(now - before).sum(axis=1)
    j = int(change.argmax())  # the neuron that training changed most
    smooth_before = neighbour_correlation(before[j])
    smooth_now = neighbour_correlation(now[j])
    zeros_before = float(np.abs(before[j]).max()) == 0.0
    moved = float(change[j] / max(np.abs(before[j]).sum(), 1e-12))
    if zeros_before:
        correct = 2
    elif smooth_now > 0.2 and smooth_now > smooth_before + 0.1:
        correct = 0
    else:
        correct = 3
    trained_steps = context.weights.step - first.step
    untrained = trained_steps < TRAINED_STEPS
    details = [
        f"Neuron {j} (the one training changed most). Neighbouring weights agree by {smooth_before:.2f} at step "
        f"{first.step} and by {smooth_now:.2f} at step {context.weights.step} (0: random speckle; clearly above 0: "
        "smooth strokes).",
        f"Its 784 weights moved by {moved:.0%} of their starting size in all.",
    ]
    before_words = 'blank' if zeros_before else 'random speckle' if smooth_before < 0.1 else 'smooth'
    if untrained:
        # Before and after are the same network here: judging would count "training changes
        # little" right. Say so, and let the learner train and ask again.
        details = [f"This run has trained {trained_steps} steps: too few for an \"after\". Train it (at least "
                   f"{TRAINED_STEPS} steps), then ask again."]
        said = f"not yet: this run has trained only {trained_steps} of the {TRAINED_STEPS} steps this question needs"
    else:
        said = (f"Row {j} at step {first.step}: {before_words}; "
                f"at step {context.weights.step}: {'strokes and blobs' if correct == 0 else 'still speckle'}")
    return {
        "said": said,
        "correct": None if untrained else correct,
        "judged": not untrained, "trained_steps": trained_steps, "needs_training": TRAINED_STEPS,
        "details": details,
        "neuron": j,
        "pictures": [] if untrained else [
            {"label": f"row {j} of hidden.weight at step {first.step}", "values": float32_bytes(before[j])},
            {"label": f"row {j} at step {context.weights.step}", "values": float32_bytes(now[j])},
        ],
    }


# ---- 5. the sigmoid ------------------------------------------------------------------------------------

SQUASH_CHOICES = [
    "Anywhere: the same numbers as z",
    "Between 0 and 1: very negative z gives almost 0, very positive almost 1",
    "Between -1 and 1",
    "0 for negative z; z itself for positive z",
]


def drawing_or_digit(context: LessonContext) -> tuple[np.ndarray, str]:
    if context.pixels is not None and float(np.abs(context.pixels).sum()) > 0:
        return context.pixels, "your drawing"
    validation = context.dataset.validation
    return validation.images[0].numpy().astype(np.float32), f"validation digit #0 (a real {int(validation.labels[0])}: nothing is drawn)"


def reveal_squash(context: LessonContext) -> dict:
    pixels, what = drawing_or_digit(context)
    weight, bias = context.weights.layers[0]
    z = weight @ pixels + bias
    a = forward(context.weights, pixels).activations[0]
    if np.allclose(a, z):
        correct = 0
    elif np.allclose(a, np.maximum(z, 0)):
        correct = 3
    elif a.min() >= 0 and a.max() <= 1:
        correct = 1
    else:
        correct = 2
    saturated = float(((a < 0.05) | (a > 0.95)).mean()) if correct == 1 else None
    details = [f"For {what}: z from {z.min():.2f} to {z.max():.2f}; after {context.config.activation}, "
               f"from {a.min():.3f} to {a.max():.3f} ({len(a)} neurons, {weights_from(context)})."]
    if saturated is not None:
        details.append(f"{saturated:.0%} of them are within 0.05 of 0 or 1: there the sigmoid is flat, "
                       "so those neurons learn slowly from this digit.")
    details.append(f"The curve: {context.config.activation}(z) drawn by the network's own activation function; the dots "
                   f"are this drawing's {len(z)} neurons, each at its z and what the activation made of it.")
    reach = max(8.0, float(np.abs(z).max()) + 1.0)
    grid = torch.linspace(-reach, reach, 161)
    with torch.no_grad():
        curve = context.network.activation(grid).numpy()
    return {"said": f"from {a.min():.3f} to {a.max():.3f} (z was from {z.min():.2f} to {z.max():.2f})",
            "correct": correct, "details": details,
            "curve": {"activation": context.config.activation, "z": [round(float(v), 4) for v in grid],
                      "a": [round(float(v), 5) for v in curve], "points_z": [round(float(v), 4) for v in z],
                      "points_a": [round(float(v), 5) for v in a], "what": what},
            "values": {"z_min": float(z.min()), "z_max": float(z.max()), "a_min": float(a.min()), "a_max": float(a.max())}}


# ---- 6. what the output layer says for your drawing ----------------------------------------------------

def reveal_prediction(context: LessonContext) -> dict:
    if context.pixels is None or float(np.abs(context.pixels).sum()) == 0:
        raise UserError("draw a digit on the canvas first (or put a real one on it): this step is about your drawing")
    trace = forward(context.weights, context.pixels)
    probabilities = trace.probabilities.astype(np.float64)
    digit = int(probabilities.argmax())
    ranked = np.argsort(-probabilities)[:3]
    return {
        "said": f"{digit} ({probabilities[digit]:.0%} sure)",
        "correct": digit,
        "prediction": digit,
        "probabilities": [round(float(p), 6) for p in probabilities],
        "details": [
            "output(x) gives 10 numbers (logits), one per digit; softmax turns them into probabilities that add up to 1.",
            "Its top three: " + ", ".join(f"{int(d)} ({probabilities[d]:.1%})" for d in ranked) + ".",
            f"From {weights_from(context)}, the same weights that answer the drawing on the page.",
        ],
    }


# ---- 7. the softmax trap --------------------------------------------------------------------------------

TRAP_CHOICES = [
    "To 0, as when it is given the logits",
    "Never below about 1.5: it can never reach 0, and it learns slowly",
    "Below 0",
]


def gradient_ratio(context: LessonContext) -> float:
    """|d loss / d output.weight| as written (softmax twice) / on the logits, on real digits."""
    train = context.dataset.train
    x, y = train.images[:GRADIENT_DIGITS].float(), train.labels[:GRADIENT_DIGITS]
    norms = []
    for output in ("logits", "softmax"):
        network = context.network
        network.zero_grad(set_to_none=True)
        logits = network.logits(x)
        scores = F.softmax(logits, dim=1) if output == "softmax" else logits
        F.cross_entropy(scores, y).backward()
        norms.append(float(network.output.weight.grad.norm()))
    network.zero_grad(set_to_none=True)
    return norms[1] / norms[0] if norms[0] > 0 else float("nan")


def optimizer_name(config: TrainConfig) -> str:
    return "Adam" if config.optimizer == "adam" else "SGD with momentum"


def confident_wrong_push() -> tuple[float, float]:
    """How hard each loss pushes a certain, wrong answer (logit 10 on digit 0, the digit is 3):
    the size of d loss / d logits, on the logits and given softmax's probabilities."""
    norms = []
    for twice in (False, True):
        logits = torch.zeros(1, 10)
        logits[0, 0] = 10.0
        logits.requires_grad_(True)
        F.cross_entropy(F.softmax(logits, dim=1) if twice else logits, torch.tensor([3])).backward()
        norms.append(float(logits.grad.norm()))
    return norms[0], norms[1]


def trap_fix_code(context: LessonContext) -> list[str]:
    """The fix, as a Python session, with the two right ways' losses computed just now on real
    training digits by the live network: they are the same number."""
    train = context.dataset.train
    x, y = train.images[:GRADIENT_DIGITS].float(), train.labels[:GRADIENT_DIGITS]
    with torch.no_grad():
        logits = context.network.logits(x)
        on_logits = float(F.cross_entropy(logits, y))
        nll = float(F.nll_loss(F.log_softmax(logits, dim=1), y))
    # written as the setup's activation is (server/experiment.py), but F.sigmoid, deprecated, as
    # torch.sigmoid (codegen.SIGMOID_NOTE)
    name = context.config.activation
    act = "torch.sigmoid" if name == "sigmoid" else ACTIVATIONS[name].code
    return [
        "def forward(self, x):",
        f"    x = {act}(self.hidden(x))",
        "    return self.output(x)          # the logits: no softmax here",
        "",
        "loss = nn.CrossEntropyLoss()(model(x), y)   # it applies log-softmax itself",
        "probabilities = F.softmax(model(x), dim=1)  # softmax only to read probabilities",
        "",
        "# or: forward returns F.log_softmax(self.output(x), dim=1), trained with nn.NLLLoss()",
        f"# On {GRADIENT_DIGITS} real training digits, with the live weights:",
        f"#   CrossEntropyLoss(logits)         = {on_logits:.4f}",
        f"#   NLLLoss(log_softmax(logits))     = {nll:.4f}",
    ]


def reveal_trap(context: LessonContext) -> dict:
    perfect = torch.full((1, 10), -1e4)
    perfect[0, 3] = 1e4  # certain and right: probabilities (0, ..., 1, ..., 0)
    floor = float(F.cross_entropy(F.softmax(perfect, dim=1), torch.tensor([3])))
    ratio = gradient_ratio(context)
    on_logits, twice = confident_wrong_push()
    history = context.state.get("history") or []
    lowest = min((p["loss"] for p in history if p.get("loss") is not None and math.isfinite(p["loss"])), default=None)
    gradient_line = (f"On {GRADIENT_DIGITS} real training digits, the gradient reaching output.weight is {ratio:.2f}× as "
                     f"large as on the logits ({weights_from(context)}).")
    if context.config.optimizer == "adam":
        # Adam divides each gradient by its running size: a uniformly smaller gradient alone
        # does not make its steps smaller, so that cannot be the reason here.
        gradient_line += (" This run trains with Adam, which divides each gradient by its recent size, so a smaller "
                          "gradient alone does not make its steps smaller. What slows it is where the push goes:")
    else:
        gradient_line += (" With SGD a step is the learning rate times the gradient, so smaller gradients mean smaller "
                          "steps. And the push goes to the wrong places:")
    details = [
        f"torch computed CrossEntropyLoss(softmax(a certain, right answer)) = {floor:.4f}: the loss applies softmax "
        "again, and probabilities between 0 and 1 stay close together, so even a perfect answer is only "
        f"{math.e / (math.e + 9):.0%} sure after it.",
        gradient_line,
        f"a certain but wrong answer gets a push of {on_logits:.3f} on the logits, and of {twice:.6f} as written: "
        "softmax is flat where it is sure, so the mistakes it is surest of are hardly corrected, while right answers "
        "keep being pushed towards a certainty the loss can never reach.",
        "The fix, in code (below): forward returns the logits; softmax only to read probabilities.",
    ]
    if lowest is not None:
        details.append(f"The run on screen trains on {context.config.output}; its lowest loss so far is {lowest:.3f}.")
    return {"said": f"it cannot go below {floor:.3f}", "correct": 1, "details": details, "value": floor,
            "code": trap_fix_code(context)}


# ---- 8. a far too large learning rate -------------------------------------------------------------------

LR_CHOICES = [
    "It learns much faster: bigger steps, sooner there",
    "It goes wrong: the loss shoots up far above the normal run's, or becomes not a number",
    "Nothing much changes: the learning rate hardly matters",
]


# Trial runs depend only on the setup (its seed included) and the data: each is computed once
# (ten students asking the same reveal cost two trainings, not twenty). Kept for the newest few.
TRIALS_KEPT = 64
_trials: "OrderedDict[tuple, tuple]" = OrderedDict()  # (data, setup) -> (the data, the result)
_trials_lock = threading.Lock()


def trial(config: TrainConfig, dataset, lr: float) -> dict:
    """A real run of TRIAL_STEPS mini-batches from the setup's first weights (its seed); the
    same setup on the same data is trained once (`_trials`)."""
    trial_config = config.updated({"lr": lr})
    key = (id(dataset), trial_config.model_dump_json())
    with _trials_lock:
        kept = _trials.get(key)
        if kept is not None and kept[0] is dataset:
            _trials.move_to_end(key)
            return dict(kept[1])
    result = train_trial(trial_config, dataset)
    with _trials_lock:
        _trials[key] = (dataset, result)  # the data held with it: its id is not reused meanwhile
        while len(_trials) > TRIALS_KEPT:
            _trials.popitem(last=False)
    return dict(result)


def train_trial(trial_config: TrainConfig, dataset) -> dict:
    lr = trial_config.lr
    trainer = Trainer(trial_config, dataset.train.images, dataset.train.labels, torch.device("cpu"))
    stats = trainer.train_batches(TRIAL_STEPS)
    validation = dataset.validation
    if stats.diverged:
        return {"lr": lr, "steps": trainer.global_step, "loss": float("nan"), "accuracy": float("nan"), "diverged": True}
    loss, accuracy, _ = trainer.evaluate(validation.images, validation.labels)
    return {"lr": lr, "steps": trainer.global_step, "loss": float(loss), "accuracy": float(accuracy),
            "diverged": not math.isfinite(loss)}


def lr_question(config: TrainConfig) -> str:
    # True for the optimizer in use: Adam's step is about lr whatever the gradient's size; SGD's
    # is lr times the gradient.
    how = ("Adam moves each weight by about lr per step, against its gradient (it rescales each gradient by its "
           "recent size)" if config.optimizer == "adam"
           else "SGD moves each weight by lr times its gradient, against it (with momentum: its recent average)")
    return (f"This network trains with {optimizer_name(config)} at learning rate lr = {config.lr:g}: {how}. "
            f"What happens after {TRIAL_STEPS} steps with lr = {BIG_LR:g} instead?")


def reveal_lr(context: LessonContext) -> dict:
    normal = trial(context.config, context.dataset, context.config.lr)
    big = trial(context.config, context.dataset, BIG_LR)
    chance = 0.1
    if big["diverged"] or not math.isfinite(big["loss"]) or big["loss"] > 2 * normal["loss"]:
        correct = 1
    elif big["loss"] < 0.8 * normal["loss"]:
        correct = 0
    else:
        correct = 2
    details = [
        f"Two real runs from the same first weights, {TRIAL_STEPS} mini-batches each, scored on the "
        f"{len(context.dataset.validation.labels)} validation digits:",
        f"lr = {normal['lr']:g}: loss {fmt(normal['loss'])}, accuracy {fmt(normal['accuracy'] * 100, 1)}%.",
        f"lr = {big['lr']:g}: loss {fmt(big['loss'])}, accuracy "
        f"{'—' if big['diverged'] else fmt(big['accuracy'] * 100, 1) + '%'} (chance is {chance:.0%}).",
        "Steps that are too big jump right past the low points of the loss, and push the sigmoid neurons to 0 "
        "or 1, where they stop learning. The network is then sure of its answers, and often wrong.",
    ]
    state = context.state
    if state.get("config", {}).get("lr") == BIG_LR and state.get("history"):
        last = state["history"][-1]
        details.append(f"The run on screen trains at lr = {BIG_LR:g} now: at step {last['step']} its loss is "
                       f"{fmt(last['loss'])} and its accuracy {fmt(last['accuracy'] * 100, 1)}%.")
    if state.get("notice"):
        details.append(state["notice"])
    verdict = "it goes wrong" if correct == 1 else "it learns faster" if correct == 0 else "little changes"
    loss_words = "the loss became not a number" if big["diverged"] else f"loss {fmt(big['loss'])}"
    return {"said": f"{verdict}: {loss_words} at lr = {BIG_LR:g}, against {fmt(normal['loss'])} at lr = {normal['lr']:g}",
            "correct": correct, "details": details, "trials": [normal, big]}


# ---- 9. Keras ----------------------------------------------------------------------------------------------

def keras_choices(config: TrainConfig) -> list[str]:
    n = config.hidden_sizes[0]
    return [f"layers.Dense({n})", f"layers.Linear({N_INPUTS}, {n})", f"layers.Conv2D({n})", f"layers.Embedding({N_INPUTS}, {n})"]


def reveal_keras(context: LessonContext) -> dict:
    code = codegen.keras_code(context.config)
    line = next(line.strip() for line in code.splitlines() if "self.hidden" in line)
    n = context.config.hidden_sizes[0]
    choices = keras_choices(context.config)
    correct = next(i for i, choice in enumerate(choices) if line.startswith(choice.rstrip(")")))
    return {
        "said": f"layers.Dense({n}): Keras's name for a fully connected layer",
        "correct": correct,
        "details": [
            f"The same network in Keras has the line {line}",
            f"Keras calls the weight the kernel and stores it as ({N_INPUTS}, {n}): the transpose of PyTorch's "
            f"({n}, {N_INPUTS}). It works out in_features (784) from the first input.",
            "The Keras code on the page builds the file “Download .keras” gives (Keep the weights): Keras 3 "
            "loads it and gives this network's answers, checked by the playground's tests.",
        ],
    }


# ---- 10. what self.hidden is, as a Python object ------------------------------------------------------

MODULE_CHOICES = [
    "A number: the layer's size, 256",
    "A tensor: the (256, 784) table of weights",
    "A module object: it holds weight and bias, forward calls it as self.hidden(x), and model.parameters() "
    "hands both to the optimizer",
    "A function PyTorch runs once, in __init__",
]


def tensor_head(values: torch.Tensor, count: int = 4) -> str:
    return "tensor([" + ", ".join(f"{float(v):.4f}" for v in values[:count]) + ", ...])"


def reveal_module(context: LessonContext) -> dict:
    network = context.network
    hidden = network.hidden
    pixels, what = drawing_or_digit(context)
    x = torch.from_numpy(np.asarray(pixels, dtype=np.float32)).reshape(1, -1)
    with torch.no_grad():
        called = hidden(x)[0]
        by_hand = (x @ hidden.weight.T + hidden.bias)[0]
    difference = float((called - by_hand).abs().max())
    # The optimizer the trainer builds (the same function), given this copy of the live network:
    # it is handed the very tensors that hidden.weight and hidden.bias are.
    optimizer = make_optimizer(network, context.config)
    handed = [p for group in optimizer.param_groups for p in group["params"]]
    gets_weight = any(p is hidden.weight for p in handed)
    gets_bias = any(p is hidden.bias for p in handed)
    named = [(name, tuple(p.shape)) for name, p in network.named_parameters()]
    is_module = isinstance(hidden, torch.nn.Module)
    correct = 2 if is_module and gets_weight and gets_bias and difference < 1e-4 else 1
    shapes = ", ".join(f"torch.Size({list(shape)})" for _, shape in named)
    code = [
        ">>> model.hidden",
        repr(hidden),
        ">>> type(model.hidden).__mro__[:2]",
        f"({type(hidden).__module__}.{type(hidden).__name__}, torch.nn.modules.module.Module)",
        ">>> [p.shape for p in model.parameters()]",
        f"[{shapes}]",
        f">>> x = {what.split(' (')[0]}.reshape(1, 784)",
        ">>> model.hidden(x)",
        tensor_head(called),
        ">>> x @ model.hidden.weight.T + model.hidden.bias",
        tensor_head(by_hand),
        f"# the largest difference over all {called.numel()}: {difference:.2g}",
        f">>> optimizer = torch.optim.{type(optimizer).__name__}(model.parameters(), lr={context.config.lr:g})",
        '>>> any(p is model.hidden.weight for g in optimizer.param_groups for p in g["params"])',
        str(gets_weight),
    ]
    return {
        "said": "a module object: nn.Linear(784, {n}) stored as an attribute, called as self.hidden(x), "
                "and its weight and bias are among model.parameters(), which the optimizer gets".format(n=hidden.out_features),
        "correct": correct,
        "details": [
            f"self.hidden = nn.Linear(784, {hidden.out_features}) makes an object (a torch.nn.Module) and stores it on "
            "the network. Setting a Module as an attribute registers it: the network now owns its parameters.",
            "forward calls it like a function: self.hidden(x) runs Linear's forward, x @ W.T + b. Computed just now "
            f"on {what}: the two agree to {difference:.2g}.",
            f"model.parameters() lists {len(named)} tensors: " + ", ".join(f"{name} {shape}" for name, shape in named)
            + f". The optimizer ({type(optimizer).__name__}, built by the same function as the trainer's) is given "
            f"exactly those tensors: it {'gets' if gets_weight and gets_bias else 'does NOT get'} hidden.weight and "
            "hidden.bias, so optimizer.step() changes them.",
            f"From {weights_from(context)}.",
        ],
        "code": code,
    }
