"""Size and rate limits on what clients send.

- HTTP bodies: Flask's MAX_CONTENT_LENGTH (set in the app factory) answers 413 before a view
  runs; `init_app` makes that answer JSON like every other refusal.
- Socket.IO messages: `max_http_buffer_size` caps one message. Engine.IO checks it only after
  the websocket layer has buffered the whole message, so `cap_websocket_messages` also hands
  the cap to simple-websocket, which closes the connection (1009, message too big) as soon as
  a message grows past it, before it is held in memory. Only that connection closes.
- Binary attachments: at most MAX_ATTACHMENTS per Socket.IO packet (`cap_attachments`).
- Events: at most EVENTS_PER_SECOND per connection, all events together (`cap_event_rate`).
- Rates: `throttle(name, per_second, burst)` is a per-client token bucket. A Socket.IO client's
  buckets live in its connection's WSGI environ (gone when it disconnects); HTTP clients are
  keyed by address in a bounded table.
"""
from __future__ import annotations

import functools
import threading
import time
from collections import OrderedDict

from flask import Flask, jsonify, request
from socketio import packet as socketio_packet
from werkzeug.exceptions import HTTPException

from ..session import Numbers, SessionError

# The page sends at most one predict per 60 ms while drawing, one at a time; 20 a second with
# bursts of 40 leaves room for fast drawing and a slow link catching up.
PREDICT_PER_SECOND = 20.0
PREDICT_BURST = 40
# All events of one connection together: the page sends at most ~30 a second while drawing
# (predictions, the explainer's and the inspector's arithmetic).
EVENTS_PER_SECOND = 60.0
EVENTS_BURST = 120
RECEIVE_BYTES = 64 * 1024  # one socket read of a websocket connection
MAX_ATTACHMENTS = 4  # binary attachments one Socket.IO packet may declare
HTTP_CLIENTS_TRACKED = 4096  # oldest HTTP client buckets are forgotten past this


class LimitError(SessionError):
    """A request refused by a rate limit; nothing was done."""


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
    address = (name, environ.get("REMOTE_ADDR"))
    with _http_lock:
        bucket = _http_buckets.pop(address, None) or TokenBucket(per_second, burst)
        _http_buckets[address] = bucket
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


def cap_websocket_messages(socketio) -> None:
    eio = socketio.server.eio
    websocket_class = eio._async.get("websocket")
    if websocket_class is None:
        return
    # A copy: the driver table is shared by every Engine.IO server in the process.
    # receive_bytes: read up to 64 KiB a time (default 4 KiB): a 78 kB canvas arrives in 2
    # reads instead of 20, each of which runs the websocket parser in Python.
    eio._async = dict(eio._async, websocket=functools.partial(
        websocket_class, max_message_size=eio.max_http_buffer_size, receive_bytes=RECEIVE_BYTES))


def cap_attachments(socketio) -> None:
    """A Socket.IO packet declares how many binary attachments follow, and the server holds
    every frame that arrives until that many have: a header claiming 99,999 would let one
    connection pile up memory without end. Our events carry at most one binary (a canvas)."""
    server = socketio.server
    base = server.packet_class

    class AttachmentCappedPacket(base):
        def data_is_binary(self, data):
            """Whether `data` holds bytes anywhere. The library's version calls itself for every
            number of every list (a predict answer has ~2,000): this one looks only into
            containers, without recursion."""
            pending = [data]
            while pending:
                item = pending.pop()
                if isinstance(item, (bytes, bytearray)):
                    return True
                if type(item) is Numbers:  # a prediction's floats: nothing to look into
                    continue
                children = item.values() if isinstance(item, dict) else item if isinstance(item, list) else ()
                pending.extend([c for c in children if isinstance(c, (list, dict, bytes, bytearray))])
            return False

        def decode(self, encoded_packet):
            try:
                count = super().decode(encoded_packet)
            except RecursionError:
                raise ValueError("packet data nested too deeply") from None
            if count and count > MAX_ATTACHMENTS:
                raise ValueError(f"packet declares {count} binary attachments; at most {MAX_ATTACHMENTS}")
            return count

    server.packet_class = AttachmentCappedPacket


def answer_inline(socketio, event: str, handler) -> None:
    """Handle `event` in the connection's own reader thread, outside Flask: `handler(environ,
    *args)` returns the acknowledgement. Flask-SocketIO starts a thread and pushes a Flask
    request context for every event; for `predict` (every drawing, from every viewer) that was
    a quarter of the server's CPU time per request (bench/latency.py). Only for short handlers that need neither
    `flask.request` nor the session's lock: a connection's next message waits for it."""
    socketio.server.playground_inline_events[event] = handler


def cap_event_rate(socketio) -> None:
    """Every event from one connection, whatever its name, counts against one bucket before a
    handler thread is started for it: a client that floods (any event, known or not) is
    answered "too many requests" instead of making the server start a thread per message."""
    server = socketio.server
    handle_event = server._handle_event

    def handle_event_within_rate(eio_sid, namespace, id, data):
        if not isinstance(data, list) or not data or not isinstance(data[0], str):
            return  # not an event (a malformed packet): nothing to answer
        environ = server.environ.get(eio_sid)
        if environ is not None:
            bucket = environ.get("playground.rate.events")
            if bucket is None:
                bucket = environ["playground.rate.events"] = TokenBucket(EVENTS_PER_SECOND, EVENTS_BURST)
            if not bucket.take():
                if id is not None:
                    server._send_packet(eio_sid, server.packet_class(
                        socketio_packet.ACK, namespace=namespace or "/", id=id, data=[{
                            "ok": False, "error": f"too many requests: at most {EVENTS_PER_SECOND:g} per "
                                                  f"second from one viewer; this one was not handled"}]))
                return
        inline = server.playground_inline_events.get(data[0])
        if inline is not None and (namespace or "/") == "/":
            if server.manager.sid_from_eio_sid(eio_sid, "/") is None:
                return  # not connected to the namespace: ignored, as python-socketio does
            answer = inline(environ if environ is not None else {}, *data[1:])
            if id is not None:
                server._send_packet(eio_sid, server.packet_class(socketio_packet.ACK, namespace="/", id=id,
                                                                 data=[answer]))
            return
        return handle_event(eio_sid, namespace, id, data)

    server.playground_inline_events = {}
    server._handle_event = handle_event_within_rate


def init_app(app: Flask, socketio) -> None:
    cap_websocket_messages(socketio)
    cap_attachments(socketio)
    cap_event_rate(socketio)

    @app.errorhandler(413)
    def too_large(err):
        limit = app.config.get("MAX_CONTENT_LENGTH")
        return jsonify({"error": f"the request is too large: at most {limit:,} bytes"}), 413

    @app.errorhandler(LimitError)
    def rate_limited(err):
        return jsonify({"error": str(err)}), 429

    @app.errorhandler(RecursionError)
    def nested_too_deeply(err):
        # json.loads recurses once per [ or {: a body of 100,000 brackets is only 200 kB.
        return jsonify({"error": "the request is nested too deeply to read"}), 400

    @app.errorhandler(HTTPException)
    def api_errors_in_json(err):
        """API clients get JSON refusals (404 for a missing run, 405 for a wrong method)."""
        if request.path.startswith("/api/"):
            return jsonify({"error": f"{err.name}: {err.description}"}), err.code
        return err
