"""The explainer's code view: the PyTorch source of the network on screen, generated from the
setup. For the default setup it is the question's class line for line, and it runs: the module
it builds loads the playground's live weights and predicts exactly what the playground predicts."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from server.experiment import TrainConfig
from server.engine.codegen import code_payload, keras_code, model_code, model_code_lines
from server.engine.exports import exported_weights
from server.engine.model import build_network

QUESTION_CLASS = """\
class Network(nn.Module):
    def __init__(self):
        super().__init__()
        self.hidden = nn.Linear(784, 256)
        self.output = nn.Linear(256, 10)
    def forward(self, x):
        x = F.sigmoid(self.hidden(x))
        x = F.softmax(self.output(x), dim=1)
        return x
"""


def class_block(code: str) -> str:
    lines = code.splitlines()
    start = lines.index("class Network(nn.Module):")
    end = next(i for i in range(start, len(lines)) if lines[i] == "        return x")
    return "\n".join(lines[start:end + 1]) + "\n"


def run(code: str) -> dict:
    namespace: dict = {}
    exec(compile(code, "network.py", "exec"), namespace)  # noqa: S102 - our own generated code
    return namespace


def test_the_default_code_is_the_questions_class_line_for_line():
    code = model_code(TrainConfig())

    assert class_block(code) == QUESTION_CLASS
    assert code.startswith("import torch\nimport torch.nn.functional as F\nfrom torch import nn\n")


def test_the_sigmoid_deprecation_note_is_a_comment_outside_the_class():
    code = model_code(TrainConfig())
    note_lines = [line for line in code.splitlines() if "deprecated" in line]

    assert note_lines and all(line.startswith("#") for line in note_lines)
    assert "torch.sigmoid" in note_lines[0]
    assert "deprecated" not in class_block(code)
    sigmoid_line = next(line for line in model_code_lines(TrainConfig()) if "F.sigmoid(self.hidden" in line.text)
    assert "torch.sigmoid" in sigmoid_line.note  # shown beside the line, not in it


def test_the_generated_code_loads_the_playgrounds_live_weights_and_predicts_the_same(session, small_dataset, sio_client):
    session.step(20)  # trained weights, not the initial ones
    network = run(model_code(session.config))["Network"]()

    network.load_state_dict(session.trainer.model.state_dict())  # strict: same names and shapes

    x = small_dataset.validation.images[:64].reshape(64, -1)
    with torch.no_grad():
        ours = network(x)
        playground = session.trainer.model(x)
    torch.testing.assert_close(ours, playground)
    assert torch.equal(ours.argmax(1), playground.argmax(1))
    answer = sio_client.emit("predict", {"pixels": x[0].tolist()}, callback=True)
    torch.testing.assert_close(ours[0], torch.tensor(answer["probabilities"]))


@pytest.mark.parametrize("config", [
    TrainConfig(hidden_sizes=[64, 32], activation="relu"),
    TrainConfig(hidden_sizes=[16], activation="tanh", output="softmax"),
    TrainConfig(hidden_sizes=[8, 8, 8, 8], activation="leaky_relu"),
], ids=["two-relu-layers", "tanh-softmax", "four-leaky-relu-layers"])
def test_code_for_other_setups_runs_and_matches_the_playgrounds_network(config):
    playground = build_network(config)
    network = run(model_code(config))["Network"]()
    network.load_state_dict(playground.state_dict())
    x = torch.rand(5, 784, generator=torch.Generator().manual_seed(3))

    with torch.no_grad():
        torch.testing.assert_close(network(x), playground(x))


@pytest.mark.parametrize("config", [TrainConfig(), TrainConfig(hidden_sizes=[32, 16], activation="tanh")])
def test_the_training_note_shows_the_loss_the_trainer_uses(config):
    """With output="logits" the note's loss expression is the model's logits: evaluate it."""
    code = model_code(config)
    network = run(code)["Network"]()
    expression = next(line for line in code.splitlines() if "F.cross_entropy(" in line)
    logits_expression = expression.split("F.cross_entropy(", 1)[1].rsplit(", y)", 1)[0]
    x = torch.rand(4, 784, generator=torch.Generator().manual_seed(4))

    with torch.no_grad():
        logits = eval(logits_expression, {"model": network, "F": F, "torch": torch, "x": x})  # noqa: S307
        torch.testing.assert_close(F.softmax(logits, dim=1), network(x))
    assert "log-softmax" in code


def test_the_softmax_setup_says_the_loss_gets_the_probabilities_twice_softmaxed():
    code = model_code(TrainConfig(output="softmax"))

    assert "#     loss = F.cross_entropy(model(x), y)" in code
    assert "softmax twice" in code
    assert class_block(code) == QUESTION_CLASS  # the class is the question's either way


def test_each_line_says_which_views_it_makes():
    lines = {line.text.strip(): line for line in model_code_lines(TrainConfig())}

    assert "hidden-weights" in lines["self.hidden = nn.Linear(784, 256)"].targets
    assert "output-weights" in lines["self.output = nn.Linear(256, 10)"].targets
    assert "activation-histogram" in lines["x = F.sigmoid(self.hidden(x))"].targets
    assert "probabilities" in lines["x = F.softmax(self.output(x), dim=1)"].targets
    assert "(256, 784)" in lines["self.hidden = nn.Linear(784, 256)"].makes
    assert not lines["import torch"].targets


def test_keras_side_by_side_has_one_dense_per_linear():
    keras = keras_code(TrainConfig())

    assert 'layers.Dense(256, activation="sigmoid", name="hidden"),  # self.hidden, then F.sigmoid' in keras
    assert 'layers.Dense(10, activation=None, name="output"),  # self.output: no activation, = nn.Linear(256, 10)' in keras
    assert 'layers.Softmax(name="softmax"),  # F.softmax(..., dim=1)' in keras
    assert 'keras.Input(shape=(784,), name="x")' in keras
    assert keras_code(TrainConfig(hidden_sizes=[64, 32])).count("layers.Dense(") == 3


def test_code_py_serves_the_code_of_the_current_setup(client, sio_client):
    first = client.get("/api/code.py")
    assert first.status_code == 200
    assert first.mimetype == "text/x-python"
    assert class_block(first.get_data(as_text=True)) == QUESTION_CLASS

    answer = sio_client.emit("train:reset", {"config": {"hidden_sizes": [128], "activation": "relu"}}, callback=True)
    assert answer["ok"], answer

    changed = client.get("/api/code.py").get_data(as_text=True)
    assert "self.hidden = nn.Linear(784, 128)" in changed
    assert "x = F.relu(self.hidden(x))" in changed


def test_the_code_view_payload_lines_are_the_code(client, engine):
    payload = client.get("/api/explain/code").get_json()

    assert "\n".join(line["text"] for line in payload["lines"]) + "\n" == payload["code"]
    live = exported_weights(engine.part().replica.reader.latest(), TrainConfig())  # the Keras code shows them
    assert payload == code_payload(TrainConfig(), live)
    assert payload["keras_step"] == 0
