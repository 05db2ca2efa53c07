"""The Keras 3 export (GET /api/export.keras) and the Keras code the page shows beside the PyTorch
class. Real Keras 3 on the torch backend (KERAS_BACKEND=torch, no TensorFlow), in a process of its
own, loads the file with keras.saving.load_model and gives the outputs `predict` gives on the
official test digits; the page's Keras code, run on the downloaded checkpoint, builds the same
model; and it shows the live weights both ways: kernel = Wᵀ."""
from __future__ import annotations

import io
import json
import os
import re
import subprocess
import sys
import textwrap
import zipfile

import numpy as np
import pytest

from server.engine.exports import ExportedWeights
from server.engine.exports.keras_file import keras_bytes
from server.engine.model import build_network
from server.experiment import Architecture, TrainConfig
from tests.support.official_digits import SETUPS, TOLERANCE, official_test_digits, predicted, trained

# Loads each .keras file given, runs it on x.npy, and writes what it found to found.json and
# <file>.npz: the layers, the probabilities, the logits (the "output" layer's own output).
KERAS_RUNNER = textwrap.dedent("""
    import json, sys
    import numpy as np
    import keras

    x = np.load("x.npy")
    found = {"backend": keras.backend.backend(), "tensorflow": "tensorflow" in sys.modules, "models": {}}
    for path in sys.argv[1:]:
        model = keras.saving.load_model(path)
        logits = keras.Model(model.inputs, model.get_layer("output").output)
        np.savez(path + ".npz", probabilities=model.predict(x, batch_size=4096, verbose=0),
                 logits=logits.predict(x, batch_size=4096, verbose=0),
                 kernel=keras.ops.convert_to_numpy(model.layers[0].kernel))
        found["models"][path] = [[layer.__class__.__name__, layer.name,
                                  {k: v for k, v in layer.get_config().items() if k in ("units", "activation", "negative_slope", "axis")}]
                                 for layer in model.layers]
    found["tensorflow"] = found["tensorflow"] or "tensorflow" in sys.modules
    json.dump(found, open("found.json", "w"))
""")


def run_keras(folder, *files: str, code: str | None = None) -> dict:
    """Real Keras 3 on the torch backend in a fresh interpreter: first the page's `code` (if given,
    run as a learner would, in `folder`), then each file loaded and run on x.npy."""
    env = {**os.environ, "KERAS_BACKEND": "torch"}
    if code is not None:
        (folder / "keras_code.py").write_text(code)
        done = subprocess.run([sys.executable, "keras_code.py"], cwd=folder, env=env, capture_output=True,
                              text=True, timeout=300)
        assert done.returncode == 0, done.stderr[-3000:]
    (folder / "runner.py").write_text(KERAS_RUNNER)
    done = subprocess.run([sys.executable, "runner.py", *files], cwd=folder, env=env, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    found = json.loads((folder / "found.json").read_text())
    assert found["backend"] == "torch" and not found["tensorflow"]
    return found


def download(client, url: str, suffix: str) -> bytes:
    answer = client.get(url)
    assert answer.status_code == 200, answer.data[:300]
    assert answer.headers["Content-Disposition"].endswith(suffix)
    return answer.data


@pytest.mark.slow
@pytest.mark.parametrize("setup", SETUPS.values(), ids=SETUPS.keys())
def test_keras_loads_the_export_and_the_pages_keras_code_builds_it_both_giving_predicts_outputs(
        engine, app, client, session, tmp_path, setup):
    trained(engine, setup, 30)  # trained weights, not the initial ones
    data = download(client, "/api/export.keras", ".keras")
    assert sorted(zipfile.ZipFile(io.BytesIO(data)).namelist()) == ["config.json", "metadata.json", "model.weights.h5"]
    (tmp_path / "export.keras").write_bytes(data)
    (tmp_path / "model.pt").write_bytes(download(client, "/api/checkpoint", ".pt"))  # as the code says
    payload = client.get("/api/explain/code").get_json()
    assert payload["keras_step"] == session.step_count == 30
    images, _ = official_test_digits()
    np.save(tmp_path / "x.npy", images)

    found = run_keras(tmp_path, "export.keras", "nn_linear_playground.keras", code=payload["keras"])

    logits, probabilities = predicted(app, images)
    for name in ("export.keras", "nn_linear_playground.keras"):  # the server's file, and the code's
        result = np.load(tmp_path / f"{name}.npz")
        np.testing.assert_allclose(result["probabilities"], probabilities, rtol=0, atol=TOLERANCE)
        np.testing.assert_allclose(result["logits"], logits, rtol=0, atol=TOLERANCE)
        # Keras keeps the kernel as (in, out): PyTorch's hidden.weight (out, in), transposed
        hidden = session.trainer.model.hidden.weight.detach().numpy()
        np.testing.assert_array_equal(result["kernel"], hidden.T)
    assert found["models"]["export.keras"] == found["models"]["nn_linear_playground.keras"]
    hidden_layers = session.config.architecture.hidden_layers
    assert [layer[:2] for layer in found["models"]["export.keras"]] == (
        [["Dense", layer.name] for layer in hidden_layers] + [["Dense", "output"], ["Softmax", "softmax"]])

    # The code shows the live numbers both ways: row 0 of W is column 0 of the kernel.
    shown = re.findall(r"\[(-?\d\.\d{4}), (-?\d\.\d{4}), (-?\d\.\d{4})\]", payload["keras"])
    assert len(shown) == 2 and shown[0] == shown[1]
    np.testing.assert_allclose([float(v) for v in shown[0]], hidden[0, :3], atol=5e-5)
    assert "At step 30: hidden.weight[0, :3]" in payload["keras"]
    assert "hidden kernel[:3, 0]" in payload["keras"]


@pytest.mark.slow
def test_every_activation_and_depth_loads_in_keras_with_pytorchs_outputs(tmp_path):
    """Each activation as PyTorch computes it: leaky ReLU with PyTorch's slope, 0.01, not Keras's 0.2."""
    import torch

    setups = [TrainConfig(hidden_sizes=sizes, activation=activation)
              for sizes, activation in [([20], "sigmoid"), ([20, 12], "relu"), ([16, 8, 8], "tanh"),
                                        ([8, 8, 8, 8], "leaky_relu"), ([30], "leaky_relu")]]
    x = torch.rand(256, 784, generator=torch.Generator().manual_seed(5)) * 4 - 2  # negative inputs too
    np.save(tmp_path / "x.npy", x.numpy())
    files, expected = [], {}
    for number, config in enumerate(setups):
        network = build_network(config).eval()
        arrays = {name: tensor.detach().numpy() for name, tensor in network.state_dict().items()}
        name = f"setup{number}.keras"
        (tmp_path / name).write_bytes(keras_bytes(ExportedWeights(Architecture.of(config), arrays, 0)))
        files.append(name)
        with torch.no_grad():
            expected[name] = (network.logits(x).numpy(), network(x).numpy())

    found = run_keras(tmp_path, *files)

    for name, (logits, probabilities) in expected.items():
        result = np.load(tmp_path / f"{name}.npz")
        np.testing.assert_allclose(result["logits"], logits, rtol=0, atol=TOLERANCE)
        np.testing.assert_allclose(result["probabilities"], probabilities, rtol=0, atol=TOLERANCE)
    leaky = found["models"]["setup3.keras"]
    assert [layer[0] for layer in leaky] == ["Dense", "LeakyReLU"] * 4 + ["Dense", "Softmax"]
    assert leaky[1][2]["negative_slope"] == pytest.approx(0.01)


def test_the_keras_file_is_any_runs(client, sio_client, session):
    created = sio_client.emit("run:create", {"config": {"hidden_sizes": [24], "activation": "tanh"}}, callback=True)
    assert created["ok"], created
    private = zipfile.ZipFile(io.BytesIO(download(client, f"/api/export.keras?run={created['run']}", ".keras")))
    config = json.loads(private.read("config.json"))
    dense = [layer["config"] for layer in config["config"]["layers"] if layer["class_name"] == "Dense"]
    assert [(d["name"], d["units"], d["activation"]) for d in dense] == [("hidden", 24, "tanh"), ("output", 10, "linear")]
    unknown = client.get("/api/export.keras?run=p-0123456789ab")
    assert unknown.status_code == 404 and "there is no run" in unknown.get_json()["error"]


def test_a_server_without_h5py_says_what_to_install(client, monkeypatch):
    monkeypatch.setitem(sys.modules, "h5py", None)  # `import h5py` now fails, as where it is not installed
    answer = client.get("/api/export.keras")

    assert answer.status_code == 501
    assert answer.get_json()["error"].startswith(
        "the Keras export (its weights file is HDF5) needs the Python package h5py, which this server does not have")
