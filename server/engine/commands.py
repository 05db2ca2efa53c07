"""The engine's commands: `COMMANDS`, name -> handler(engine, args) -> answer, grouped as
docs/protocol.md groups them. A handler reads its arguments (plain data and bytes from the web
tier), asks the engine's runs (engine.py) and the modules that do the work (explain, lesson,
exports, ...), and answers plain data and bytes; a bad argument is a `UserError` in words.
The run a command acts on is `args["run"]` (the shared run when absent); a control command's
run must be the asker's own or the shared run (`Engine.controlled`).
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Callable

import numpy as np
import torch

from ..errors import AccessError, UserError
from ..experiment import TrainConfig, split_pace
from ..link.arrays import encode_prediction, float32_array
from ..link.names import SHARED
from ..link.replica import forward as replica_forward
from ..preprocess import model_input
from . import codegen, explain, exports, lesson
from .checkpoints import CheckpointError, checkpoint_name, load_state_dict_bytes, state_dict_bytes
from .evaluation import SAMPLES_PER_CLASS
from .exports import script
from ..link.names import STREAMS
from .recorder import recorded_config, recorded_weights
from .replay import replay_frame as make_replay_frame, replay_predict as make_replay_prediction
from .records import RecordError
from .watched import WatchedRun
from .. import watch_frames
from ..refusals import describe_validation_error
from pydantic import ValidationError

if TYPE_CHECKING:
    from .engine import Engine


def pixels_array(data) -> np.ndarray:
    """784 float32 pixels from the web tier (float32 bytes, or a list of numbers)."""
    if isinstance(data, (bytes, bytearray)):
        array = float32_array(data)
    else:
        array = np.asarray(data, dtype=np.float32)
    if array.size != 784:
        raise UserError(f"pixels: expected 784 values, got {array.size}")
    return array.astype(np.float32)


def run_key(args) -> str:
    return args.get("run", SHARED)


# ---- the spine ------------------------------------------------------------------------------------

def hello(engine: Engine, args) -> dict:
    parts = engine.part(run_key(args))
    return {"state": parts.run.state(), "replica": parts.replica.name, "streams": sorted(STREAMS),
            "storage_problem": parts.recorder.problem,
            "store_notices": list(engine.store.notices)}


def state(engine: Engine, args) -> dict:
    parts = engine.part(run_key(args))
    return {"state": parts.run.state(), "owner": parts.owner}


def start(engine: Engine, args) -> dict:
    return {"state": engine.start_or_queue(engine.controlled(args), args.get("config"))}


def pause(engine: Engine, args) -> dict:
    parts = engine.controlled(args)
    if engine.leave_queue(parts):
        return {"state": parts.run.announce()}
    return {"state": parts.run.pause()}


def step(engine: Engine, args) -> dict:
    return {"state": engine.step_or_queue(engine.controlled(args), int(args.get("batches", 1)))}


def reset(engine: Engine, args) -> dict:
    parts = engine.controlled(args)
    engine.leave_queue(parts)
    # The record of the run thrown away (it keeps its last weights): the page's notice
    # names it and offers it back. None when nothing was recorded yet (step 0).
    put_away = parts.recorder.live_record_id
    return {"state": parts.run.reset(args.get("config")), "put_away": put_away}


def update_config(engine: Engine, args) -> dict:
    return {"state": engine.controlled(args).run.update_config(args.get("changes"))}


def set_pace(engine: Engine, args) -> dict:
    return {"state": engine.controlled(args).run.set_pace(args.get("pace"))}


def predict(engine: Engine, args) -> dict:
    """A prediction from the run's replica (for web processes on another machine, which
    cannot map it): float32 bytes, and which weights answered."""
    weights = engine.part(run_key(args)).replica.reader.latest()
    if weights is None:
        raise UserError("the network is not ready yet")
    seen = model_input(pixels_array(args["pixels"]), weights.image)  # the drawing as the network's input image
    return {**encode_prediction(replica_forward(weights, seen), weights.run_id, weights.step),
            "image": list(weights.image) if weights.image else None}


# ---- private runs -----------------------------------------------------------------------------------

def create_run(engine: Engine, args) -> dict:
    owner = args.get("owner")
    if not isinstance(owner, str) or not owner:
        raise UserError("a private run needs an owner")
    engine.check_room_for(owner, int(args.get("held") or 0))
    if args.get("record") is not None:  # a put-away run of this owner's, back from its record
        parts = engine.private_run_from_record(owner, int(args["record"]), engine.default_pace)
        return {"run": parts.run.key, "state": parts.run.state(), "engine": engine.engine_id}
    setup, has_pace, pace = split_pace(args.get("config") or {})
    config = TrainConfig().updated(setup)
    state_dict = None
    if args.get("weights") is not None:
        try:
            state_dict = load_state_dict_bytes(args["weights"], config)
        except CheckpointError as err:
            raise CheckpointError(f"the weights to copy cannot be used: {str(err).rstrip('.')}") from None
    parts = engine.add_private_run(owner, config, pace if has_pace else engine.default_pace)
    if state_dict is not None:
        engine.load_weights(parts, state_dict, config, args.get("origin") or "copied weights")
    return {"run": parts.run.key, "state": parts.run.state(), "engine": engine.engine_id}


def owned(engine: Engine, args) -> dict:
    """How many private runs this owner has in this engine (the web tier adds every engine's)."""
    return {"runs": engine.owned(str(args.get("owner") or ""))}


def private_runs(engine: Engine, args) -> dict:
    """Every private run of this engine, for the teacher (the web tier checks who asks)."""
    return {"runs": engine.private_listing()}


def put_away(engine: Engine, args) -> dict:
    """The teacher puts a private run away: paused, recorded (its owner gets it back from its
    record) and freed (the web tier checks who asks)."""
    key = run_key(args)
    parts = engine.part(key)
    if parts.owner is None:
        raise UserError("the shared run cannot be put away: only private runs can")
    record = engine.close_run(key, "the teacher put it away: it was paused and recorded in the runs list (its owner gets "
                          "it back from its record)")
    return {"run": key, "record": record}


def present(engine: Engine, args) -> dict:
    """The web tier says which owners are connected now: their runs stay."""
    engine.owners_present(set(args.get("owners") or ()))
    return {}


# ---- live views ----------------------------------------------------------------------------------------

def watch(engine: Engine, args) -> dict:
    """Which streams of a run a web process's viewers watch (`watcher`: that web process;
    several may serve one run's viewers): frames are made for what any of them watches."""
    streams = {s for s in args.get("streams", []) if s in STREAMS}
    engine.set_watched(run_key(args), str(args.get("watcher", "local")), streams)
    return {"streams": sorted(streams)}


def neuron(engine: Engine, args) -> dict:
    pixels = pixels_array(args["pixels"]) if args.get("pixels") is not None else None
    return engine.part(run_key(args)).views.neuron(int(args["index"]), pixels)


# ---- the explainer ---------------------------------------------------------------------------------------

def forward(engine: Engine, args) -> dict:
    pixels = torch.from_numpy(pixels_array(args["pixels"]))
    model, weights = engine.part(run_key(args)).replica.network()  # one set of weights
    return {**explain.forward_steps(model, pixels, layer=args.get("layer", "hidden"),
                                    neuron=args.get("neuron"), top=int(args.get("top", 8))),
            "run_id": weights.run_id, "step": weights.step}


def code(engine: Engine, args) -> dict:
    parts = engine.part(run_key(args))
    config = parts.run.config
    try:  # the Keras code shows the live weights (not while a new setup is being built)
        live = exports.exported_weights(parts.replica.reader.latest(), config)
    except UserError:
        live = None
    return {"payload": codegen.code_payload(config, live), "source": codegen.model_code(config)}


def linear(engine: Engine, args) -> dict:
    if args.get("defaults"):
        return {"defaults": explain.SANDBOX_DEFAULTS, "max_size": explain.SANDBOX_MAX_SIZE,
                "max_abs": explain.SANDBOX_MAX_ABS, **explain.linear_sandbox(**explain.SANDBOX_DEFAULTS)}
    if args.get("random"):
        return explain.random_linear(args["in_features"], args["out_features"], args.get("seed"))
    return explain.linear_sandbox(args["x"], args["weight"], args["bias"])


# ---- evaluation and the data ----------------------------------------------------------------------------

def evaluation(engine: Engine, args) -> dict:
    return {"evaluation": engine.part(run_key(args)).evaluations.current().summary()}


def evaluation_cell(engine: Engine, args) -> dict:
    cells = engine.part(run_key(args)).evaluations.for_cell()
    return {"cell": cells.cell(int(args["actual"]), int(args["predicted"]))}


def dataset(engine: Engine, args) -> dict:
    return {"dataset": engine.browser.overview()}


def dataset_samples(engine: Engine, args) -> dict:
    offset = int(args.get("offset", 0))
    return {"offset": offset, "per_class": SAMPLES_PER_CLASS, "samples": engine.browser.samples(offset)}


# ---- the runs list (records) ------------------------------------------------------------------------------

def runs_list(engine: Engine, args) -> dict:
    return engine.runs_payload()


def runs_get(engine: Engine, args) -> dict:
    return {"run": engine.store.get(int(args["id"]))}


def may_change_record(engine: Engine, args) -> None:
    """Renaming and deleting a record: whoever controls the shared run may change any (the web
    tier checked, and sends no "owner"); a viewer who may not, only the records of its own runs."""
    if "owner" not in args:
        return
    record = int(args["id"])
    owner = engine.store.get(record, curves=False).get("owner")
    if owner is None or owner != args["owner"]:
        whose = "the shared run's" if owner is None else "someone else's"
        raise AccessError(f"run #{record} is {whose}: only {'the teacher' if owner is None else 'its owner or the teacher'} "
                          "can rename or delete it. You can rename and delete the runs of your own run.")


def runs_rename(engine: Engine, args) -> dict:
    may_change_record(engine, args)
    run = engine.store.rename(int(args["id"]), args["name"])
    engine.announce_runs()
    return {"run": run}


def runs_delete(engine: Engine, args) -> dict:
    may_change_record(engine, args)
    record = int(args["id"])
    engine.store.delete(record)
    for parts in list(engine.runs.values()):
        parts.recorder.forget(record)
    engine.announce_runs()
    return {}


def may_take_weights(args, saved: dict, record: int) -> None:
    """A private run's recorded weights (a download, a restore) go to its owner and the teacher
    (the web tier says which the asker is: "owner", "teacher"), as its live weights go only to
    whoever has its link; the shared run's records are everyone's."""
    owner = saved.get("owner")
    if owner is None or args.get("teacher") or args.get("owner") == owner:
        return
    raise AccessError(f"run #{record} is someone else's private run: only its owner (or the teacher) can take "
                      "its weights. You can overlay its curves.")


def runs_restore(engine: Engine, args) -> dict:
    record = int(args["id"])
    saved = engine.store.get(record, curves=False)
    may_take_weights(args, saved, record)
    step, data = engine.store.checkpoint(record)
    try:
        config, state_dict = recorded_weights(saved, data)
    except (CheckpointError, UserError) as err:
        raise RecordError(f"run #{record}'s saved weights cannot be used: {err}") from None
    parts = engine.controlled(args)
    state = engine.load_weights(parts, state_dict, config, f"restored from run #{record} at step {step}")
    which = "the shared run" if parts.owner is None else "your run"
    return {"state": state,
            "message": f"Restored run #{record} at step {step}: {which} restarted from its weights."}


def runs_checkpoint(engine: Engine, args) -> dict:
    record = int(args["id"])
    saved = engine.store.get(record, curves=False)
    may_take_weights(args, saved, record)
    step, data = engine.store.checkpoint(record)
    config = recorded_config(saved["config"])
    return {"data": data, "filename": checkpoint_name(config, step, record)}


# ---- checkpoints and export -------------------------------------------------------------------------------

def checkpoint(engine: Engine, args) -> dict:
    parts = engine.part(run_key(args))
    model, weights = parts.replica.network()
    return {"data": state_dict_bytes(model), "filename": checkpoint_name(parts.run.config, weights.step),
            "step": weights.step}


def load_checkpoint(engine: Engine, args) -> dict:
    data = args["data"]
    parts = engine.controlled(args)
    config = parts.run.config  # checked against, then applied: shapes cannot drift in between
    try:
        state_dict = load_state_dict_bytes(data, config)
    except CheckpointError as err:
        raise CheckpointError(f"Checkpoint refused: {str(err).rstrip('.')}. Nothing was changed.") from None
    state = engine.load_weights(parts, state_dict, config, "uploaded checkpoint")
    n = sum(t.numel() for t in state_dict.values())
    which = "the shared run" if parts.owner is None else "your run"
    return {"run_id": state["run_id"], "parameters": n, "state": state,
            "message": f"Loaded {n:,} weights: {which} restarted from them (idle, step 0)."}


def export(engine: Engine, args) -> dict:
    return {"source": script.export_source(engine.part(run_key(args)).run.config)}


def export_file(engine: Engine, args) -> dict:
    """The run's network as another framework's file (exports/): ONNX, Keras."""
    parts = engine.part(run_key(args))
    config = parts.run.config
    weights = exports.exported_weights(parts.replica.reader.latest(), config)
    kind = str(args.get("format"))
    data = exports.file_bytes(kind, weights, config)
    suffix, mimetype = exports.FORMATS[kind]
    return {"data": data, "mimetype": mimetype, "step": weights.step,
            "filename": checkpoint_name(config, weights.step).removesuffix(".pt") + "." + suffix}


# ---- the lesson (lesson.py), the replay (replay.py) and class polls (polls.py) -----------------------------

def lesson_context(engine: Engine, key: str, pixels=None) -> lesson.LessonContext:
    parts = engine.part(key)
    network, weights = parts.replica.network()
    record = parts.recorder.live_record_id if weights.run_id == parts.run.run_id else None
    return lesson.LessonContext(weights=weights, network=network, config=parts.run.config, state=parts.run.state(),
                                replay=parts.replay, dataset=engine.dataset,
                                pixels=pixels_array(pixels) if pixels is not None else None, record=record)


def lesson_steps(engine: Engine, args) -> dict:
    return {"steps": lesson.questions(engine.part(run_key(args)).run.config)}


def lesson_reveal(engine: Engine, args) -> dict:
    return {"reveal": lesson.reveal(int(args["step"]), lesson_context(engine, run_key(args), args.get("pixels")))}


def replay_frame(engine: Engine, args) -> dict:
    parts = engine.part(run_key(args))
    return {"frame": make_replay_frame(parts.replay, parts.views.snapshotter, parts.run.curve.copy(),
                                       int(args["step"]), parts.run.step_count)}


def replay_predict(engine: Engine, args) -> dict:
    return make_replay_prediction(engine.part(run_key(args)).replay, int(args["step"]), pixels_array(args["pixels"]))


def poll_open(engine: Engine, args) -> dict:
    number = int(args["step"])
    question = lesson.step_at(number).ask(engine.part().run.config)
    return {"poll": engine.polls.open({**question, "step": number})}


def poll_answer(engine: Engine, args) -> dict:
    # "voters": the keys the answerer is known by (web/polls.py); "voter": one key (the first protocol)
    voters = args["voters"] if isinstance(args.get("voters"), (list, tuple)) else str(args["voter"])
    return engine.polls.answer(voters, int(args["poll"]), int(args["choice"]))


def poll_reveal(engine: Engine, args) -> dict:
    pixels = args.get("pixels")
    return {"poll": engine.polls.reveal(lambda number: lesson.reveal(number, lesson_context(engine, SHARED, pixels)))}


def poll_close(engine: Engine, args) -> dict:
    return engine.polls.close()


def poll_get(engine: Engine, args) -> dict:
    return {"poll": engine.polls.current()}


# ---- watched runs: a script's own network (watched.py, server/watch_frames.py) ---------------------------

def watched_part(engine: Engine, args):
    """The watched run the script's command is about, if the script owns it."""
    parts = engine.controlled(args)
    if not isinstance(parts.run, WatchedRun):
        raise UserError(f"run {parts.run.key!r} is not a watched run")
    return parts


def _watch_checked(schema, payload):
    try:
        return schema.model_validate(payload)
    except ValidationError as err:
        raise UserError(describe_validation_error(err)) from None


def watch_open(engine: Engine, args) -> dict:
    owner = args.get("owner")
    if not isinstance(owner, str) or not owner:
        raise UserError("a watched run needs an owner")
    spec = _watch_checked(watch_frames.OpenRequest, args.get("spec"))
    engine.check_room_for(owner, int(args.get("held") or 0))
    config, why_not = watch_frames.chain_config(spec)
    chain, _ = watch_frames.predicting_chain(spec)  # the canvas predicts with it, whatever its input image
    parts = engine.add_watched_run(owner, spec, config, why_not, key=spec.resume, chain=chain)
    engine.announce_runs()
    return {"run": parts.run.key, "state": parts.run.state(), "engine": engine.engine_id}


def watch_steps(engine: Engine, args) -> dict:
    parts = watched_part(engine, args)
    body = _watch_checked(watch_frames.StepsRequest, {key: args[key] for key in ("run", "steps", "loss", "numbers")
                                                      if key in args})
    parts.run.receive_steps(body.steps, body.loss, body.numbers)
    return parts.run.control()


def watch_snapshot(engine: Engine, args) -> dict:
    parts = watched_part(engine, args)
    body = _watch_checked(watch_frames.SnapshotRequest, {key: args[key] for key in (
        "run", "step", "dtype", "final", "data", "scales", "delta", "base", "layers") if key in args})
    base = parts.run.weights_for_delta(body.base) if body.delta else None  # refused: "send whole weights"
    try:
        values = watch_frames.snapshot_values(body, parts.run.spec.layers, base)
    except ValueError as err:
        raise UserError(str(err)) from None
    arrays = watch_frames.split_layers(values, parts.run.spec.layers)
    histograms = {layer.path: {"activations": sent.activations and sent.activations.model_dump(),
                               "grads": sent.grads and sent.grads.model_dump()}
                  for layer, sent in zip(parts.run.spec.layers, body.layers)}
    parts.run.receive_snapshot(body.step, arrays, histograms, final=body.final, values=values,
                               based_on=body.base if body.delta else None)
    parts.run.keep_spread(body.step, arrays)  # each layer's distribution over training (watch:weights)
    if parts.run.chain is not None:
        with parts.run.between_steps():
            parts.replica.write()  # predictions with these weights at once (not at the replica's next turn)
    return parts.run.control()


def watch_weights(engine: Engine, args) -> dict:
    """A page asks for one Linear layer's weights picture of the watched run it shows."""
    parts = engine.part(run_key(args))
    if not isinstance(parts.run, WatchedRun):
        raise UserError("only a watched run (a script's own network) has pictures of each Linear layer")
    return {"picture": parts.run.weights_picture(int(args["layer"]))}


def watch_close(engine: Engine, args) -> dict:
    parts = watched_part(engine, args)
    return {"state": parts.run.finish()}


def watch_control(engine: Engine, args) -> dict:
    """What a held run's script may do next (it asks while the page holds it)."""
    return watched_part(engine, args).run.control()


COMMANDS: dict[str, Callable[[Engine, dict], dict]] = {
    "hello": hello,
    "state": state,
    "train:start": start,
    "train:pause": pause,
    "train:step": step,
    "train:reset": reset,
    "config:update": update_config,
    "pace:set": set_pace,
    "predict": predict,
    "run:create": create_run,
    "runs:present": present,
    "runs:owned": owned,
    "runs:private": private_runs,
    "run:put_away": put_away,
    "views:watch": watch,
    "inside:neuron": neuron,
    "explain:forward": forward,
    "explain:code": code,
    "linear": linear,
    "evaluate:get": evaluation,
    "evaluate:cell": evaluation_cell,
    "dataset:get": dataset,
    "dataset:samples": dataset_samples,
    "runs:list": runs_list,
    "runs:get": runs_get,
    "runs:rename": runs_rename,
    "runs:delete": runs_delete,
    "runs:restore": runs_restore,
    "runs:checkpoint": runs_checkpoint,
    "checkpoint:get": checkpoint,
    "checkpoint:load": load_checkpoint,
    "export": export,
    "export:file": export_file,
    "lesson:steps": lesson_steps,
    "lesson:reveal": lesson_reveal,
    "replay:frame": replay_frame,
    "replay:predict": replay_predict,
    "poll:open": poll_open,
    "poll:answer": poll_answer,
    "poll:reveal": poll_reveal,
    "poll:close": poll_close,
    "poll:get": poll_get,
    "watch:open": watch_open,
    "watch:steps": watch_steps,
    "watch:snapshot": watch_snapshot,
    "watch:close": watch_close,
    "watch:weights": watch_weights,
    "watch:control": watch_control,
}
