"""What connections cost the web worker and that it gives it back (issue 14, item 8): 300
Socket.IO viewers connect and leave; the worker's threads and memory (from /proc) before, with
them, and after (with how long the threads took to end).

    .venv/bin/python bench/connections.py [--viewers 300] [--json out.json]
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import websocket

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.common import emit_json, machine_note, rss_mb, server_process, thread_count  # noqa: E402

HANDSHAKE = "/socket.io/?EIO=4&transport=websocket"


def measure(viewers: int = 300) -> dict:
    # Every viewer here comes from this machine's one address: room for all of them.
    with server_process(extra_args=("--sockets-per-address", str(viewers + 20))) as served:
        worker = served.web_pid()
        port = served.url.rsplit(":", 1)[1]
        time.sleep(2)
        before = {"threads": thread_count(worker), "rss_mb": round(rss_mb(worker), 1)}
        sockets = []
        for _ in range(viewers):
            ws = websocket.create_connection(f"ws://127.0.0.1:{port}{HANDSHAKE}", timeout=10)
            ws.recv()
            ws.send("40")
            sockets.append(ws)
        time.sleep(2)
        open_ = {"threads": thread_count(worker), "rss_mb": round(rss_mb(worker), 1)}
        for ws in sockets:
            ws.close()
        closed_at = time.monotonic()
        while thread_count(worker) > before["threads"] + 20 and time.monotonic() - closed_at < 90:
            time.sleep(0.5)
        back_s = round(time.monotonic() - closed_at, 1)
        after = {"threads": thread_count(worker), "rss_mb": round(rss_mb(worker), 1)}
    return {"viewers": viewers, "before": before, "open": open_, "after": after, "threads_back_after_s": back_s,
            "rss_growth_mb": round(after["rss_mb"] - before["rss_mb"], 1), "machine": machine_note()}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--viewers", type=int, default=300)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    r = measure(args.viewers)
    print(f"{r['viewers']} viewers: web worker threads {r['before']['threads']} -> {r['open']['threads']} -> "
          f"{r['after']['threads']} ({r['threads_back_after_s']} s after they left); RSS {r['before']['rss_mb']} -> "
          f"{r['open']['rss_mb']} -> {r['after']['rss_mb']} MB ({r['rss_growth_mb']:+} MB)")
    print(r["machine"])
    emit_json(r, args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
