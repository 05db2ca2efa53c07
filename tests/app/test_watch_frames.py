"""What a watching script sends, checked (issue 20): the watch:* events of docs/protocol.md
from a Socket.IO client written by hand, as a hostile or broken client would write them. A good
frame moves the run; a bad one is refused in words and changes nothing; only the script that
opened a run feeds it; a script from another machine needs the control token."""
from __future__ import annotations

import math
import sys

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from torch import nn

from server import create_app
from server.watch_frames import row_lengths, LinearLayer
from tests.support.helpers import REPO, in_peoples_words

sys.path.insert(0, str(REPO / "client"))  # the client's encoder, as the user's script has it
from linear_playground.wire import WeightsEncoder  # noqa: E402

FUZZ = settings(max_examples=40, deadline=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])


def tiny_model():
    torch.manual_seed(1)
    return nn.Sequential(nn.Linear(784, 16), nn.ReLU(), nn.Linear(16, 10))


SPEC = {"name": "tiny", "layers": [{"path": "0", "in_features": 784, "out_features": 16, "bias": True},
                                   {"path": "2", "in_features": 16, "out_features": 10, "bias": True}],
        "tree": [{"path": "", "type": "Sequential", "depth": 0, "parameters": 12730, "text": "Sequential()"},
                 {"path": "0", "type": "Linear", "depth": 1, "parameters": 12560,
                  "text": "Linear(in_features=784, out_features=16, bias=True)"}],
        "chain": {"activations": ["relu", None]}, "unfollowed": None, "controllable": False}


def weights_data(model, dtype="<f4") -> bytes:
    return b"".join(p.detach().numpy().astype(dtype).tobytes() for p in model.parameters())


def flat(model) -> np.ndarray:
    return np.concatenate([p.detach().numpy().reshape(-1) for p in model.parameters()]).astype(np.float32)


def encoder() -> WeightsEncoder:
    return WeightsEncoder(row_lengths([LinearLayer(**layer) for layer in SPEC["layers"]]).tolist())


def int8_snapshot(run, encoded, step):
    """A snapshot frame as the client sends it: int8 rows (whole, or a delta from `base`)."""
    return {"run": run, "step": step, "final": False, **encoded.fields, "layers": [{}, {}]}


def script_client(app, *, remote: bool = False, token=None):
    http = app.test_client()
    if remote:
        http.environ_base["REMOTE_ADDR"] = "192.0.2.7"  # another machine
    auth = {"viewer": f"script-secret-{id(http):x}"[:40].ljust(16, "x")}
    if token:
        auth["token"] = token
    return app.extensions["playground"].socketio.test_client(app, flask_test_client=http, auth=auth)


def call(client, event, payload):
    client.get_received()
    return client.emit(event, payload, callback=True)


@pytest.fixture
def script(app):
    client = script_client(app)
    yield client
    client.disconnect()


@pytest.fixture
def page(app):
    client = app.extensions["playground"].socketio.test_client(app, flask_test_client=app.test_client())
    yield client
    client.disconnect()


@pytest.fixture
def opened(script):
    answer = call(script, "watch:open", SPEC)
    assert answer["ok"], answer
    return answer["run"]


def steps(run, n=3, first=1, loss=1.0):
    return {"run": run, "steps": list(range(first, first + n)), "loss": [loss] * n, "numbers": {"accuracy": [0.5] * n}}


def snapshot(run, model, step=3, **extra):
    return {"run": run, "step": step, "dtype": "float32", "final": False, "data": weights_data(model),
            "layers": [{"activations": {"lo": -1.0, "hi": 1.0, "counts": [1, 2, 3]}, "grads": None}, {}], **extra}


def test_a_scripts_frames_make_a_run_whose_network_and_predictions_are_its_models(app, script, opened):
    model = tiny_model()
    assert call(script, "watch:steps", steps(opened))["ok"]
    answer = call(script, "watch:snapshot", snapshot(opened, model))
    assert answer == {"ok": True, "held": False, "released": 0, "done": False}
    run = engine_of(app, opened).part(opened).run
    assert run.step_count == 3 and run.history[-1]["loss"] == 1.0 and run.history[-1]["accuracy"] == 0.5
    assert torch.equal(run.model.hidden.weight, model[0].weight) and torch.equal(run.model.output.bias, model[2].bias)
    assert run.config.hidden_sizes == [16] and run.config.activation == "relu"
    assert run.state()["watched"]["histograms"]["0"]["activations"]["counts"] == [1, 2, 3]

    page = app.extensions["playground"].socketio.test_client(app, flask_test_client=app.test_client())
    try:
        assert call(page, "run:watch", {"run": opened})["owner"] == "someone"
        pixels = torch.rand(784, generator=torch.Generator().manual_seed(0))
        prediction = call(page, "predict", {"pixels": pixels.tolist()})
        with torch.no_grad():
            theirs = F.softmax(model(torch.tensor(prediction["input"]).reshape(1, 784)), dim=1)[0]
        np.testing.assert_allclose(prediction["probabilities"], theirs.numpy(), atol=1e-5)
        # Read-only for the page: its controls and its setup are the script's.
        for event in ("train:start", "train:reset", "train:pause"):
            refused = call(page, event, None)
            assert not refused["ok"] and in_peoples_words(refused["error"])
        assert not call(page, "watch:steps", steps(opened, first=4))["ok"]  # not the page's to feed
    finally:
        page.disconnect()

    assert call(script, "watch:close", {"run": opened})["ok"]
    assert run.status == "done"
    refused = call(script, "watch:steps", steps(opened, first=4))
    assert not refused["ok"] and "finished" in refused["error"]


def test_int8_deltas_keep_the_servers_weights_the_very_numbers_the_client_holds(app, script, opened):
    """The client's encoder (client/linear_playground/wire.py) and the server rebuild the same
    float32 weights from whole int8 rows and then deltas; each weight within half its row's step
    of the model's, and the page predicts with them."""
    model, wire = tiny_model(), encoder()
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    run = engine_of(app, opened).part(opened).run
    for step in range(1, 6):
        x, y = torch.rand(32, 784), torch.randint(0, 10, (32,))
        opt.zero_grad(); F.cross_entropy(model(x), y).backward(); opt.step()  # noqa: E702
        encoded = wire.encode(flat(model), exact=False)
        assert encoded.fields.get("delta", False) is (step > 1) and encoded.nbytes == 12730 + 28 * 4
        answer = call(script, "watch:snapshot", int8_snapshot(opened, encoded, step))
        assert answer["ok"], answer
        wire.taken(encoded, step)
        assert np.array_equal(run.held_weights, wire.held)  # bit for bit
        assert run.state()["watched"]["snapshot_step"] == step
        served = torch.cat([p.detach().reshape(-1) for p in run.model.parameters()]).numpy()
        assert np.array_equal(served, wire.held)
        scales = np.frombuffer(encoded.fields["scales"], "<f4")
        error = np.abs(served - flat(model))
        assert (error <= np.repeat(scales, wire.lengths) / 2 * 1.0001 + np.spacing(np.abs(flat(model)))).all()

    page = app.extensions["playground"].socketio.test_client(app, flask_test_client=app.test_client())
    try:
        call(page, "run:watch", {"run": opened})
        prediction = call(page, "predict", {"pixels": torch.rand(784).tolist()})
        with torch.no_grad():
            theirs = F.softmax(model(torch.tensor(prediction["input"]).reshape(1, 784)), dim=1)[0]
        np.testing.assert_allclose(prediction["probabilities"], theirs.numpy(), atol=1e-2)
    finally:
        page.disconnect()


def test_a_delta_the_server_has_no_base_for_is_refused_with_words_the_client_knows(app, script, opened):
    """Before any snapshot (a server that restarted under the script), or on weights the server does
    not hold: "send whole weights" (the client's next snapshot is whole), and nothing changes."""
    model = tiny_model()
    before = fingerprint(app, opened)
    refused = call(script, "watch:snapshot", int8_delta(opened, model, base=1))
    assert not refused["ok"] and refused["error"].endswith("send whole weights"), refused
    assert "holds no weights of this run" in refused["error"]
    assert unchanged(before, fingerprint(app, opened))
    assert call(script, "watch:snapshot", int8_whole(opened, model, step=4))["ok"]
    refused = call(script, "watch:snapshot", int8_delta(opened, model, base=3, step=5))
    assert not refused["ok"] and "holds this run's weights of step 4" in refused["error"]


def test_an_older_clients_float16_snapshots_still_work_and_a_delta_may_follow_them(app, script, opened):
    model = tiny_model()
    data = weights_data(model, "<f2")
    assert call(script, "watch:snapshot", {**snapshot(opened, model, step=2), "dtype": "float16", "data": data})["ok"]
    run = engine_of(app, opened).part(opened).run
    as_float16 = np.frombuffer(data, "<f2").astype(np.float32)
    assert np.array_equal(run.held_weights, as_float16)
    wire = encoder()
    wire.held, wire.held_step = as_float16, 2
    encoded = wire.encode(flat(model), exact=False)
    assert call(script, "watch:snapshot", int8_snapshot(opened, encoded, 3))["ok"]
    assert np.array_equal(run.held_weights, encoded.held_after)


def engine_of(app, key):
    """The engine holding the run (a watched run goes to an engine for private runs)."""
    return app.extensions["playground"].engine.host_of(key).handle.engine


def fingerprint(app, key):
    run = engine_of(app, key).part(key).run
    held = None if run.held_weights is None else run.held_weights.copy()
    return (run.step_count, len(run.history), run.status, run.snapshot_step,
            [p.detach().clone() for p in run.model.parameters()], held)


def unchanged(before, after):
    same_held = (before[5] is None) == (after[5] is None) and (before[5] is None or np.array_equal(before[5], after[5]))
    return before[:4] == after[:4] and all(torch.equal(a, b) for a, b in zip(before[4], after[4])) and same_held


def int8_whole(run, model, step=3):
    return int8_snapshot(run, encoder().encode(flat(model), exact=False), step)


def int8_delta(run, model, base=1, step=3):
    """A delta from the weights of step `base` (the tests' bad frames follow a float32 snapshot of step 1)."""
    wire = encoder()
    wire.taken(wire.encode(flat(model), exact=True), base)
    return int8_snapshot(run, wire.encode(flat(model) * 1.01, exact=False), step)


BAD_FRAMES = [
    ("watch:steps", lambda run, model: {**steps(run), "loss": [math.nan, 1.0, 1.0]}),
    ("watch:steps", lambda run, model: {**steps(run), "steps": [3, 2, 1]}),
    ("watch:steps", lambda run, model: {**steps(run), "loss": [1.0]}),
    ("watch:steps", lambda run, model: {**steps(run), "numbers": {"bad name!": [1, 2, 3]}}),
    ("watch:steps", lambda run, model: {**steps(run), "steps": list(range(3000)), "loss": [1.0] * 3000}),
    ("watch:steps", lambda run, model: {**steps(run), "run": "p-000000000000"}),
    ("watch:snapshot", lambda run, model: {**snapshot(run, model), "data": weights_data(model)[:-4]}),
    ("watch:snapshot", lambda run, model: {**snapshot(run, model), "dtype": "float16"}),
    ("watch:snapshot", lambda run, model: {**snapshot(run, model),
                                           "data": np.full(12730, np.inf, "<f4").tobytes()}),
    ("watch:snapshot", lambda run, model: {**snapshot(run, model), "layers": [{}]}),
    ("watch:snapshot", lambda run, model: {**snapshot(run, model), "data": bytes(3_000_000)}),
    ("watch:snapshot", lambda run, model: {**snapshot(run, model),
                                           "layers": [{"grads": {"lo": 1.0, "hi": 0.0, "counts": [1]}}, {}]}),
    ("watch:snapshot", lambda run, model: {**snapshot(run, model), "step": -1}),
    # int8 rows and deltas (each field checked: sizes, scales, dtype, and a base the server holds)
    ("watch:snapshot", lambda run, model: {**int8_whole(run, model), "dtype": "int4"}),
    ("watch:snapshot", lambda run, model: {**int8_whole(run, model), "scales": None}),
    ("watch:snapshot", lambda run, model: {**int8_whole(run, model), "scales": int8_whole(run, model)["scales"][:-4]}),
    ("watch:snapshot", lambda run, model: {**int8_whole(run, model), "scales": int8_whole(run, model)["scales"] + bytes(4)}),
    ("watch:snapshot", lambda run, model: {**int8_whole(run, model), "data": int8_whole(run, model)["data"][:-1]}),
    ("watch:snapshot", lambda run, model: {**int8_whole(run, model),
                                           "scales": np.full(28, np.nan, "<f4").tobytes()}),
    ("watch:snapshot", lambda run, model: {**int8_whole(run, model),
                                           "scales": np.full(28, -0.01, "<f4").tobytes()}),
    ("watch:snapshot", lambda run, model: {**int8_whole(run, model), "scales": "0.1"}),
    ("watch:snapshot", lambda run, model: {**snapshot(run, model), "scales": int8_whole(run, model)["scales"]}),
    ("watch:snapshot", lambda run, model: {**snapshot(run, model), "delta": True, "base": 1}),
    ("watch:snapshot", lambda run, model: {**int8_delta(run, model), "base": None}),
    ("watch:snapshot", lambda run, model: {**int8_whole(run, model), "base": 1}),
    ("watch:snapshot", lambda run, model: int8_delta(run, model, base=2)),  # the server holds step 1's
    ("watch:snapshot", lambda run, model: {**int8_delta(run, model), "base": -1}),
    ("watch:snapshot", lambda run, model: {**int8_delta(run, model),
                                           "scales": np.full(28, 3e38, "<f4").tobytes()}),  # inf once added
    ("watch:open", lambda run, model: {**SPEC, "layers": []}),
    ("watch:open", lambda run, model: {**SPEC, "chain": {"activations": ["relu"]}}),
    ("watch:open", lambda run, model: {**SPEC, "layers": [SPEC["layers"][0], SPEC["layers"][0]]}),
    ("watch:open", lambda run, model: {**SPEC, "name": "x" * 500}),
    ("watch:close", lambda run, model: {"run": "nope"}),
]


@pytest.mark.parametrize("event, make", BAD_FRAMES)
def test_a_bad_frame_is_refused_in_words_and_changes_nothing(app, script, opened, event, make):
    model = tiny_model()
    assert call(script, "watch:snapshot", snapshot(opened, model, step=1))["ok"]
    before = fingerprint(app, opened)
    engine = engine_of(app, opened)
    runs_before = len(engine.runs)
    answer = call(script, event, make(opened, model))
    assert answer["ok"] is False and in_peoples_words(answer["error"]) and "internal error" not in answer["error"], answer
    assert unchanged(before, fingerprint(app, opened)) and len(engine.runs) == runs_before


jsonish = st.recursive(st.one_of(st.none(), st.booleans(), st.integers(-2**70, 2**70), st.floats(),
                                 st.text(max_size=20), st.binary(max_size=40)),
                       lambda inner: st.one_of(st.lists(inner, max_size=4),
                                               st.dictionaries(st.text(max_size=8), inner, max_size=4)),
                       max_leaves=12)


@FUZZ
@given(event=st.sampled_from(["watch:steps", "watch:snapshot", "watch:close", "watch:control"]),
       field=st.sampled_from(["run", "steps", "loss", "numbers", "step", "dtype", "final", "data", "layers", "extra",
                              "scales", "delta", "base"]),
       value=jsonish, as_delta=st.booleans())
def test_fuzzed_frames_from_a_real_one_are_answered_and_a_refusal_changes_nothing(app, script, opened,
                                                                                  event, field, value, as_delta):
    for key in [k for k in app.extensions["playground"].socketio.server.environ.get(script.eio_sid, {})
                if k.startswith("playground.rate.")]:
        del app.extensions["playground"].socketio.server.environ[script.eio_sid][key]
    model = tiny_model()
    if as_delta:  # the real one an int8 delta on the weights the server holds
        call(script, "watch:snapshot", snapshot(opened, model, step=1))
    valid = {"watch:steps": steps(opened, first=10),
             "watch:snapshot": int8_delta(opened, model, step=10) if as_delta else snapshot(opened, model, step=10),
             "watch:close": {"run": opened}, "watch:control": {"run": opened}}[event]
    payload = {**valid, field: value}
    before = fingerprint(app, opened)
    try:
        answer = call(script, event, payload)
    except ValueError as err:  # the transport drops the packet itself (server/web/transport.py)
        assert "binary attachments" in str(err), err
        assert unchanged(before, fingerprint(app, opened))
        return
    assert isinstance(answer, dict) and isinstance(answer.get("ok"), bool), answer
    if not answer["ok"]:
        assert in_peoples_words(answer["error"]) and "internal error" not in answer["error"], answer
        assert unchanged(before, fingerprint(app, opened))


def test_only_the_script_that_opened_a_run_feeds_it(app, opened):
    other = script_client(app)
    try:
        before = fingerprint(app, opened)
        refused = call(other, "watch:snapshot", snapshot(opened, tiny_model()))
        assert not refused["ok"] and "someone else's" in refused["error"]
        assert unchanged(before, fingerprint(app, opened))
    finally:
        other.disconnect()


def test_a_script_on_another_machine_needs_the_control_token(app):
    remote = script_client(app, remote=True)
    try:
        refused = call(remote, "watch:open", SPEC)
        assert not refused["ok"] and "control token" in refused["error"]
    finally:
        remote.disconnect()
    with_token = script_client(app, remote=True, token=app.extensions["playground"].control_token)
    try:
        assert call(with_token, "watch:open", SPEC)["ok"]
    finally:
        with_token.disconnect()


def test_watched_runs_are_bounded_like_private_runs(small_dataset, tmp_path):
    """One engine for private runs, at most 1 training at once: it holds 3 private runs, watched ones
    among them; one script (one owner) at most 3 as well."""
    app = create_app({"testing": True, "data_dir": str(tmp_path), "device": "cpu", "engines": 2, "max_runs": 1},
                     dataset=small_dataset)
    scripts = [script_client(app) for _ in range(2)]
    try:
        answers = [call(scripts[0], "watch:open", SPEC) for _ in range(4)]
        assert [a["ok"] for a in answers] == [True, True, True, False]
        assert "3 runs of your own" in answers[-1]["error"]
        refused = call(scripts[1], "watch:open", SPEC)  # the engine is full
        assert not refused["ok"] and "the most it can" in refused["error"]
    finally:
        for client in scripts:
            client.disconnect()
        app.extensions["playground"].shutdown()


def test_a_network_that_is_not_a_chain_of_784_to_10_is_watched_and_says_why(app, script):
    spec = {**SPEC, "layers": [{"path": "a", "in_features": 20, "out_features": 5, "bias": True}],
            "chain": {"activations": [None]}, "tree": []}
    answer = call(script, "watch:open", spec)
    assert answer["ok"] and answer["shows_network"] is False
    assert answer["why_not"] == "its first Linear layer takes 20 inputs, not 784 (a 28×28 image)"
    untraced = call(script, "watch:open", {**SPEC, "chain": None, "unfollowed": "self.mid is used twice"})
    assert untraced["why_not"] == "self.mid is used twice"
    # Drawing on its page: the page says which step it cannot follow, instead of a made-up answer.
    page = app.extensions["playground"].socketio.test_client(app, flask_test_client=app.test_client())
    try:
        assert call(page, "run:watch", {"run": untraced["run"]})["ok"]
        refused = call(page, "predict", {"pixels": [0.5] * 784})
        assert not refused["ok"] and refused["error"].endswith("self.mid is used twice"), refused
        assert not call(page, "inside:neuron", {"index": 0})["ok"]
    finally:
        page.disconnect()


def test_a_controllable_run_is_held_and_stepped_from_the_page(app, script):
    key = call(script, "watch:open", {**SPEC, "controllable": True})["run"]
    page = app.extensions["playground"].socketio.test_client(app, flask_test_client=app.test_client())
    try:
        call(page, "run:watch", {"run": key})
        assert call(page, "train:pause", None)["ok"]
        assert call(script, "watch:steps", steps(key))["held"] is True
        assert call(page, "train:step", {"batches": 1})["ok"]
        assert call(script, "watch:control", {"run": key})["released"] == 1
        assert call(page, "train:start", None)["ok"]
        assert call(script, "watch:control", {"run": key})["held"] is False
        refused = call(page, "train:reset", None)
        assert not refused["ok"] and "script" in refused["error"]
    finally:
        page.disconnect()
