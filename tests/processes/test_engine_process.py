"""The process split, for real: `python -m server` runs the web tier (gunicorn's threaded worker)
and the training engine in a process of its own. The engine killed under a connected viewer is
told at once, started again, and the page goes on working with the runs recorded so far;
Ctrl+C and SIGTERM stop everything with status 0, the run recorded up to its last step, and
no process left behind."""
from __future__ import annotations

import os
import signal
import sqlite3
import time
from pathlib import Path

import pytest

from tests.support.helpers import ServerProcess, command_line, descendants, socketio_client, wait_for

pytestmark = pytest.mark.slow

BLANK = {"pixels": [0.0] * 784}


@pytest.fixture
def server(tmp_path):
    with ServerProcess(tmp_path / "data") as running:
        yield running


def alive(pid: int) -> bool:
    """A process that exists and is not a zombie waiting to be reaped."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def recorded_runs(data_dir):
    db = sqlite3.connect(data_dir / "runs.sqlite3")
    try:
        return db.execute("SELECT r.id, r.status, r.steps, c.step FROM runs r "
                          "LEFT JOIN checkpoints c ON c.run_id = r.id ORDER BY r.id").fetchall()
    finally:
        db.close()


def test_the_web_process_never_trains_the_engine_process_does(server):
    engine = server.engine_pid()
    assert engine is not None and engine != server.pid
    viewer = socketio_client(server.url)
    try:
        assert viewer.call("train:start", {"config": {"steps_per_second": None}}, timeout=10)["ok"]
        wait_for(lambda: viewer.received["metrics"] and viewer.received["metrics"][-1]["step"] > 100,
                 what="training")
        # The engine process's threads include the training thread; the web worker has none.
        names = {pid: sorted(os.listdir(f"/proc/{pid}/task")) for pid in descendants(server.pid)}
        assert engine in names
        wait_for(lambda: time.sleep(0.1) or viewer.call("predict", BLANK, timeout=10)["step"] > 0,
                 what="predictions from the trained weights")
    finally:
        viewer.disconnect()


def test_a_killed_engine_is_told_at_once_restarted_and_the_page_goes_on(server):
    viewer = socketio_client(server.url, record=("state", "metrics", "epoch", "engine"))
    try:
        assert viewer.call("train:start", {"config": {"steps_per_second": None}}, timeout=10)["ok"]
        wait_for(lambda: len(viewer.received["epoch"]) >= 2, what="two epochs", timeout=60)
        paused = viewer.call("train:pause", timeout=10)["state"]  # recorded, weights included
        old_engine = server.engine_pid()

        os.kill(old_engine, signal.SIGKILL)

        wait_for(lambda: any(e["status"] == "down" for e in viewer.received["engine"]), timeout=5,
                 what="the page being told the engine stopped")
        down = next(e for e in viewer.received["engine"] if e["status"] == "down")
        assert "killed by signal 9" in down["reason"] and "starting a new one" in down["reason"]
        wait_for(lambda: any(e["status"] == "up" for e in viewer.received["engine"]), timeout=60,
                 what="a new engine")
        new_engine = server.engine_pid()
        assert new_engine not in (None, old_engine)

        # The page keeps working: it is resent the state, it draws, it controls.
        wait_for(lambda: viewer.received["state"][-1]["step"] is not None, what="a state")
        assert viewer.call("predict", BLANK, timeout=10)["ok"]
        assert viewer.call("train:step", {"batches": 2}, timeout=10)["ok"]
        runs = viewer.call("runs:list", timeout=10)["runs"]
        first = runs[-1]
        assert first["steps"] == paused["step"] and first["checkpoint_step"] == paused["step"]
        assert first["status"] == "interrupted"
    finally:
        viewer.disconnect()


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_stopping_records_the_run_up_to_its_last_step_and_leaves_no_process(tmp_path, sig):
    data_dir = tmp_path / "data"
    server = ServerProcess(data_dir)
    viewer = socketio_client(server.url)
    try:
        assert viewer.call("train:start", {"config": {"steps_per_second": None}}, timeout=10)["ok"]
        wait_for(lambda: len(viewer.received["metrics"]) >= 5, what="training", timeout=30)
        family = [server.pid] + descendants(server.pid)
        assert any("spawn_main" in command_line(pid) for pid in family)
    finally:
        viewer.disconnect()
    last_seen = viewer.received["metrics"][-1]["step"]

    started = time.monotonic()
    code = server.stop(sig, timeout=20)
    took = time.monotonic() - started

    assert code == 0, server.log()
    assert took < 15, took
    assert not [pid for pid in family if alive(pid)], [command_line(pid) for pid in family if alive(pid)]
    (run_id, status, steps, checkpoint_step), = recorded_runs(data_dir)
    assert status == "interrupted" and steps >= last_seen and checkpoint_step == steps
    assert "Traceback" not in server.log()
