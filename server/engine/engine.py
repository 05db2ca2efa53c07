"""The engine: owns the runs, their networks and everything torch does with them, and talks to
the rest only through named commands in (`command(name, args)`: plain data and bytes, answered
with plain data and bytes, or refused with a `UserError` in words) and messages out (`publish`:
plain dicts). It runs the same in a process of its own (server/engine/process.py, what `make
run` does) or in a thread beside a test.

Messages, each `{"topic", "run", "payload"}`:
  state, metrics, epoch, evaluation (the Socket.IO events of docs/protocol.md, payload as sent);
  runs (the runs list changed); frame (a live view, encoded once: {"stream", "seq", "event"});
  replica (where the run's weights are in shared memory: {"name"}); storage (a save failed or
  works again: {"problem": words or None}).
"""
from __future__ import annotations

import logging
import re
import time
from dataclasses import dataclass
from typing import Callable, Optional

import numpy as np
import torch

from ..errors import NotFound, UserError
from ..experiment import DEFAULT_PACE, Architecture, TrainConfig, split_pace
from ..link.replica import ReplicaReader, ReplicaWriter, Weights
from .store import RunError, RunStore
from . import codegen, explain
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

SHARED = "shared"  # the run every viewer watches (the teacher's)
REPLICA_INTERVAL_S = 0.05  # while training, predictions' weights are at most this old...
REPLICA_MAX_COST_SHARE = 0.01  # ...unless copying them costs more than this share of the time
RUNS_MESSAGE_INTERVAL_S = 1.0  # the runs list goes out at most once a second
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
        array = np.frombuffer(data, dtype="<f4")
    else:
        array = np.asarray(data, dtype=np.float32)
    if array.size != 784:
        raise UserError(f"pixels: expected 784 values, got {array.size}")
    return array.astype(np.float32)


class Engine:
    def __init__(self, dataset, *, data_dir, database_url: Optional[str] = None, device: torch.device | str = "cpu",
                 publish: Publish = lambda message: None, pace: Optional[float] = DEFAULT_PACE,
                 clock=time.monotonic, training_cores: Optional[list[int]] = None):
        self.dataset = dataset
        self.training_cores = training_cores  # the cores the training threads run on (None: any)
        self.device = torch.device(device)
        self.publish = publish
        self.clock = clock
        self.store = RunStore(data_dir, database_url=database_url)
        self.browser = DatasetBrowser(dataset)
        self.started_at = time.time()
        self.runs: dict[str, RunParts] = {}
        # The class poll (one, of the shared run's viewers): polls.py
        self.polls = Polls(lambda poll: self._message("poll", SHARED, {"poll": poll}))
        self._announce_runs = Debounced(lambda: self._message("runs", SHARED, self.runs_payload()),
                                        RUNS_MESSAGE_INTERVAL_S, clock)
        self._add_run(SHARED, pace)

    # ---- runs and their features ---------------------------------------------------------
    def _message(self, topic: str, run_key: str, payload) -> None:
        try:
            self.publish({"topic": topic, "run": run_key, "payload": payload})
        except Exception:
            log.exception("publishing %s failed", topic)

    def _add_run(self, key: str, pace: Optional[float]) -> RunParts:
        run = TrainingRun(self.dataset, device=self.device, pace=pace, key=key, clock=self.clock,
                          cores=self.training_cores)
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
                                 clock=self.clock),
            replica=replica,
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
        return {"runs": listing.runs, "live_run": self.part().recorder.live_record_id,
                "problems": listing.problems}

    def housekeeping(self) -> None:
        """Called a few times a second by the process: what was put off is done now."""
        self._announce_runs.poll()

    def close(self) -> None:
        """Stop every run after its current step, record it up to there, free shared memory."""
        for parts in self.runs.values():
            parts.run.close()
            parts.replica.close()
        self._announce_runs.poll()
        self.store.close()

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
                "started_at": self.started_at, "storage_problem": parts.recorder.problem,
                "store_notices": list(self.store.notices)}

    def state(self, args) -> dict:
        return {"state": self.part(args.get("run", SHARED)).run.state()}

    def start(self, args) -> dict:
        return {"state": self.part().run.start(args.get("config"))}

    def pause(self, args) -> dict:
        return {"state": self.part().run.pause()}

    def step(self, args) -> dict:
        return {"state": self.part().run.step(int(args.get("batches", 1)))}

    def reset(self, args) -> dict:
        return {"state": self.part().run.reset(args.get("config"))}

    def update_config(self, args) -> dict:
        return {"state": self.part().run.update_config(args.get("changes"))}

    def set_pace(self, args) -> dict:
        return {"state": self.part().run.set_pace(args.get("pace"))}

    # live views
    def watch(self, args) -> dict:
        streams = [s for s in args.get("streams", []) if s in STREAMS]
        self.part().views.watch(streams)
        return {"streams": sorted(streams)}

    def neuron(self, args) -> dict:
        pixels = pixels_array(args["pixels"]) if args.get("pixels") is not None else None
        return self.part().views.neuron(int(args["index"]), pixels)

    # the explainer
    def forward(self, args) -> dict:
        pixels = torch.from_numpy(pixels_array(args["pixels"]))
        model, weights = self.part().replica.network()  # every number from one set of weights
        return {**explain.forward_steps(model, pixels, layer=args.get("layer", "hidden"),
                                        neuron=args.get("neuron"), top=int(args.get("top", 8))),
                "run_id": weights.run_id, "step": weights.step}

    def code(self, args) -> dict:
        config = self.part().run.config
        return {"payload": codegen.code_payload(config), "source": codegen.model_code(config)}

    def linear(self, args) -> dict:
        if args.get("defaults"):
            return {"defaults": explain.SANDBOX_DEFAULTS, "max_size": explain.SANDBOX_MAX_SIZE,
                    "max_abs": explain.SANDBOX_MAX_ABS, **explain.linear_sandbox(**explain.SANDBOX_DEFAULTS)}
        if args.get("random"):
            return explain.random_linear(args["in_features"], args["out_features"], args.get("seed"))
        return explain.linear_sandbox(args["x"], args["weight"], args["bias"])

    # evaluation and the data
    def evaluation(self, args) -> dict:
        return {"evaluation": self.part().evaluations.current().summary()}

    def evaluation_cell(self, args) -> dict:
        return {"cell": self.part().evaluations.for_cell().cell(int(args["actual"]), int(args["predicted"]))}

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

    def runs_rename(self, args) -> dict:
        run = self.store.rename(int(args["id"]), args["name"])
        self._announce_runs()
        return {"run": run}

    def runs_delete(self, args) -> dict:
        record = int(args["id"])
        self.store.delete(record)
        self.part().recorder.forget(record)
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
            raise RunError(f"run #{record}'s saved weights cannot be used: {err}") from None
        state = self._load_weights(state_dict, config, f"restored from run #{record} at step {step}")
        return {"state": state,
                "message": f"Restored run #{record} at step {step}: the shared run restarted from its weights."}

    def runs_checkpoint(self, args) -> dict:
        record = int(args["id"])
        saved = self.store.get(record, curves=False)
        step, data = self.store.checkpoint(record)
        config = recorded_config(saved["config"])
        return {"data": data, "filename": checkpoint_name(config, step, record)}

    # checkpoints and export
    def checkpoint(self, args) -> dict:
        parts = self.part()
        model, weights = parts.replica.network()
        return {"data": state_dict_bytes(model), "filename": checkpoint_name(parts.run.config, weights.step)}

    def load_checkpoint(self, args) -> dict:
        data = args["data"]
        run = self.part().run
        config = run.config  # checked against, then applied: shapes cannot drift in between
        try:
            state_dict = load_state_dict_bytes(data, config)
        except CheckpointError as err:
            raise CheckpointError(f"Checkpoint refused: {str(err).rstrip('.')}. Nothing was changed.") from None
        state = self._load_weights(state_dict, config, "uploaded checkpoint")
        n = sum(t.numel() for t in state_dict.values())
        return {"run_id": state["run_id"], "parameters": n, "state": state,
                "message": f"Loaded {n:,} weights: the shared run restarted from them (idle, step 0)."}

    def _load_weights(self, state_dict, config: TrainConfig, origin: str) -> dict:
        """A new shared run from these weights; everyone gets state, evaluation and runs."""
        parts = self.part()
        state = parts.run.start_from_weights(state_dict, config, origin)
        parts.recorder.set_origin(state["run_id"], origin)  # taken when its first step is recorded
        parts.evaluations.evaluate_now(announce=True)
        self._announce_runs()
        return state

    def export(self, args) -> dict:
        return {"source": codegen.export_source(self.part().run.config, filename="model.pt")}

    def architecture(self, args) -> dict:
        return {"model": Architecture.of(self.part().run.config).summary()}

    # the lesson (lesson.py), the replay (replay.py) and class polls (polls.py)
    def _lesson_context(self, key: str, pixels=None) -> lesson.LessonContext:
        parts = self.part(key)
        network, weights = parts.replica.network()
        return lesson.LessonContext(weights=weights, network=network, config=parts.run.config, state=parts.run.state(), replay=parts.replay,
            dataset=self.dataset, pixels=pixels_array(pixels) if pixels is not None else None)

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
