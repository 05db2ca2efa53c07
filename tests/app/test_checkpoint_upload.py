"""Checkpoints in: POST /api/checkpoint takes a .pt back. Only weights_only loading, a size
limit and exact shapes; a bad file (not a checkpoint, a pickle with code, wrong shapes, too
big, truncated) is refused with a clear error and changes nothing; a good one restarts the
shared run from its weights."""
from __future__ import annotations

import io
import os
import pickle

import pytest
import torch

from server.engine.checkpoints import MAX_CHECKPOINT_BYTES

OCTET = "application/octet-stream"


def saved(obj, **kwargs) -> bytes:
    buffer = io.BytesIO()
    torch.save(obj, buffer, **kwargs)
    return buffer.getvalue()


def upload(client, data: bytes, content_type: str = OCTET):
    return client.post("/api/checkpoint", data=data, content_type=content_type)


def snapshot(session) -> dict:
    state = session.state()
    return {
        "run_id": state["run_id"], "status": state["status"], "step": state["step"], "config": state["config"],
        "weights": {k: v.clone() for k, v in session.trainer.model.state_dict().items()},
    }


def assert_unchanged(session, before):
    after = snapshot(session)
    assert {k: v for k, v in after.items() if k != "weights"} == {k: v for k, v in before.items() if k != "weights"}
    for key, tensor in before["weights"].items():
        assert torch.equal(after["weights"][key], tensor), f"{key} changed"


class RunsAShellCommand:
    """Unpickling this would call os.system (the classic malicious pickle)."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


@pytest.fixture
def trained(session):
    session.step(2)  # weights that are no longer the seeded initial ones
    return session


def test_an_uploaded_checkpoint_restarts_the_shared_run_from_its_weights(client, trained, sio_client):
    weights = {k: v.clone() for k, v in trained.trainer.model.state_dict().items()}
    data = client.get("/api/checkpoint").data
    trained.reset({"seed": 9})  # other weights now
    assert not torch.equal(trained.trainer.model.hidden.weight, weights["hidden.weight"])
    sio_client.get_received()

    answer = upload(client, data)
    assert answer.status_code == 200, answer.json
    assert answer.json["parameters"] == 203_530
    assert "restarted" in answer.json["message"]
    for key, tensor in weights.items():
        assert torch.equal(trained.trainer.model.state_dict()[key], tensor)
    state = trained.state()
    assert state["status"] == "idle" and state["step"] == 0 and state["run_id"] == answer.json["run_id"]
    # Every viewer is told: the new state, and the evaluation of the loaded weights.
    received = {m["name"]: m["args"][0] for m in sio_client.get_received()}
    assert received["state"]["run_id"] == state["run_id"]
    assert received["evaluation"]["run_id"] == state["run_id"] and received["evaluation"]["step"] == 0


def test_training_goes_on_from_the_uploaded_weights(client, trained):
    data = client.get("/api/checkpoint").data
    loss_before = trained.state()["epochs"]
    trained.reset({"seed": 4})
    assert upload(client, data).status_code == 200
    trained.step(3)
    assert trained.state()["step"] == 3 and loss_before == []


def test_a_wrapped_state_dict_and_the_legacy_format_are_accepted(client, trained):
    weights = trained.trainer.model.state_dict()
    for data in (saved({"state_dict": weights, "epoch": 3}), saved(weights, _use_new_zipfile_serialization=False)):
        answer = upload(client, data)
        assert answer.status_code == 200, answer.json


@pytest.mark.parametrize("data, words", [
    (b"", "the file is empty"),
    (b"hello, this is a text file\n", "this is not a PyTorch checkpoint"),
    (b"\x89PNG\r\n\x1a\n" + bytes(200), "this is not a PyTorch checkpoint"),
    (b'{"hidden.weight": [[0.1]]}', "this is not a PyTorch checkpoint"),
])
def test_files_that_are_not_checkpoints_are_refused(client, trained, data, words):
    before = snapshot(trained)
    answer = upload(client, data)
    assert answer.status_code == 400
    assert words in answer.json["error"] and "Nothing was changed" in answer.json["error"]
    assert_unchanged(trained, before)


@pytest.mark.parametrize("wrap", ["torch.save", "bare pickle"])
def test_a_pickle_with_code_in_it_is_refused_and_the_code_never_runs(client, trained, tmp_path, wrap):
    marker = tmp_path / "pwned"
    evil = {"hidden.weight": RunsAShellCommand(marker), "hidden.bias": torch.zeros(256)}
    data = saved(evil) if wrap == "torch.save" else pickle.dumps(RunsAShellCommand(marker), protocol=2)
    # The payload really is a live one: plain pickle.loads would run it.
    assert b"system" in data
    before = snapshot(trained)
    answer = upload(client, data)
    assert answer.status_code == 400
    assert not marker.exists(), "the pickle's code ran"
    assert answer.json["error"].startswith("Checkpoint refused:")
    if wrap == "torch.save":
        assert "Python objects other than tensors" in answer.json["error"]
        assert "nothing in the file was run" in answer.json["error"]
    assert_unchanged(trained, before)


def test_the_crafted_pickle_would_run_when_loaded_unsafely(tmp_path):
    """Guard for the test above: the payload is real (it does run under plain pickle)."""
    marker = tmp_path / "ran"
    pickle.loads(pickle.dumps(RunsAShellCommand(marker)))
    assert marker.exists()


def test_wrong_shapes_are_refused_with_what_fits(client, trained):
    other = {
        "hidden.weight": torch.zeros(128, 784), "hidden.bias": torch.zeros(128),
        "output.weight": torch.zeros(10, 128), "output.bias": torch.zeros(10),
    }
    before = snapshot(trained)
    answer = upload(client, saved(other))
    assert answer.status_code == 400
    error = answer.json["error"]
    assert "does not fit the current network (784 → 256 → 10)" in error
    assert "hidden.weight is 128×784, the network needs 256×784" in error
    assert "The file is a 784 → 128 → 10 network: set the hidden layers to 128" in error
    assert_unchanged(trained, before)


@pytest.mark.parametrize("change, words", [
    (lambda sd: sd.pop("output.bias"), "missing output.bias"),
    (lambda sd: sd.update({"extra.weight": torch.zeros(3)}), "unexpected extra.weight"),
    (lambda sd: sd.update({"hidden.bias": torch.full((256,), float("nan"))}), "hidden.bias contains NaN or infinite values"),
    (lambda sd: sd.update({"output.bias": torch.zeros(10, dtype=torch.int64)}), "output.bias holds torch.int64 values"),
    (lambda sd: sd.update({"output.bias": [0.0] * 10}), "output.bias is a list, not a tensor"),
])
def test_state_dicts_that_do_not_match_are_refused(client, trained, change, words):
    state_dict = {k: v.clone() for k, v in trained.trainer.model.state_dict().items()}
    change(state_dict)
    before = snapshot(trained)
    answer = upload(client, saved(state_dict))
    assert answer.status_code == 400
    assert words in answer.json["error"]
    assert_unchanged(trained, before)


def test_a_tensor_instead_of_a_state_dict_is_refused(client, trained):
    answer = upload(client, saved(torch.zeros(3)))
    assert answer.status_code == 400 and "not a state_dict" in answer.json["error"]


def test_a_truncated_checkpoint_is_refused(client, trained):
    data = client.get("/api/checkpoint").data
    before = snapshot(trained)
    for cut in (len(data) // 2, len(data) - 30, 100):
        answer = upload(client, data[:cut])
        assert answer.status_code == 400
        assert "truncated or damaged" in answer.json["error"]
    assert_unchanged(trained, before)


def test_a_corrupted_checkpoint_is_refused(client, trained):
    data = bytearray(client.get("/api/checkpoint").data)
    data[len(data) // 2: len(data) // 2 + 64] = bytes(64)  # inside the tensor data
    header = data.find(b"data.pkl")
    data[header + 40: header + 80] = b"\xff" * 40  # and inside the pickle
    before = snapshot(trained)
    answer = upload(client, bytes(data))
    assert answer.status_code == 400 and "Checkpoint refused" in answer.json["error"]
    assert_unchanged(trained, before)


def test_a_file_over_the_size_limit_is_refused_before_it_is_read(client, trained):
    before = snapshot(trained)
    answer = upload(client, b"PK\x03\x04" + bytes(MAX_CHECKPOINT_BYTES))
    assert answer.status_code == 413
    assert "too big" in answer.json["error"] and f"{MAX_CHECKPOINT_BYTES:,}" in answer.json["error"]
    assert_unchanged(trained, before)


def test_the_biggest_network_the_setup_allows_fits_under_the_limit(client, session):
    session.reset({"hidden_sizes": [2048, 2048, 2048, 2048]})
    data = client.get("/api/checkpoint").data
    assert len(data) < MAX_CHECKPOINT_BYTES
    assert upload(client, data).status_code == 200


def test_uploads_must_be_the_raw_file_not_a_cross_site_form(client, trained):
    data = client.get("/api/checkpoint").data
    before = snapshot(trained)
    for content_type in ("multipart/form-data", "application/x-www-form-urlencoded", "text/plain"):
        answer = upload(client, data, content_type=content_type)
        assert answer.status_code == 415
        assert "Content-Type: application/octet-stream" in answer.json["error"]
    assert_unchanged(trained, before)


def test_a_watch_only_viewer_can_download_but_not_upload(app, trained):
    remote = app.test_client()
    remote.environ_base["REMOTE_ADDR"] = "192.0.2.7"  # another machine, no control token
    data = remote.get("/api/checkpoint").data
    before = snapshot(trained)
    answer = upload(remote, data)
    assert answer.status_code == 403 and "control token" in answer.json["error"]
    assert_unchanged(trained, before)


# ---- through the real HTTP upload: values float32 cannot hold, sparse tensors -------------------

def live_weights(server) -> dict:
    import requests

    answer = requests.get(server.url + "/api/checkpoint", timeout=30)
    assert answer.status_code == 200
    return torch.load(io.BytesIO(answer.content), weights_only=True)


def upload_live(server, state_dict):
    import requests

    return requests.post(server.url + "/api/checkpoint", data=saved(state_dict), headers={"Content-Type": OCTET},
                         timeout=30)


def assert_same_weights(before, after):
    assert before.keys() == after.keys()
    for key in before:
        assert torch.equal(before[key], after[key]), f"{key} changed"


def test_float64_weights_that_overflow_float32_are_refused_in_words(live_server):
    """Issue 14: a float64 1e300 passed the NaN/inf check (before the cast) and became inf."""
    before = live_weights(live_server)
    huge = {k: v.to(torch.float64) for k, v in before.items()}
    huge["output.weight"][3, 7] = 1e300
    answer = upload_live(live_server, huge)
    assert answer.status_code == 400
    assert answer.json()["error"] == (
        "Checkpoint refused: output.weight holds values too large for float32, the precision the network computes "
        "in: the largest is 1e+300 and float32 holds at most 3.4e+38, so they would become infinite. Nothing was "
        "changed.")
    assert_same_weights(before, live_weights(live_server))
    assert live_server.session.trainer.global_step == 0

    # float64 values float32 can hold are fine: they are cast and used.
    fine = {k: v.to(torch.float64) * 0.5 for k, v in before.items()}
    assert upload_live(live_server, fine).status_code == 200
    after = live_weights(live_server)
    assert after["hidden.weight"].dtype == torch.float32
    assert torch.equal(after["hidden.weight"], (before["hidden.weight"].double() * 0.5).float())


def test_a_sparse_tensor_is_refused_in_words_not_a_server_error(live_server):
    before = live_weights(live_server)
    sparse = dict(before, **{"hidden.weight": before["hidden.weight"].to_sparse()})
    answer = upload_live(live_server, sparse)
    assert answer.status_code == 400
    assert answer.json()["error"] == ("Checkpoint refused: hidden.weight is a sparse tensor (sparse_coo); weights must "
                                      "be ordinary dense tensors (save tensor.to_dense() instead). Nothing was changed.")
    assert_same_weights(before, live_weights(live_server))
    assert requests_get_ok(live_server.url + "/healthz")


def requests_get_ok(url) -> bool:
    import requests

    return requests.get(url, timeout=10).json()["status"] == "ok"


def test_the_state_says_where_loaded_weights_came_from_until_the_next_reset(client, trained):
    """The page asks before a setup link replaces weights that were loaded, not trained here."""
    assert trained.state()["weights_origin"] is None
    response = upload(client, saved(trained.trainer.model.state_dict()))
    assert response.status_code == 200, response.get_json()
    state = trained.state()
    assert state["weights_origin"] == "uploaded checkpoint" and state["step"] == 0
    trained.reset()
    assert trained.state()["weights_origin"] is None
