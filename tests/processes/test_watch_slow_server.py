"""Watch your own network (issue 20, item 6): a server that stops answering mid-run costs the
user's loop nothing. The script's connection goes through a proxy that holds every byte for a
while (the server seems to hang: its socket accepts, nothing comes back); the loop keeps its pace
meanwhile, says so in one warning line, and the run comes back on the page when bytes flow again."""
from __future__ import annotations

import json
import threading
import time


from tests.support.helpers import ServerProcess, socketio_client, wait_for
from tests.support.tcp_proxy import TcpProxy
from tests.support.watch_scripts import start_script

STALL_S = 8.0  # longer than the client's call timeout (5 s) and its connect timeout (3 s)


class TimedLines:
    """The script's JSON lines, each with the moment this test read it (the script flushes each)."""

    def __init__(self, process):
        self.lines: list[tuple[float, dict]] = []
        self._thread = threading.Thread(target=self._read, args=(process,), daemon=True)
        self._thread.start()

    def _read(self, process) -> None:
        for line in process.stdout:
            if line.startswith("{"):
                self.lines.append((time.monotonic(), json.loads(line)))

    def steps_per_second(self, since: float, until: float) -> float:
        steps = [(t, said["step"]) for t, said in self.lines if "step" in said and since <= t <= until]
        assert len(steps) >= 2, f"too few step lines between {since} and {until}: {self.lines[-5:]}"
        return (steps[-1][1] - steps[0][1]) / (steps[-1][0] - steps[0][0])

    def key(self) -> str:
        return next(said["opened"] or said.get("key") for _, said in self.lines if "opened" in said or said.get("key"))

    def wait_end(self, process, timeout: float) -> dict:
        process.wait(timeout=timeout)
        self._thread.join(timeout=10)
        assert process.returncode == 0, process.stderr.read()[-3000:]
        return self.lines[-1][1]


def test_a_server_that_stops_answering_costs_the_loop_nothing_and_the_run_comes_back(installed_client, tmp_path):
    with ServerProcess(tmp_path / "data", "--device", "cpu") as server:
        proxy = TcpProxy([server.port])
        process = start_script("sequential", proxy.url, tmp_path, installed_client, steps=4000, pause_s=0.004)
        try:
            read = TimedLines(process)
            wait_for(lambda: any("step" in said and said["step"] > 300 and said.get("key")
                                 for _, said in read.lines), timeout=120, what="the script training, watched")
            key = read.key()
            before_from = time.monotonic()
            time.sleep(STALL_S / 2)
            stalled_at = time.monotonic()
            proxy.stall()
            time.sleep(STALL_S)
            flowed_at = time.monotonic()
            proxy.flow()
            before = read.steps_per_second(before_from, stalled_at)
            stalled = read.steps_per_second(stalled_at, flowed_at)
            # A loop that waited on the server would make no step for seconds: it keeps its pace.
            assert stalled >= 0.7 * before, f"{stalled:.0f} steps/s while the server hung, {before:.0f} before"

            viewer = socketio_client(server.url)
            try:
                def back_and_moving():
                    answer = viewer.call("run:watch", {"run": key}, timeout=30)
                    return answer["ok"] and answer["state"]["step"] > 0 and answer["state"]["status"] == "running" \
                        and answer["state"]["step"] > read.lines[-1][1].get("step", 0) - 500
                wait_for(back_and_moving, timeout=60, what="the run moving on the page again")
            finally:
                viewer.disconnect()
            last = read.wait_end(process, timeout=180)
            assert last["key"] == key and last["steps"] == 4000 and last["close_s"] < 2.0
            told = [line for line in process.stderr.read().splitlines() if "linear_playground" in line]
            assert len(told) == 2 and "lost" in told[0] and "back on the page" in told[1], told
        finally:
            if process.poll() is None:
                process.kill()
                process.wait(timeout=30)
            for stream in (process.stdout, process.stderr):
                stream.close()
            proxy.close()
