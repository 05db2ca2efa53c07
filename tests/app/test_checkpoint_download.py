"""Checkpoints out: GET /api/checkpoint gives a plain state_dict that torch.load(weights_only=True)
reads and the question's own Network class (written here, independently of server/model.py)
loads and predicts with exactly as the server does; the Python export runs on its own."""
from __future__ import annotations

import subprocess
import sys

import torch
import torch.nn.functional as F
from torch import nn


class QuestionNetwork(nn.Module):
    """The class from the question, verbatim."""

    def __init__(self):
        super().__init__()
        self.hidden = nn.Linear(784, 256)
        self.output = nn.Linear(256, 10)

    def forward(self, x):
        x = F.sigmoid(self.hidden(x))
        x = F.softmax(self.output(x), dim=1)
        return x


def download(client, tmp_path, url="/api/checkpoint"):
    answer = client.get(url)
    assert answer.status_code == 200, answer.data[:200]
    assert answer.headers["Content-Type"] == "application/octet-stream"
    assert answer.headers["Content-Disposition"].startswith("attachment; filename=")
    path = tmp_path / "model.pt"
    path.write_bytes(answer.data)
    return path


def test_the_downloaded_checkpoint_loads_into_the_questions_class_and_predicts_the_same(
        client, session, small_dataset, tmp_path, sio_client):
    session.step(25)  # trained weights, not the initial ones
    path = download(client, tmp_path)

    state_dict = torch.load(path, weights_only=True)
    assert list(state_dict) == ["hidden.weight", "hidden.bias", "output.weight", "output.bias"]
    assert {k: tuple(v.shape) for k, v in state_dict.items()} == {
        "hidden.weight": (256, 784), "hidden.bias": (256,), "output.weight": (10, 256), "output.bias": (10,)}

    network = QuestionNetwork()
    network.load_state_dict(state_dict)  # strict: exactly these keys and shapes
    network.eval()
    images = small_dataset.validation.images
    with torch.no_grad():
        theirs = network(images)
        ours = session.trainer.model(images)
    assert torch.equal(theirs.argmax(1), ours.argmax(1))
    assert torch.allclose(theirs, ours, atol=1e-6)
    # And the drawing path: the server's predict answer for one digit is the same.
    answer = sio_client.emit("predict", {"pixels": images[0].tolist()}, callback=True)
    assert answer["probabilities"] == __import__("pytest").approx(theirs[0].tolist(), abs=1e-6)


def test_the_checkpoint_is_the_live_weights_at_the_moment_of_download(client, session, tmp_path):
    first = torch.load(download(client, tmp_path), weights_only=True)
    session.step(3)
    second = torch.load(download(client, tmp_path), weights_only=True)
    assert not torch.equal(first["hidden.weight"], second["hidden.weight"])
    assert torch.equal(second["output.bias"], session.trainer.model.output.bias.detach())


def test_a_bigger_setup_downloads_with_its_layer_names(client, session, tmp_path):
    session.reset({"hidden_sizes": [64, 32], "activation": "relu"})
    state_dict = torch.load(download(client, tmp_path), weights_only=True)
    assert list(state_dict) == ["hidden.weight", "hidden.bias", "hidden2.weight", "hidden2.bias",
                                "output.weight", "output.bias"]
    assert tuple(state_dict["hidden2.weight"].shape) == (32, 64)


def test_the_python_export_is_self_contained_and_predicts_like_the_server(client, session, small_dataset, tmp_path):
    session.reset({"hidden_sizes": [48, 24], "activation": "leaky_relu"})
    session.step(5)
    checkpoint = download(client, tmp_path)
    export = client.get("/api/export.py")
    assert export.status_code == 200
    assert export.headers["Content-Disposition"] == "attachment; filename=nn_linear_playground.py"
    source = export.data.decode()
    assert "self.hidden = nn.Linear(784, 48)" in source and "self.hidden2 = nn.Linear(48, 24)" in source
    assert "self.output = nn.Linear(24, 10)" in source and "weights_only=True" in source
    module_path = tmp_path / "nn_linear_playground.py"
    module_path.write_text(source)
    images = small_dataset.validation.images[:50]
    torch.save(images, tmp_path / "images.pt")
    # A fresh interpreter that imports nothing from this repository: the file run as a script
    # (its __main__ loads the checkpoint), then its load() used as a library.
    script = (
        "import runpy, sys, torch;"
        "module, checkpoint, images, out = sys.argv[1:];"
        "sys.argv = [module, checkpoint];"
        "namespace = runpy.run_path(module, run_name='__main__');"
        "model = namespace['load'](checkpoint);"
        "torch.save(model(torch.load(images, weights_only=True)), out)"
    )
    run = subprocess.run([sys.executable, "-c", script, str(module_path), str(checkpoint), str(tmp_path / "images.pt"),
                          str(tmp_path / "out.pt")], capture_output=True, text=True, check=True, cwd=tmp_path, timeout=120)
    theirs = torch.load(tmp_path / "out.pt", weights_only=True)
    with torch.no_grad():
        ours = session.trainer.model(images)
    assert torch.allclose(theirs, ours, atol=1e-6)
    assert "loaded 39,106 parameters" in run.stdout  # 784*48+48 + 48*24+24 + 24*10+10


def test_the_default_export_is_the_questions_class(client):
    source = client.get("/api/export.py").data.decode()
    assert "x = F.sigmoid(self.hidden(x))\n        x = F.softmax(self.output(x), dim=1)\n        return x" in source
