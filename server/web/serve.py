"""Serving the web tier: gunicorn's threaded worker with simple-websocket, the production server
Flask-SocketIO's deployment docs give for threading mode (`gunicorn -w 1 --threads 100`), run
from `python -m server` through gunicorn's documented custom-application API.

One worker: the Socket.IO sessions live in its memory (several web processes need Redis, see
docs/deploy.md). Stopping (Ctrl+C = SIGINT, or SIGTERM): every viewer is disconnected and the
engine records every run up to its last step, then everything exits with status 0.
"""
from __future__ import annotations

import logging
import signal
import threading

from gunicorn.app.base import BaseApplication

log = logging.getLogger(__name__)

THREADS = 256  # one per open websocket (threading mode), plus HTTP requests
GRACEFUL_TIMEOUT_S = 10  # stopping waits at most this long for the engine to save


class PlaygroundServer(BaseApplication):
    def __init__(self, settings, *, on_ready=None, threads: int = THREADS):
        self.settings = settings
        self.on_ready = on_ready
        self.threads = threads
        self.playground = None
        super().__init__()

    def load_config(self):
        settings = self.settings
        host = f"[{settings.host}]" if ":" in settings.host else settings.host
        options = {
            "bind": f"{host}:{settings.port}",
            "workers": 1,
            "worker_class": "gthread",
            "threads": self.threads,
            "worker_connections": self.threads * 4,
            "timeout": 60,  # the worker's heartbeat (a slow first start may load MNIST)
            "graceful_timeout": GRACEFUL_TIMEOUT_S,
            "keepalive": 5,
            "accesslog": None,
            "errorlog": "-",
            "loglevel": "warning",
            "proc_name": "nn-linear-playground",
            "post_worker_init": self._post_worker_init,
            "worker_int": self._worker_int,
            "worker_exit": self._worker_exit,
            "when_ready": self._when_ready,
        }
        for key, value in options.items():
            self.cfg.set(key, value)

    def load(self):
        from .app import create_app
        app = create_app(self.settings)
        self.playground = app.extensions["playground"]
        return app

    # ---- gunicorn's hooks --------------------------------------------------------------------
    def _when_ready(self, arbiter):
        if self.on_ready:
            self.on_ready()

    def _post_worker_init(self, worker):
        # SIGTERM: gunicorn only stops accepting and waits for open connections (websockets stay
        # open for good). Disconnect everyone and stop the engine at once, in the background.
        def on_term(signum, frame):
            worker.alive = False
            threading.Thread(target=self._stop, name="stopping", daemon=True).start()
        signal.signal(signal.SIGTERM, on_term)

    def _worker_int(self, worker):  # SIGINT / SIGQUIT, just before the worker exits
        self._stop()

    def _worker_exit(self, arbiter, worker):
        self._stop()

    def _stop(self):
        if self.playground is not None:
            self.playground.shutdown()


def serve(settings, *, on_ready=None) -> int:
    PlaygroundServer(settings, on_ready=on_ready).run()
    return 0
