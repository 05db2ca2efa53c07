"""The words both sides of the line spell the same: the shared run's key, the Socket.IO rooms a
run's messages go to, the live views' stream names, a run's statuses and the activations' names.
Plain Python: the engine (server/engine/), the web tier (server/web/) and the line between them
(server/link/) all import it from here, never define their own. (The page spells the ones it
needs once each, in static/js/lib/.)"""
from __future__ import annotations

from ..experiment import ACTIVATIONS

SHARED = "shared"  # the run every viewer watches (the teacher's); a private run's key starts "p-"

# A run's status, as `state` says it. The order is the replica's binary layout (replica.py).
STATUSES = ("idle", "running", "paused", "done")
# The setup's activations (server/experiment.py), in the replica's binary layout's order.
ACTIVATION_NAMES = tuple(ACTIVATIONS)

# The live views: stream name -> the Socket.IO event its frames are sent as (docs/protocol.md).
STREAMS = {
    "weights": "inside:weights",  # heatmaps: hidden tiles, output weights (whole frames)
    "activations": "inside:activations",  # hidden activations over a fixed validation batch
    "distributions": "inside:distributions",  # weight and gradient histograms over steps
    # The same pictures, small: a key frame, then only what changed (engine/deltas.py). The page uses these.
    "weights-delta": "inside:weights-delta",
    "distributions-delta": "inside:distributions-delta",
}
CHAINED = frozenset({"weights-delta", "distributions-delta"})  # each frame builds on the one before
# A new viewer that does not say which streams it wants gets these (the first protocol's).
DEFAULT_STREAMS = ("weights", "activations", "distributions")


def run_room(run: str) -> str:
    """Everyone watching `run`: its state, metrics, epochs, frames and storage notes."""
    return f"run:{run}"


def broadcast_room(topic: str, run: str = SHARED) -> str:
    """Who asked for a broadcast: `runs` is everyone's (one list of records); `evaluation` is
    each run's own (the shared run's under the first protocol's plain name)."""
    return f"broadcast:{topic}" if topic == "runs" or run == SHARED else f"broadcast:{topic}:{run}"

