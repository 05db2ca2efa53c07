"""What each live-view stream costs, one at a time, at full speed: training speed, the cores the
engine (which makes and encodes the frames) and the web worker (which sends them) used, and
the bytes and frames per second the viewer received.

Phases alternate on one run of `python -m server`: a viewer taking nothing (streams [] and
broadcasts []), then one taking a single stream, then nothing again, the next stream, ...;
each stream's phase is divided by the mean of the "nothing" phases either side of it. The
viewer is a cheap websocket client (bench/common.py LightViewer) that acknowledges each frame
as the page does. bench/throughput.py measures the page's streams together against a bare
loop; bench/page.py measures what drawing each view costs the browser.

    .venv/bin/python bench/views.py [--rounds 2] [--seconds 4] [--streams weights-delta,activations,...]
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.common import (BATCH, CpuMeter, LightViewer, checked, close_all, emit_json, machine_note,  # noqa: E402
                          median, resume, server_process, start_run, throughput_from_metrics)

STREAMS = ("weights-delta", "activations", "distributions-delta", "weights", "distributions")
NOTHING = "(nothing)"


def phase(served, streams: list[str], seconds: float) -> dict:
    viewer = LightViewer(served.url, auth={"streams": streams, "broadcasts": []})
    try:
        resume(viewer, seconds + 2)
        time.sleep(0.5)
        before = viewer.snapshot()
        meter = CpuMeter(served.processes()).start()
        since = time.perf_counter()
        time.sleep(seconds)
        until = time.perf_counter()
        cores = meter.stop()
        after = viewer.snapshot()
        checked(viewer.call("train:pause"))
        rate = throughput_from_metrics(viewer, since, until, BATCH)
    finally:
        close_all([viewer])
    events = [f"inside:{s}" for s in streams]
    (b0, _, m0), (b1, _, m1) = before, after
    return {"samples_per_second": rate, "cores": cores,
            "bytes_per_second": sum(b1.get(e, 0) - b0.get(e, 0) for e in events) / (until - since),
            "frames_per_second": sum(m1.get(e, 0) - m0.get(e, 0) for e in events) / (until - since)}


def measure(rounds: int = 2, seconds: float = 4.0, streams=STREAMS, torch_threads=None) -> dict:
    phases = {name: [] for name in (NOTHING, *streams)}
    with server_process(torch_threads=torch_threads) as served:
        warm = LightViewer(served.url, auth={"streams": [], "broadcasts": []})
        try:
            start_run(warm)
            time.sleep(2)
            checked(warm.call("train:pause"))
        finally:
            close_all([warm])
        for _ in range(rounds):
            for stream in streams:
                phases[NOTHING].append(phase(served, [], seconds))
                phases[stream].append(phase(served, [stream], seconds))
        phases[NOTHING].append(phase(served, [], seconds))
    nothing = [p["samples_per_second"] for p in phases[NOTHING]]
    rows = {}
    for name, runs in phases.items():
        if name == NOTHING:
            ratios = [1.0]
        else:  # the k-th phase of stream i in round r sits between "nothing" phases n and n+1
            index = list(streams).index(name)
            ratios = [p["samples_per_second"] / ((nothing[r * len(streams) + index] + nothing[r * len(streams) + index + 1]) / 2)
                      for r, p in enumerate(runs)]
        rows[name] = {
            "samples_per_second": [p["samples_per_second"] for p in runs], "ratio_to_nothing": median(ratios),
            "cores": {process: median([p["cores"][process] for p in runs]) for process in runs[0]["cores"]},
            "bytes_per_second": median([p["bytes_per_second"] for p in runs]),
            "frames_per_second": median([p["frames_per_second"] for p in runs]),
        }
    return {"streams": rows, "rounds": rounds, "seconds": seconds, "machine": machine_note()}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--seconds", type=float, default=4.0)
    parser.add_argument("--streams", default=",".join(STREAMS))
    parser.add_argument("--torch-threads", type=int, default=None)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args(argv)
    result = measure(args.rounds, args.seconds, [s for s in args.streams.split(",") if s], args.torch_threads)
    print(f"{'the viewer takes':22} {'samples/s':>10} {'ratio':>6} {'engine':>7} {'web':>6} {'kB/s':>8} {'frames/s':>9}")
    for name, row in result["streams"].items():
        print(f"{name:22} {median(row['samples_per_second']):10,.0f} {row['ratio_to_nothing']:6.2f} "
              f"{row['cores'].get('engine', float('nan')):7.2f} {row['cores'].get('web worker', float('nan')):6.2f} "
              f"{row['bytes_per_second'] / 1000:8.1f} {row['frames_per_second']:9.1f}")
    print(f"(cores of each process during the phase) {result['machine']}")
    emit_json(result, args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
