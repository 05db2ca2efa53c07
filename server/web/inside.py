"""Live views ("look inside"): snapshots of the training network, streamed to every viewer.

Producing. Snapshots are computed where no training step runs at the same time: in the
training thread between steps (`session.step_hooks`), or under the session's lock right after
a control event (step, reset, pause, end of run), so a paused network is shown exactly. A torch
operation in a second thread while training runs halves throughput on 2 cores; the same work
between steps costs little. Each stream has a base interval, stretched when a snapshot is
costly (huge layers) so its share of training time stays under `Rates.max_cost_share`.

Delivering. One sender thread per app emits every frame, so a client's binary frames never
interleave. Each client has at most one frame per stream in flight; the next one goes out when
the client acknowledges, and it is always the newest (latest wins): a slow client skips frames
and never builds up a backlog.
"""
from __future__ import annotations

import logging
import statistics
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from functools import partial
from typing import Literal, Optional

from flask import request
from pydantic import Field

from ..config import ConfigError
from ..preprocess import preprocess_pixels
from ..snapshots import Snapshotter
from .events import answered, parse
from .schemas import Strict

log = logging.getLogger(__name__)

# stream name -> Socket.IO event
STREAMS = {
    "weights": "inside:weights",  # heatmaps: hidden tiles, output weights
    "activations": "inside:activations",  # hidden activations over a fixed validation batch
    "distributions": "inside:distributions",  # weight and gradient histograms over steps
}
CONNECT_GRACE_S = 1.0
StreamName = Literal["weights", "activations", "distributions"]


@dataclass
class Rates:
    """How often each stream is refreshed while training runs (seconds between snapshots)."""

    weights_s: float = 0.4  # 2.5 heatmap frames per second
    activations_s: float = 0.2  # small charts: 5 per second
    distributions_s: float = 0.4
    max_cost_share: float = 0.01  # per stream: snapshot time / wall time stays under this
    ack_timeout_s: float = 10.0  # an unacknowledged frame is given up after this

    def interval(self, stream: str) -> float:
        return {"weights": self.weights_s, "activations": self.activations_s,
                "distributions": self.distributions_s}[stream]


class SubscribeRequest(Strict):
    streams: list[StreamName] = Field(max_length=len(STREAMS))


class NeuronRequest(Strict):
    index: int = Field(ge=0, le=4095)
    pixels: Optional[list] = Field(None, max_length=784)


# ---- delivery ------------------------------------------------------------------------------------

@dataclass
class _Client:
    streams: set
    added_at: float = 0.0
    sent: dict = field(default_factory=dict)  # stream -> seq of the last frame sent
    in_flight: dict = field(default_factory=dict)  # stream -> (seq, sent at)
    delivered: dict = field(default_factory=dict)  # stream -> frames acknowledged


class FrameDelivery:
    """Latest-wins delivery of frames to each client, from one sender thread."""

    def __init__(self, socketio, events: dict[str, str], *, ack_timeout_s: float = 10.0,
                 clock=time.monotonic):
        self.socketio = socketio
        self.events = events
        self.ack_timeout_s = ack_timeout_s
        self.clock = clock
        self._cond = threading.Condition()
        self._latest: dict[str, tuple[int, dict]] = {}
        self._seq = 0
        self._published: dict[str, int] = {}  # stream -> frames published so far
        self._clients: dict[str, _Client] = {}
        self._thread: Optional[threading.Thread] = None

    # -- producers
    def publish(self, stream: str, payload: dict) -> int:
        with self._cond:
            self._seq += 1
            self._published[stream] = self._published.get(stream, 0) + 1
            self._latest[stream] = (self._seq, {**payload, "seq": self._seq})
            self._cond.notify_all()
            return self._seq

    def latest(self, stream: str) -> Optional[dict]:
        with self._cond:
            entry = self._latest.get(stream)
            return entry[1] if entry else None

    def published(self, stream: str) -> int:
        with self._cond:
            return self._published.get(stream, 0)

    def has_subscribers(self, stream: str) -> bool:
        with self._cond:
            return any(stream in c.streams for c in self._clients.values())

    # -- clients
    def add_client(self, sid: str, streams) -> None:
        with self._cond:
            self._clients[sid] = _Client(set(streams), added_at=self.clock())
            self._ensure_thread()
            self._cond.notify_all()

    def set_streams(self, sid: str, streams) -> None:
        with self._cond:
            client = self._clients.get(sid)
            if client is None:
                self._clients[sid] = client = _Client(set(), added_at=self.clock())
                self._ensure_thread()
            client.streams = set(streams)
            self._cond.notify_all()

    def remove_client(self, sid: str) -> None:
        with self._cond:
            self._clients.pop(sid, None)

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

    def _due(self) -> list:
        now = self.clock()
        jobs = []
        for sid, client in self._clients.items():
            for stream in client.streams:
                entry = self._latest.get(stream)
                if entry is None or entry[0] <= client.sent.get(stream, 0):
                    continue
                flight = client.in_flight.get(stream)
                if flight is not None and now - flight[1] < self.ack_timeout_s:
                    continue  # wait for the acknowledgement; newer frames replace older ones meanwhile
                client.sent[stream] = entry[0]
                client.in_flight[stream] = (entry[0], now)
                jobs.append((sid, stream, entry[0], entry[1]))
        return jobs

    def _sweep(self) -> None:
        """Forget clients that have gone. While its connect handler runs (greeting it), a
        client is not yet 'connected' but pending: that one stays."""
        manager = self.socketio.server.manager
        pending = getattr(manager, "pending_connect", {}).get("/", ())
        now = self.clock()
        for sid, client in list(self._clients.items()):
            if now - client.added_at < CONNECT_GRACE_S or sid in pending:
                continue
            if not manager.is_connected(sid, "/"):
                del self._clients[sid]

    def _run(self) -> None:
        last_sweep = self.clock()
        while True:
            with self._cond:
                while True:
                    if self.clock() - last_sweep >= 1.0:
                        self._sweep()
                        last_sweep = self.clock()
                    if not self._clients:
                        self._thread = None  # no viewers: the thread ends, a new one starts on demand
                        return
                    jobs = self._due()
                    if jobs:
                        break
                    self._cond.wait(timeout=1.0)
            for sid, stream, seq, payload in jobs:
                try:
                    self.socketio.emit(self.events[stream], payload, to=sid,
                                       callback=partial(self._acknowledged, sid, stream, seq))
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


# ---- production --------------------------------------------------------------------------------------

class LiveViews:
    """Makes the frames (under the session's lock) and hands them to the delivery."""

    def __init__(self, session, socketio, *, rates: Optional[Rates] = None, clock=time.monotonic):
        self.session = session
        self.rates = rates or Rates()
        self.clock = clock
        validation = session.dataset.validation
        self.snapshotter = Snapshotter(validation.images, validation.labels)
        self.delivery = FrameDelivery(socketio, STREAMS, ack_timeout_s=self.rates.ack_timeout_s, clock=clock)
        self._run_id: Optional[int] = None
        self._due = {stream: 0.0 for stream in STREAMS}
        # The last few snapshot times per stream; their median is the cost estimate, so one
        # slow call (a cold start, a preempted thread) does not stretch the interval.
        self._costs: dict[str, deque] = {stream: deque(maxlen=5) for stream in STREAMS}
        self._made_at: dict[str, tuple] = {}  # stream -> (run_id, step) of its latest frame
        self._recorded_at: Optional[tuple] = None  # (run_id, step) of the last distributions record

    # -- called with the session's lock held (training thread or a control handler)
    def on_training_step(self, session) -> None:
        now = self.clock()
        for stream in STREAMS:
            if now >= self._due[stream]:
                self._produce(stream)

    def on_session_event(self, event: str, payload: dict) -> None:
        """State broadcasts (published under the session's lock): a new run starts the
        histories over; a paused/stepped/finished network is shown exactly, at once."""
        if event != "state":
            return
        self._sync_run()
        if payload.get("status") != "running":
            self.refresh()

    def refresh(self) -> None:
        """Bring every stream up to the current step (needs the session's lock)."""
        self._sync_run()
        current = self._current()
        for stream in STREAMS:
            if self._made_at.get(stream) != current or (
                    stream == "distributions" and self._recorded_at != current):
                self._produce(stream)

    def _current(self) -> tuple:
        return (self.session.run_id, self.session.trainer.global_step)

    def _sync_run(self) -> None:
        if self.session.run_id != self._run_id:
            self._run_id = self.session.run_id
            self.snapshotter.new_run()
            self._made_at.clear()
            self._recorded_at = None

    def _produce(self, stream: str) -> None:
        self._sync_run()
        session = self.session
        trainer = session.trainer
        model, step = trainer.model, trainer.global_step
        watched = self.delivery.has_subscribers(stream)
        started = time.perf_counter()
        payload = None
        if stream == "distributions":
            # Recorded even when nobody watches, so a late viewer sees the whole run.
            self.snapshotter.record_distributions(model, step)
            self._recorded_at = (session.run_id, step)
            if watched:
                payload = self.snapshotter.distributions_frame()
        elif watched:
            payload = (self.snapshotter.weights_frame(model) if stream == "weights"
                       else self.snapshotter.activations_frame(model, step))
        self._costs[stream].append(time.perf_counter() - started)
        costs = self._costs[stream]
        cost = statistics.median(costs) if len(costs) >= 3 else 0.0  # the first calls run cold
        interval = max(self.rates.interval(stream), cost / self.rates.max_cost_share)
        self._due[stream] = self.clock() + interval
        if payload is None:
            return
        self._made_at[stream] = (session.run_id, step)
        payload.update({
            "run_id": session.run_id,
            "step": step,
            "epoch": trainer.epoch_progress(),
            "status": session.status,
            "interval_s": interval,
        })
        self.delivery.publish(stream, payload)

    # -- called from request handlers (no lock held)
    def greet(self, sid: str) -> None:
        """A new viewer: subscribed to every stream and sent the current frames at once."""
        self.delivery.add_client(sid, STREAMS)
        with self.session._lock:  # waits for at most one training chunk
            self.refresh()

    def subscribe(self, sid: str, streams) -> list[str]:
        self.delivery.set_streams(sid, streams)
        with self.session._lock:
            self.refresh()
        return sorted(set(streams))

    def neuron(self, index: int, pixels) -> dict:
        model = self.session.trainer.model  # a reference; a reset swaps it, never mutates it
        n = model.hidden_layers()[0].out_features
        if index >= n:
            raise ConfigError(f"index: the first hidden layer has {n} neurons (0 to {n - 1}), got {index}")
        detail = self.snapshotter.neuron(model, index, pixels)
        detail.update({"run_id": self.session.run_id, "step": self.session.trainer.global_step})
        return detail


def init_app(app, socketio, session) -> None:
    """Register the live views: the step hook, the session subscriber, events, the greeting."""
    views = LiveViews(session, socketio)
    app.extensions["inside"] = views
    session.step_hooks.append(views.on_training_step)
    session.subscribe(views.on_session_event)
    app.extensions["playground"]["connect_hooks"].append(views.greet)

    @socketio.on("inside:subscribe")
    @answered
    def on_subscribe(payload=None):
        wanted = parse(SubscribeRequest, payload)
        return {"streams": views.subscribe(request.sid, wanted.streams)}

    @socketio.on("inside:neuron")
    @answered
    def on_neuron(payload=None):
        wanted = parse(NeuronRequest, payload)
        pixels = preprocess_pixels(wanted.pixels) if wanted.pixels is not None else None
        return views.neuron(wanted.index, pixels)
