"""One machine as one command vs the same machine as a small deployment (issue 11), side by side:

  A. `python -m server` (no Redis: web process and its engines over pipes);
  B. redis-server, one `--role engine`, two `--role web` processes.

Measured in each:
  - a message's latency: a controller asks `train:step {"batches": 1}` (on web 1 in B) and a
    second viewer (on web 2 in B) receives the resulting `state`: request to broadcast, so the
    command's way in and the broadcast's way out (B: both through Redis, the broadcast through
    Flask-SocketIO's message queue);
  - a viewer's predict round trip (B: on web 2, which is not the engine's host process; from the
    engine's shared memory, and, with --predict-via-engine, asked of the engine through Redis, as a
    web process on another machine must);
  - the bytes per second one page-like viewer receives from a run at the default pace.

    .venv/bin/python bench/redis_latency.py [--n 100] [--json out.json]
"""
from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from contextlib import ExitStack, contextmanager
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.common import (BLANK_PIXELS, DEFAULT_PACE, DIGITS_CACHE, PAGE_BROADCASTS, PAGE_STREAMS, PYTHON,  # noqa: E402
                          QUIET, LightViewer, Viewer, checked, close_all, emit_json, machine_note, median,
                          percentile, server_process, start_run)
from bench.shared import RedisServer  # noqa: E402

# The secret the web and engine processes it starts share (server/link/redis_auth.py): they
# inherit it, as a deployment's processes do from their environment.
os.environ.setdefault("PLAYGROUND_REDIS_SECRET", os.urandom(32).hex())


@contextmanager
def engine_process(redis_url: str, data_dir: str):
    log = open(Path(data_dir) / "engine.log", "w+")
    process = subprocess.Popen([PYTHON, "-m", "server", "--role", "engine", "--redis", redis_url,
                                "--data-dir", data_dir, "--engine-id", "bench-engine"],
                               cwd=REPO, stdout=log, stderr=subprocess.STDOUT, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    deadline = time.monotonic() + 180
    while "serves on" not in Path(log.name).read_text():
        if process.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"the engine did not start: {Path(log.name).read_text()[-2000:]}")
        time.sleep(0.2)
    try:
        yield process
    finally:
        process.terminate()
        process.wait(30)
        log.close()


def message_latency(controller, observer, n: int) -> list[float]:
    arrived: dict[int, float] = {}
    done = threading.Condition()

    def on_state(payload):
        with done:
            arrived.setdefault(payload["step"], time.perf_counter())
            done.notify_all()

    observer.client.on("state", on_state)
    samples = []
    checked(controller.call("train:reset", {"config": {"epochs": 50}}))
    time.sleep(0.5)
    for _ in range(n):
        state = checked(controller.call("train:pause"))["state"]
        target = state["step"] + 1
        sent = time.perf_counter()
        checked(controller.call("train:step", {"batches": 1}))
        with done:
            if done.wait_for(lambda: target in arrived, timeout=10):
                samples.append(arrived[target] - sent)
        time.sleep(0.05)
    return samples


def predict_round_trips(viewer, n: int) -> list[float]:
    samples = []
    for _ in range(n):
        sent = time.perf_counter()
        answer = viewer.call("predict", BLANK_PIXELS)
        samples.append(time.perf_counter() - sent)
        if not answer.get("ok"):
            raise RuntimeError(answer)
        time.sleep(0.06)  # the page's pace (the server answers at most 20 a second per viewer)
    return samples


def bytes_per_second(url: str, controller, seconds: float = 10.0) -> float:
    page = LightViewer(url, auth={"streams": PAGE_STREAMS, "broadcasts": PAGE_BROADCASTS})
    start_run(controller, steps_per_second=DEFAULT_PACE)
    time.sleep(2.0)
    page.snapshot(reset=True)
    time.sleep(seconds)
    by_event = page.snapshot()[0]
    checked(controller.call("train:pause"))
    close_all([page])
    return sum(by_event.values()) / seconds, {event: round(n / seconds) for event, n in sorted(by_event.items())}


def summary(samples: list[float]) -> dict:
    ms = [s * 1000 for s in samples]
    return {"median_ms": round(median(ms), 2), "p99_ms": round(percentile(ms, 99), 2), "n": len(ms)}


def measure(n: int = 100) -> dict:
    result = {}
    with server_process() as served:
        controller, observer = Viewer(served.url, auth=QUIET), Viewer(served.url, auth=QUIET)
        result["one command"] = {
            "message": summary(message_latency(controller, observer, n)),
            "predict": summary(predict_round_trips(observer, n * 2)),
        }
        rate, by_event = bytes_per_second(served.url, controller)
        result["one command"].update(page_bytes_per_s=round(rate), page_bytes_by_event=by_event)
        close_all([controller, observer])
    redis_server = RedisServer().start()
    data_dir = tempfile.mkdtemp(prefix="bench-redis-")
    for cached in DIGITS_CACHE.glob("*.npz") if DIGITS_CACHE.is_dir() else ():
        shutil.copy2(cached, data_dir)
    try:
        with ExitStack() as stack:
            stack.enter_context(engine_process(redis_server.url, data_dir))
            args = ["--role", "web", "--redis", redis_server.url]
            web1 = stack.enter_context(server_process(extra_args=args))
            web2 = stack.enter_context(server_process(extra_args=args))
            web3 = stack.enter_context(server_process(extra_args=args + ["--predict-via-engine"]))
            controller, observer = Viewer(web1.url, auth=QUIET), Viewer(web2.url, auth=QUIET)
            remote = Viewer(web3.url, auth=QUIET)
            result["redis, 2 web + 1 engine"] = {
                "message": summary(message_latency(controller, observer, n)),
                "predict": summary(predict_round_trips(observer, n * 2)),
                "predict_via_engine": summary(predict_round_trips(remote, n * 2)),
            }
            rate, by_event = bytes_per_second(web2.url, controller)
            result["redis, 2 web + 1 engine"].update(page_bytes_per_s=round(rate), page_bytes_by_event=by_event)
            close_all([controller, observer, remote])
    finally:
        redis_server.stop()
        shutil.rmtree(data_dir, ignore_errors=True)
    a, b = result["one command"], result["redis, 2 web + 1 engine"]
    result["extra_message_latency_ms"] = {"median": round(b["message"]["median_ms"] - a["message"]["median_ms"], 2),
                                          "p99": round(b["message"]["p99_ms"] - a["message"]["p99_ms"], 2)}
    result["page_bytes_ratio"] = round(b["page_bytes_per_s"] / a["page_bytes_per_s"], 2)
    result["machine"] = machine_note()
    return result


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=100)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    result = measure(args.n)
    for setup in ("one command", "redis, 2 web + 1 engine"):
        row = result[setup]
        line = (f"{setup:>26}: message median {row['message']['median_ms']} ms, p99 {row['message']['p99_ms']} ms; "
                f"predict median {row['predict']['median_ms']} ms, p99 {row['predict']['p99_ms']} ms")
        if "predict_via_engine" in row:
            line += (f"; predict asked of the engine median {row['predict_via_engine']['median_ms']} ms, "
                     f"p99 {row['predict_via_engine']['p99_ms']} ms")
        print(line + f"; page {row['page_bytes_per_s']} B/s {row['page_bytes_by_event']}")
    print(f"extra message latency through Redis: median {result['extra_message_latency_ms']['median']} ms, "
          f"p99 {result['extra_message_latency_ms']['p99']} ms; page bytes ratio {result['page_bytes_ratio']}")
    print(result["machine"])
    emit_json(result, args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
