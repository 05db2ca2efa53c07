"""Runs: every training run is recorded (setup, curves, final scores, last weights) in SQLite in
the data directory (or in PostgreSQL), kept across restarts, and can be renamed, deleted,
overlaid and restored. Every test that takes `app` runs on both databases."""
from __future__ import annotations

import sqlite3
import time

import pytest
import torch

from server import create_app
from server.engine.records import DB_NAME, RunStore
from tests.support.helpers import wait_for

FAST = {"batch_size": 250}  # 4 steps per epoch on the 1,000 test digits


def new_app(small_dataset, data_dir, database=None):
    return create_app({"testing": True, "data_dir": str(data_dir), "device": "cpu", "database": database},
                      dataset=small_dataset)


def close(app):
    app.extensions["playground"].shutdown()


@pytest.fixture
def app(small_dataset, tmp_path, database):
    """The app on SQLite, then on a real PostgreSQL (the `database` fixture's two params)."""
    app = new_app(small_dataset, tmp_path, database)
    yield app
    close(app)


def call(sio_client, event, payload=None):
    answer = sio_client.emit(event, payload, callback=True)
    assert answer["ok"], answer
    return answer


def test_a_run_is_recorded_from_its_first_step_with_setup_curves_and_scores(session, sio_client):
    session.reset(FAST)
    assert call(sio_client, "runs:list")["runs"] == []  # nothing trained, nothing to keep
    session.step(9)  # two epochs and a bit
    # the recorder writes in its own thread: the record reaches step 9 soon after the run does
    wait_for(lambda: [r["steps"] for r in call(sio_client, "runs:list")["runs"]] == [9], timeout=20,
             what="the record to reach step 9")
    runs = call(sio_client, "runs:list")
    assert len(runs["runs"]) == 1
    run = runs["runs"][0]
    assert runs["live_run"] == run["id"]
    assert run["config"]["batch_size"] == 250 and run["config"]["hidden_sizes"] == [256]
    assert run["status"] == "paused" and run["steps"] == 9 and run["epochs_done"] == 2
    assert run["val_accuracy"] == pytest.approx(session.epochs[-1]["val_accuracy"])
    assert run["best_val_accuracy"] == pytest.approx(max(e["val_accuracy"] for e in session.epochs))
    assert run["train_loss"] == pytest.approx(session.epochs[-1]["train_loss"])
    assert run["name"] == "256 sigmoid · adam lr 0.001 · batch 250 · logits · seed 0"
    assert run["checkpoint_step"] == 9

    full = call(sio_client, "runs:get", {"id": run["id"]})["run"]
    assert full["epochs"] == session.epochs
    assert full["history"] == session.history


def test_runs_survive_a_restart(small_dataset, tmp_path, database):
    first = new_app(small_dataset, tmp_path, database)
    session = first.extensions["playground"].engine.handle.engine.part().run
    session.reset(FAST)
    session.step(5)
    finished_weights = {k: v.clone() for k, v in session.trainer.model.state_dict().items()}
    finished_curves = (list(session.history), list(session.epochs))
    session.reset({**FAST, "output": "softmax"})  # ends run 1 ("stopped"), run 2 starts
    session.step(4)
    close(first)

    second = new_app(small_dataset, tmp_path, database)  # a new server on the same database
    try:
        client = second.extensions["playground"].socketio.test_client(second)
        runs = call(client, "runs:list")["runs"]
        assert [r["id"] for r in runs] == [2, 1]
        assert runs[1]["status"] == "stopped" and runs[1]["config"]["output"] == "logits"
        assert runs[0]["status"] == "interrupted"  # it was paused when the server stopped
        assert runs[0]["config"]["output"] == "softmax"
        kept = call(client, "runs:get", {"id": 1})["run"]
        assert (kept["history"], kept["epochs"]) == finished_curves
        assert call(client, "runs:list")["live_run"] is None

        # Its weights came through the restart too: restoring gives exactly them.
        call(client, "runs:restore", {"id": 1})
        restored = second.extensions["playground"].engine.handle.engine.part().run
        for key, tensor in finished_weights.items():
            assert torch.equal(restored.trainer.model.state_dict()[key], tensor)
        client.disconnect()
    finally:
        close(second)
    assert (tmp_path / DB_NAME).exists() == (database is None)


def test_a_finished_run_is_marked_done(session, sio_client):
    session.reset({**FAST, "epochs": 1})
    session.step(4)
    assert session.status == "done"
    assert call(sio_client, "runs:list")["runs"][0]["status"] == "done"


def test_restoring_a_run_brings_back_its_setup_and_weights_for_everyone(session, sio_client):
    session.reset({**FAST, "hidden_sizes": [32, 16], "activation": "tanh", "seed": 7})
    session.step(4, wait_s=30)  # all four done (on a busy machine the answer may come before them)
    kept = {k: v.clone() for k, v in session.trainer.model.state_dict().items()}
    session.reset({"hidden_sizes": [256], "activation": "sigmoid"})
    run_id = call(sio_client, "runs:list")["runs"][0]["id"]
    sio_client.get_received()

    answer = call(sio_client, "runs:restore", {"id": run_id})
    assert f"Restored run #{run_id} at step 4" in answer["message"]
    assert session.config.hidden_sizes == [32, 16] and session.config.activation == "tanh"
    assert session.status == "idle" and session.trainer.global_step == 0
    for key, tensor in kept.items():
        assert torch.equal(session.trainer.model.state_dict()[key], tensor)
    names = [m["name"] for m in sio_client.get_received()]
    assert "state" in names and "evaluation" in names

    session.step(1)  # the restored weights train on as a new run, which says where it came from
    newest = call(sio_client, "runs:list")["runs"][0]
    assert newest["origin"] == f"restored from run #{run_id} at step 4"


def test_runs_can_be_renamed_and_deleted(session, sio_client):
    session.reset(FAST)
    session.step(2)
    session.reset({**FAST, "output": "softmax"})
    session.step(2)
    first, second = sorted(r["id"] for r in call(sio_client, "runs:list")["runs"])

    renamed = call(sio_client, "runs:rename", {"id": first, "name": "  logits,   as it should be "})["run"]
    assert renamed["name"] == "logits, as it should be"
    call(sio_client, "runs:delete", {"id": second})
    runs = call(sio_client, "runs:list")["runs"]
    assert [(r["id"], r["name"]) for r in runs] == [(first, "logits, as it should be")]
    assert call(sio_client, "runs:list")["live_run"] is None


@pytest.mark.parametrize("event, payload, words", [
    ("runs:rename", {"id": 99, "name": "x"}, "there is no run #99"),
    ("runs:rename", {"id": 1, "name": "   "}, "a run's name cannot be empty"),
    ("runs:rename", {"id": 1, "name": "n" * 81}, "at most 80 characters"),
    ("runs:delete", {"id": 99}, "there is no run #99"),
    ("runs:get", {"id": 99}, "there is no run #99"),
    ("runs:restore", {"id": 99}, "there is no run #99"),
    ("runs:get", {"id": "1"}, "id"),
    ("runs:delete", None, "payload must be an object"),
    ("runs:rename", {"id": 1, "name": "x", "color": "red"}, "color: not something this request takes"),
])
def test_bad_runs_requests_are_refused_in_words_and_change_nothing(session, sio_client, event, payload, words):
    session.reset(FAST)
    session.step(1)
    before = call(sio_client, "runs:list")["runs"]
    answer = sio_client.emit(event, payload, callback=True)
    assert answer["ok"] is False and words in answer["error"]
    assert call(sio_client, "runs:list")["runs"] == before


def test_deleting_the_live_runs_record_stops_recording_it(session, sio_client):
    session.reset(FAST)
    session.step(2)
    live = call(sio_client, "runs:list")["live_run"]
    call(sio_client, "runs:delete", {"id": live})
    session.step(5)  # an epoch end, a pause: nothing comes back
    assert call(sio_client, "runs:list")["runs"] == []


def test_live_changes_during_a_run_are_noted(session, sio_client):
    session.reset(FAST)
    session.step(2)
    session.update_config({"lr": 0.01})
    session.update_config({"steps_per_second": 5.0})  # the pace is not part of the experiment
    session.step(2)
    run = call(sio_client, "runs:list")["runs"][0]
    assert run["config"]["lr"] == 0.01
    assert run["config_changes"] == [{"step": 2, "changes": {"lr": 0.01}}]


def test_viewers_are_told_when_the_runs_change(session, sio_client):
    session.reset(FAST)
    sio_client.get_received()
    session.step(1)
    import time
    deadline = time.monotonic() + 5
    runs_messages = []
    while time.monotonic() < deadline and not runs_messages:
        runs_messages = [m for m in sio_client.get_received() if m["name"] == "runs"]
        time.sleep(0.05)
    assert runs_messages and runs_messages[-1]["args"][0]["runs"][0]["steps"] >= 0


def test_a_stored_runs_checkpoint_downloads(session, client, sio_client, tmp_path):
    session.reset(FAST)
    session.step(3)
    wait_for(lambda: session.state()["step"] == 3 and session.status == "paused", what="3 steps done and saved")
    run_id = call(sio_client, "runs:list")["runs"][0]["id"]
    wait_for(lambda: call(sio_client, "runs:get", {"id": run_id})["run"]["checkpoint_step"] == 3,
             what="the checkpoint of step 3 saved")
    answer = client.get(f"/api/runs/{run_id}/checkpoint")
    assert answer.status_code == 200
    assert answer.headers["Content-Disposition"] == f"attachment; filename=nn-linear-run{run_id}-784-256-10-sigmoid-step3.pt"
    (tmp_path / "run.pt").write_bytes(answer.data)
    state_dict = torch.load(tmp_path / "run.pt", weights_only=True)
    assert torch.equal(state_dict["hidden.weight"], session.trainer.model.hidden.weight.detach())
    missing = client.get("/api/runs/999/checkpoint")
    assert missing.status_code == 404 and missing.json["error"] == "there is no run #999"


def test_the_store_is_plain_sqlite_in_the_data_directory(tmp_path):
    store = RunStore(tmp_path)
    run_id = store.create(config={"hidden_sizes": [8], "activation": "relu", "optimizer": "sgd", "momentum": 0.9,
                                  "lr": 0.1, "batch_size": 4, "output": "logits", "weight_decay": 0, "seed": 1},
                          dataset="mnist")
    with sqlite3.connect(tmp_path / DB_NAME) as db:
        assert db.execute("SELECT id, status FROM runs").fetchall() == [(run_id, "running")]
    assert store.get(run_id)["setup"] == "8 relu · sgd (momentum 0.9) lr 0.1 · batch 4 · logits · seed 1"


def test_a_watch_only_viewer_can_list_runs_but_not_change_them(app, session, sio_client):
    session.reset(FAST)
    session.step(2)
    run_id = call(sio_client, "runs:list")["runs"][0]["id"]
    http = app.test_client()
    http.environ_base["REMOTE_ADDR"] = "192.0.2.7"  # another machine, no control token
    viewer = app.extensions["playground"].socketio.test_client(app, flask_test_client=http)
    assert call(viewer, "runs:list")["runs"][0]["id"] == run_id
    for event, payload in [("runs:rename", {"id": run_id, "name": "mine"}), ("runs:delete", {"id": run_id}),
                           ("runs:restore", {"id": run_id})]:
        answer = viewer.emit(event, payload, callback=True)
        # Renaming and deleting: the shared run's records are the teacher's (a viewer changes only
        # its own runs' records); restoring restarts the shared run: a control.
        expected = "control token" if event == "runs:restore" else "only the teacher can rename or delete it"
        assert answer["ok"] is False and expected in answer["error"], answer
    run = call(sio_client, "runs:get", {"id": run_id})["run"]
    assert run["name"] != "mine" and session.trainer.global_step == 2
    viewer.disconnect()


def test_ids_beyond_what_sqlite_holds_are_unknown_runs_not_errors(client, sio_client):
    huge = 2**63
    assert client.get(f"/api/runs/{huge}/checkpoint").json == {"error": f"there is no run #{huge}"}
    answer = sio_client.emit("runs:get", {"id": huge}, callback=True)
    assert answer["ok"] is False and "id: give a number of at most" in answer["error"]
