"""Serving the web tier: gunicorn's threaded worker with simple-websocket, the production server
Flask-SocketIO's deployment docs give for threading mode (`gunicorn -w 1 --threads 100`), run
from `python -m server` through gunicorn's documented custom-application API.

One worker: the Socket.IO sessions live in its memory (several web processes need Redis, see
docs/deploy.md). Stopping (Ctrl+C = SIGINT, or SIGTERM): every viewer is disconnected and the
engine records every run up to its last step, then everything exits with status 0.
"""
from __future__ import annotations

import logging
import queue
import selectors
import signal
import socket
import threading
import time
from collections import OrderedDict
from concurrent.futures import Future
from functools import partial

from gunicorn.app.base import BaseApplication
from gunicorn.workers.gthread import ThreadWorker

from ..cores import pin_this_thread
from ..memory import give_back_memory, limit_malloc_arenas

log = logging.getLogger(__name__)

THREADS = 1024  # one per open websocket (threading mode), plus HTTP requests: the most viewers at once
GRACEFUL_TIMEOUT_S = 10  # stopping waits at most this long for the engine to save
# How long quiet peers are waited for: Settings.request_timeout_s (a request that has not arrived
# whole by then is dropped) and Settings.idle_thread_s (a pool thread with nothing to do this long
# ends, memory and threads go back); --request-timeout and --idle-thread-timeout.
# A finished connection's peer gets this long to hang up (RFC 9112 section 9.6), watched by the
# accepting thread's poller: gunicorn waited for each in turn on that thread (30 peers that never
# hung up froze every page for a minute).
LINGER_S = 2.0
LINGER_DRAIN_BYTES = 64 * 1024  # read (and dropped) from a lingering peer at most
MAX_LINGERING = 4096  # past this many at once, the oldest is closed at once
SILENCE_SLACK_S = 5.0  # a websocket is dropped after Engine.IO's ping interval + timeout + this of silence


class ElasticPool:
    """The worker's thread pool, for gunicorn's gthread worker (its `get_thread_pool`): like
    concurrent.futures.ThreadPoolExecutor, but an idle thread ends after `idle_s`. A
    websocket holds a pool thread for its whole life; with the standard pool, 300 viewers who
    came and went left 300 idle threads behind for good."""

    def __init__(self, max_workers: int, idle_s: float):
        self.max_workers, self.idle_s = max_workers, idle_s
        self._jobs: queue.SimpleQueue = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._threads = 0
        self._idle = 0
        self._shutdown = False

    def submit(self, fn, *args, **kwargs) -> Future:
        future: Future = Future()
        with self._lock:
            if self._shutdown:
                raise RuntimeError("the pool is shut down")
            self._jobs.put((future, fn, args, kwargs))
            if self._idle == 0 and self._threads < self.max_workers:
                self._threads += 1
                threading.Thread(target=self._work, name="gunicorn-pool", daemon=True).start()
            else:
                self._idle = max(0, self._idle - 1)  # a waiting thread will take it
        return future

    def _work(self) -> None:
        while True:
            try:
                future, fn, args, kwargs = self._jobs.get(timeout=self.idle_s)
            except queue.Empty:
                with self._lock:
                    if self._jobs.empty() or self._shutdown:
                        self._threads -= 1
                        self._idle = max(0, self._idle - 1)
                        ended = self._threads == 0
                        break
                continue
            if future is None:  # shutdown
                with self._lock:
                    self._threads -= 1
                return
            if future.set_running_or_notify_cancel():
                try:
                    future.set_result(fn(*args, **kwargs))
                except BaseException as err:
                    future.set_exception(err)
            with self._lock:
                self._idle += 1
        if ended:
            give_back_memory()  # everyone left: hand their buffers back to the system

    def shutdown(self, wait: bool = True, cancel_futures: bool = False) -> None:
        with self._lock:
            self._shutdown = True
            threads = self._threads
        for _ in range(threads):
            self._jobs.put((None, None, None, None))


class TimedSocket(socket.socket):
    """A client socket whose blocking reads give up after `head_timeout_s` of silence
    (gunicorn sets its sockets blocking before it reads a request, which would wait forever).
    A websocket lifts the limit once its handshake is in (`websockets_without_timeout`)."""

    unlimited = False  # a websocket: its own time limit (`websockets_without_timeout`)
    silent = False  # it timed out: closed at once, without waiting for it to hang up
    head_timeout_s: float  # Settings.request_timeout_s, set by the worker on each new socket

    def setblocking(self, flag: bool) -> None:
        if flag and not self.unlimited:
            self.settimeout(self.head_timeout_s)
        else:
            super().setblocking(flag)

    def recv(self, *args):
        try:
            return super().recv(*args)
        except TimeoutError:
            if self.unlimited or self.gettimeout() != self.head_timeout_s:
                raise  # someone else's time limit (gunicorn's own, when closing)
            self.silent = True
            return b""  # silent too long: as if it had hung up (no traceback in the log)

    def shutdown(self, how):
        if self.silent:  # gunicorn would wait for a peer that never speaks to hang up
            raise OSError("the client went silent")
        super().shutdown(how)

    def send(self, data, *flags):
        # simple-websocket writes each frame with one send() and ignores what it returns; with a
        # time limit the socket may take part of a big frame. All of it, or the time limit's error.
        if self.unlimited and self.gettimeout() is not None:
            self.sendall(data, *flags)
            return len(data)
        return super().send(data, *flags)


class Lingering:
    """Connections the server is done with, closed without waiting on the accepting thread: the
    write side is shut (the peer reads the whole answer, then the end), the socket stays on the
    worker's poller until the peer hangs up, LINGER_DRAIN_BYTES arrived, or LINGER_S passed."""

    def __init__(self, poller, linger_s: float = LINGER_S, limit: int = MAX_LINGERING):
        self.poller, self.linger_s, self.limit = poller, linger_s, limit
        self._sockets: "OrderedDict[socket.socket, list]" = OrderedDict()  # -> [deadline, bytes drained]

    def __len__(self) -> int:
        return len(self._sockets)

    def close(self, sock) -> None:
        try:
            sock.setblocking(False)
            sock.shutdown(socket.SHUT_WR)
            self.poller.register(sock, selectors.EVENT_READ, partial(self._readable, sock))
        except (OSError, ValueError, KeyError):
            self._close(sock)
            return
        self._sockets[sock] = [time.monotonic() + self.linger_s, 0]
        while len(self._sockets) > self.limit:
            self._end(next(iter(self._sockets)))

    def _readable(self, sock, _fileobj=None) -> None:
        entry = self._sockets.get(sock)
        if entry is None:
            return
        try:
            data = sock.recv(65536)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            data = b""
        entry[1] += len(data)
        if not data or entry[1] >= LINGER_DRAIN_BYTES:
            self._end(sock)

    def expire(self, force: bool = False) -> None:
        now = time.monotonic()
        while self._sockets:
            sock, (deadline, _) = next(iter(self._sockets.items()))
            if deadline > now and not force:
                break
            self._end(sock)

    def _end(self, sock) -> None:
        self._sockets.pop(sock, None)
        try:
            self.poller.unregister(sock)
        except (OSError, ValueError, KeyError):
            pass
        self._close(sock)

    @staticmethod
    def _close(sock) -> None:
        try:
            sock.close()
        except OSError:
            pass


class PlaygroundWorker(ThreadWorker):
    """gunicorn's threaded worker, with idle threads that end (ElasticPool), a time limit
    on reading a request (a connection that sends half a request and waits held a thread for
    good: TimedSocket), and finished connections closed without waiting for their peers on the
    accepting thread (Lingering)."""

    lingering: Lingering

    def init_process(self):
        limit_malloc_arenas()  # threads that come and go: memory is reused, not scattered
        pin_this_thread(self.app.settings.serving_cores)  # the cores the training threads leave free
        super().init_process()

    def run(self):
        self.lingering = Lingering(self.poller)
        super().run()

    def finish_request(self, conn, fs):
        # gunicorn closes a finished connection gracefully on this, the accepting thread, waiting
        # up to 2 s for the peer to hang up (`util.close_graceful`): the same close, on the poller.
        if not fs.cancelled() and fs.exception() is None and fs.result() is False:
            self.nr_conns -= 1
            self.lingering.close(conn.sock)
            return
        super().finish_request(conn, fs)

    def murder_keepalived(self, force=False):  # called on every turn of the worker's loop
        super().murder_keepalived(force)
        lingering = getattr(self, "lingering", None)
        if lingering is not None:
            lingering.expire(force)

    def get_thread_pool(self):
        return ElasticPool(self.cfg.threads, idle_s=self.app.settings.idle_thread_s)

    def enqueue_req(self, conn):
        if not isinstance(conn.sock, TimedSocket) and not conn.initialized:
            plain = conn.sock
            conn.sock = TimedSocket(plain.family, plain.type, plain.proto, fileno=plain.detach())
            conn.sock.head_timeout_s = self.app.settings.request_timeout_s
            conn.sock.setblocking(False)
        super().enqueue_req(conn)


def websockets_without_timeout(wsgi_app, silence_s: float | None = None):
    """A websocket, once its handshake arrived whole, may stay quiet as long as it answers the
    pings: the request's time limit is taken off its socket. `silence_s` (Engine.IO's ping
    interval plus its ping timeout: a live page answers a ping within it) takes its place, so a
    peer that says nothing for that long is dropped and both its threads end (the websocket's
    reader and the request's); python-engineio means to set the same, but looks for the socket
    under names simple-websocket does not use."""
    def app(environ, start_response):
        sock = environ.get("gunicorn.socket")
        if isinstance(sock, TimedSocket) and environ.get("HTTP_UPGRADE", "").lower() == "websocket":
            sock.unlimited = True
            sock.settimeout(silence_s)
        return wsgi_app(environ, start_response)
    return app


class PlaygroundServer(BaseApplication):
    def __init__(self, settings, *, engines, on_ready=None, threads: int = THREADS):
        self.settings = settings
        self.engines = engines  # how the engines run (server/link/local.py EngineEntry)
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
            "worker_class": "server.web.serve.PlaygroundWorker",
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
        app = create_app(self.settings, engines=self.engines)
        self.playground = app.extensions["playground"]
        eio = self.playground.socketio.server.eio
        app.wsgi_app = websockets_without_timeout(app.wsgi_app, eio.ping_interval + eio.ping_timeout + SILENCE_SLACK_S)
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


def serve(settings, *, engines, on_ready=None) -> int:
    PlaygroundServer(settings, engines=engines, on_ready=on_ready).run()
    return 0
