"""A run's weights in shared memory for the web tier's predictions (server/link/replica.py is
the block itself): copied between steps while the run trains, at most every REPLICA_INTERVAL_S,
and at once when it stands still. The engine's own queries (explainer, inspector, evaluations,
downloads) read the same copy, so none of them waits for the training thread."""
from __future__ import annotations

import time
from typing import Callable, Optional

from ..link.replica import ReplicaReader, ReplicaWriter, Weights
from .model import Network, network_of
from .run import RunFeature, TrainingRun

REPLICA_INTERVAL_S = 0.05  # while training, predictions' weights are at most this old...
REPLICA_MAX_COST_SHARE = 0.01  # ...unless copying them costs more than this share of the time


class ReplicaPublisher(RunFeature):
    """Copies a run's weights into shared memory for the web tier's predictions: every
    REPLICA_INTERVAL_S while it trains (stretched for huge networks), and at once whenever it
    stands still, so a paused run answers with exactly its weights."""

    def __init__(self, run: TrainingRun, announce: Callable[[str], None], clock=time.monotonic):
        self.run = run
        self.announce = announce
        self.clock = clock
        self.writer: Optional[ReplicaWriter] = None
        self.reader = ReplicaReader()  # the engine's own queries read the same consistent copy
        self._due = 0.0

    @property
    def name(self) -> Optional[str]:
        return self.writer.name if self.writer else None

    def on_step(self, run) -> None:
        if self.clock() >= self._due:
            self.write()

    def on_state(self, run, state: dict) -> None:
        self.write()

    def on_close(self, run) -> None:
        self.write()

    def write(self) -> None:
        run = self.run
        content = run.replica_content()
        if content is None:
            return  # nothing the page can predict with yet (a watched chain before its first snapshot)
        sizes, activation, arrays, image = content
        if self.writer is None or self.writer.sizes != tuple(sizes):
            old, self.writer = self.writer, ReplicaWriter(sizes)
            self.reader.attach(self.writer.name)
            if old is not None:
                old.close()  # a reader still mapping it keeps its pages until it lets go
            self.announce(self.writer.name)
        started = time.perf_counter()
        self.writer.write(run_id=run.run_id, step=run.step_count, status=run.status,
                          activation=activation, arrays=arrays(), epochs=run.trainer.epoch, image=image)
        cost = time.perf_counter() - started
        self._due = self.clock() + max(REPLICA_INTERVAL_S, cost / REPLICA_MAX_COST_SHARE)

    def network(self) -> tuple[Network, Weights]:
        """A private network holding the newest consistent weights (a copy taken between steps,
        at most REPLICA_INTERVAL_S old while training, exact when the run stands still), without
        waiting for the training thread: what the explainer, the inspector, evaluations and
        downloads work on, so no request holds the run, whatever the network's size."""
        weights = self.reader.latest()
        return network_of(weights), weights

    def close(self) -> None:
        self.reader.close()
        if self.writer is not None:
            self.writer.close()
            self.writer = None
