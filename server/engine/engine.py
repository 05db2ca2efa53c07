"""The engine: owns the runs, their networks and everything torch does with them, and talks to
the rest only through named commands in (`command(name, args)`: plain data and bytes, answered
with plain data and bytes, or refused with a `UserError` in words) and messages out (`publish`:
plain dicts). It runs the same in a process of its own (server/engine/process.py, what `make
run` does) or in a thread beside a test.

Runs: the shared run (key "shared", the teacher's, when this engine holds it) and private runs
(keys "p-..."), each with an owner: a control command on a private run must carry its owner
(the web tier passes the asking viewer's), or it is refused. At most `max_runs` private runs
train at once; a start beyond that waits in a queue (its state says its place). A private run
whose owner has not been seen for OWNER_GONE_S is paused, recorded and freed.

Messages, each `{"topic", "run", "payload"}`:
  state, metrics, epoch, evaluation (the Socket.IO events of docs/protocol.md, payload as sent);
  runs (the runs list changed; payload None from an engine without the shared run: ask it);
  frame (a live view, encoded once: {"stream", "seq", "event"}); replica (where the run's
  weights are in shared memory: {"name"}); storage (a save failed or works again: {"problem":
  words or None}); run:closed (a private run was freed: {"reason", "record"}).
"""
from __future__ import annotations

import logging
import re
import secrets
import time
from dataclasses import dataclass
from typing import Callable, Optional

import numpy as np
import torch

from ..errors import AccessError, LimitError, NotFound, UserError
from ..experiment import DEFAULT_PACE, TrainConfig, split_pace
from ..link.arrays import encode_prediction, float32_array
from ..link.names import SHARED
from ..link.replica import ReplicaReader, ReplicaWriter, Weights, forward
from .store import RecordError, RunStore
from . import codegen, explain, exports
from .exports import script
from .checkpoints import CheckpointError, check_fits, load_state_dict_bytes, read_state_dict, state_dict_bytes
from .evaluation import SAMPLES_PER_CLASS, DatasetBrowser, EvaluationTracker
from .live_views import STREAMS, LiveViews
from .model import Network, network_of
from .recorder import RunRecorder
from .run import RunFeature, TrainingRun
from . import lesson
from .polls import Polls
from .replay import Replay, replay_frame, replay_predict

log = logging.getLogger(__name__)

REPLICA_INTERVAL_S = 0.05  # while training, predictions' weights are at most this old...
REPLICA_MAX_COST_SHARE = 0.01  # ...unless copying them costs more than this share of the time
RUNS_MESSAGE_INTERVAL_S = 1.0  # the runs list goes out at most once a second
PRIVATE_PREFIX = "p-"
DEFAULT_MAX_RUNS = 10  # private runs training at once in one engine (docs/performance.md)
RUNS_PER_PLACE = 3  # an engine holds at most this many private runs per training place
RUNS_PER_OWNER = 3  # one viewer's private runs held at once
WATCHER_TTL_S = 180.0  # a web process tells which streams it watches at least every minute
OWNER_GONE_S = 600.0  # a private run whose owner is gone this long is paused, recorded, freed
NOT_YOURS = ("this run is someone else's: you can watch it, not change it. Press \"Train my own copy\" "
             "for a run of your own")
Publish = Callable[[dict], None]


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
        sizes = run.config.architecture.sizes
        if self.writer is None or self.writer.sizes != tuple(sizes):
            old, self.writer = self.writer, ReplicaWriter(sizes)
            self.reader.attach(self.writer.name)
            if old is not None:
                old.close()  # a reader still mapping it keeps its pages until it lets go
            self.announce(self.writer.name)
        started = time.perf_counter()
        arrays = []
        with torch.no_grad():
            for name in run.model.layer_names + ["output"]:
                layer = getattr(run.model, name)
                arrays.append(layer.weight.detach().to("cpu").numpy())
                arrays.append(layer.bias.detach().to("cpu").numpy())
        self.writer.write(run_id=run.run_id, step=run.step_count, status=run.status,
                          activation=run.config.activation, arrays=arrays, epochs=run.trainer.epoch)
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


class Debounced:
    """Call `fn` at most every `interval` seconds; a call in between is remembered and made by
    the next `poll()` after the interval (the engine polls from its housekeeping thread)."""

    def __init__(self, fn, interval: float, clock=time.monotonic):
        self.fn, self.interval, self.clock = fn, interval, clock
        self._last = float("-inf")
        self._pending = False

    def __call__(self) -> None:
        if self.clock() - self._last >= self.interval:
            self._last = self.clock()
            self._pending = False
            self.fn()
        else:
            self._pending = True

    def poll(self) -> None:
        if self._pending and self.clock() - self._last >= self.interval:
            self()


@dataclass
class RunParts:
    """A run and the engine features attached to it."""

    run: TrainingRun
    views: LiveViews
    evaluations: EvaluationTracker
    recorder: RunRecorder
    replica: ReplicaPublisher
    owner: Optional[str] = None  # who controls a private run (None: the shared run)
    last_seen: float = 0.0  # when its owner was last seen (private runs)
    queued_config: Optional[dict] = None  # the setup changes a queued start will apply
    replay: Optional[Replay] = None  # the run's weights kept over time (replay.py)


def safe_filename_part(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", text).strip("-")[:60] or "run"


def checkpoint_name(config: TrainConfig, step: int, record: Optional[int] = None) -> str:
    hidden = "-".join(str(n) for n in config.hidden_sizes)
    prefix = f"run{record}-" if record else ""
    return safe_filename_part(f"nn-linear-{prefix}784-{hidden}-10-{config.activation}-step{step}") + ".pt"


def recorded_config(config: dict) -> TrainConfig:
    """A recorded run's setup (records made before the pace left the setup still carry it)."""
    setup, _, _ = split_pace(config)
    return TrainConfig().updated(setup)


def pixels_array(data) -> np.ndarray:
    """784 float32 pixels from the web tier (float32 bytes, or a list of numbers)."""
    if isinstance(data, (bytes, bytearray)):
        array = float32_array(data)
    else:
        array = np.asarray(data, dtype=np.float32)
    if array.size != 784:
        raise UserError(f"pixels: expected 784 values, got {array.size}")
    return array.astype(np.float32)


class Engine:
    def __init__(self, dataset, *, data_dir, database_url: Optional[str] = None, device: torch.device | str = "cpu",
                 publish: Publish = lambda message: None, pace: Optional[float] = DEFAULT_PACE,
                 clock=time.monotonic, training_cores: Optional[list[int]] = None,
                 private_run_cores: Optional[list[int]] = None,
                 engine_id: str = "local-0", holds_shared: bool = True, max_runs: int = DEFAULT_MAX_RUNS,
                 is_stale=lambda engine: True):
        self.dataset = dataset
        self.engine_id = engine_id
        self.max_runs = max_runs
        self.queue: list[str] = []  # private runs waiting for a place to train, first first
        self._watchers: dict[str, dict] = {}  # run key -> web process -> (streams, last told)
        self.training_cores = training_cores  # the cores the shared run trains on (None: wherever)
        self.private_run_cores = private_run_cores  # the cores private runs train on (None: wherever)
        self.device = torch.device(device)
        self.publish = publish
        self.clock = clock
        self.store = RunStore(data_dir, database_url=database_url, engine_id=engine_id, is_stale=is_stale)
        self.browser = DatasetBrowser(dataset)
        self.runs: dict[str, RunParts] = {}
        # The class poll (one, of the shared run's viewers): polls.py
        self.polls = Polls(lambda poll: self._message("poll", SHARED, {"poll": poll}))
        self._announce_runs = Debounced(self._runs_message, RUNS_MESSAGE_INTERVAL_S, clock)
        self.default_pace = pace
        if holds_shared:
            self._add_run(SHARED, pace)

    # ---- runs and their features ---------------------------------------------------------
    def _message(self, topic: str, run_key: str, payload) -> None:
        try:
            self.publish({"topic": topic, "run": run_key, "payload": payload})
        except Exception:
            log.exception("publishing %s failed", topic)

    def _runs_message(self) -> None:
        self._message("runs", SHARED, self.runs_payload() if SHARED in self.runs else None)

    def _add_run(self, key: str, pace: Optional[float], *, config: Optional[TrainConfig] = None,
                 owner: Optional[str] = None) -> RunParts:
        # Only the shared run trains on the training cores; private runs on every core (pinned
        # beside it, they would share one core with a full-speed run; on the serving cores alone,
        # ten paced runs do not keep their pace: docs/performance.md).
        cores = self.training_cores if key == SHARED else self.private_run_cores
        run = TrainingRun(self.dataset, device=self.device, pace=pace, key=key, clock=self.clock,
                          cores=cores, config=config)
        run.publish = lambda event, payload: self._message(event, key, payload)
        replica = ReplicaPublisher(run, lambda name: self._message("replica", key, {"name": name}), self.clock)
        parts = RunParts(
            run=run,
            views=LiveViews(run, lambda stream, frame: self._message("frame", key, {"stream": stream, **frame}),
                            clock=self.clock, latest=replica.network),
            evaluations=EvaluationTracker(run, lambda summary: self._message("evaluation", key, summary),
                                          clock=self.clock, latest=replica.network),
            recorder=RunRecorder(self.store, run, on_change=self._announce_runs,
                                 on_problem=lambda words: self._message("storage", key, {"problem": words}),
                                 clock=self.clock, owner=owner),
            replica=replica,
            owner=owner,
            last_seen=self.clock(),
            replay=Replay(run),
        )
        # Order matters only for cost: the replica first (predictions), the recorder last.
        run.features = [parts.replica, parts.views, parts.evaluations, parts.replay, parts.recorder]
        self.runs[key] = parts
        parts.replica.write()
        return parts

    def part(self, key: str = SHARED) -> RunParts:
        parts = self.runs.get(key)
        if parts is None:
            raise NotFound(f"there is no run {key!r}")
        return parts

    def runs_payload(self) -> dict:
        listing = self.store.list_runs()
        shared = self.runs.get(SHARED)
        return {"runs": listing.runs, "live_run": shared.recorder.live_record_id if shared else None,
                "problems": listing.problems}

    def housekeeping(self) -> None:
        """Called a few times a second by the process: what was put off is done now."""
        self._announce_runs.poll()
        self._put_away_abandoned()
        self._fill_places()
        self._forget_stale_watchers()

    def close(self) -> None:
        """Stop every run after its current step, record it up to there, free shared memory."""
        for parts in list(self.runs.values()):
            parts.run.close()
            parts.replica.close()
        self._announce_runs.poll()
        self.store.close()

    # ---- private runs ----------------------------------------------------------------------
    def _private(self) -> list[RunParts]:
        return [parts for parts in list(self.runs.values()) if parts.owner is not None]

    def _controlled(self, args) -> RunParts:
        """The run a control command acts on, if the asker may control it (the shared run's
        control is checked by the web tier; a private run's is its owner's alone)."""
        parts = self.part(args.get("run", SHARED))
        if parts.owner is not None:
            if args.get("owner") != parts.owner:
                raise AccessError(NOT_YOURS)
            parts.last_seen = self.clock()
        return parts

    def _training_places_taken(self, but: Optional[RunParts] = None) -> int:
        return sum(1 for parts in self._private()
                   if parts is not but and (parts.run.status == "running" or parts.run._steps_wanted))

    def _queue_position(self, key: str) -> Optional[int]:
        return self.queue.index(key) + 1 if key in self.queue else None

    def _announce_queue(self) -> None:
        for key in list(self.queue):
            parts = self.runs.get(key)
            if parts is not None:
                parts.run.queue_position = self._queue_position(key)
                parts.run.announce()

    def _leave_queue(self, parts: RunParts) -> bool:
        if parts.run.key not in self.queue:
            return False
        self.queue.remove(parts.run.key)
        parts.run.queue_position = None
        parts.queued_config = None
        self._announce_queue()
        return True

    def _fill_places(self) -> None:
        """Queued private runs start as places to train come free (housekeeping thread: never
        under a run's lock, so two runs' locks are never taken the other way round)."""
        while self.queue and self._training_places_taken() < self.max_runs:
            parts = self.runs.get(self.queue.pop(0))
            if parts is None:
                continue
            parts.run.queue_position = None
            try:
                parts.run.start(parts.queued_config)
            except UserError as err:
                parts.run.notice = f"This run could not start: {err}"
                parts.run.announce()
            parts.queued_config = None
            self._announce_queue()

    def _put_away_abandoned(self) -> None:
        now = self.clock()
        for parts in self._private():
            if now - parts.last_seen >= OWNER_GONE_S:
                minutes = OWNER_GONE_S / 60
                self.close_run(parts.run.key, f"its owner was gone for {minutes:g} minutes: it was paused, "
                                              "recorded in the runs list and put away")

    def close_run(self, key: str, reason: str) -> None:
        """Pause a private run, record it (status paused) and free its memory."""
        parts = self.runs.get(key)
        if parts is None or parts.owner is None:
            return
        self._leave_queue(parts)
        parts.recorder.close_status = "paused"
        parts.run.close()
        parts.replica.close()
        record = parts.recorder.live_record_id
        del self.runs[key]
        self._message("run:closed", key, {"reason": reason, "record": record})
        self._announce_runs()

    def create_run(self, args) -> dict:
        owner = args.get("owner")
        if not isinstance(owner, str) or not owner:
            raise UserError("a private run needs an owner")
        if sum(1 for parts in self._private() if parts.owner == owner) >= RUNS_PER_OWNER:
            raise LimitError(f"you already have {RUNS_PER_OWNER} runs of your own on this server: go back to one "
                             "of them (its link), or wait until one is put away")
        if len(self._private()) >= self.max_runs * RUNS_PER_PLACE:
            raise LimitError(f"this server already holds {len(self._private())} private runs, the most it can: "
                             "watch the shared run, or try again in a few minutes")
        setup, has_pace, pace = split_pace(args.get("config") or {})
        config = TrainConfig().updated(setup)
        key = PRIVATE_PREFIX + secrets.token_hex(6)
        state_dict = None
        if args.get("weights") is not None:
            try:
                state_dict = load_state_dict_bytes(args["weights"], config)
            except CheckpointError as err:
                raise CheckpointError(f"the weights to copy cannot be used: {str(err).rstrip('.')}") from None
        parts = self._add_run(key, pace if has_pace else self.default_pace, config=config, owner=owner)
        if state_dict is not None:
            self._load_weights(parts, state_dict, config, args.get("origin") or "copied weights")
        return {"run": key, "state": parts.run.state(), "engine": self.engine_id}

    def present(self, args) -> dict:
        """The web tier says which owners are connected now: their runs stay."""
        owners = set(args.get("owners") or ())
        now = self.clock()
        for parts in self._private():
            if parts.owner in owners:
                parts.last_seen = now
        return {}

    def drop_shared(self) -> None:
        """This engine no longer holds the shared run (its lease was lost): stop it after its
        step, record it, free it (the new holder carries it on from the record)."""
        parts = self.runs.pop(SHARED, None)
        if parts is not None:
            parts.run.close()
            parts.replica.close()

    def hold_shared(self, *, restore: bool, words: str = "") -> RunParts:
        """Take the shared run on (this engine now holds it); with `restore`, carry on its last
        record (its setup, weights, curves and step), paused, saying so."""
        if SHARED in self.runs:
            return self.runs[SHARED]
        parts = self._add_run(SHARED, self.default_pace)
        try:
            record = self.store.latest_of(SHARED) if restore else None
            if record is not None and self.store.get(record, curves=False)["status"] == "done":
                record = None  # a finished run is not carried on: a fresh one starts
        except UserError as err:
            log.warning("the shared run's last record cannot be read: %s", err)
            record = None
        if record is not None:
            try:
                saved = self.store.get(record)
                step, data = self.store.checkpoint(record)
                config = recorded_config(saved["config"])
                state_dict = check_fits(read_state_dict(data), config)
            except (UserError, CheckpointError) as err:
                log.warning("the shared run's last record #%s cannot be carried on: %s", record, err)
            else:
                notice = (f"{words}Carried on from its last record (run #{record}, step {step}): "
                          "press Train to go on.")
                parts.run.restore(status="paused", config=config, state_dict=state_dict,
                                  history=saved.get("history") or [], epochs=saved.get("epochs") or [],
                                  step=step, notice=notice)
                parts.recorder.adopt(record, parts.run.run_id, config.model_dump())
        self._announce_runs()
        return parts

    # ---- commands ------------------------------------------------------------------------
    def command(self, name: str, args: Optional[dict] = None) -> dict:
        handler = COMMANDS.get(name)
        if handler is None:
            raise UserError(f"unknown engine command {name!r}")
        return handler(self, args or {})

    # the spine
    def hello(self, args) -> dict:
        parts = self.part(args.get("run", SHARED))
        return {"state": parts.run.state(), "replica": parts.replica.name, "streams": sorted(STREAMS),
                "storage_problem": parts.recorder.problem,
                "store_notices": list(self.store.notices)}

    def state(self, args) -> dict:
        parts = self.part(args.get("run", SHARED))
        return {"state": parts.run.state(), "owner": parts.owner}

    def start(self, args) -> dict:
        parts = self._controlled(args)
        run = parts.run
        if parts.owner is not None and run.status != "running" and \
                (run.key in self.queue or self._training_places_taken(but=parts) >= self.max_runs):
            run._validated(args.get("config"))  # refused now, in words, not when its turn comes
            if run.key not in self.queue:
                self.queue.append(run.key)
            parts.queued_config = args.get("config")
            run.queue_position = self._queue_position(run.key)
            return {"state": run.announce()}
        return {"state": run.start(args.get("config"))}

    def pause(self, args) -> dict:
        parts = self._controlled(args)
        if self._leave_queue(parts):
            return {"state": parts.run.announce()}
        return {"state": parts.run.pause()}

    def step(self, args) -> dict:
        parts = self._controlled(args)
        self._leave_queue(parts)
        return {"state": parts.run.step(int(args.get("batches", 1)))}

    def reset(self, args) -> dict:
        parts = self._controlled(args)
        self._leave_queue(parts)
        # The record of the run thrown away (it keeps its last weights): the page's notice
        # names it and offers it back. None when nothing was recorded yet (step 0).
        put_away = parts.recorder.live_record_id
        return {"state": parts.run.reset(args.get("config")), "put_away": put_away}

    def update_config(self, args) -> dict:
        return {"state": self._controlled(args).run.update_config(args.get("changes"))}

    def set_pace(self, args) -> dict:
        return {"state": self._controlled(args).run.set_pace(args.get("pace"))}

    def predict(self, args) -> dict:
        """A prediction from the run's replica (for web processes on another machine, which
        cannot map it): float32 bytes, and which weights answered."""
        weights = self.part(args.get("run", SHARED)).replica.reader.latest()
        if weights is None:
            raise UserError("the network is not ready yet")
        return encode_prediction(forward(weights, pixels_array(args["pixels"])), weights.run_id, weights.step)

    # live views
    def watch(self, args) -> dict:
        """Which streams of a run a web process's viewers watch (`watcher`: that web process;
        several may serve one run's viewers): frames are made for what any of them watches."""
        key = args.get("run", SHARED)
        parts = self.part(key)
        streams = {s for s in args.get("streams", []) if s in STREAMS}
        watchers = self._watchers.setdefault(key, {})
        watchers[str(args.get("watcher", "local"))] = (streams, self.clock())
        watched = self._watched(key)
        parts.views.watch(sorted(watched))
        return {"streams": sorted(streams)}

    def _watched(self, key: str) -> set:
        now, watchers = self.clock(), self._watchers.get(key, {})
        for watcher, (_, seen) in list(watchers.items()):
            if now - seen > WATCHER_TTL_S:  # a web process that stopped telling: gone
                del watchers[watcher]
        return set().union(*(streams for streams, _ in watchers.values())) if watchers else set()

    def _forget_stale_watchers(self) -> None:
        for key in list(self._watchers):
            parts = self.runs.get(key)
            if parts is None:
                self._watchers.pop(key, None)
                continue
            before = len(self._watchers[key])
            watched = self._watched(key)
            if len(self._watchers[key]) != before:
                parts.views.watch(sorted(watched))

    def neuron(self, args) -> dict:
        pixels = pixels_array(args["pixels"]) if args.get("pixels") is not None else None
        return self.part(args.get("run", SHARED)).views.neuron(int(args["index"]), pixels)

    # the explainer
    def forward(self, args) -> dict:
        pixels = torch.from_numpy(pixels_array(args["pixels"]))
        model, weights = self.part(args.get("run", SHARED)).replica.network()  # one set of weights
        return {**explain.forward_steps(model, pixels, layer=args.get("layer", "hidden"),
                                        neuron=args.get("neuron"), top=int(args.get("top", 8))),
                "run_id": weights.run_id, "step": weights.step}

    def code(self, args) -> dict:
        parts = self.part(args.get("run", SHARED))
        config = parts.run.config
        try:  # the Keras code shows the live weights (not while a new setup is being built)
            live = exports.exported_weights(parts.replica.reader.latest(), config)
        except UserError:
            live = None
        return {"payload": codegen.code_payload(config, live), "source": codegen.model_code(config)}

    def linear(self, args) -> dict:
        if args.get("defaults"):
            return {"defaults": explain.SANDBOX_DEFAULTS, "max_size": explain.SANDBOX_MAX_SIZE,
                    "max_abs": explain.SANDBOX_MAX_ABS, **explain.linear_sandbox(**explain.SANDBOX_DEFAULTS)}
        if args.get("random"):
            return explain.random_linear(args["in_features"], args["out_features"], args.get("seed"))
        return explain.linear_sandbox(args["x"], args["weight"], args["bias"])

    # evaluation and the data
    def evaluation(self, args) -> dict:
        return {"evaluation": self.part(args.get("run", SHARED)).evaluations.current().summary()}

    def evaluation_cell(self, args) -> dict:
        return {"cell": self.part(args.get("run", SHARED)).evaluations.for_cell().cell(int(args["actual"]), int(args["predicted"]))}

    def dataset(self, args) -> dict:
        return {"dataset": self.browser.overview()}

    def dataset_samples(self, args) -> dict:
        offset = int(args.get("offset", 0))
        return {"offset": offset, "per_class": SAMPLES_PER_CLASS, "samples": self.browser.samples(offset)}

    # runs
    def runs_list(self, args) -> dict:
        return self.runs_payload()

    def runs_get(self, args) -> dict:
        return {"run": self.store.get(int(args["id"]))}

    def _may_change_record(self, args) -> None:
        """Renaming and deleting a record: whoever controls the shared run may change any (the web
        tier checked, and sends no "owner"); a viewer who may not, only the records of its own runs."""
        if "owner" not in args:
            return
        record = int(args["id"])
        owner = self.store.get(record, curves=False).get("owner")
        if owner is None or owner != args["owner"]:
            whose = "the shared run's" if owner is None else "someone else's"
            raise AccessError(f"run #{record} is {whose}: only {'the teacher' if owner is None else 'its owner or the teacher'} "
                              "can rename or delete it. You can rename and delete the runs of your own run.")

    def runs_rename(self, args) -> dict:
        self._may_change_record(args)
        run = self.store.rename(int(args["id"]), args["name"])
        self._announce_runs()
        return {"run": run}

    def runs_delete(self, args) -> dict:
        self._may_change_record(args)
        record = int(args["id"])
        self.store.delete(record)
        for parts in list(self.runs.values()):
            parts.recorder.forget(record)
        self._announce_runs()
        return {}

    def runs_restore(self, args) -> dict:
        record = int(args["id"])
        saved = self.store.get(record, curves=False)
        step, data = self.store.checkpoint(record)
        try:
            config = recorded_config(saved["config"])
            state_dict = check_fits(read_state_dict(data), config)
        except (CheckpointError, UserError) as err:
            raise RecordError(f"run #{record}'s saved weights cannot be used: {err}") from None
        parts = self._controlled(args)
        state = self._load_weights(parts, state_dict, config, f"restored from run #{record} at step {step}")
        which = "the shared run" if parts.owner is None else "your run"
        return {"state": state,
                "message": f"Restored run #{record} at step {step}: {which} restarted from its weights."}

    def runs_checkpoint(self, args) -> dict:
        record = int(args["id"])
        saved = self.store.get(record, curves=False)
        step, data = self.store.checkpoint(record)
        config = recorded_config(saved["config"])
        return {"data": data, "filename": checkpoint_name(config, step, record)}

    # checkpoints and export
    def checkpoint(self, args) -> dict:
        parts = self.part(args.get("run", SHARED))
        model, weights = parts.replica.network()
        return {"data": state_dict_bytes(model), "filename": checkpoint_name(parts.run.config, weights.step),
                "step": weights.step}

    def load_checkpoint(self, args) -> dict:
        data = args["data"]
        parts = self._controlled(args)
        run = parts.run
        config = run.config  # checked against, then applied: shapes cannot drift in between
        try:
            state_dict = load_state_dict_bytes(data, config)
        except CheckpointError as err:
            raise CheckpointError(f"Checkpoint refused: {str(err).rstrip('.')}. Nothing was changed.") from None
        state = self._load_weights(parts, state_dict, config, "uploaded checkpoint")
        n = sum(t.numel() for t in state_dict.values())
        which = "the shared run" if parts.owner is None else "your run"
        return {"run_id": state["run_id"], "parameters": n, "state": state,
                "message": f"Loaded {n:,} weights: {which} restarted from them (idle, step 0)."}

    def _load_weights(self, parts: RunParts, state_dict, config: TrainConfig, origin: str) -> dict:
        """A new run from these weights; its watchers get state, evaluation and runs."""
        self._leave_queue(parts)
        state = parts.run.start_from_weights(state_dict, config, origin)
        parts.recorder.set_origin(state["run_id"], origin)  # taken when its first step is recorded
        parts.evaluations.evaluate_now(announce=True)
        self._announce_runs()
        return state

    def export(self, args) -> dict:
        return {"source": script.export_source(self.part(args.get("run", SHARED)).run.config)}

    def export_file(self, args) -> dict:
        """The run's network as another framework's file (exports/): ONNX, Keras."""
        parts = self.part(args.get("run", SHARED))
        config = parts.run.config
        weights = exports.exported_weights(parts.replica.reader.latest(), config)
        kind = str(args.get("format"))
        data = exports.file_bytes(kind, weights, config)
        suffix, mimetype = exports.FORMATS[kind]
        return {"data": data, "mimetype": mimetype, "step": weights.step,
                "filename": checkpoint_name(config, weights.step).removesuffix(".pt") + "." + suffix}

    # the lesson (lesson.py), the replay (replay.py) and class polls (polls.py)
    def _lesson_context(self, key: str, pixels=None) -> lesson.LessonContext:
        parts = self.part(key)
        network, weights = parts.replica.network()
        record = parts.recorder.live_record_id if weights.run_id == parts.run.run_id else None
        return lesson.LessonContext(weights=weights, network=network, config=parts.run.config, state=parts.run.state(), replay=parts.replay,
            dataset=self.dataset, pixels=pixels_array(pixels) if pixels is not None else None, record=record)

    def lesson_steps(self, args) -> dict:
        return {"steps": lesson.questions(self.part(args.get("run", SHARED)).run.config)}

    def lesson_reveal(self, args) -> dict:
        return {"reveal": lesson.reveal(int(args["step"]), self._lesson_context(args.get("run", SHARED), args.get("pixels")))}

    def replay_frame(self, args) -> dict:
        parts = self.part(args.get("run", SHARED))
        return {"frame": replay_frame(parts.replay, parts.views.snapshotter, parts.run.curve.copy(),
                                      int(args["step"]), parts.run.step_count)}

    def replay_predict(self, args) -> dict:
        return replay_predict(self.part(args.get("run", SHARED)).replay, int(args["step"]), pixels_array(args["pixels"]))

    def poll_open(self, args) -> dict:
        number = int(args["step"])
        question = lesson.step_at(number).ask(self.part().run.config)
        return {"poll": self.polls.open({**question, "step": number})}

    def poll_answer(self, args) -> dict:
        return self.polls.answer(str(args["voter"]), int(args["poll"]), int(args["choice"]))

    def poll_reveal(self, args) -> dict:
        pixels = args.get("pixels")
        return {"poll": self.polls.reveal(lambda number: lesson.reveal(number, self._lesson_context(SHARED, pixels)))}

    def poll_close(self, args) -> dict:
        return self.polls.close()

    def poll_get(self, args) -> dict:
        return {"poll": self.polls.current()}


COMMANDS: dict[str, Callable[[Engine, dict], dict]] = {
    "hello": Engine.hello,
    "state": Engine.state,
    "train:start": Engine.start,
    "train:pause": Engine.pause,
    "train:step": Engine.step,
    "train:reset": Engine.reset,
    "config:update": Engine.update_config,
    "pace:set": Engine.set_pace,
    "predict": Engine.predict,
    "run:create": Engine.create_run,
    "runs:present": Engine.present,
    "views:watch": Engine.watch,
    "inside:neuron": Engine.neuron,
    "explain:forward": Engine.forward,
    "explain:code": Engine.code,
    "linear": Engine.linear,
    "evaluate:get": Engine.evaluation,
    "evaluate:cell": Engine.evaluation_cell,
    "dataset:get": Engine.dataset,
    "dataset:samples": Engine.dataset_samples,
    "runs:list": Engine.runs_list,
    "runs:get": Engine.runs_get,
    "runs:rename": Engine.runs_rename,
    "runs:delete": Engine.runs_delete,
    "runs:restore": Engine.runs_restore,
    "runs:checkpoint": Engine.runs_checkpoint,
    "checkpoint:get": Engine.checkpoint,
    "checkpoint:load": Engine.load_checkpoint,
    "export": Engine.export,
    "export:file": Engine.export_file,
    "lesson:steps": Engine.lesson_steps,
    "lesson:reveal": Engine.lesson_reveal,
    "replay:frame": Engine.replay_frame,
    "replay:predict": Engine.replay_predict,
    "poll:open": Engine.poll_open,
    "poll:answer": Engine.poll_answer,
    "poll:reveal": Engine.poll_reveal,
    "poll:close": Engine.poll_close,
    "poll:get": Engine.poll_get,
}
