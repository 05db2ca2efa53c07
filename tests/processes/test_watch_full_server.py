"""Watch your own network on a full server (issue 20: "the number of watched runs is bounded like
private runs"): a script whose run the server refuses because it holds as many private runs as it
may (its answer says "try again") keeps training, says so once, and asks again now and then; once
a place frees, its run is on the page with every step it took meanwhile. A small bound via the
server's flags: one engine, --max-runs 1 (3 private runs), --owner-grace 6 s."""
from __future__ import annotations

import json
import time


from tests.support.helpers import ServerProcess, socketio_client
from tests.support.watch_scripts import finished, key_of, start_script

OWNER_GRACE_S = 6  # a student's place frees after it; the finished script's run stays as long
PLACES = 3  # RUNS_PER_PLACE (server/engine/engine.py) x --max-runs 1


def student(server, n: int):
    """A viewer with a private run of its own (its connection keeps it)."""
    viewer = socketio_client(server.url, record=("state",), auth={"viewer": f"student-{n}-0123456789abcdef"})
    made = viewer.call("run:create", {}, timeout=60)
    assert made["ok"], made
    return viewer


def training_without_a_run(process, steps: int, timeout: float = 120.0) -> list[dict]:
    """The script's lines until it has said `steps` steps with no run's key yet."""
    said, deadline = [], time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = process.stdout.readline()
        if not line:
            break
        if line.startswith("{"):
            said.append(json.loads(line))
            assert not said[-1].get("key") and not said[-1].get("opened"), said
            if said[-1].get("step", 0) >= steps:
                return said
    raise AssertionError(f"the script did not keep training without its run: {said}")


def test_a_script_refused_by_a_full_server_trains_on_and_gets_its_run_when_a_place_frees(
        installed_client, tmp_path):
    with ServerProcess(tmp_path / "data", "--device", "cpu", "--engines", "1", "--max-runs", "1",
                       "--owner-grace", str(OWNER_GRACE_S)) as server:
        students = [student(server, n) for n in range(PLACES)]
        try:
            full = socketio_client(server.url, auth={"viewer": "one-student-too-many-0123"})
            refused = full.call("run:create", {}, timeout=60)
            full.disconnect()
            assert not refused["ok"] and "try again" in refused["error"], refused

            process = start_script("sequential", server.url, tmp_path, installed_client, steps=1200, pause_s=0.01)
            said = training_without_a_run(process, steps=101)  # refused, and the loop goes on
            assert said[0] == {"opened": None, "link": None, "shows_network": None, "why_not": None}

            students.pop().disconnect()  # its run is put away once its owner is gone a while: a place frees
            key = key_of(process)
            lines, stderr = finished(process)
        finally:
            for viewer in students:
                viewer.disconnect()

        refusals = [line for line in stderr.splitlines() if "refused this run" in line]
        assert len(refusals) == 1, stderr[-3000:]  # said once, however often it asked again
        assert "try again" in refusals[0] and "asking again now and then" in refusals[0]
        assert lines[-1]["key"] == key and lines[-1]["link"] == f"/?run={key}"
        assert f"a place freed, the run is on the page now: {server.url}/?run={key}" in stderr

        viewer = socketio_client(server.url)
        try:
            answer = viewer.call("run:watch", {"run": key}, timeout=30)
            assert answer["ok"], answer
            state = answer["state"]
            # Every step is on the page, those taken while the server was full too.
            assert state["status"] == "done" and state["step"] == 1200
            # and the curve has its shape over the stretch the server was full (one point per 50 steps)
            assert state["history"][0]["step"] == 50 and state["history"][1]["step"] == 100
        finally:
            viewer.disconnect()
