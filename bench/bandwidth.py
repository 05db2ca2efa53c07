"""Bytes per second sent to one viewer during training, per message type.

A bare websocket client speaks Engine.IO/Socket.IO itself so it can count every frame: text
packets and their binary attachments are added to the event they belong to. It answers pings
and acknowledges the live views' frames, as the page does (the server sends the next frame only
then). Sizes are the websocket payloads before compression; Chromium negotiates
permessage-deflate, so a browser gets less on the wire: the "deflated" column compresses each
message on its own (zlib), an upper bound of what the browser receives.

    .venv/bin/python bench/bandwidth.py [--seconds 10]
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.common import (LightViewer, Viewer, close_all, emit_json, machine_note, server_process,  # noqa: E402
                          start_run)


def measure(seconds: float = 10.0, paces=(50, None)) -> dict:
    results = {}
    with server_process() as (url, pid):
        controller = Viewer(url)
        counter = LightViewer(url, count_deflated=True)
        counter.counting = False
        try:
            for pace in paces:
                start_run(controller, steps_per_second=pace)
                time.sleep(2.0)
                counter.counting = True
                started = time.perf_counter()
                time.sleep(seconds)
                counter.counting = False
                elapsed = time.perf_counter() - started
                controller.call("train:pause")
                sizes, deflated, messages = counter.snapshot(reset=True)
                label = f"{pace} steps/s" if pace else "full speed"
                results[label] = {
                    event: {"bytes_per_second": sizes[event] / elapsed,
                            "deflated_bytes_per_second": deflated[event] / elapsed,
                            "messages_per_second": messages.get(event, 0) / elapsed}
                    for event in sorted(sizes, key=lambda e: -sizes[e])}
                results[label]["total"] = {
                    "bytes_per_second": sum(sizes.values()) / elapsed,
                    "deflated_bytes_per_second": sum(deflated.values()) / elapsed,
                    "messages_per_second": sum(messages.values()) / elapsed}
        finally:
            counter.close()
            close_all([controller])
    return {"paces": results, "seconds": seconds, "machine": machine_note()}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args(argv)
    result = measure(args.seconds)
    for pace, events in result["paces"].items():
        print(f"training at {pace}:")
        print(f"  {'message':24} {'KB/s':>9} {'deflated KB/s':>14} {'messages/s':>11}")
        for event, row in events.items():
            print(f"  {event:24} {row['bytes_per_second'] / 1000:9.1f} {row['deflated_bytes_per_second'] / 1000:14.1f} "
                  f"{row['messages_per_second']:11.1f}")
    emit_json(result, args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
