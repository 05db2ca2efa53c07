"""Load: N viewers (default 50) watch a run at full speed, each drawing (a `predict` with the
page's canvas payload) every 200 ms. Every prediction must be answered, no viewer dropped,
training should keep at least 80% of its speed alone, and predict p99 should stay within
100 ms. Phases alternate in one run: alone (only the controlling client, which takes nothing
but state and metrics), then with the crowd connected and drawing; the crowd connects while
the run is paused and leaves after its phase.

The crowd's viewers are cheap websocket clients (bench/common.py LightViewer) that say at
connect what they take (by default what the page takes: weights-delta, activations,
distributions-delta, evaluation and runs), 10 to a process, on the same 2 cores as the server
(in a classroom they would be thirty other machines): the report gives the cores the load
generator used, which is part of what training lost, and the cores of the web worker and
of the engine in each phase (from /proc).

Also measured: how long the server takes to let go of viewers that vanish (sockets killed, no
goodbye) with its production timing (ping interval 10 s, timeout 20 s).

    .venv/bin/python bench/load.py [--viewers 50] [--seconds 10] [--rounds 2] [--crowd-takes page|nothing|first-protocol]
    .venv/bin/python bench/load.py --scaling 10,20,30,40,50 --seconds 8
"""
from __future__ import annotations

import argparse
import json
import os
import socket
import struct
import subprocess
import sys
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.common import (BATCH, BLANK_PIXELS, PYTHON, QUIET, VIEWER_KINDS, CpuMeter, LightViewer,  # noqa: E402
                          canvas_payload, checked, close_all, emit_json, machine_note, median, own_cpu_seconds,
                          percentile, resume, rss_mb, server_process, start_run, thread_count,
                          throughput_from_metrics)

PREDICT_EVERY_S = 0.2
VIEWERS_PER_PROCESS = 10  # one Python process reading 50 sockets would itself be the bottleneck
P99_GOAL_MS = 100.0
RATIO_GOAL = 0.80
CROWD_TAKES = {"page": VIEWER_KINDS["page"], "nothing": QUIET, "first-protocol": None}


# ---- viewers drawing (in a crowd process, or in this one) ----------------------------------------

def connect_all(url: str, n: int, auth=VIEWER_KINDS["page"]) -> list[LightViewer]:
    viewers, errors = [None] * n, []

    def connect(i):
        try:
            viewers[i] = LightViewer(url, auth=auth, keep_metrics=False)
        except Exception as err:
            errors.append(repr(err))

    threads = [threading.Thread(target=connect, args=(i,)) for i in range(n)]
    for i, thread in enumerate(threads):
        thread.start()
        if i % 10 == 9:
            time.sleep(0.2)  # a classroom arrives over seconds, not in one instant
    for thread in threads:
        thread.join(timeout=60)
    if errors:
        close_all([v for v in viewers if v is not None])
        raise RuntimeError(f"{len(errors)} viewers could not connect: {errors[:3]}")
    return viewers


def drawing(viewer: LightViewer, payload: dict, seconds: float, offset: float, latencies: list, failures: list,
            sent: list):
    deadline = time.perf_counter() + seconds
    next_at = time.perf_counter() + offset
    time.sleep(max(0.0, next_at - time.perf_counter()))
    while next_at < deadline:
        started = time.perf_counter()
        sent[0] += 1
        try:
            answer = viewer.call("predict", payload, timeout=30)
            if answer.get("ok"):
                latencies.append((time.perf_counter() - started) * 1000)
            else:
                failures.append(answer.get("error"))
        except Exception as err:
            failures.append(repr(err))
        next_at += PREDICT_EVERY_S
        time.sleep(max(0.0, next_at - time.perf_counter()))


def draw_together(crowd, payload: dict, seconds: float, draw: bool = True, first_index: int = 0) -> dict:
    """Every viewer of `crowd` draws every 200 ms for `seconds` (or only watches, if not
    `draw`), their first drawings spread over the first 200 ms."""
    latencies, failures, sent = [[] for _ in crowd], [[] for _ in crowd], [[0] for _ in crowd]
    metrics_before = [v.messages.get("metrics", 0) for v in crowd]
    threads = [threading.Thread(target=drawing, args=(
        v, payload, seconds, PREDICT_EVERY_S * (((first_index + i) * 0.618034) % 1), latencies[i], failures[i],
        sent[i])) if draw else threading.Thread(target=time.sleep, args=(seconds,)) for i, v in enumerate(crowd)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=seconds + 60)
    dropped = sum(not v.connected or v.messages.get("metrics", 0) == before for v, before in zip(crowd, metrics_before))
    return {"latencies": [x for per in latencies for x in per], "failures": [x for per in failures for x in per],
            "sent": sum(s[0] for s in sent), "dropped": dropped}


def crowd_worker(url: str, count: int, auth, first_index: int, payload_kind: str) -> int:
    """A crowd process: connect `count` viewers, say ready, then on each stdin line "draw S" /
    "watch S" do it and print what happened (JSON); "quit" ends."""
    payload = canvas_payload() if payload_kind == "canvas" else BLANK_PIXELS
    try:
        viewers = connect_all(url, count, auth)
    except Exception as err:
        print(json.dumps({"ready": False, "error": str(err)}), flush=True)
        return 1
    print(json.dumps({"ready": True, "pid": os.getpid()}), flush=True)
    for line in sys.stdin:
        command, *rest = line.split()
        if command == "quit":
            break
        cpu_before = own_cpu_seconds()
        outcome = draw_together(viewers, payload, float(rest[0]), command == "draw", first_index)
        outcome["cpu_seconds"] = own_cpu_seconds() - cpu_before
        print(json.dumps(outcome), flush=True)
    close_all(viewers)
    return 0


class Crowd:
    """`n` viewers saying `auth` at connect, VIEWERS_PER_PROCESS to a process; `draw(seconds)`
    has them all draw at once."""

    def __init__(self, url: str, n: int, auth, payload_kind: str = "canvas"):
        self.workers = []
        try:
            for first in range(0, n, VIEWERS_PER_PROCESS):
                count = min(VIEWERS_PER_PROCESS, n - first)
                self.workers.append(subprocess.Popen(
                    [PYTHON, str(Path(__file__)), "--crowd-worker", url, str(count), json.dumps(auth), str(first),
                     payload_kind], cwd=REPO, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True))
            for worker in self.workers:
                hello = json.loads(worker.stdout.readline() or '{"ready": false, "error": "the process ended"}')
                if not hello.get("ready"):
                    raise RuntimeError(f"a crowd process could not connect its viewers: {hello.get('error')}")
        except BaseException:
            self.close()
            raise

    def draw(self, seconds: float, draw: bool = True) -> dict:
        for worker in self.workers:
            worker.stdin.write(f"{'draw' if draw else 'watch'} {seconds}\n")
            worker.stdin.flush()
        merged = {"latencies": [], "failures": [], "sent": 0, "dropped": 0, "cpu_seconds": 0.0}
        for worker in self.workers:
            outcome = json.loads(worker.stdout.readline())
            for key in merged:
                merged[key] += outcome[key]
        return merged

    def close(self) -> None:
        for worker in self.workers:
            try:
                worker.stdin.write("quit\n")
                worker.stdin.flush()
            except (OSError, ValueError):
                pass
        for worker in self.workers:
            try:
                worker.wait(timeout=30)
            except subprocess.TimeoutExpired:
                worker.kill()
                worker.wait()
        self.workers = []

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


# ---- viewers that vanish ------------------------------------------------------------------------

def kill(viewer: LightViewer, abortive: bool):
    viewer.closed = True
    raw = viewer.ws.sock
    if abortive:
        raw.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        raw.close()
    else:
        raw.shutdown(socket.SHUT_RDWR)


def settled_thread_count(pid: int, timeout: float = 60.0) -> int:
    """The process's thread count once it has not changed for 3 s (viewers that just left are
    still being let go)."""
    deadline = time.perf_counter() + timeout
    count, since = thread_count(pid), time.perf_counter()
    while time.perf_counter() < deadline:
        time.sleep(0.5)
        now = thread_count(pid)
        if now != count:
            count, since = now, time.perf_counter()
        elif time.perf_counter() - since >= 3:
            break
    return count


def vanishing(url: str, web_pid: int, threads_before_crowds: int, n: int = 10) -> dict:
    """Connect n viewers during training, kill their sockets, time until the web worker's
    threads are back to where they were (the production ping timing)."""
    deadline = time.perf_counter() + 60  # the crowds before have gone (closed cleanly)
    while thread_count(web_pid) > threads_before_crowds and time.perf_counter() < deadline:
        time.sleep(0.5)
    baseline = settled_thread_count(web_pid)
    viewers = connect_all(url, n)
    time.sleep(3)
    peak = thread_count(web_pid)
    killed_at = time.perf_counter()
    for i, viewer in enumerate(viewers):
        kill(viewer, abortive=bool(i % 2))
    back_after = None
    while time.perf_counter() - killed_at < 90:
        if thread_count(web_pid) <= baseline:
            back_after = time.perf_counter() - killed_at
            break
        time.sleep(0.5)
    return {"viewers": n, "server_threads_before": baseline, "with_viewers": peak,
            "after": thread_count(web_pid), "seconds_until_threads_back": back_after}


# ---- the benchmark ------------------------------------------------------------------------------

def timed_phase(served, controller: LightViewer, seconds: float, during=None) -> tuple[float, dict, object]:
    """Resume the run at full speed, let it settle, measure `seconds` (running `during(seconds)`
    meanwhile, if given), pause: (samples/s, cores per process, what `during` returned)."""
    resume(controller, seconds + 5)
    time.sleep(1.0)
    meter = CpuMeter(served.processes()).start()
    since = time.perf_counter()
    outcome = during(seconds) if during else time.sleep(seconds)
    until = time.perf_counter()
    cores = meter.stop()
    checked(controller.call("train:pause"))
    return throughput_from_metrics(controller, since, until, BATCH), cores, outcome


def measure(viewers: int = 50, seconds: float = 10.0, rounds: int = 2, torch_threads: int | None = None,
            payload_kind: str = "canvas", draw: bool = True, measure_vanishing: bool = True,
            crowd_takes: str = "page", server_args=()) -> dict:
    auth = CROWD_TAKES[crowd_takes]
    solo, loaded, solo_cores, loaded_cores, generator = [], [], [], [], []
    latencies, failures, sent, dropped, web_rss = [], [], 0, 0, []
    # Every viewer here comes from this machine's one address: room for all of them.
    every_viewer = ("--sockets-per-address", str(viewers + 20))
    with server_process(torch_threads=torch_threads, extra_args=every_viewer + tuple(server_args)) as served:
        controller = LightViewer(served.url, auth=QUIET)
        try:
            start_run(controller)
            time.sleep(3)
            web_pid = served.web_pid()
            threads_before_crowds = thread_count(web_pid)
            for _ in range(rounds):
                rate, cores, _ = timed_phase(served, controller, seconds)
                solo.append(rate)
                solo_cores.append(cores)
                with Crowd(served.url, viewers, auth, payload_kind) as crowd:
                    time.sleep(1)
                    rate, cores, outcome = timed_phase(served, controller, seconds,
                                                       lambda s: crowd.draw(s, draw))
                loaded.append(rate)
                cores["benchmark (load generator)"] += outcome["cpu_seconds"] / seconds
                loaded_cores.append(cores)
                generator.append(cores["benchmark (load generator)"])
                web_rss.append(rss_mb(web_pid))
                latencies += outcome["latencies"]
                failures += outcome["failures"]
                sent += outcome["sent"]
                dropped += outcome["dropped"]
                time.sleep(2)
            gone = vanishing(served.url, web_pid, threads_before_crowds) \
                if measure_vanishing and controller.connected else None
            controller_dropped = not controller.connected
        finally:
            close_all([controller])
    ratios = [l / s for l, s in zip(loaded, solo)]

    def cores_median(phases):
        return {process: median([p[process] for p in phases]) for process in phases[0]}

    return {
        "viewers": viewers, "seconds": seconds, "rounds": rounds, "crowd_takes": auth, "drawing": draw,
        "payload": payload_kind,
        "solo_samples_per_second": solo, "loaded_samples_per_second": loaded, "ratios": ratios,
        "ratio_median": median(ratios), "ratio_goal": RATIO_GOAL,
        "predictions_sent": sent, "predictions_answered": len(latencies), "failures": len(failures),
        "failure_examples": failures[:5], "viewers_dropped": dropped, "controller_dropped": controller_dropped,
        "predict_ms": {"median": median(latencies), "p99": percentile(latencies, 99),
                       "max": max(latencies, default=float("nan"))}, "p99_goal_ms": P99_GOAL_MS,
        "cores_alone": cores_median(solo_cores), "cores_with_crowd": cores_median(loaded_cores),
        "load_generator_cpu_cores": median(generator), "web_worker_rss_mb": max(web_rss, default=float("nan")),
        "vanishing_viewers": gone, "machine": machine_note(), "torch_threads": torch_threads or "default",
    }


def print_result(r: dict) -> None:
    for i, (s, l) in enumerate(zip(r["solo_samples_per_second"], r["loaded_samples_per_second"]), 1):
        print(f"round {i}: alone {s:9,.0f} samples/s   with {r['viewers']} viewers drawing {l:9,.0f} samples/s   "
              f"ratio {l / s:.2f}")
    print(f"median ratio {r['ratio_median']:.2f} (goal >= {RATIO_GOAL}); the load generator used "
          f"{r['load_generator_cpu_cores']:.2f} of the 2 cores")
    for label, cores in (("alone", r["cores_alone"]), ("with the crowd", r["cores_with_crowd"])):
        print(f"cores {label}: " + ", ".join(f"{p} {c:.2f}" for p, c in cores.items()))
    if r["controller_dropped"]:
        print("the controlling client was dropped by the server")
    print(f"predictions: {r['predictions_answered']} answered of {r['predictions_sent']} sent, {r['failures']} failed, "
          f"{r['viewers_dropped']} viewers dropped; round trip median {r['predict_ms']['median']:.1f} ms, "
          f"p99 {r['predict_ms']['p99']:.1f} ms (goal <= {P99_GOAL_MS:g}), max {r['predict_ms']['max']:.0f} ms; "
          f"web worker RSS {r['web_worker_rss_mb']:.0f} MB")
    g = r["vanishing_viewers"]
    if g:
        print(f"vanishing viewers: {g['viewers']} killed; web worker threads {g['server_threads_before']} -> "
              f"{g['with_viewers']} -> {g['after']}, back after {g['seconds_until_threads_back']} s")


def main(argv=None) -> int:
    if argv is None and len(sys.argv) > 1 and sys.argv[1] == "--crowd-worker":
        url, count, auth, first, payload_kind = sys.argv[2:7]
        return crowd_worker(url, int(count), json.loads(auth), int(first), payload_kind)
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--viewers", type=int, default=50)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--torch-threads", type=int, default=None)
    parser.add_argument("--payload", choices=["canvas", "pixels"], default="canvas")
    parser.add_argument("--watch-only", action="store_true", help="the viewers watch but do not draw")
    parser.add_argument("--server-arg", action="append", default=[], dest="server_args",
                        help="an option for python -m server (repeat), e.g. --server-arg=--no-pin-cores")
    parser.add_argument("--no-vanishing", action="store_true")
    parser.add_argument("--crowd-takes", choices=sorted(CROWD_TAKES), default="page",
                        help="what each viewer of the crowd says it takes at connect (default: what the page takes)")
    parser.add_argument("--scaling", default=None, metavar="N,N,...",
                        help="instead: one round per crowd size (e.g. 10,20,30,40,50), to find where it stops holding")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args(argv)
    if args.scaling:
        rows = {}
        for n in [int(v) for v in args.scaling.split(",")]:
            r = measure(n, args.seconds, 1, args.torch_threads, args.payload, not args.watch_only, False,
                        args.crowd_takes, args.server_args)
            rows[n] = r
            print(f"{n:3d} viewers: training {r['ratio_median']:.2f} of alone; {r['predictions_answered']} of "
                  f"{r['predictions_sent']} predictions answered, {r['failures']} failed, {r['viewers_dropped']} "
                  f"dropped; round trip median {r['predict_ms']['median']:.1f} ms, p99 {r['predict_ms']['p99']:.0f} ms; "
                  f"web worker {r['cores_with_crowd']['web worker']:.2f} cores, engine "
                  f"{r['cores_with_crowd']['engine']:.2f}, load generator {r['load_generator_cpu_cores']:.2f}",
                  flush=True)
        emit_json({"scaling": rows, "machine": machine_note()}, args.json)
        return 0
    r = measure(args.viewers, args.seconds, args.rounds, args.torch_threads, args.payload, not args.watch_only,
                not args.no_vanishing, args.crowd_takes, args.server_args)
    print_result(r)
    emit_json(r, args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
