"""The words both sides of the line spell the same: the shared run's key and the Socket.IO rooms a
run's messages go to. Plain Python: the engine (server/engine/), the web tier (server/web/) and the
line between them (server/link/) all import it from here, never define their own."""
from __future__ import annotations

SHARED = "shared"  # the run every viewer watches (the teacher's); a private run's key starts "p-"


def run_room(run: str) -> str:
    """Everyone watching `run`: its state, metrics, epochs, frames and storage notes."""
    return f"run:{run}"


def broadcast_room(topic: str, run: str = SHARED) -> str:
    """Who asked for a broadcast: `runs` is everyone's (one list of records); `evaluation` is
    each run's own (the shared run's under the first protocol's plain name)."""
    return f"broadcast:{topic}" if topic == "runs" or run == SHARED else f"broadcast:{topic}:{run}"

