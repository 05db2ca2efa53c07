"""The floor under `predict`'s round trip: a bare Flask-SocketIO app (threading mode, websocket
only, the playground's message cap) served the way `python -m server` serves the playground,
gunicorn's threaded worker with the same worker settings (server/web/serve.py), whose `predict`
handler does nothing and answers {"ok": true}. No engine, no playground code, none of its
transport changes: bench/latency.py times it with the same client and payload as the
playground, so the table shows what the transport alone costs on this machine.

    .venv/bin/python bench/floor_server.py PORT
"""
from __future__ import annotations

import sys
from pathlib import Path

from flask import Flask
from flask_socketio import SocketIO
from gunicorn.app.base import BaseApplication

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from server.web.serve import THREADS  # noqa: E402  (the playground's worker threads)


def make_app() -> Flask:
    app = Flask(__name__)
    socketio = SocketIO(app, async_mode="threading", transports=["websocket"], max_http_buffer_size=2 * 1024 * 1024,
                        ping_interval=10, ping_timeout=20)

    @socketio.on("predict")
    def predict(payload=None):
        return {"ok": True}

    @socketio.on("train:pause")
    def pause(payload=None):
        return {"ok": True}

    @app.get("/healthz")
    def healthz():
        return {"ok": True}

    return app


class FloorServer(BaseApplication):
    def __init__(self, port: int):
        self.port = port
        super().__init__()

    def load_config(self):
        for key, value in {"bind": f"127.0.0.1:{self.port}", "workers": 1, "worker_class": "gthread",
                           "threads": THREADS, "worker_connections": THREADS * 4, "keepalive": 5,
                           "accesslog": None, "errorlog": "-", "loglevel": "warning"}.items():
            self.cfg.set(key, value)

    def load(self):
        return make_app()


if __name__ == "__main__":
    FloorServer(int(sys.argv[1])).run()
