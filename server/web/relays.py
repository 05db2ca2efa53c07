"""The socket events that only relay to an engine command, as one table: the web tier's mirror
of the engine's command table (server/engine/engine.py COMMANDS), and the one handler that
serves every row.

A relayed event is handled in this order: the control check, the rate limit, the payload read
against its schema (a refusal in words changes nothing), the command's args (a drawing packed
as float32 bytes) and the run it acts on, then the engine's answer, or the part of it the client
gets, as the acknowledgement `{"ok": true, ...}` (docs/protocol.md).

Events with logic of their own stay hand-written beside their feature: `predict` (answered in
the connection's own thread from the weights replica: spine.py), `setup:link` (the web tier
alone: spine.py), `run:create` and `run:watch` (switching runs: viewers.py), `runs:private` (every
engine's private runs with this web process's connections: viewers.py), `watch:open` (a
script's own network: a new run on the engine with room for it, watched.py), `inside:subscribe` and
`broadcasts:subscribe` (frame and broadcast delivery: inside.py, evaluate.py), and the HTTP
uploads and downloads.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from functools import partial
from typing import Any, Callable, Literal, Optional, Union

from flask import request
from pydantic import BaseModel

from ..experiment import ConfigError, TrainConfig, split_pace
from ..link.arrays import float32_bytes
from ..link.names import SHARED
from ..preprocess import preprocess_pixels
from .access import access_level, require_control
from .answers import answered, parse
from .askers import Askers
from .limits import throttle
from .polls import keep_open_poll_answer, public, voters
from .viewers import (WatchRequest, current_owner, current_run, record_for_viewer, require_run_control, run_args,
                   runs_for_viewer)
from ..watch_frames import CloseRequest as WatchedRunRequest, SnapshotRequest, StepsRequest, WeightsRequest
from .schemas import (CellRequest, ConfigRequest, ForwardRequest, LessonRevealRequest, NeuronRequest, PaceRequest,
                      PollAnswerRequest, PollOpenRequest, PollRevealRequest, RenameRequest, ReplayPredictRequest,
                      ReplayRequest, RunRequest, SamplesRequest, StepRequest)
from .transport import is_connected

# Who may send it:
#   None      anyone;
#   "shared"  whoever may control the shared run (web/access.py): the class polls;
#   "run"     whoever may control the run this viewer watches (the shared run: as "shared"; a
#             private run: its owner, which the engine checks from the owner run_args carries);
#   "record"  anyone, but a viewer who may not control the shared run changes only its own
#             runs' records (the engine, which knows whose each record is, checks the owner).
Control = Optional[Literal["shared", "run", "record"]]
# The run the command acts on:
#   None            none, or the shared run (the dataset, the records, the class poll);
#   "watched"       the run this viewer watches ({"run": key});
#   "watched+owner" the same, and who asks ({"run": key, "owner": id}: web/viewers.py run_args).
RunScope = Optional[Literal["watched", "watched+owner"]]
# What the payload is read with: a schema, or a function for shapes a schema cannot say (it
# refuses in words, or returns what the args are built from); None: the payload is not read.
Reader = Union[type[BaseModel], Callable[[Any], Any], None]


@dataclass(frozen=True)
class Rate:
    """A per-viewer token bucket (web/limits.py): `bucket` is shared by the rows that name it."""
    bucket: str
    per_second: float
    burst: int
    what: str  # in the refusal: "too many <what> requests"


@dataclass(frozen=True)
class Relay:
    event: str  # the Socket.IO event (docs/protocol.md)
    schema: Reader = None
    args: Optional[Callable[[Any], dict]] = None  # the command's args from what was read; None: the schema's fields
    command: str = ""  # the engine command (server/engine/engine.py COMMANDS); "": the event's own name
    control: Control = None
    run: RunScope = None
    rate: Optional[Rate] = None
    optional: bool = False  # no payload: the schema's defaults
    timeout: Optional[float] = None  # seconds the engine may take; None: the line's default
    answer: Callable[[dict], dict] = field(default=lambda answer: answer)  # what of the engine's answer the client gets
    # a check of what was read, beyond its schema (playground, body): refuses in words or returns
    check: Optional[Callable[[Any, Any], None]] = None
    # The engine computes it apart, one at a time (link/line.py COSTLY_COMMANDS), and drops it
    # if the viewer leaves first (web/askers.py).
    costly: bool = False

    @property
    def engine_command(self) -> str:
        return self.command or self.event


# ---- reading what a relayed event sends -------------------------------------------------------

def checked_changes(changes):
    """Setup changes checked field by field before they go to the engine (refused in words
    here: a value the engine line cannot even carry, such as a 70-digit integer, too)."""
    if changes is None:
        return None
    if not isinstance(changes, dict):
        raise ConfigError("config must be an object of setup fields, e.g. {\"lr\": 0.01}")
    setup, _, _ = split_pace(changes)
    TrainConfig().updated(setup)
    return changes


def setup_changes(payload) -> dict:
    """config:update's payload is the changes themselves, not an object around them."""
    if not isinstance(payload, dict) or not payload:
        raise ConfigError("config:update needs an object of setup fields to change, e.g. {\"lr\": 0.01}")
    return checked_changes(payload)


def forward_request(payload) -> ForwardRequest:
    if not isinstance(payload, dict):
        raise ConfigError("explain:forward needs an object: {\"pixels\": [784 numbers], \"neuron\": j}")
    return parse(ForwardRequest, payload)


def drawing(pixels) -> Optional[bytes]:
    """A drawing's 784 pixels (checked: server/preprocess.py) as float32 bytes; None stays None."""
    return None if pixels is None else float32_bytes(preprocess_pixels(pixels))


def state_only(answer: dict) -> dict:
    return {"state": answer["state"]}


def state_and_put_away(answer: dict) -> dict:
    # A reset also says which recorded run it put away (docs/protocol.md).
    return {key: answer[key] for key in ("state", "put_away") if key in answer}


def poll_for_viewer(answer: dict) -> dict:
    """The counts of an open poll only for whoever may control (nobody answers by the crowd)."""
    return {"poll": answer["poll"] if access_level()["control"] else public(answer["poll"])}


# ---- the table ----------------------------------------------------------------------------------

# A reveal may run two short real trainings (the learning-rate step); a replay frame is one
# heatmap frame: a person clicks, or drags a scrubber, no faster than this. The explainer's
# forward steps come at most once per prediction.
LESSON_REVEALS = Rate("lesson", 2.0, 6, "lesson:reveal")
REPLAY = Rate("replay", 20.0, 40, "replay")
POLL_ANSWERS = Rate("poll-answer", 2.0, 5, "poll answer")
POLL_REVEALS = Rate("poll-reveal", 1.0, 3, "poll reveal")
EXPLAIN_FORWARD = Rate("explain", 20.0, 40, "explain:forward")
# A watching script sends its steps a few times a second and snapshots at most twice (its
# client's pace); room for a burst after a reconnection.
WATCH_STEPS = Rate("watch-steps", 20.0, 40, "watch:steps")
WATCH_SNAPSHOTS = Rate("watch-snapshot", 5.0, 10, "watch:snapshot")
WATCH_CONTROL = Rate("watch-control", 20.0, 40, "watch:control")
# A page asks for a layer's weights picture when a snapshot came and the picture is in view.
WATCH_WEIGHTS = Rate("watch-weights", 10.0, 20, "watch:weights")
REVEAL_TIMEOUT_S = 30.0  # a reveal's real trainings take seconds

RELAYS: tuple[Relay, ...] = (
    # The run's controls (docs/protocol.md, "Client → server events")
    Relay("train:start", ConfigRequest, lambda body: {"config": checked_changes(body.config)}, optional=True,
          control="run", run="watched+owner", answer=state_and_put_away),
    Relay("train:pause", control="run", run="watched+owner", answer=state_and_put_away),
    Relay("train:step", StepRequest, lambda body: {"batches": body.batches}, optional=True,
          control="run", run="watched+owner", answer=state_and_put_away),
    Relay("train:reset", ConfigRequest, lambda body: {"config": checked_changes(body.config)}, optional=True,
          control="run", run="watched+owner", answer=state_and_put_away),
    Relay("config:update", setup_changes, lambda changes: {"changes": changes},
          control="run", run="watched+owner", answer=state_only),
    Relay("pace:update", PaceRequest, lambda body: {"pace": body.steps_per_second}, command="pace:set",
          control="run", run="watched+owner", answer=state_only),
    # Look inside, the explainer
    Relay("inside:neuron", NeuronRequest, lambda body: {"index": body.index, "pixels": drawing(body.pixels)},
          run="watched+owner"),
    Relay("explain:forward", forward_request, lambda body: {"pixels": drawing(body.pixels), "layer": body.layer,
                                                            "neuron": body.neuron, "top": body.top},
          run="watched", rate=EXPLAIN_FORWARD),
    # Evaluation, the dataset browser, recorded runs
    Relay("evaluate:get", run="watched+owner"),
    Relay("evaluate:cell", CellRequest, run="watched+owner"),
    Relay("dataset:get"),
    Relay("dataset:samples", SamplesRequest, optional=True),
    Relay("runs:list", answer=runs_for_viewer),  # a private run's key only to its owner (web/runs.py)
    Relay("runs:get", RunRequest, answer=record_for_viewer),
    Relay("runs:rename", RenameRequest, control="record"),
    Relay("runs:delete", RunRequest, control="record"),
    Relay("runs:restore", RunRequest, lambda body: {"id": body.id, "teacher": access_level()["control"]},
          control="run", run="watched+owner"),  # into the run this viewer watches; someone's private record: refused
    # The teacher puts a private run away (its owner gets it back from its record): to its engine
    Relay("run:put_away", WatchRequest, lambda body: {"run": body.run}, control="shared"),
    # The lesson and the run replayed
    Relay("lesson:steps", run="watched"),
    Relay("lesson:reveal", LessonRevealRequest, lambda body: {"step": body.step, "pixels": drawing(body.pixels)},
          run="watched", rate=LESSON_REVEALS, timeout=REVEAL_TIMEOUT_S, costly=True,
          check=lambda playground, body: keep_open_poll_answer(playground, body.step)),
    Relay("replay:frame", ReplayRequest, run="watched", rate=REPLAY, costly=True),
    Relay("replay:predict", ReplayPredictRequest, lambda body: {"step": body.step, "pixels": drawing(body.pixels)},
          run="watched", rate=REPLAY),
    # Class polls (about the shared run; the engine holds the poll)
    Relay("poll:open", PollOpenRequest, control="shared"),
    Relay("poll:answer", PollAnswerRequest, lambda body: {"voters": voters(), "poll": body.poll, "choice": body.choice},
          rate=POLL_ANSWERS),
    Relay("poll:reveal", PollRevealRequest, lambda body: {"pixels": drawing(body.pixels)}, optional=True,
          control="shared", rate=POLL_REVEALS, timeout=REVEAL_TIMEOUT_S, costly=True),
    Relay("poll:close", control="shared"),
    Relay("poll:get", answer=poll_for_viewer),
    # A script's own network (server/web/watched.py opens it): the run named in the payload, fed
    # by the script that opened it (the engine checks the owner).
    Relay("watch:steps", StepsRequest, lambda body: {**body.model_dump(), "owner": current_owner()},
          rate=WATCH_STEPS),
    Relay("watch:snapshot", SnapshotRequest, lambda body: {**body.model_dump(), "owner": current_owner()},
          rate=WATCH_SNAPSHOTS),
    Relay("watch:close", WatchedRunRequest, lambda body: {"run": body.run, "owner": current_owner()},
          answer=lambda answer: {}),
    Relay("watch:control", WatchedRunRequest, lambda body: {"run": body.run, "owner": current_owner()},
          rate=WATCH_CONTROL),
    # A page on a watched run: one Linear layer's weights picture (tiles or rows), any network.
    Relay("watch:weights", WeightsRequest, run="watched", rate=WATCH_WEIGHTS),
)


# ---- the one handler ----------------------------------------------------------------------------

def relay(playground, row: Relay, payload=None) -> dict:
    """One relayed event, answered (the steps of the module's docstring, in that order)."""
    extra = {}
    if row.control == "shared":
        require_control()
    elif row.control == "run":
        require_run_control()
    elif row.control == "record" and not access_level()["control"]:
        extra = {"owner": current_owner()}
    if row.rate is not None:
        throttle(row.rate.bucket, row.rate.per_second, row.rate.burst, row.rate.what)
    if row.schema is None:
        body = None
    elif isinstance(row.schema, type) and issubclass(row.schema, BaseModel):
        body = parse(row.schema, payload, optional=row.optional)
    else:
        body = row.schema(payload)
    if row.check is not None:
        row.check(playground, body)
    if row.args is not None:
        args = row.args(body)
    else:
        args = body.model_dump() if isinstance(body, BaseModel) else {}
    args.update(extra)
    if row.run == "watched":
        args = {"run": current_run(), **args}
    elif row.run == "watched+owner":
        args = run_args(**args)
    timeout = {"timeout": row.timeout} if row.timeout is not None else {}
    if row.costly and getattr(request, "sid", None) is not None:
        with playground.askers.asking(request.sid, args.get("run", SHARED)):
            return row.answer(playground.request(row.engine_command, args, **timeout))
    return row.answer(playground.request(row.engine_command, args, **timeout))


def init_app(app, playground) -> None:
    socketio = playground.socketio
    playground.askers = Askers(playground, partial(is_connected, socketio))
    playground.on_disconnect.append(playground.askers.left)
    for row in RELAYS:
        socketio.on_event(row.event, answered(handler_for(playground, row)))


def handler_for(playground, row: Relay):
    def handler(payload=None):
        return relay(playground, row, payload)
    handler.__name__ = f"on_{row.event.replace(':', '_')}"  # in the log, if it fails
    return handler
