"""Bytes per second sent to one viewer at the default pace (50 steps/s), per message type, for
three viewers watching the same run side by side:
- "page": takes every stream the page takes (weights-delta, activations, distributions-delta)
  and both broadcasts (evaluation, runs); goal <= 100 kB/s;
- "page, live views out of view": streams [] and broadcasts [] (state, metrics, epoch only);
  goal <= 30 kB/s;
- "first protocol": says nothing (full weights, activations, distributions; both broadcasts),
  for reference.
A fourth client controls the run and is not counted. Two windows: the whole default run (the
default setup, 20 epochs at 50 steps/s: about a minute), from its start to its end, and a 10-s
window early in it (from 2 s after the start).

Each viewer is a bare websocket client that speaks Engine.IO/Socket.IO itself so it can count
every frame: text packets and their binary attachments are added to the event they belong to.
It answers pings and acknowledges the live views' frames as the page does (the server sends
the next frame only then). Sizes are websocket payloads before compression; Chromium
negotiates permessage-deflate, so a browser gets less on the wire: the "deflated" column
compresses each message on its own (zlib), an upper bound of what the browser receives.

    .venv/bin/python bench/bandwidth.py [--epochs 20] [--early-seconds 10] [--pace 50]
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.common import (DEFAULT_PACE, QUIET, VIEWER_KINDS, LightViewer, checked, close_all, emit_json,  # noqa: E402
                          machine_note, server_process)

GOALS_BYTES_PER_SECOND = {"page": 100_000, "page, live views out of view": 30_000}
EARLY_FROM_S = 2.0  # the early window starts this long after the run's start


def rates(before, after, seconds: float) -> dict:
    """Per event and in total: bytes/s, deflated bytes/s, messages/s between two snapshots."""
    (b0, d0, m0), (b1, d1, m1) = before, after
    rows = {}
    for event in sorted(b1, key=lambda e: -(b1[e] - b0.get(e, 0))):
        sent = b1[event] - b0.get(event, 0)
        if sent == 0:
            continue
        rows[event] = {"bytes_per_second": sent / seconds,
                       "deflated_bytes_per_second": (d1.get(event, 0) - d0.get(event, 0)) / seconds,
                       "messages_per_second": (m1.get(event, 0) - m0.get(event, 0)) / seconds}
    rows["total"] = {key: sum(row[key] for row in rows.values())
                     for key in ("bytes_per_second", "deflated_bytes_per_second", "messages_per_second")}
    return rows


def measure(epochs: int = 20, early_seconds: float = 10.0, pace: float = DEFAULT_PACE) -> dict:
    with server_process() as served:
        controller = LightViewer(served.url, auth=QUIET)
        viewers = {name: LightViewer(served.url, auth=auth, count_deflated=True, keep_metrics=False)
                   for name, auth in VIEWER_KINDS.items()}
        try:
            # The default setup (its epochs aside, for short runs) at the page's pace.
            checked(controller.call("train:reset", {"config": {"steps_per_second": pace, "epochs": epochs}}))
            time.sleep(1.0)  # the greeting and the reset's messages are not part of the run
            started_at = time.perf_counter()
            at_start = {name: v.snapshot() for name, v in viewers.items()}
            checked(controller.call("train:start"))
            time.sleep(EARLY_FROM_S)
            early_from = {name: v.snapshot() for name, v in viewers.items()}
            time.sleep(early_seconds)
            early_to = {name: v.snapshot() for name, v in viewers.items()}
            expected_s = epochs * 9500 / 64 / pace  # the embedded digits: 9,500 to train on
            if not controller.wait_for_status("done", timeout=3 * expected_s + 60):
                raise RuntimeError(f"the run did not finish in {3 * expected_s + 60:.0f} s")
            ended_at = time.perf_counter()
            time.sleep(0.5)  # the end's own messages (last evaluation, runs, frames of the still run)
            at_end = {name: v.snapshot() for name, v in viewers.items()}
            connected = {name: v.connected for name, v in viewers.items()}
        finally:
            close_all([controller, *viewers.values()])
    run_seconds = ended_at - started_at
    results = {name: {"whole run": rates(at_start[name], at_end[name], run_seconds),
                      f"early {early_seconds:g} s": rates(early_from[name], early_to[name], early_seconds),
                      "auth": VIEWER_KINDS[name], "stayed_connected": connected[name]}
               for name in viewers}
    return {"viewers": results, "run_seconds": run_seconds, "epochs": epochs, "pace": pace,
            "early_window": [EARLY_FROM_S, EARLY_FROM_S + early_seconds], "goals_bytes_per_second": GOALS_BYTES_PER_SECOND,
            "machine": machine_note()}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=20, help="the run's epochs (default 20: the default run)")
    parser.add_argument("--early-seconds", type=float, default=10.0)
    parser.add_argument("--pace", type=float, default=DEFAULT_PACE, help="steps per second (default: the page's)")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args(argv)
    result = measure(args.epochs, args.early_seconds, args.pace)
    print(f"a run of {result['epochs']} epochs at {result['pace']:g} steps/s, {result['run_seconds']:.1f} s")
    for name, windows in result["viewers"].items():
        goal = GOALS_BYTES_PER_SECOND.get(name)
        for window, events in windows.items():
            if not isinstance(events, dict) or "total" not in events:
                continue
            print(f"{name}, {window}" + (f" (goal <= {goal / 1000:g} kB/s)" if goal else "") + ":")
            print(f"  {'message':28} {'kB/s':>9} {'deflated kB/s':>14} {'messages/s':>11}")
            for event, row in events.items():
                print(f"  {event:28} {row['bytes_per_second'] / 1000:9.1f} "
                      f"{row['deflated_bytes_per_second'] / 1000:14.1f} {row['messages_per_second']:11.1f}")
    print(result["machine"])
    emit_json(result, args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
