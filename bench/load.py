"""Load: N viewers (default 50) watch a run at full speed, each drawing (a canvas prediction)
every 200 ms. Every prediction must be answered, no viewer dropped, and training should keep
at least 80% of its solo throughput. Solo and loaded phases alternate in one run.

The viewers run in this process, on the same 2 cores as the server (in a classroom they would
be thirty other machines): the report gives the CPU the load generator itself used, which is
part of what the training lost.

Also measured: how long the server takes to let go of viewers that vanish (sockets killed, no
goodbye) with its production timing (ping interval 10 s, timeout 20 s).

    .venv/bin/python bench/load.py [--viewers 50] [--seconds 10] [--rounds 2]
    .venv/bin/python bench/load.py --scaling 10,20,30,40,50 --seconds 8
"""
from __future__ import annotations

import argparse
import os
import socket
import struct
import sys
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.common import (BLANK_PIXELS, LightViewer, Viewer, canvas_payload, close_all, emit_json,  # noqa: E402
                          machine_note, median,
                          percentile, rss_mb, server_process, start_run, thread_count,
                          throughput_from_metrics)

BATCH = 64
PREDICT_EVERY_S = 0.2


# What the crowd's viewers subscribe to (the page: every stream). The hidden-weight heatmaps are
# ~200 kB a frame, 2.5 frames/s: fifty viewers would make this process read 25 MB/s in Python on
# the same 2 cores, starve itself and miss the server's pings. By default the crowd leaves them
# out (bandwidth.py measures them per viewer; the controller still receives everything).
CROWD_STREAMS = ["activations", "distributions"]


def connect_all(url: str, n: int, streams=CROWD_STREAMS) -> list[LightViewer]:
    viewers, errors = [None] * n, []

    def connect(i):
        try:
            viewers[i] = LightViewer(url)
            if streams is not None:
                answer = viewers[i].call("inside:subscribe", {"streams": streams})
                assert answer.get("ok"), answer
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
        raise RuntimeError(f"{len(errors)} viewers could not connect: {errors[:3]}")
    return viewers


def drawing(viewer: LightViewer, payload: dict, seconds: float, latencies: list, failures: list):
    deadline = time.perf_counter() + seconds
    next_at = time.perf_counter() + PREDICT_EVERY_S * (hash(id(viewer)) % 100) / 100  # spread out
    time.sleep(max(0.0, next_at - time.perf_counter()))
    while next_at < deadline:
        started = time.perf_counter()
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


def draw_together(crowd, payload: dict, seconds: float, draw: bool = True) -> tuple[list, list]:
    """Every viewer of `crowd` draws every 200 ms for `seconds` (or only waits, if not `draw`);
    returns (round trips in ms, failures) of all of them."""
    latencies, failures = [[] for _ in crowd], [[] for _ in crowd]
    threads = [threading.Thread(target=drawing, args=(v, payload, seconds, latencies[i], failures[i]))
               if draw else threading.Thread(target=time.sleep, args=(seconds,))
               for i, v in enumerate(crowd)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=seconds + 60)
    return [x for per in latencies for x in per], [x for per in failures for x in per]


def phase(controller: Viewer, seconds: float) -> float:
    since = time.perf_counter()
    time.sleep(seconds)
    return throughput_from_metrics(controller, since, time.perf_counter(), BATCH)


def own_cpu_seconds() -> float:
    times = os.times()
    return times.user + times.system


def kill(viewer: LightViewer, abortive: bool):
    viewer.closed = True
    raw = viewer.ws.sock
    if abortive:
        raw.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        raw.close()
    else:
        raw.shutdown(socket.SHUT_RDWR)


def settled_thread_count(pid: int, timeout: float = 60.0) -> int:
    """The server's thread count once it has not changed for 3 s (viewers that just left are
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


def vanishing(url: str, pid: int, threads_before_crowds: int, n: int = 10) -> dict:
    """Connect n viewers during training, kill their sockets, time until the server's threads
    are back to where they were (the production ping timing)."""
    deadline = time.perf_counter() + 60  # the crowds before have gone (closed cleanly)
    while thread_count(pid) > threads_before_crowds and time.perf_counter() < deadline:
        time.sleep(0.5)
    baseline = settled_thread_count(pid)
    viewers = connect_all(url, n)
    time.sleep(3)
    peak = thread_count(pid)
    killed_at = time.perf_counter()
    for i, viewer in enumerate(viewers):
        kill(viewer, abortive=bool(i % 2))
    back_after = None
    while time.perf_counter() - killed_at < 90:
        if thread_count(pid) <= baseline:
            back_after = time.perf_counter() - killed_at
            break
        time.sleep(0.5)
    return {"viewers": n, "server_threads_before": baseline, "with_viewers": peak,
            "after": thread_count(pid), "seconds_until_threads_back": back_after}


def measure(viewers: int = 50, seconds: float = 10.0, rounds: int = 2, torch_threads: int | None = None,
            payload_kind: str = "canvas", draw: bool = True, server: str = "werkzeug",
            measure_vanishing: bool = True, full_streams: bool = False) -> dict:
    payload = canvas_payload() if payload_kind == "canvas" else BLANK_PIXELS
    solo, loaded, latencies, failures, dropped, generator_cpu, server_rss = [], [], [], [], 0, [], []
    with server_process(torch_threads=torch_threads, server=server) as (url, pid):
        controller = Viewer(url)
        try:
            start_run(controller)
            time.sleep(3)
            threads_before_crowds = thread_count(pid)
            for _ in range(rounds):
                solo.append(phase(controller, seconds))
                crowd = connect_all(url, viewers, None if full_streams else CROWD_STREAMS)
                time.sleep(2)
                cpu_before, wall_before = own_cpu_seconds(), time.perf_counter()
                since = time.perf_counter()
                lat, fail = draw_together(crowd, payload, seconds, draw)
                loaded.append(throughput_from_metrics(controller, since, time.perf_counter(), BATCH))
                generator_cpu.append((own_cpu_seconds() - cpu_before) / (time.perf_counter() - wall_before))
                server_rss.append(rss_mb(pid))
                latencies += lat
                failures += fail
                dropped += sum(not v.connected or not v.messages.get("metrics") for v in crowd)
                close_all(crowd)
                time.sleep(2)
            gone = vanishing(url, pid, threads_before_crowds) if measure_vanishing and controller.connected else None
            controller_dropped = not controller.connected
            if not controller_dropped:
                controller.call("train:pause")
        finally:
            close_all([controller])
    expected = int(seconds / PREDICT_EVERY_S) * viewers * rounds if draw else 0
    ratios = [l / s for l, s in zip(loaded, solo)]
    return {
        "viewers": viewers, "seconds": seconds, "rounds": rounds,
        "solo_samples_per_second": solo, "loaded_samples_per_second": loaded, "ratios": ratios,
        "ratio_median": median(ratios),
        "predictions_expected": expected, "predictions_answered": len(latencies), "failures": len(failures),
        "failure_examples": failures[:5], "viewers_dropped": dropped, "controller_dropped": controller_dropped,
        "predict_ms": {"median": median(latencies), "p99": percentile(latencies, 99), "max": max(latencies, default=float("nan"))},
        "load_generator_cpu_cores": median(generator_cpu), "server_rss_mb": max(server_rss, default=float("nan")),
        "vanishing_viewers": gone, "machine": machine_note(), "torch_threads": torch_threads or "default",
        "payload": payload_kind, "drawing": draw, "server": server,
        "crowd_streams": "all" if full_streams else CROWD_STREAMS,
    }


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--viewers", type=int, default=50)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--torch-threads", type=int, default=None)
    parser.add_argument("--payload", choices=["canvas", "pixels"], default="canvas")
    parser.add_argument("--watch-only", action="store_true", help="the viewers watch but do not draw")
    parser.add_argument("--server", default="werkzeug", choices=["werkzeug", "gunicorn"])
    parser.add_argument("--no-vanishing", action="store_true")
    parser.add_argument("--full-streams", action="store_true",
                        help="the crowd also takes the weight heatmaps (needs a client machine that can read them)")
    parser.add_argument("--scaling", default=None, metavar="N,N,...",
                        help="instead: one round per crowd size (e.g. 10,20,30,40,50), to find where it stops holding")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args(argv)
    if args.scaling:
        rows = {}
        for n in [int(v) for v in args.scaling.split(",")]:
            r = measure(n, args.seconds, 1, args.torch_threads, args.payload, not args.watch_only, args.server,
                        False, args.full_streams)
            rows[n] = r
            print(f"{n:3d} viewers: training {r['ratio_median']:.2f} of solo; {r['predictions_answered']} of "
                  f"~{r['predictions_expected']} predictions answered, {r['failures']} failed, {r['viewers_dropped']} "
                  f"dropped; round trip median {r['predict_ms']['median']:.1f} ms, p99 {r['predict_ms']['p99']:.0f} ms; "
                  f"load generator {r['load_generator_cpu_cores']:.2f} cores", flush=True)
        emit_json(rows, args.json)
        return 0
    r = measure(args.viewers, args.seconds, args.rounds, args.torch_threads, args.payload, not args.watch_only,
                args.server, not args.no_vanishing, args.full_streams)
    for i, (s, l) in enumerate(zip(r["solo_samples_per_second"], r["loaded_samples_per_second"]), 1):
        print(f"round {i}: solo {s:9,.0f} samples/s   with {r['viewers']} viewers drawing {l:9,.0f} samples/s   "
              f"ratio {l / s:.2f}")
    print(f"median ratio {r['ratio_median']:.2f} (goal >= 0.80); the load generator used "
          f"{r['load_generator_cpu_cores']:.2f} of the 2 cores")
    if r["controller_dropped"]:
        print("the controlling viewer (which also takes the heatmaps) was dropped by the server")
    print(f"predictions: {r['predictions_answered']} answered of ~{r['predictions_expected']}, {r['failures']} failed, "
          f"{r['viewers_dropped']} viewers dropped; round trip median {r['predict_ms']['median']:.1f} ms, "
          f"p99 {r['predict_ms']['p99']:.1f} ms; server RSS {r['server_rss_mb']:.0f} MB")
    g = r["vanishing_viewers"]
    if g:
        print(f"vanishing viewers: {g['viewers']} killed; server threads {g['server_threads_before']} -> "
              f"{g['with_viewers']} -> {g['after']}, back after {g['seconds_until_threads_back']} s")
    emit_json(r, args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
