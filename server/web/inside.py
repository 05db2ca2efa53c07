"""Live views ("look inside"): the engine's frames, delivered to the viewers who watch them.

The engine makes each frame between training steps, only for streams somebody watches, and
encodes it once (server/engine/live_views.py). Here: one sender thread sends every frame as it
was encoded, each client with its own acknowledgement id. Each client has at most one frame per
stream in flight; the next one goes out when the client acknowledges, and it is always the
newest (latest wins): a slow client skips frames and never builds up a backlog. A client that
subscribes to a stream gets its latest frame at once, and the engine is told which streams
anyone watches (nobody watching: no frames made).
"""
from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field
from functools import partial
from typing import Callable, Literal, Optional

from flask import request
from pydantic import Field

from ..errors import UserError
from ..link.names import CHAINED, DEFAULT_STREAMS, SHARED, STREAMS
from ..link.wire import EncodedEvent, decode_event
from .access import asked_at_connect
from .answers import answered, parse
from .schemas import Strict
from .transport import is_connected, is_pending, send_encoded

log = logging.getLogger(__name__)

CONNECT_GRACE_S = 1.0
ACK_TIMEOUT_S = 10.0  # an unacknowledged frame is given up after this
StreamName = Literal[tuple(STREAMS)]  # type: ignore[valid-type]  (pydantic checks it)


class SubscribeRequest(Strict):
    streams: list[StreamName] = Field(max_length=len(STREAMS))


# ---- delivery ------------------------------------------------------------------------------------

@dataclass
class _Client:
    streams: set
    added_at: float = 0.0
    sent: dict = field(default_factory=dict)  # stream -> seq of the last frame sent
    in_flight: dict = field(default_factory=dict)  # stream -> (seq, sent at)
    delivered: dict = field(default_factory=dict)  # stream -> frames acknowledged


class FrameDelivery:
    """Latest-wins delivery of encoded frames to each client, from one sender thread.
    `on_watched(streams)` is called whenever the set of streams anyone watches changes."""

    def __init__(self, socketio, events: dict[str, str], *, on_watched: Callable[[set], None] = lambda s: None,
                 ack_timeout_s: float = ACK_TIMEOUT_S, clock=time.monotonic):
        self.socketio = socketio
        self.events = events
        self.on_watched = on_watched
        self.ack_timeout_s = ack_timeout_s
        self.clock = clock
        self._cond = threading.Condition()
        self._latest: dict[str, tuple[int, EncodedEvent]] = {}  # stream -> (local seq, frame)
        # chained streams: stream -> [(local seq, engine seq, frame)], a key frame then its deltas
        self._chains: dict[str, list[tuple[int, int, EncodedEvent]]] = {}
        self._seq = 0
        self._published: dict[str, int] = {}  # stream -> frames published so far
        self._clients: dict[str, _Client] = {}
        self._watched: set = set()
        self._thread: Optional[threading.Thread] = None

    # -- the engine's frames
    def publish(self, stream: str, engine_seq: int, event: EncodedEvent, *, kind: Optional[str] = None,
                base: Optional[int] = None) -> int:
        """A whole frame (kind None: it replaces the last), or a chain's key frame or delta."""
        with self._cond:
            self._seq += 1
            self._published[stream] = self._published.get(stream, 0) + 1
            self._latest[stream] = (self._seq, event)
            if kind == "key":
                self._chains[stream] = [(self._seq, engine_seq, event)]
            elif kind == "delta":
                chain = self._chains.get(stream)
                if chain and chain[-1][1] == base:
                    chain.append((self._seq, engine_seq, event))
                else:  # a delta on a frame we never had: wait for the next key frame
                    self._chains.pop(stream, None)
                    log.warning("%s: a delta arrived without its base frame; waiting for a key frame", stream)
            self._cond.notify_all()
            return self._seq

    def forget_frames(self) -> None:
        """The engine restarted: its old frames describe a network that is gone."""
        with self._cond:
            self._latest.clear()
            self._chains.clear()

    def latest(self, stream: str) -> Optional[dict]:
        """The newest frame of a stream as its viewers get it (tests and benchmarks)."""
        with self._cond:
            entry = self._latest.get(stream)
        return decode_event(entry[1])[1] if entry else None

    def published(self, stream: str) -> int:
        with self._cond:
            return self._published.get(stream, 0)

    def has_subscribers(self, stream: str) -> bool:
        with self._cond:
            return stream in self._watched

    def watched(self) -> set:
        with self._cond:
            return set(self._watched)

    def _update_watched(self) -> Optional[set]:
        """(under the lock) The new set of watched streams if it changed, else None."""
        watched = set().union(*(c.streams for c in self._clients.values())) if self._clients else set()
        if watched == self._watched:
            return None
        self._watched = watched
        return set(watched)

    def _tell(self, changed: Optional[set]) -> None:
        if changed is not None:
            self.on_watched(changed)

    # -- clients
    def add_client(self, sid: str, streams) -> None:
        self.set_streams(sid, streams, new=True)

    def set_streams(self, sid: str, streams, *, new: bool = False) -> None:
        with self._cond:
            client = self._clients.get(sid)
            if client is None or new:
                self._clients[sid] = client = _Client(set(), added_at=self.clock())
                self._ensure_thread()
            for stream in set(streams) - client.streams:
                client.sent.pop(stream, None)  # (re)subscribed: the latest frame goes out at once
            client.streams = set(streams)
            changed = self._update_watched()
            self._cond.notify_all()
        self._tell(changed)

    def remove_client(self, sid: str) -> None:
        with self._cond:
            self._clients.pop(sid, None)
            changed = self._update_watched()
        self._tell(changed)

    def client_stats(self, sid: str) -> Optional[dict]:
        """What one client has been sent: for tests and benchmarks."""
        with self._cond:
            client = self._clients.get(sid)
            if client is None:
                return None
            return {"streams": sorted(client.streams), "sent": dict(client.sent),
                    "in_flight": {s: seq for s, (seq, _) in client.in_flight.items()},
                    "delivered": dict(client.delivered)}

    # -- the sender thread
    def _ensure_thread(self) -> None:
        if self._thread is None or not self._thread.is_alive():
            self._thread = threading.Thread(target=self._run, name="inside-sender", daemon=True)
            self._thread.start()

    def _frames_for(self, client: _Client, stream: str) -> list[tuple[int, EncodedEvent]]:
        """What `client` needs of `stream` now: the newest whole frame; for a chain, the deltas
        after the frame it holds, or the key frame and every delta since."""
        if stream not in self._chains and stream not in CHAINED:
            entry = self._latest.get(stream)
            return [entry] if entry is not None and entry[0] > client.sent.get(stream, 0) else []
        chain = self._chains.get(stream) or []
        held = client.sent.get(stream, 0)
        if not chain or chain[-1][0] <= held:
            return []
        seqs = [seq for seq, _, _ in chain]
        start = seqs.index(held) + 1 if held in seqs else 0
        return [(seq, event) for seq, _, event in chain[start:]]

    def _due(self) -> list:
        now = self.clock()
        jobs = []
        for sid, client in self._clients.items():
            for stream in client.streams:
                frames = self._frames_for(client, stream)
                if not frames:
                    continue
                flight = client.in_flight.get(stream)
                if flight is not None and now - flight[1] < self.ack_timeout_s:
                    continue  # wait for the acknowledgement; newer frames replace older ones meanwhile
                last = frames[-1][0]
                client.sent[stream] = last
                client.in_flight[stream] = (last, now)
                jobs.append((sid, stream, last, [event for _, event in frames]))
        return jobs

    def _sweep(self) -> Optional[set]:
        """Forget clients that have gone. While its connect handler runs (greeting it), a
        client is not yet 'connected' but pending: that one stays."""
        now = self.clock()
        for sid, client in list(self._clients.items()):
            if now - client.added_at < CONNECT_GRACE_S or is_pending(self.socketio, sid):
                continue
            if not is_connected(self.socketio, sid):
                del self._clients[sid]
        return self._update_watched()

    def _run(self) -> None:
        last_sweep = self.clock()
        while True:
            changed = None
            with self._cond:
                while True:
                    if self.clock() - last_sweep >= 1.0:
                        changed = self._sweep() or changed
                        last_sweep = self.clock()
                    if not self._clients:
                        self._thread = None  # no viewers: the thread ends, a new one starts on demand
                        jobs = None
                        break
                    jobs = self._due()
                    if jobs or changed is not None:
                        break
                    self._cond.wait(timeout=1.0)
            self._tell(changed)
            if jobs is None:
                return
            for sid, stream, seq, events in jobs:
                try:
                    for event in events[:-1]:  # a chain's catch-up: only the last is acknowledged
                        send_encoded(self.socketio, sid, event)
                    send_encoded(self.socketio, sid, events[-1], partial(self._acknowledged, sid, stream, seq))
                except Exception:  # a vanished client must not stop the others' frames
                    log.exception("could not send %s to %s", stream, sid)

    def _acknowledged(self, sid: str, stream: str, seq: int, *_answer) -> None:
        with self._cond:
            client = self._clients.get(sid)
            if client is None:
                return
            flight = client.in_flight.get(stream)
            if flight is not None and flight[0] == seq:
                del client.in_flight[stream]
                client.delivered[stream] = client.delivered.get(stream, 0) + 1
                self._cond.notify_all()


def init_app(app, playground) -> None:
    """Deliver the engine's live-view frames, each run's to its watchers; tell each run's
    engine which streams anyone watches."""
    socketio = playground.socketio
    deliveries: dict[str, FrameDelivery] = {}  # run key -> its delivery
    wanted: dict[str, list] = {}  # sid -> the streams it takes (whichever run it watches)
    lock = threading.Lock()

    def watch_changed(run, streams):
        try:
            playground.request("views:watch", {"run": run, "streams": sorted(streams), "watcher": playground.web_id})
        except UserError as err:  # the engine is restarting: it is told again when it is back
            log.info("could not tell the engine which views of %s are watched: %s", run, err)

    def delivery_for(run: str) -> FrameDelivery:
        with lock:
            delivery = deliveries.get(run)
            if delivery is None:
                delivery = deliveries[run] = FrameDelivery(socketio, STREAMS, on_watched=partial(watch_changed, run))
            return delivery

    app.extensions["inside"] = delivery_for(SHARED)
    app.extensions["inside.deliveries"] = deliveries

    def on_frame(message):
        frame = message["payload"]
        delivery_for(message["run"]).publish(frame["stream"], frame["seq"], EncodedEvent.from_dict(frame["event"]),
                                             kind=frame.get("kind"), base=frame.get("base"))

    playground.subscribe("frame", on_frame)

    def forget_run(run):
        with lock:
            deliveries.pop(run, None)

    playground.subscribe("run:closed", lambda message: forget_run(message["run"]))
    playground.on_runs_lost.append(lambda runs, why: [forget_run(run) for run in runs])

    def on_engine_status(status):
        if status["status"] == "up":
            shared = delivery_for(SHARED)
            shared.forget_frames()  # a new engine counts its frames from the start
            watch_changed(SHARED, shared.watched())

    playground.on_engine_status.append(on_engine_status)

    def tell_watched():  # the engines forget a web process that stops telling (it died)
        with lock:
            runs = dict(deliveries)
        for run, delivery in runs.items():
            watch_changed(run, delivery.watched())

    playground.on_presence.append(tell_watched)
    # A new viewer is subscribed to the streams it asked for when connecting (connect auth
    # {"streams": [...]}), or else to the first protocol's three, and sent their frames at once.
    def greet(sid):
        asked = asked_at_connect("streams", STREAMS)
        wanted[sid] = list(DEFAULT_STREAMS if asked is None else asked)
        delivery_for(playground.viewers.run_of(sid)).add_client(sid, wanted[sid])

    playground.on_connect.append(greet)
    playground.on_disconnect.append(lambda sid: wanted.pop(sid, None))

    def moved(sid, old, new):  # a viewer watches another run: its streams come from there now
        with lock:
            before = deliveries.get(old)
        if before is not None:
            before.remove_client(sid)
        delivery_for(new).add_client(sid, wanted.get(sid, list(DEFAULT_STREAMS)))

    playground.on_switch.append(moved)

    @socketio.on("inside:subscribe")
    @answered
    def on_subscribe(payload=None):
        streams = parse(SubscribeRequest, payload).streams
        wanted[request.sid] = list(streams)
        delivery_for(playground.viewers.run_of(request.sid)).set_streams(request.sid, streams)
        return {"streams": sorted(set(streams))}
