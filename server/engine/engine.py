"""The engine: owns the runs, their networks and everything torch does with them, and talks to
the rest only through named commands in (`command(name, args)`: plain data and bytes, answered
with plain data and bytes, or refused with a `UserError` in words) and messages out (`publish`:
plain dicts). It runs the same in a process of its own (server/engine/process.py, what `make
run` does) or in a thread beside a test.

Runs: the shared run (key "shared", the teacher's, when this engine holds it) and private runs
(keys "p-..."), each with an owner: a control command on a private run must carry its owner
(the web tier passes the asking viewer's), or it is refused. The commands themselves, name by
name, are server/engine/commands.py; here is what they act on: the runs, their features, the
private runs' queue and places, and which streams web processes watch. At most `max_runs` private runs
train at once; a start or a step beyond that waits in a queue (its state says its place). A
private run whose owner has not been seen for `owner_gone_s` (the web tier tells who is
connected: runs:present) is paused, recorded and freed; its owner gets it back from its record.

Messages, each `{"topic", "run", "payload"}`:
  state, metrics, epoch, evaluation (the Socket.IO events of docs/protocol.md, payload as sent);
  runs (the runs list changed; payload None from an engine without the shared run: ask it);
  frame (a live view, encoded once: {"stream", "seq", "event"}); replica (where the run's
  weights are in shared memory: {"name"}); storage (a save failed or works again: {"problem":
  words or None}); run:closed (a private run was freed: {"reason", "record"}).
"""
from __future__ import annotations

import gc
import logging
import re
import secrets
import time
from dataclasses import dataclass
from functools import partial
from typing import Callable, Optional

import torch

from ..errors import AccessError, LimitError, NotFound, UserError
from ..experiment import DEFAULT_PACE, TrainConfig
from ..link.names import SHARED
from ..memory import give_back_memory
from .checkpoints import CheckpointError
from .commands import COMMANDS
from .evaluation import DatasetBrowser, EvaluationTracker
from .live_views import LiveViews
from .memory_budget import MemoryBudget
from .polls import Polls
from .recorder import RunRecorder, recorded_weights
from .replay import Replay
from .replica_publisher import ReplicaPublisher
from .run import TrainingRun
from .records import RunStore, describe_setup
from .watched import NameTheRecord, WatchedRun
from .worker import Debounced

log = logging.getLogger(__name__)

RUNS_MESSAGE_INTERVAL_S = 1.0  # the runs list goes out at most once a second
PRIVATE_PREFIX = "p-"
PRIVATE_KEY = re.compile(r"^p-[0-9a-f]{12}$")
# The commands that read a run's network (its pictures, predictions, files): refused, in words, on a
# watched network the page cannot compute.
NEEDS_THE_NETWORK = ("predict", "inside:", "explain:", "evaluate:", "checkpoint:get", "export", "lesson:", "replay:",
                     "runs:checkpoint")
DEFAULT_MAX_RUNS = 10  # private runs training at once in one engine (docs/performance.md)
RUNS_PER_PLACE = 3  # an engine holds at most this many private runs per training place
RUNS_PER_OWNER = 3  # one viewer's private runs held at once
WATCHER_TTL_S = 180.0  # a web process tells which streams it watches at least every minute
OWNER_GONE_S = 90.0  # a private run whose owner is gone this long is paused, recorded, freed (settings.owner_grace_s)
NOT_YOURS = ("this run is someone else's: you can watch it, not change it. Press \"Train my own copy\" "
             "for a run of your own")
Publish = Callable[[dict], None]


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
    queued_steps: int = 0  # a queued step's batches (0: the queue's turn starts the run)
    replay: Optional[Replay] = None  # the run's weights kept over time (replay.py)


def duration(seconds: float) -> str:
    """90 -> "90 seconds", 600 -> "10 minutes"."""
    if seconds >= 120 and seconds % 60 == 0:
        return f"{seconds / 60:g} minutes"
    return f"{seconds:g} seconds"


def memory_bytes(parts: RunParts) -> int:
    """What a run holds now, in bytes: its weights and their gradients, the optimizer's state,
    the weights' copy in shared memory (for predictions) and the replay's kept weights."""
    trainer = parts.run.trainer
    params = list(trainer.model.parameters())
    weights = sum(p.nbytes for p in params)
    grads = sum(p.grad.nbytes for p in params if p.grad is not None)
    try:  # (the training thread may add the optimizer's state meanwhile)
        optimizer = sum(value.nbytes for state in list(trainer.optimizer.state.values())
                        for value in list(state.values()) if isinstance(value, torch.Tensor))
    except RuntimeError:
        optimizer = 0
    return weights * 2 + grads + optimizer + (parts.replay.nbytes() if parts.replay else 0)


class Engine:
    def __init__(self, dataset, *, data_dir, database_url: Optional[str] = None, device: torch.device | str = "cpu",
                 publish: Publish = lambda message: None, pace: Optional[float] = DEFAULT_PACE,
                 clock=time.monotonic, training_cores: Optional[list[int]] = None,
                 private_run_cores: Optional[list[int]] = None,
                 engine_id: str = "local-0", holds_shared: bool = True, max_runs: int = DEFAULT_MAX_RUNS,
                 is_stale=lambda engine: True, owner_gone_s: float = OWNER_GONE_S,
                 memory_limit: Optional[int] = None):
        self.dataset = dataset
        self.owner_gone_s = owner_gone_s
        # What the runs may hold together (memory_budget.py); the base is this process now,
        # before any run: torch and the digits.
        self.memory = MemoryBudget(memory_limit)
        self._give_back_due = False
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
        self.announce_runs = Debounced(self._runs_message, RUNS_MESSAGE_INTERVAL_S, clock)
        self.default_pace = pace
        if holds_shared:
            self.add_run(SHARED, pace)

    # ---- runs and their features ---------------------------------------------------------
    def _message(self, topic: str, run_key: str, payload) -> None:
        try:
            self.publish({"topic": topic, "run": run_key, "payload": payload})
        except Exception:
            log.exception("publishing %s failed", topic)

    def _runs_message(self) -> None:
        self._message("runs", SHARED, self.runs_payload() if SHARED in self.runs else None)

    def add_run(self, key: str, pace: Optional[float], *, config: Optional[TrainConfig] = None,
                 owner: Optional[str] = None, make_run=TrainingRun, publish_replica: bool = True) -> RunParts:
        # Only the shared run trains on the training cores; private runs on every core (pinned
        # beside it, they would share one core with a full-speed run; on the serving cores alone,
        # ten paced runs do not keep their pace: docs/performance.md).
        cores = self.training_cores if key == SHARED else self.private_run_cores
        # Refused in words before anything is built when it would not fit (a new holder of the
        # shared run carries it on whatever it costs).
        self.memory.admit(key, config or TrainConfig(), force=(key == SHARED))
        try:
            return self._build_run(key, pace, cores, config, owner, make_run, publish_replica)
        except BaseException:
            self.memory.release(key)
            raise

    def _build_run(self, key: str, pace: Optional[float], cores, config: Optional[TrainConfig],
                   owner: Optional[str], make_run, publish_replica: bool) -> RunParts:
        # make_run: TrainingRun, or a run whose steps come from elsewhere (watched.py)
        run = make_run(self.dataset, device=self.device, pace=pace, key=key, clock=self.clock,
                       cores=cores, config=config)
        # Every later change of its setup is admitted too (run.py), before its network is built.
        run.admit = lambda new, force=False: self.memory.admit(key, new, force=force)
        run.publish = lambda event, payload: self._message(event, key, payload)
        replica = ReplicaPublisher(run, lambda name: self._message("replica", key, {"name": name}), self.clock)
        parts = RunParts(
            run=run,
            views=LiveViews(run, lambda stream, frame: self._message("frame", key, {"stream": stream, **frame}),
                            clock=self.clock, latest=replica.network),
            evaluations=EvaluationTracker(run, lambda summary: self._message("evaluation", key, summary),
                                          clock=self.clock, latest=replica.network),
            recorder=RunRecorder(self.store, run, on_change=self.announce_runs,
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
        if publish_replica:
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
        self.announce_runs.poll()
        self._put_away_abandoned()
        self._fill_places()
        self._forget_stale_watchers()
        if self._give_back_due:  # a run was put away since
            self.give_back_memory()

    def close(self) -> None:
        """Stop every run after its current step, record it up to there, free shared memory."""
        for parts in list(self.runs.values()):
            parts.run.close()
            parts.replica.close()
        self.announce_runs.poll()
        self.store.close()

    # ---- private runs ----------------------------------------------------------------------
    def private_runs(self) -> list[RunParts]:
        return [parts for parts in list(self.runs.values()) if parts.owner is not None]

    def controlled(self, args) -> RunParts:
        """The run a control command acts on, if the asker may control it (the shared run's
        control is checked by the web tier; a private run's is its owner's alone)."""
        parts = self.part(args.get("run", SHARED))
        if parts.owner is not None:
            if isinstance(parts.run, WatchedRun) and parts.run.spec.controllable and args.get("control") is True \
                    and args.get("owner") != parts.owner:
                return parts  # held and stepped from the page by whoever may control (the run refuses the rest)
            if args.get("owner") != parts.owner:
                raise AccessError(NOT_YOURS)
            parts.last_seen = self.clock()
        return parts

    def _training_places_taken(self, but: Optional[RunParts] = None) -> int:
        return sum(1 for parts in self.private_runs()
                   if parts is not but and not isinstance(parts.run, WatchedRun)  # its script trains it
                   and (parts.run.status == "running" or parts.run._steps_wanted))

    def _queue_position(self, key: str) -> Optional[int]:
        return self.queue.index(key) + 1 if key in self.queue else None

    def _announce_queue(self) -> None:
        for key in list(self.queue):
            parts = self.runs.get(key)
            if parts is not None:
                parts.run.queue_position = self._queue_position(key)
                parts.run.announce()

    def leave_queue(self, parts: RunParts) -> bool:
        if parts.run.key not in self.queue:
            return False
        self.queue.remove(parts.run.key)
        parts.run.queue_position = None
        parts.queued_config = None
        parts.queued_steps = 0
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
                if parts.queued_steps:  # its steps take the place while they train
                    parts.run.step(parts.queued_steps, wait_s=0)
                else:
                    parts.run.start(parts.queued_config)
            except UserError as err:
                parts.run.notice = f"This run could not start: {err}"
                parts.run.announce()
            parts.queued_config = None
            parts.queued_steps = 0
            self._announce_queue()

    def _put_away_abandoned(self) -> None:
        now = self.clock()
        for parts in self.private_runs():
            if now - parts.last_seen >= self.owner_gone_s:
                self.close_run(parts.run.key, f"its owner was gone for {duration(self.owner_gone_s)}: it was paused, "
                                              "recorded in the runs list and put away (its owner gets it back "
                                              "from its record)")

    def close_run(self, key: str, reason: str) -> Optional[int]:
        """Pause a private run, record it (status paused) and free its memory. Its record's id
        (None: nothing was trained, nothing recorded)."""
        parts = self.runs.get(key)
        if parts is None or parts.owner is None:
            return None
        self.leave_queue(parts)
        parts.recorder.close_status = "paused"
        parts.run.close()
        parts.replica.close()
        self._put_away(key)
        record = parts.recorder.live_record_id
        del self.runs[key]
        self._message("run:closed", key, {"reason": reason, "record": record})
        self.announce_runs()
        return record

    def owned(self, owner: str) -> int:
        """How many private runs `owner` has in this engine."""
        return sum(1 for parts in self.private_runs() if parts.owner == owner)

    def _put_away(self, key: str) -> None:
        """A run put away: its place in the memory budget is free now, and its memory is handed
        back at the next housekeeping, once nothing refers to it any more."""
        self._watchers.pop(key, None)
        self.memory.release(key)
        self._give_back_due = True

    def give_back_memory(self) -> None:
        """After a run is put away: its tensors, replay points and frames are unreachable now;
        collect them and hand the freed heap back to the system (glibc keeps it otherwise)."""
        self._give_back_due = False
        gc.collect()
        give_back_memory()

    def check_room_for(self, owner: str, held: int = 0) -> None:
        """Refused in words when `owner`, or this engine, holds as many private runs as it may.
        `held`: the owner's runs in every engine, as the web tier counted them (the cap is one
        viewer's, whichever engines its runs are in)."""
        private = self.private_runs()
        if max(held, self.owned(owner)) >= RUNS_PER_OWNER:
            raise LimitError(f"you already have {RUNS_PER_OWNER} runs of your own on this server: go back to one "
                             "of them (its link), or wait until one is put away")
        if len(private) >= self.max_runs * RUNS_PER_PLACE:
            raise LimitError(f"this server already holds {len(private)} private runs, the most it can: "
                             "watch the shared run, or try again in a few minutes")

    def add_private_run(self, owner: str, config: TrainConfig, pace: Optional[float],
                        key: Optional[str] = None) -> RunParts:
        return self.add_run(key or PRIVATE_PREFIX + secrets.token_hex(6), pace, config=config, owner=owner)

    def private_run_from_record(self, owner: str, record: int, pace: Optional[float]) -> RunParts:
        """A put-away private run back for its owner, from its record: its key (its link works
        again), setup, weights, curves and step, paused; recorded on into the same record. (The
        web tier checked that no other engine holds that key now.)"""
        saved = self.store.get(record)
        key = saved.get("run_key")
        if saved.get("owner") != owner or not isinstance(key, str) or not PRIVATE_KEY.match(key):
            raise AccessError(f"run #{record} is not a run of yours: only its owner gets it back "
                              "(\"Train my own copy\" makes a run of your own)")
        if key in self.runs:
            raise UserError(f"run #{record} is still there: go back to it (its link)")
        step, data = self.store.checkpoint(record)
        try:
            config, state_dict = recorded_weights(saved, data)
        except (CheckpointError, UserError) as err:
            raise UserError(f"run #{record}'s saved weights cannot be used: {err}") from None
        parts = self.add_private_run(owner, config, pace, key=key)
        parts.run.restore(status="paused", config=config, state_dict=state_dict, history=saved.get("history") or [],
                          epochs=saved.get("epochs") or [], step=step,
                          notice=f"Back from its record (run #{record}, step {step}): press Train to go on.")
        parts.recorder.adopt(record, parts.run.run_id, config.model_dump())
        self.announce_runs()
        return parts

    def private_listing(self) -> list[dict]:
        """Every private run of this engine, for the teacher: whose, its setup, what it holds."""
        now, listing = self.clock(), []
        for parts in self.private_runs():
            run = parts.run
            listing.append({"run": run.key, "owner": parts.owner, "engine": self.engine_id, "status": run.status,
                            "step": run.step_count, "setup": describe_setup(run.config.model_dump()),
                            "model": run.config.architecture.summary(), "queue_position": run.queue_position,
                            "memory_bytes": memory_bytes(parts), "owner_seen_s": round(now - parts.last_seen, 1),
                            "record": parts.recorder.live_record_id})
        return listing

    def add_watched_run(self, owner: str, spec, config: Optional[TrainConfig], why_not: Optional[str],
                        key: Optional[str] = None, chain=None) -> RunParts:
        """A run trained by its owner's script (watched.py): a private run whose steps and
        weights the script sends. `key`: the one it had before this engine restarted, if free."""
        key = key if key and key not in self.runs else PRIVATE_PREFIX + secrets.token_hex(6)
        parts = self.add_run(key, None, config=config, owner=owner, publish_replica=config is not None,
                             make_run=partial(WatchedRun, spec=spec, why_not=why_not, chain=chain))
        if config is None:  # its network is not one the page computes: no pictures of it (predictions of
            # a chain that reads another image come from the replica of the script's weights)
            parts.run.features = [parts.replica, parts.recorder] if chain is not None else [parts.recorder]
        parts.run.features.append(NameTheRecord(parts.recorder, spec.name))
        parts.recorder.close_status = "stopped"  # put away with its script gone: not interrupted
        return parts

    def owners_present(self, owners: set) -> None:
        """These owners are connected now: their runs stay."""
        now = self.clock()
        for parts in self.private_runs():
            if parts.owner in owners:
                parts.last_seen = now

    def start_or_queue(self, parts: RunParts, config: Optional[dict]) -> dict:
        """Start the run, or, for a private run when every training place is taken, queue it
        (its state says its place); the setup is checked now either way. Its state."""
        run = parts.run
        if self._must_wait(parts):
            run._validated(config)  # refused now, in words, not when its turn comes
            return self._queue(parts, config=config)
        return run.start(config)

    def step_or_queue(self, parts: RunParts, batches: int) -> dict:
        """Train `batches` steps, or, for a private run when every training place is taken, wait
        in the queue for a place as a start does (a step trains on a place too). Its state."""
        if self._must_wait(parts):
            return self._queue(parts, steps=batches)
        self.leave_queue(parts)
        return parts.run.step(batches)

    def _must_wait(self, parts: RunParts) -> bool:
        """A private run without a place (not training, nor stepping) finds them all taken, or
        others ahead of it in the queue."""
        run = parts.run
        holds_a_place = run.status == "running" or run._steps_wanted
        # a watched run trains in its owner's script: it takes no place
        return parts.owner is not None and not holds_a_place and not isinstance(run, WatchedRun) and \
            (run.key in self.queue or self._training_places_taken(but=parts) >= self.max_runs)

    def _queue(self, parts: RunParts, *, config: Optional[dict] = None, steps: int = 0) -> dict:
        """In line for a place: what its turn does is the last thing asked (a start with its
        setup changes, or a step of `steps` batches), as pressing it on a run with a place would."""
        run = parts.run
        if run.key not in self.queue:
            self.queue.append(run.key)
        parts.queued_config, parts.queued_steps = config, steps
        run.queue_position = self._queue_position(run.key)
        return run.announce()

    def drop_shared(self) -> None:
        """This engine no longer holds the shared run (its lease was lost): stop it after its
        step, record it, free it (the new holder carries it on from the record)."""
        parts = self.runs.pop(SHARED, None)
        if parts is not None:
            parts.run.close()
            parts.replica.close()
            self._put_away(SHARED)

    def hold_shared(self, *, restore: bool, words: str = "") -> RunParts:
        """Take the shared run on (this engine now holds it); with `restore`, carry on its last
        record (its setup, weights, curves and step), paused, saying so."""
        if SHARED in self.runs:
            return self.runs[SHARED]
        parts = self.add_run(SHARED, self.default_pace)
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
                config, state_dict = recorded_weights(saved, data)
            except (UserError, CheckpointError) as err:
                log.warning("the shared run's last record #%s cannot be carried on: %s", record, err)
            else:
                notice = (f"{words}Carried on from its last record (run #{record}, step {step}): "
                          "press Train to go on.")
                parts.run.restore(status="paused", config=config, state_dict=state_dict,
                                  history=saved.get("history") or [], epochs=saved.get("epochs") or [],
                                  step=step, notice=notice)
                parts.recorder.adopt(record, parts.run.run_id, config.model_dump())
        self.announce_runs()
        return parts

    # ---- commands (commands.py) ---------------------------------------------------------------
    def command(self, name: str, args: Optional[dict] = None) -> dict:
        handler = COMMANDS.get(name)
        if handler is None:
            raise UserError(f"unknown engine command {name!r}")
        self._refuse_pictures_of_an_unfollowed_network(name, args or {})
        return handler(self, args or {})

    def _refuse_pictures_of_an_unfollowed_network(self, name: str, args: dict) -> None:
        """A watched network the page cannot compute (watched.py): what needs its network says why."""
        parts = self.runs.get(args.get("run", SHARED)) if isinstance(args.get("run", SHARED), str) else None
        if parts is not None and isinstance(parts.run, WatchedRun) and not parts.run.shows_network \
                and name.startswith(NEEDS_THE_NETWORK) and not (name == "predict" and parts.run.chain is not None):
            raise UserError(f"the page cannot compute this network, so it shows its curves and structure only: "
                            f"{parts.run.why_not}")

    # ---- which streams of each run are watched ------------------------------------------------
    def set_watched(self, key: str, watcher: str, streams: set) -> None:
        """The streams one web process's viewers of run `key` watch; the run's views make frames
        for what any web process watches."""
        parts = self.part(key)
        if isinstance(parts.run, WatchedRun) and not parts.run.shows_network:
            return  # no pictures of a network the page cannot compute
        watchers = self._watchers.setdefault(key, {})
        watchers[watcher] = (streams, self.clock())
        parts.views.watch(sorted(self._watched(key)))

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

    # ---- a run's weights replaced (an upload, a restored record, a copy) ---------------------
    def load_weights(self, parts: RunParts, state_dict, config: TrainConfig, origin: str) -> dict:
        """A new run from these weights; its watchers get state, evaluation and runs."""
        self.leave_queue(parts)
        state = parts.run.start_from_weights(state_dict, config, origin)
        parts.recorder.set_origin(state["run_id"], origin)  # taken when its first step is recorded
        parts.evaluations.evaluate_now(announce=True)
        self.announce_runs()
        return state
