"""Size and rate limits on what clients send.

- HTTP bodies: Flask's MAX_CONTENT_LENGTH (set in the app factory) answers 413 before a view
  runs; `init_app` makes that answer JSON like every other refusal.
- Socket.IO messages: `max_http_buffer_size` caps one message; binary attachments per packet
  and the events of one connection are capped too (server/web/transport.py, which applies
  these numbers inside python-socketio).
- Rates: `throttle(name, per_second, burst)` is a per-client token bucket. A Socket.IO client's
  buckets live in its connection's WSGI environ (gone when it disconnects); HTTP clients are
  keyed by address in a bounded table (the client's address, behind a trusted proxy too:
  web/addresses.py). All Socket.IO events of one address together count against
  `address_bucket` as well (many sockets of one client are one client).
"""
from __future__ import annotations

import threading
import time
from collections import OrderedDict

from flask import Flask, jsonify, request
from werkzeug.exceptions import HTTPException

from ..errors import LimitError
from .addresses import client_address

# The page sends at most one predict per 60 ms while drawing, one at a time; 20 a second with
# bursts of 40 leaves room for fast drawing and a slow link catching up.
PREDICT_PER_SECOND = 20.0
PREDICT_BURST = 40
# All events of one connection together: the page sends at most ~30 a second while drawing
# (predictions, the explainer's and the inspector's arithmetic).
EVENTS_PER_SECOND = 60.0
EVENTS_BURST = 120
RECEIVE_BYTES = 64 * 1024  # one socket read of a websocket connection
HTTP_CLIENTS_TRACKED = 4096  # oldest HTTP client buckets are forgotten past this
# All events of one address: as many as an eighth of the pages it may hold at once, all busy (a
# class behind one address with --sockets-per-address 240 gets 30 pages' worth).
ADDRESS_PAGES_BUSY = 1 / 8


def address_events_rate(sockets_per_address: int) -> tuple[float, int]:
    """(per second, burst) of all Socket.IO events from one address."""
    pages = max(1.0, sockets_per_address * ADDRESS_PAGES_BUSY)
    return EVENTS_PER_SECOND * pages, int(EVENTS_BURST * pages)


class TokenBucket:
    def __init__(self, per_second: float, burst: int, clock=time.monotonic):
        self.per_second = per_second
        self.burst = burst
        self.clock = clock
        self.tokens = float(burst)
        self.updated = clock()
        self.lock = threading.Lock()

    def take(self) -> bool:
        with self.lock:
            now = self.clock()
            self.tokens = min(self.burst, self.tokens + (now - self.updated) * self.per_second)
            self.updated = now
            if self.tokens >= 1.0:
                self.tokens -= 1.0
                return True
            return False


_http_buckets: "OrderedDict[tuple, TokenBucket]" = OrderedDict()
_http_lock = threading.Lock()


def _bucket(name: str, per_second: float, burst: int, socket_environ=None) -> TokenBucket:
    """`socket_environ`: the Socket.IO connection's environ, for handlers outside Flask."""
    key = f"playground.rate.{name}"
    environ = socket_environ if socket_environ is not None else request.environ
    if socket_environ is not None or getattr(request, "sid", None) is not None:  # per connection
        bucket = environ.get(key)
        if bucket is None:
            bucket = environ[key] = TokenBucket(per_second, burst)
        return bucket
    return address_bucket(name, client_address(environ), per_second, burst)


def address_bucket(name: str, address: str, per_second: float, burst: int) -> TokenBucket:
    """The bucket `name` of one client address (a bounded table: the oldest are forgotten)."""
    key = (name, address, per_second, burst)  # (servers with other limits in one process: tests)
    with _http_lock:
        bucket = _http_buckets.pop(key, None) or TokenBucket(per_second, burst)
        _http_buckets[key] = bucket
        while len(_http_buckets) > HTTP_CLIENTS_TRACKED:
            _http_buckets.popitem(last=False)
    return bucket


def throttle(name: str, per_second: float, burst: int, what: str | None = None) -> None:
    """Raise LimitError when the current client went past `per_second` (bursts of `burst`)."""
    if not _bucket(name, per_second, burst).take():
        raise LimitError(f"too many {what or name} requests: at most {per_second:g} per second "
                         f"for each viewer; this one was refused, wait a moment")


def throttle_predict(socket_environ=None) -> None:
    if not _bucket("predict", PREDICT_PER_SECOND, PREDICT_BURST, socket_environ).take():
        raise LimitError(f"too many predictions: at most {PREDICT_PER_SECOND:g} per second for each "
                         f"viewer; this one was skipped, the next drawing will be answered")


def init_app(app: Flask, playground) -> None:
    @app.errorhandler(413)
    def too_large(err):
        limit = app.config.get("MAX_CONTENT_LENGTH")
        return jsonify({"error": f"the request is too large: at most {limit:,} bytes"}), 413

    @app.errorhandler(RecursionError)
    def nested_too_deeply(err):
        # json.loads recurses once per [ or {: a body of 100,000 brackets is only 200 kB.
        return jsonify({"error": "the request is nested too deeply to read"}), 400

    @app.errorhandler(HTTPException)
    def api_errors_in_json(err):
        """API clients get JSON refusals (404 for a missing run, 405 for a wrong method)."""
        if request.path.startswith("/api/"):
            return jsonify({"error": http_refusal(err)}), err.code
        return err


def http_refusal(err: HTTPException) -> str:
    """A refusal by the web framework itself (no such address, wrong method), in words that say
    what to do instead of werkzeug's boilerplate."""
    if err.code == 404:
        return f"there is nothing at {request.path}: docs/protocol.md lists the playground's addresses"
    if err.code == 405:
        allowed = sorted(set(getattr(err, "valid_methods", None) or []) - {"HEAD", "OPTIONS"})
        return f"{request.path} does not take {request.method}: use {' or '.join(allowed) or 'another method'}"
    if err.code == 400:
        return "the request could not be read: send a JSON object with Content-Type: application/json"
    return f"{err.name}: {err.description}"
