"""The live views of a run: when each picture is made (per stream, only for streams somebody
watches, at a rate its cost allows), from which copy of the weights, and how it leaves the
engine: encoded once (server/link/wire.py), as key frames and deltas for the chained streams;
the web tier delivers it to each viewer. What a picture is: snapshots.py.

The training thread only copies the weights between steps when a stream is due (a torch op in
a second thread halves training throughput on 2 cores); the views thread makes the frames.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from functools import partial
from typing import Callable, Optional

from ..errors import UserError
from ..link.names import CHAINED, STREAMS
from ..link.wire import encode_event
from .model import Network
from .run import RunFeature
from .snapshots import Snapshotter, WeightsChain
from .worker import LatestWorker

# ---- when frames are made ----------------------------------------------------------------------------

# The streams (name -> Socket.IO event) and which of them are chains: server/link/names.py.
KEY_AFTER = 4  # a chain starts over once its deltas add up to this many key frames
WEIGHTS_BYTES_PER_S = 40_000  # heatmap deltas: frames come slower when they are big...
MAX_CHAIN_INTERVAL_S = 1.0  # ...but at least once a second while the weights move


@dataclass
class Rates:
    """How often each stream is refreshed while training runs (seconds between snapshots)."""

    weights_s: float = 0.4  # 2.5 heatmap frames per second
    activations_s: float = 0.2  # small charts: 5 per second
    distributions_s: float = 0.4
    # Frames are made by the views thread, on the other core: each stream may take at most this
    # share of it (huge layers make their frames less often).
    max_cost_share: float = 0.1

    def interval(self, stream: str) -> float:
        return {"weights": self.weights_s, "activations": self.activations_s,
                "distributions": self.distributions_s}[base_stream(stream)]


def base_stream(stream: str) -> str:
    """weights-delta -> weights: the snapshot a stream's frames are made from."""
    return stream.removesuffix("-delta")


BASES = ("weights", "activations", "distributions")


class LiveViews(RunFeature):
    """A run's live views: the training thread copies the weights when a stream is due (and
    nobody-watched streams are not made, except that distributions are recorded all along, so a
    late viewer sees the whole run); the views thread makes each frame from that copy, encodes
    it once and publishes it. A paused, stepped or finished network is shown exactly, at once."""

    def __init__(self, run, publish_frame: Callable[[str, dict], None], *, rates: Optional[Rates] = None,
                 clock=time.monotonic, latest=None):
        self.run = run
        # () -> (network, replica Weights): the newest consistent weights, without the run's lock
        self.latest = latest
        self.publish_frame = publish_frame  # (stream, {"seq", "run_id", "step", "kind", "base", "event"})
        self.rates = rates or Rates()
        self.clock = clock
        validation = run.dataset.validation
        self.snapshotter = Snapshotter(validation.images, validation.labels)
        self.watched: set[str] = set()
        self.worker = LatestWorker(f"views-{run.key}")
        self._due = {base: 0.0 for base in BASES}
        self._interval_s = {stream: self.rates.interval(stream) for stream in STREAMS}
        # -- owned by the views thread
        self._seq = 0
        self._run_id: Optional[int] = None
        self._network: Optional[Network] = None
        self._chain_seq: dict[str, int] = {}  # chain stream -> seq of its last frame
        self._chain_bytes: dict[str, int] = {}  # bytes since its key frame
        self._key_bytes: dict[str, int] = {}
        self._last_chain_at: dict[str, float] = {}
        self._weights_chain = WeightsChain(self.snapshotter.max_tiles)
        self._distributions_held: dict = {}
        self._distributions_stale: tuple = ()
        self._restart_chains: set[str] = set()
        self._last_size: dict[str, int] = {}  # stream -> bytes of its last frame

    # -- RunFeature: in the training thread or under the run's lock
    def on_step(self, run) -> None:
        now = self.clock()
        due = [base for base in BASES if now >= self._due[base]
               and (base == "distributions" or self._watched_variants(base))]
        if due:
            self._hand_over(due, now)

    def on_state(self, run, state: dict) -> None:
        if state.get("status") != "running":
            self._hand_over(BASES, self.clock())  # a still network is shown exactly, at once

    def on_close(self, run) -> None:
        self.worker.close()

    # -- engine commands
    def watch(self, streams) -> None:
        """The streams somebody watches now; newly watched ones get a current frame at once
        (a chain nobody watched starts over: its viewers' copies stopped with it)."""
        with self.run.between_steps():
            added = set(streams) - self.watched
            self.watched = set(streams)
            self._restart_chains |= added & CHAINED
            bases = {base_stream(stream) for stream in added}
            if bases:
                self._hand_over([b for b in BASES if b in bases], self.clock())

    def refresh(self) -> None:
        """Every watched stream brought to the current step (needs the run's lock)."""
        self._hand_over(BASES, self.clock())

    def _watched_variants(self, base: str) -> list[str]:
        return [stream for stream in STREAMS if base_stream(stream) == base and stream in self.watched]

    def _hand_over(self, bases, now: float) -> None:
        """(training thread or the run's lock) Copy what the due streams need; the views
        thread makes their frames."""
        snapshot = self.run.snapshot(grads="distributions" in bases)
        for base in bases:
            variants = self._watched_variants(base)
            if not variants and base != "distributions":
                continue
            self._due[base] = now + min(self._interval_s[stream] for stream in variants or [base])
            self.worker.submit(base, partial(self._make, base, variants, snapshot))

    # -- the views thread
    def _make(self, base: str, streams: list[str], snapshot: dict) -> None:
        if snapshot["run_id"] != self._run_id:
            self._run_id = snapshot["run_id"]
            self.snapshotter.new_run()
            self._chain_seq.clear()  # a new run: every chain starts with a key frame
        self._network = snapshot["weights"].into(self._network)
        model, step = self._network, snapshot["step"]
        started = time.perf_counter()
        if base == "distributions":
            self.snapshotter.record_distributions(model, step)
        for stream in streams:
            self._publish(stream, model, snapshot)
        if streams:
            cost = (time.perf_counter() - started) / len(streams)
            for stream in streams:
                interval = max(self.rates.interval(stream), cost / self.rates.max_cost_share)
                if stream == "weights-delta":  # big frames come slower, but at least once a second
                    interval = max(interval, min(MAX_CHAIN_INTERVAL_S, self._last_size.get(stream, 0) / WEIGHTS_BYTES_PER_S))
                self._interval_s[stream] = interval

    def _publish(self, stream: str, model: Network, snapshot: dict) -> None:
        kind, base = None, None
        if stream in CHAINED:
            if stream in self._restart_chains:
                self._restart_chains.discard(stream)
                self._chain_seq.pop(stream, None)
            payload, kind = self._chain_frame(stream, model, still=snapshot["status"] != "running")
            if payload is None:
                return
            base = self._chain_seq.get(stream) if kind == "delta" else None
        elif stream == "distributions":
            payload = self.snapshotter.distributions_frame()
        elif stream == "weights":
            payload = self.snapshotter.weights_frame(model)
        else:
            payload = self.snapshotter.activations_frame(model, snapshot["step"])
        self._seq += 1
        payload.update({"run_id": snapshot["run_id"], "step": snapshot["step"], "epoch": snapshot["epoch"],
                        "status": snapshot["status"], "interval_s": self._interval_s[stream], "seq": self._seq})
        if base is not None:
            payload["base"] = base
        event = encode_event(STREAMS[stream], payload)
        self._last_size[stream] = event.size
        if stream in CHAINED:
            self._chain_seq[stream] = self._seq
            self._chain_bytes[stream] = event.size + (0 if kind == "key" else self._chain_bytes.get(stream, 0))
            if kind == "key":
                self._key_bytes[stream] = event.size
        self.publish_frame(stream, {"seq": self._seq, "run_id": snapshot["run_id"], "step": snapshot["step"],
                                    "kind": kind, "base": base, "event": event.as_dict()})

    def _needs_key(self, stream: str) -> bool:
        """A chain starts over for a new run, when a viewer joins a chain nobody watched, and
        once its deltas add up to more than KEY_AFTER key frames (a late viewer catches up with one
        key frame and the deltas since)."""
        return stream not in self._chain_seq or self._chain_bytes.get(stream, 0) > KEY_AFTER * self._key_bytes.get(stream, 0)

    def _chain_frame(self, stream: str, model, *, still: bool) -> tuple[Optional[dict], str]:
        key = self._needs_key(stream)
        if stream == "weights-delta":
            payload, changed = self._weights_chain.frame(model, key=key, exact=still)
            if not changed and not key and self.clock() - self._last_chain_at.get(stream, 0.0) < MAX_CHAIN_INTERVAL_S:
                return None, "delta"  # the weights barely moved: nothing to send yet
        else:
            held, stale = self.snapshotter.distributions_state()
            key = key or stale != self._distributions_stale
            payload = self.snapshotter.distributions_frame(since=None if key else self._distributions_held)
            self._distributions_held, self._distributions_stale = held, stale
            payload["kind"] = "key" if key else "delta"
        self._last_chain_at[stream] = self.clock()
        return payload, "key" if key else "delta"

    def neuron(self, index: int, pixels) -> dict:
        """One neuron of the first hidden layer, for the inspector (the newest consistent
        weights: the training thread is never waited for)."""
        model, weights = self.latest()
        n = model.hidden_layers()[0].out_features
        if index >= n:
            raise UserError(f"index: the first hidden layer has {n} neurons (0 to {n - 1}), got {index}")
        if self._run_id != weights.run_id:  # the views thread has not seen this run yet
            self.snapshotter.top = None
        self.snapshotter.ensure_top(model, weights.step)
        detail = self.snapshotter.neuron(model, index, pixels)
        detail.update({"run_id": weights.run_id, "step": weights.step})
        return detail
