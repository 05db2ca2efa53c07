"""The ONNX export (GET /api/export.onnx): a model that ONNX's own checker passes in full, with a
dynamic batch, the layers' names, and that onnxruntime runs to the logits `predict` gives for the
official test digits; the graph PyTorch's own exporter makes of the same network; any run's, and
refusals in words."""
from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import numpy as np
import onnx
import onnxruntime
import pytest
import torch

from server.errors import UserError
from server.engine.exports.onnx_file import IR_VERSION, OPSET
from tests.support.official_digits import (SETUPS, TOLERANCE, official_test_digits, predicted,
                                   predicted_by_socket, trained)


def download_onnx(client, url="/api/export.onnx") -> bytes:
    answer = client.get(url)
    assert answer.status_code == 200, answer.data[:300]
    assert answer.headers["Content-Disposition"].startswith("attachment; filename=nn-linear-")
    assert answer.headers["Content-Disposition"].endswith(".onnx")
    assert answer.headers["Cache-Control"] == "no-store"
    return answer.data


def run_onnx(data: bytes, images: np.ndarray) -> np.ndarray:
    session = onnxruntime.InferenceSession(data, providers=["CPUExecutionProvider"])
    return session.run(None, {"x": images})[0]


def dims(value_info) -> list:
    return [d.dim_param or d.dim_value for d in value_info.type.tensor_type.shape.dim]


@pytest.mark.parametrize("setup", SETUPS.values(), ids=SETUPS.keys())
def test_onnxruntime_gives_the_logits_predict_gives_on_the_official_test_digits(
        engine, app, client, session, sio_client, setup):
    trained(engine, setup, 30)  # trained weights, not the initial ones
    data = download_onnx(client)

    model = onnx.load_from_string(data)
    onnx.checker.check_model(model, full_check=True)
    assert [(opset.domain, opset.version) for opset in model.opset_import] == [("", OPSET)]
    assert model.ir_version == IR_VERSION
    [given], [answer] = model.graph.input, model.graph.output
    assert (given.name, dims(given), answer.name, dims(answer)) == ("x", ["N", 784], "logits", ["N", 10])
    assert given.type.tensor_type.elem_type == onnx.TensorProto.FLOAT
    layers = session.config.architecture.layers
    assert [node.name for node in model.graph.node if node.op_type == "Gemm"] == [layer.name for layer in layers]
    assert [init.name for init in model.graph.initializer] == list(session.config.architecture.state_dict_shapes())

    images, labels = official_test_digits()
    theirs = run_onnx(data, images)  # all 10,000 in one batch: the batch is dynamic
    ours, _ = predicted(app, images)
    assert theirs.shape == (10_000, 10)
    np.testing.assert_allclose(theirs, ours, rtol=0, atol=TOLERANCE)
    assert (theirs.argmax(1) == ours.argmax(1)).all()
    assert (theirs.argmax(1) == labels).mean() > 0.3  # trained: far from chance (0.1)
    # and the socket event itself, for the first digits
    np.testing.assert_allclose(theirs[:20], predicted_by_socket(sio_client, images[:20]), rtol=0, atol=TOLERANCE)
    # one digit at a time works too
    np.testing.assert_allclose(run_onnx(data, images[:1]), theirs[:1], rtol=0, atol=TOLERANCE)


def test_the_file_says_what_it_is_and_holds_the_weights_under_their_state_dict_names(engine, client, session):
    trained(engine, {"hidden_sizes": [32, 16], "activation": "leaky_relu"}, 3)
    model = onnx.load_from_string(download_onnx(client))

    weights = {init.name: onnx.numpy_helper.to_array(init) for init in model.graph.initializer}
    for name, tensor in session.trainer.model.state_dict().items():
        np.testing.assert_array_equal(weights[name], tensor.numpy())  # (out, in), as PyTorch keeps it
    nodes = [(node.op_type, node.name) for node in model.graph.node]
    assert nodes == [("Gemm", "hidden"), ("LeakyRelu", "hidden.leaky_relu"), ("Gemm", "hidden2"),
                     ("LeakyRelu", "hidden2.leaky_relu"), ("Gemm", "output")]
    gemm = model.graph.node[0]
    assert {a.name: onnx.helper.get_attribute_value(a) for a in gemm.attribute} == {"transB": 1}  # x Wᵀ + b
    assert onnx.helper.get_attribute_value(model.graph.node[1].attribute[0]) == pytest.approx(0.01)
    assert "nn.Linear(784, 32)" in gemm.doc_string
    props = {p.key: p.value for p in model.metadata_props}
    assert json.loads(props["setup"])["hidden_sizes"] == [32, 16] and props["step"] == "3"


@pytest.mark.slow
def test_the_graph_is_the_one_torch_onnx_export_makes_of_the_same_network(engine, client, session, tmp_path):
    """PyTorch's own exporter (torch 2.13's default, dynamo, with onnxscript), run on the question's
    kind of class holding the same weights: the same operators, the same numbers."""
    trained(engine, {"hidden_sizes": [40, 20, 10], "activation": "tanh"}, 5)
    (tmp_path / "ours.onnx").write_bytes(download_onnx(client))
    torch.save(session.trainer.model.state_dict(), tmp_path / "model.pt")
    # A process of its own: torch.export is not safe beside training threads (see onnx_file.py).
    script = textwrap.dedent("""
        import sys, warnings
        import numpy as np, onnx, onnxruntime, torch
        from torch import nn
        warnings.simplefilter("ignore")

        class Network(nn.Module):
            def __init__(self):
                super().__init__()
                self.hidden = nn.Linear(784, 40)
                self.hidden2 = nn.Linear(40, 20)
                self.hidden3 = nn.Linear(20, 10)
                self.output = nn.Linear(10, 10)
            def forward(self, x):
                x = torch.tanh(self.hidden(x))
                x = torch.tanh(self.hidden2(x))
                x = torch.tanh(self.hidden3(x))
                return self.output(x)

        model = Network()
        model.load_state_dict(torch.load("model.pt", weights_only=True))
        model.eval()
        program = torch.onnx.export(model, (torch.zeros(2, 784),), dynamo=True, verbose=False,
                                    input_names=["x"], output_names=["logits"],
                                    dynamic_shapes=({0: torch.export.Dim("N")},))
        theirs = program.model_proto
        ours = onnx.load("ours.onnx")
        print([node.op_type for node in theirs.graph.node])
        print([node.op_type for node in ours.graph.node])
        x = np.random.default_rng(0).random((64, 784), dtype=np.float32)
        run = lambda m: onnxruntime.InferenceSession(m.SerializeToString()).run(None, {"x": x})[0]
        print(float(np.abs(run(theirs) - run(ours)).max()))
    """)
    done = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    theirs, ours, difference = done.stdout.strip().splitlines()[-3:]
    assert theirs == ours == str(["Gemm", "Tanh"] * 3 + ["Gemm"])
    assert float(difference) < 1e-6


def test_any_run_by_its_key(client, sio_client, session):
    created = sio_client.emit("run:create", {"config": {"hidden_sizes": [24], "activation": "tanh"}}, callback=True)
    assert created["ok"], created
    key = created["run"]
    shared = onnx.load_from_string(download_onnx(client))
    private = onnx.load_from_string(download_onnx(client, f"/api/export.onnx?run={key}"))

    assert [i.name for i in shared.graph.initializer][:1] == ["hidden.weight"]
    assert [tuple(i.dims) for i in private.graph.initializer][:2] == [(24, 784), (24,)]
    assert [n.op_type for n in private.graph.node] == ["Gemm", "Tanh", "Gemm"]


def test_bad_requests_get_words(client, session):
    unknown = client.get("/api/export.onnx?run=p-0123456789ab")
    assert unknown.status_code == 404 and "there is no run 'p-0123456789ab'" in unknown.get_json()["error"]
    malformed = client.get("/api/export.onnx?run=../etc")
    assert malformed.status_code == 400 and "p- and 12 hex digits" in malformed.get_json()["error"]


def test_a_run_whose_network_is_being_rebuilt_is_refused_in_words(engine):
    """Between a new setup and its first weights in the replica, an export waits for the new network."""
    from server.engine.exports import STILL_BUILDING, exported_weights
    from server.experiment import TrainConfig

    weights = engine.part().replica.reader.latest()  # the default network's
    for replica_weights in (weights, None):
        with pytest.raises(UserError) as refused:
            exported_weights(replica_weights, TrainConfig(hidden_sizes=[12]))
        assert str(refused.value) == STILL_BUILDING and refused.value.status == 409
    assert exported_weights(weights, TrainConfig()).architecture.sizes == (784, 256, 10)


def test_a_server_without_the_onnx_package_says_what_to_install(client, monkeypatch):
    monkeypatch.setitem(sys.modules, "onnx", None)  # `import onnx` now fails, as where it is not installed
    answer = client.get("/api/export.onnx")

    assert answer.status_code == 501
    assert answer.get_json()["error"] == (
        "the ONNX export needs the Python package onnx, which this server does not have: install it "
        "(pip install -r requirements.txt pins its version) and restart the server")
    assert client.get("/api/export.py").status_code == 200  # the rest works
