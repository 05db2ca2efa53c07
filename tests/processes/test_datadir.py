"""One server per data directory (issue 14, item 7): a lock on the folder that a second process
cannot take; it is told which process holds it. Real processes, real signals."""
from __future__ import annotations

import json
import os
import shlex
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
import requests

from server.engine.datadir import LOCK_NAME, DataDirInUse, DataDirLock
from server.engine.records import DB_NAME
from tests.support.disks import read_only_folder
from tests.support.helpers import REPO, free_port, socketio_client, wait_for

# The module loaded from its file: `import server...` would import torch (seconds) for nothing.
HOLD = ("import importlib.util, sys; spec = importlib.util.spec_from_file_location('datadir', 'server/engine/datadir.py'); "
        "datadir = importlib.util.module_from_spec(spec); spec.loader.exec_module(datadir); "
        "lock = datadir.DataDirLock(sys.argv[1]).acquire(); print('locked', flush=True); sys.stdin.read()")


def holder(folder, *extra) -> subprocess.Popen:
    """Another process that takes the lock on `folder` and holds it until its stdin closes.
    Use it in `with`: leaving closes its pipes (so it ends) and waits for it."""
    process = subprocess.Popen([sys.executable, "-c", HOLD, str(folder), *extra], cwd=REPO, text=True,
                               stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    line = process.stdout.readline()
    assert line == "locked\n", f"the holder did not lock: {line!r} {process.stderr.read() if process.poll() is not None else ''}"
    return process


def test_a_second_process_cannot_take_the_folder_and_is_told_who_holds_it(tmp_path):
    with holder(tmp_path, "--my-marker") as first:
        with pytest.raises(DataDirInUse) as refused:
            DataDirLock(tmp_path).acquire()
        message = str(refused.value)
        assert message.startswith(f"the data directory {tmp_path} is in use by another playground server: "
                                  f"process {first.pid} (")
        assert "--my-marker" in message and "Stop that server first, or give this one another --data-dir" in message
        assert refused.value.holder["pid"] == first.pid

        first.stdin.close()  # the holder ends: the folder is free again
        assert first.wait(timeout=10) == 0
        with DataDirLock(tmp_path) as lock:
            written = json.loads(lock.path.read_text())
            # this process, and its command line as `ps` shows it (pytest's, or its xdist worker's)
            typed = Path("/proc/self/cmdline").read_bytes().rstrip(b"\0").decode().split("\0")
            assert written["pid"] == os.getpid() and written["command"] == shlex.join(typed)
            assert lock.notice is None


def test_a_holder_killed_with_sigkill_leaves_no_lock_behind(tmp_path):
    with holder(tmp_path) as first:
        first.send_signal(signal.SIGKILL)
        first.wait(timeout=10)
    assert json.loads((tmp_path / LOCK_NAME).read_text())["pid"] == first.pid  # the file stays, stale
    with DataDirLock(tmp_path) as lock:  # the kernel dropped the lock with the process
        assert json.loads(lock.path.read_text())["pid"] == os.getpid()


def test_the_lock_is_released_on_release_and_can_be_taken_by_another_process(tmp_path):
    lock = DataDirLock(tmp_path).acquire()
    lock.release()
    with holder(tmp_path) as second:
        with pytest.raises(DataDirInUse, match=f"process {second.pid} "):
            DataDirLock(tmp_path).acquire()


def test_a_read_only_folder_is_still_locked_when_it_has_a_lock_file_and_said_so_when_not(tmp_path):
    with_file, without = tmp_path / "with-file", tmp_path / "without"
    with read_only_folder(with_file) as make_read_only:
        DataDirLock(with_file).acquire().release()  # the lock file exists
        make_read_only()
        with holder(with_file):
            with pytest.raises(DataDirInUse, match=r"is in use by another playground server: another process \(it "
                                                   r"did not say which\)"):
                DataDirLock(with_file).acquire()  # it could not write its name in a read-only folder
    with read_only_folder(without) as make_read_only:
        make_read_only()
        with DataDirLock(without) as lock:
            assert lock.notice.startswith(f"{without} is read-only (")


# ---- python -m server ---------------------------------------------------------------------------

def start_server(port: int, data_dir) -> subprocess.Popen:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    env.pop("HOST", None)
    env.pop("PORT", None)
    return subprocess.Popen([sys.executable, "-m", "server", "--port", str(port), "--device", "cpu",
                             "--data-dir", str(data_dir)], cwd=REPO, env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def answers(url: str) -> bool:
    try:
        return requests.get(url, timeout=2).ok
    except requests.ConnectionError:  # not listening yet
        return False


@pytest.mark.slow
def test_a_second_server_on_the_same_data_directory_exits_2_naming_the_first_and_leaves_its_run_alone(tmp_path):
    first_port, second_port = free_port(), free_port()
    with start_server(first_port, tmp_path) as first:
        try:
            for line in first.stdout:
                if "The playground is at" in line:
                    break
            else:
                pytest.fail(f"the first server stopped: {first.stderr.read()}")
            url = f"http://127.0.0.1:{first_port}"
            wait_for(lambda: answers(url + "/healthz"), what="the first server to answer")
            viewer = socketio_client(url, record=())
            try:
                assert viewer.call("train:start", timeout=10)["ok"]
                wait_for(lambda: viewer.call("runs:list", timeout=10)["runs"], what="the live run's record")
                assert viewer.call("train:pause", timeout=10)["ok"]  # under way, paused: a live run
                [run] = viewer.call("runs:list", timeout=10)["runs"]
                assert run["status"] == "paused"

                with start_server(second_port, tmp_path) as second:
                    try:
                        stdout, stderr = second.communicate(timeout=60)
                    except subprocess.TimeoutExpired:
                        second.kill()
                        stdout, stderr = second.communicate()
                assert second.returncode == 2, (stdout, stderr)
                assert stderr.startswith(f"error: the data directory {tmp_path} is in use by another playground "
                                         f"server: process {first.pid} (")
                assert f"-m server --port {first_port}" in stderr and "Traceback" not in stderr
                assert "The playground is at" not in stdout

                # The first server's records are untouched: its live run is not marked interrupted.
                with sqlite3.connect(tmp_path / DB_NAME) as db:
                    assert db.execute("SELECT id, status FROM runs").fetchall() == [(run["id"], "paused")]
                db.close()
                assert viewer.call("runs:list", timeout=10)["runs"][0]["status"] == "paused"
            finally:
                viewer.disconnect()
        finally:
            first.terminate()
            first.wait(timeout=30)
