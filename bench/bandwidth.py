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
import re
import sys
import threading
import time
import zlib
from pathlib import Path

import websocket

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.common import Viewer, close_all, emit_json, machine_note, server_process, start_run  # noqa: E402

PACKET = re.compile(r"^4([0-6])(\d+-)?(/[^,]*,)?(\d*)(.*)$", re.S)


class CountingViewer:
    def __init__(self, url: str):
        ws_url = url.replace("http://", "ws://") + "/socket.io/?EIO=4&transport=websocket"
        self.ws = websocket.create_connection(ws_url, timeout=10, origin=url)
        self.ws.recv()  # Engine.IO open
        self.ws.send("40")
        self.lock = threading.Lock()
        self.bytes: dict[str, int] = {}
        self.deflated: dict[str, int] = {}
        self.messages: dict[str, int] = {}
        self.counting = False
        self.pending_event = None
        self.pending_attachments = 0
        self.closed = False
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _add(self, event: str, data, new_message: bool):
        if not self.counting:
            return
        raw = data.encode() if isinstance(data, str) else data
        with self.lock:
            self.bytes[event] = self.bytes.get(event, 0) + len(raw)
            self.deflated[event] = self.deflated.get(event, 0) + len(zlib.compress(raw, 6))
            if new_message:
                self.messages[event] = self.messages.get(event, 0) + 1

    def _read(self):
        while not self.closed:
            try:
                frame = self.ws.recv()
            except Exception:
                return
            if isinstance(frame, bytes):  # a binary attachment of the last packet
                self._add(self.pending_event or "?", frame, False)
                self.pending_attachments -= 1
                continue
            if frame == "2":
                self.ws.send("3")  # pong
                continue
            match = PACKET.match(frame)
            if not match:
                continue
            kind, attachments, _namespace, ack_id, body = match.groups()
            if kind not in ("2", "5"):
                continue
            event = body.split('"', 2)[1] if body.startswith('["') else "?"
            self.pending_event = event
            self.pending_attachments = int(attachments[:-1]) if attachments else 0
            self._add(event, frame, True)
            if ack_id:
                self.ws.send(f"43{ack_id}[true]")  # acknowledge, as the page does after drawing

    def snapshot(self):
        with self.lock:
            return dict(self.bytes), dict(self.deflated), dict(self.messages)

    def close(self):
        self.closed = True
        try:
            self.ws.close(timeout=1)
        except Exception:
            pass
        self.ws.shutdown()


def measure(seconds: float = 10.0, paces=(50, None)) -> dict:
    results = {}
    with server_process() as (url, pid):
        controller = Viewer(url)
        counter = CountingViewer(url)
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
                sizes, deflated, messages = counter.snapshot()
                with counter.lock:
                    counter.bytes.clear()
                    counter.deflated.clear()
                    counter.messages.clear()
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
