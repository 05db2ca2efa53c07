"""Every change the playground makes to python-socketio's and python-engineio's behaviour, in
one place. They use these private parts of the pinned versions (requirements.txt); the test
tests/unit/test_transport.py checks each still exists and behaves as assumed, so an upgrade that
changes them fails there first:

- `socketio.Server._send_packet`, `_send_eio_packet`, `_handle_event`, `packet_class`,
  `environ`, `manager.rooms`, `manager.get_participants`, `manager.eio_sid_from_sid`,
  `manager.sid_from_eio_sid`, `manager._generate_ack_id`, `manager.pending_connect`,
  `PubSubManager._handle_emit` and its message's fields (--redis: the queue between web processes);
- `engineio.Server._async["websocket"]` (the simple-websocket class) and `eio.sockets`;
- Socket.IO's packet text format (`<type>[<attachments>-][<ack id>]<json>`).

What they do:
- `send_packets_whole`: a binary event is a header frame plus attachment frames; two threads
  sending to one client (a broadcast, a handler's acknowledgement) must not interleave them.
  Each client has its own lock, held only while a packet's parts are queued; broadcasts that
  arrive from other web processes through the Redis queue take it too.
- `cap_websocket_messages`: simple-websocket closes a connection as soon as one message grows
  past the cap (before it is held in memory), and reads 64 KiB at a time.
- `cap_attachments`: at most MAX_ATTACHMENTS binary attachments per packet, a binary scan
  that does not look into every number of a prediction's answer, and orjson for the packets'
  JSON (`Server.packet_class`, `Packet.json`).
- `gate_events`: every event of a connection counts against one rate (and against its
  address's: web/limits.py) before a handler thread starts, and a few short events (`predict`)
  are answered in the connection's own thread.
- `send_encoded`: send an event encoded once elsewhere (server/link/wire.py) to one client,
  with its own acknowledgement id: no re-encoding per viewer.
- `library_loggers`: the loggers handed to python-socketio and python-engineio (so they add no
  handler of their own), which say one line, no traceback, per connection per minute about bad
  input (a malformed packet made two tracebacks each: 10 MB of log in 3 s).
- `cap_queued_packets`: a client that does not read (its socket's send queue stays long) is
  disconnected instead of holding memory without end (`engineio.Server.send_packet`,
  `Socket.queue`, `Socket.close`).
"""
from __future__ import annotations

import base64
import functools
import logging
import threading
import time
from contextlib import nullcontext
from typing import Callable

from engineio import packet as eio_packet
from socketio import packet as socketio_packet

from ..link import fastjson
from ..link.wire import EncodedEvent, decode_event
from .answers import NoBinary
from .addresses import client_address
from .limits import EVENTS_BURST, EVENTS_PER_SECOND, RECEIVE_BYTES, TokenBucket, address_bucket

MAX_ATTACHMENTS = 4  # binary attachments one Socket.IO packet may declare
# Packets waiting to be written to one client. A reading page has a handful (frames wait for
# acknowledgements); one that keeps more than BACKLOG_PACKETS waiting for BACKLOG_PATIENCE_S is
# not reading, and is disconnected (at once past MAX_QUEUED_PACKETS).
BACKLOG_PACKETS = 200
BACKLOG_PATIENCE_S = 10.0
MAX_QUEUED_PACKETS = 20_000
SEND_LOCK = "_playground_send_lock"


def client_lock(server, eio_sid):
    socket = server.eio.sockets.get(eio_sid)
    if socket is None:  # gone (or a test client): nothing to interleave with
        return nullcontext()
    return socket.__dict__.setdefault(SEND_LOCK, threading.Lock())


def send_packets_whole(server) -> None:
    def send_packet_whole(eio_sid, pkt):
        encoded = pkt.encode()  # outside the lock: clients never wait on one another's encoding
        parts = encoded if isinstance(encoded, list) else [encoded]
        with client_lock(server, eio_sid):
            for part in parts:
                server.eio.send(eio_sid, part)

    server._send_packet = send_packet_whole
    manager = server.manager
    manager_emit = manager.emit

    def emit_whole(event, data, namespace, room=None, skip_sid=None, callback=None, to=None, **kwargs):
        # An emit without an acknowledgement (every broadcast) skips _send_packet: the manager
        # queues each part itself. Same packet, encoded once, queued whole per client.
        room = to or room
        if callback or namespace not in manager.rooms:
            return manager_emit(event, data, namespace, room=room, skip_sid=skip_sid, callback=callback, **kwargs)
        data = list(data) if isinstance(data, tuple) else [] if data is None else [data]
        skip = skip_sid if isinstance(skip_sid, list) else [skip_sid]
        encoded = server.packet_class(socketio_packet.EVENT, namespace=namespace, data=[event] + data).encode()
        parts = [eio_packet.Packet(eio_packet.MESSAGE, p) for p in (encoded if isinstance(encoded, list) else [encoded])]
        for sid, eio_sid in manager.get_participants(namespace, room):
            if sid not in skip:
                with client_lock(server, eio_sid):
                    for part in parts:
                        server._send_eio_packet(eio_sid, part)

    manager.emit = emit_whole
    keep_queue_broadcasts_whole(manager, emit_whole)


def keep_queue_broadcasts_whole(manager, emit_whole) -> None:
    """A broadcast from another web process (Flask-SocketIO's Redis queue, --redis) arrives in
    `PubSubManager._handle_emit`, which emits through the base manager's own emit and so queued
    each part by itself: sent here through `emit_whole`, under each client's send lock."""
    handle_emit = getattr(manager, "_handle_emit", None)
    if handle_emit is None:  # no message queue: nothing arrives from elsewhere
        return

    def handle_emit_whole(message):
        if message.get("callback") is not None:  # acknowledged: _send_packet, already whole
            return handle_emit(message)
        namespace = message.get("namespace") or "/"
        if namespace not in manager.rooms:
            return  # nobody here on it (and emit_whole's fallback would publish it again)
        data = message.get("data")
        if message.get("binary"):
            attachments = [base64.b64decode(part) for part in data[1:]]
            data = socketio_packet.Packet.reconstruct_binary(data[0], attachments)
        if isinstance(data, list):
            data = data[0] if len(data) == 1 else tuple(data)
        emit_whole(message["event"], data, namespace, room=message.get("room"),
                   skip_sid=message.get("skip_sid"))

    manager._handle_emit = handle_emit_whole


def send_encoded(socketio, sid: str, encoded: EncodedEvent, callback: Callable | None = None) -> bool:
    """Send an encoded event to client `sid` on `/`; with `callback`, asking for an
    acknowledgement that calls `callback(*answer)`. False when the client is gone."""
    server = socketio.server
    manager = server.manager
    eio_sid = manager.eio_sid_from_sid(sid, "/")
    if eio_sid is None:
        return False
    if eio_sid not in server.eio.sockets:
        # Not a real socket (Flask-SocketIO's test client): the library's own emit.
        event, data = decode_event(encoded)
        socketio.emit(event, data, to=sid, callback=callback)
        return True
    ack_id = "" if callback is None else str(manager._generate_ack_id(sid, callback))
    n = len(encoded.attachments)
    head = (f"{socketio_packet.BINARY_EVENT}{n}-" if n else str(socketio_packet.EVENT)) + ack_id + encoded.text
    with client_lock(server, eio_sid):
        server.eio.send(eio_sid, head)
        for attachment in encoded.attachments:
            server.eio.send(eio_sid, attachment)
    return True


def cap_websocket_messages(socketio) -> None:
    eio = socketio.server.eio
    websocket_class = eio._async.get("websocket")
    if websocket_class is None:
        return
    # A copy: the driver table is shared by every Engine.IO server in the process.
    # receive_bytes: up to 64 KiB a read (default 4 KiB): a 78 kB canvas arrives in 2 reads
    # instead of 20, each of which runs the websocket parser in Python.
    eio._async = dict(eio._async, websocket=functools.partial(
        websocket_class, max_message_size=eio.max_http_buffer_size, receive_bytes=RECEIVE_BYTES))


def cap_attachments(socketio) -> None:
    """A Socket.IO packet declares how many binary attachments follow, and the server holds
    every frame that arrives until that many have: a header claiming 99,999 would let one
    connection pile up memory without end. Our events carry at most one binary (a canvas)."""
    server = socketio.server
    base = server.packet_class

    class AttachmentCappedPacket(base):
        # orjson writes the packets (a prediction's answer in a tenth of the time). Set on this
        # class only: python-socketio's own `json=` option would change every Packet in the
        # process, clients included.
        json = fastjson

        def data_is_binary(self, data):
            """Whether `data` holds bytes anywhere. The library's version calls itself for every
            number of every list (a predict answer has ~2,000): this one looks only into
            containers, without recursion, and skips lists marked NoBinary."""
            pending = [data]
            while pending:
                item = pending.pop()
                if isinstance(item, (bytes, bytearray)):
                    return True
                if type(item) is NoBinary:
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


def gate_events(socketio, inline_events: dict, address_rate: tuple[float, int] | None = None) -> None:
    """Every event from one connection, whatever its name, counts against one bucket before a
    handler thread is started for it: a client that floods (any event, known or not) is
    answered "too many requests" instead of making the server start a thread per message.
    `inline_events` (name -> handler(environ, *args) -> answer) are answered in the connection's
    own reader thread, outside Flask: Flask-SocketIO starts a thread and pushes a request
    context for every event, a quarter of a prediction's server time (bench/latency.py)."""
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
            refusal = None
            if not bucket.take():
                refusal = f"too many requests: at most {EVENTS_PER_SECOND:g} per second from one viewer"
            elif address_rate is not None and environ.get("REMOTE_ADDR") and not address_bucket(
                    "events", client_address(environ), *address_rate).take():  # (no address: in-process tests)
                refusal = f"too many requests: at most {address_rate[0]:g} per second from one address"
            if refusal is not None:
                if id is not None:
                    server._send_packet(eio_sid, server.packet_class(
                        socketio_packet.ACK, namespace=namespace or "/", id=id, data=[{
                            "ok": False, "error": f"{refusal}; this one was not handled"}]))
                return
        inline = inline_events.get(data[0])
        if inline is not None and (namespace or "/") == "/":
            if server.manager.sid_from_eio_sid(eio_sid, "/") is None:
                return  # not connected to the namespace: ignored, as python-socketio does
            answer = inline(environ if environ is not None else {}, *data[1:])
            if id is not None:
                server._send_packet(eio_sid, server.packet_class(socketio_packet.ACK, namespace="/", id=id,
                                                                 data=[answer]))
            return
        return handle_event(eio_sid, namespace, id, data)

    server._handle_event = handle_event_within_rate


def is_connected(socketio, sid: str) -> bool:
    return socketio.server.manager.is_connected(sid, "/")


def is_pending(socketio, sid: str) -> bool:
    """Whether `sid`'s connect handler is still running (it is not 'connected' yet)."""
    return sid in getattr(socketio.server.manager, "pending_connect", {}).get("/", ())


BAD_INPUT_LOG_INTERVAL_S = 60.0


class OncePerConnection(logging.Filter):
    """Warnings and errors from the transport libraries: one line per connection (each has its
    own reader thread) per interval, without the traceback; then silence, counted."""

    def __init__(self, interval_s: float = BAD_INPUT_LOG_INTERVAL_S, clock=time.monotonic):
        super().__init__()
        self.interval_s, self.clock = interval_s, clock
        self._last: dict[int, list] = {}  # reader thread -> [time of the last line, lines held back]
        self._lock = threading.Lock()

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno < logging.WARNING:
            return True
        key, now = threading.get_ident(), self.clock()
        with self._lock:
            last = self._last.get(key)
            if last is not None and now - last[0] < self.interval_s:
                last[1] += 1
                return False
            held_back = last[1] if last else 0
            self._last[key] = [now, 0]
            if len(self._last) > 4096:  # threads long gone
                for old in [k for k, (at, _) in self._last.items() if now - at >= self.interval_s]:
                    del self._last[old]
        message = record.getMessage()
        if record.exc_info and record.exc_info[1] is not None:
            err = record.exc_info[1]
            message += f" ({type(err).__name__}: {err})"
        message += f"; more from this connection is not logged for {self.interval_s:g} s"
        if held_back:
            message += f" ({held_back} not logged before)"
        record.msg, record.args, record.exc_info, record.exc_text, record.stack_info = message, (), None, None, None
        return True


def library_loggers() -> tuple[logging.Logger, logging.Logger]:
    """(python-socketio's logger, python-engineio's logger), each with OncePerConnection."""
    loggers = []
    for name in ("playground.socketio", "playground.engineio"):
        logger = logging.getLogger(name)
        if not any(isinstance(f, OncePerConnection) for f in logger.filters):
            logger.addFilter(OncePerConnection())
        logger.setLevel(logging.WARNING)
        loggers.append(logger)
    return loggers[0], loggers[1]


def cap_queued_packets(socketio, *, backlog: int = BACKLOG_PACKETS, patience_s: float = BACKLOG_PATIENCE_S,
                       limit: int = MAX_QUEUED_PACKETS, clock=time.monotonic) -> None:
    eio = socketio.server.eio
    send_packet = eio.send_packet

    def send_packet_if_read(sid, pkt):
        socket = eio.sockets.get(sid)
        if socket is not None and not socket.closed:
            waiting = socket.queue.qsize()
            if waiting < backlog:
                socket.__dict__.pop("_playground_backlog_since", None)
            else:
                since = socket.__dict__.setdefault("_playground_backlog_since", clock())
                if waiting >= limit or clock() - since >= patience_s:
                    eio.logger.warning("%s: %d packets wait for a client that does not read: disconnected",
                                       sid, waiting)
                    socket.close(wait=False, abort=True)
                    return
        send_packet(sid, pkt)

    eio.send_packet = send_packet_if_read


def disconnect_everyone(socketio) -> None:
    """Close every connection at the transport (`eio.sockets`, `Socket.close(abort=True)`): the
    pages see the connection drop and reconnect, to this server once it is back. (A Socket.IO
    disconnect would tell them the server sent them away, and they would not come back.)"""
    eio = socketio.server.eio
    for socket in list(eio.sockets.values()):
        try:
            socket.close(wait=False, abort=True)
        except Exception:
            pass


def install(socketio, inline_events: dict, address_rate: tuple[float, int] | None = None) -> None:
    send_packets_whole(socketio.server)
    cap_queued_packets(socketio)
    cap_websocket_messages(socketio)
    cap_attachments(socketio)
    gate_events(socketio, inline_events, address_rate)
