"""The floor under `predict`'s round trip: a bare Flask-SocketIO server (threading mode,
simple-websocket, TCP_NODELAY, websocket only, as the playground runs) whose `predict` handler
does nothing and answers {"ok": true}. bench/latency.py times it with the same client and
payload as the playground, so the table shows what the transport alone costs on this machine.

    .venv/bin/python bench/floor_server.py PORT
"""
from __future__ import annotations

import sys
from pathlib import Path

from flask import Flask
from flask_socketio import SocketIO

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tests.helpers import NoDelayRequestHandler  # noqa: E402


def main(port: int) -> None:
    app = Flask(__name__)
    socketio = SocketIO(app, async_mode="threading", transports=["websocket"], max_http_buffer_size=2 * 1024 * 1024)

    @socketio.on("predict")
    def predict(payload=None):
        return {"ok": True}

    @socketio.on("train:pause")
    def pause(payload=None):
        return {"ok": True}

    @app.get("/healthz")
    def healthz():
        return {"ok": True}

    socketio.run(app, host="127.0.0.1", port=port, allow_unsafe_werkzeug=True,
                 request_handler=NoDelayRequestHandler, log_output=False)


if __name__ == "__main__":
    main(int(sys.argv[1]))
