"""Evaluate, compare and keep: the web side of evaluation, the dataset browser, runs,
checkpoints, export and setup links. Translates events and requests into calls on
server/evaluation.py, server/runs.py and server/checkpoints.py, and results into messages.

Socket.IO (answered by acknowledgement, see docs/protocol.md):
  evaluate:get, evaluate:cell, dataset:get, dataset:samples,
  runs:list, runs:get, runs:rename, runs:delete, runs:restore, setup:link
Broadcasts: `evaluation` (each epoch end, and after a checkpoint is loaded), `runs` (the list
changed). HTTP: GET/POST /api/checkpoint, GET /api/runs/<id>/checkpoint, GET /api/export.py,
GET /api/setup.
"""
from __future__ import annotations

import io
import re
import threading
import time
from typing import Optional
from urllib.parse import parse_qsl

from flask import Flask, jsonify, request, send_file
from pydantic import Field
from werkzeug.exceptions import RequestEntityTooLarge

from ..checkpoints import (MAX_CHECKPOINT_BYTES, CheckpointError, export_source, load_state_dict_bytes,
                           read_state_dict, check_fits, state_dict_bytes)
from ..config import ConfigError, TrainConfig
from ..evaluation import DatasetBrowser, Evaluation, SAMPLES_PER_CLASS
from ..runs import MAX_RUN_ID, NAME_MAX, RunError, RunRecorder, RunStore
from ..session import TrainingSession
from .events import answered, parse
from .schemas import Strict
from .setup_link import LinkError, config_from_query, config_to_query

from .access import require_control  # who may change the shared run

RUNS_BROADCAST_INTERVAL_S = 1.0  # the runs list goes out at most once a second
EVALUATION_INTERVAL_S = 1.0  # while a run trains, epoch-end evaluations at most this often
UPLOAD_CONTENT_TYPE = "application/octet-stream"


class LinkRequest(Strict):
    query: str = Field(max_length=4000)  # the page's location.search, "?hidden=256&..."


class CellRequest(Strict):
    actual: int = Field(ge=0, le=9)
    predicted: int = Field(ge=0, le=9)


class SamplesRequest(Strict):
    offset: int = Field(0, ge=0, le=1_000_000)


class RunRequest(Strict):
    id: int = Field(ge=1, le=MAX_RUN_ID)


class RenameRequest(Strict):
    id: int = Field(ge=1, le=MAX_RUN_ID)
    name: str = Field(min_length=1, max_length=NAME_MAX * 2)


class Evaluations:
    """The latest evaluation of the shared run (one at a time; a new run replaces it)."""

    def __init__(self, session: TrainingSession):
        self.session = session
        self._latest: Optional[Evaluation] = None
        self._lock = threading.Lock()

    def set(self, evaluation: Evaluation) -> Evaluation:
        with self._lock:
            self._latest = evaluation
        return evaluation

    def evaluate_now(self) -> Evaluation:
        session = self.session
        validation = session.dataset.validation

        def evaluate(model, trainer):
            return Evaluation.of(model, validation.images, validation.labels, run_id=session.run_id,
                                 epoch=trainer.epoch, step=trainer.global_step)
        return self.set(session.with_model(evaluate))

    def current(self) -> Evaluation:
        """The latest evaluation of the run under way: refreshed each epoch while it runs; taken
        now when there is none for this run, or the run is paused elsewhere than where it was taken."""
        session = self.session
        with self._lock:
            latest = self._latest
        if latest is not None and latest.run_id == session.run_id and (
                session.status == "running" or latest.step == session.trainer.global_step):
            return latest
        return self.evaluate_now()

    def for_cell(self) -> Evaluation:
        with self._lock:
            latest = self._latest
        if latest is not None and latest.run_id == self.session.run_id:
            return latest
        return self.current()


class Throttled:
    """Call `fn` at most every `interval` seconds; a call in between is done at the end of it."""

    def __init__(self, fn, interval: float):
        self.fn = fn
        self.interval = interval
        self._last = 0.0
        self._timer: Optional[threading.Timer] = None
        self._lock = threading.Lock()

    def __call__(self) -> None:
        with self._lock:
            if self._timer is not None:
                return  # already due
            wait = self._last + self.interval - time.monotonic()
            if wait > 0:
                self._timer = threading.Timer(wait, self._fire)
                self._timer.daemon = True
                self._timer.start()
                return
            self._last = time.monotonic()
        self.fn()

    def _fire(self) -> None:
        with self._lock:
            self._timer = None
            self._last = time.monotonic()
        self.fn()


def safe_filename_part(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", text).strip("-")[:60] or "run"


def checkpoint_name(config: TrainConfig, step: int, run: Optional[int] = None) -> str:
    hidden = "-".join(str(n) for n in config.hidden_sizes)
    prefix = f"run{run}-" if run else ""
    return safe_filename_part(f"nn-linear-{prefix}784-{hidden}-10-{config.activation}-step{step}") + ".pt"


def init_app(app: Flask, socketio, session: TrainingSession) -> None:
    settings = app.config["SETTINGS"]
    store = RunStore(settings.data_dir)
    evaluations = Evaluations(session)
    browser = DatasetBrowser(session.dataset)

    def runs_payload() -> dict:
        return {"runs": store.list(), "live_run": recorder.live_record_id}

    broadcast_runs = Throttled(lambda: socketio.emit("runs", runs_payload()), RUNS_BROADCAST_INTERVAL_S)
    recorder = RunRecorder(store, session, on_change=broadcast_runs)
    app.extensions["playground"].update({"runs": store, "run_recorder": recorder, "evaluations": evaluations})

    last_evaluated_at = [float("-inf")]

    def on_epoch(session, record, predictions):
        # In the training thread, under the session's lock: the model is between steps.
        # At full speed an epoch ends every ~0.25 s: while running, evaluate (~13 ms) and send
        # (~30 kB to each viewer) at most once a second; the last epoch and manual steps always.
        now = time.monotonic()
        if (session.status == "running" and not session.trainer.finished
                and now - last_evaluated_at[0] < EVALUATION_INTERVAL_S):
            return
        last_evaluated_at[0] = now
        validation = session.dataset.validation
        evaluation = evaluations.set(Evaluation.of(
            session.trainer.model, validation.images, validation.labels, run_id=session.run_id,
            epoch=record["epoch"], step=record["step"], predictions=predictions, at_epoch_end=True))
        socketio.emit("evaluation", evaluation.summary())

    session.epoch_hooks.append(on_epoch)

    def load_weights(state_dict, config: TrainConfig, origin: str) -> dict:
        """A new shared run from these weights; tell every viewer (state, evaluation, runs)."""
        state = session.start_from_weights(state_dict, config.model_dump(), origin)
        recorder.set_origin(state["run_id"], origin)
        socketio.emit("evaluation", evaluations.evaluate_now().summary())
        broadcast_runs()
        return state

    # ---- Socket.IO -----------------------------------------------------------------------
    @socketio.on("evaluate:get")
    @answered
    def on_evaluate_get(payload=None):
        return {"evaluation": evaluations.current().summary()}

    @socketio.on("evaluate:cell")
    @answered
    def on_evaluate_cell(payload=None):
        cell = parse(CellRequest, payload)
        return {"cell": evaluations.for_cell().cell(cell.actual, cell.predicted)}

    @socketio.on("dataset:get")
    @answered
    def on_dataset_get(payload=None):
        return {"dataset": browser.overview()}

    @socketio.on("dataset:samples")
    @answered
    def on_dataset_samples(payload=None):
        page = parse(SamplesRequest, payload, optional=True)
        return {"offset": page.offset, "per_class": SAMPLES_PER_CLASS, "samples": browser.samples(page.offset)}

    @socketio.on("runs:list")
    @answered
    def on_runs_list(payload=None):
        return runs_payload()

    @socketio.on("runs:get")
    @answered
    def on_runs_get(payload=None):
        return {"run": store.get(parse(RunRequest, payload).id)}

    @socketio.on("runs:rename")
    @answered
    def on_runs_rename(payload=None):
        require_control()
        rename = parse(RenameRequest, payload)
        run = store.rename(rename.id, rename.name)
        broadcast_runs()
        return {"run": run}

    @socketio.on("runs:delete")
    @answered
    def on_runs_delete(payload=None):
        require_control()
        run_id = parse(RunRequest, payload).id
        store.delete(run_id)
        recorder.forget(run_id)
        broadcast_runs()
        return {}

    @socketio.on("runs:restore")
    @answered
    def on_runs_restore(payload=None):
        require_control()
        run_id = parse(RunRequest, payload).id
        run = store.get(run_id, curves=False)
        step, data = store.checkpoint(run_id)
        config = TrainConfig.model_validate({**session.config.model_dump(), **run["config"],
                                             "steps_per_second": session.config.steps_per_second})
        try:
            state_dict = check_fits(read_state_dict(data), config)
        except CheckpointError as err:
            raise RunError(f"run #{run_id}'s saved weights cannot be used: {err}") from None
        state = load_weights(state_dict, config, f"restored from run #{run_id} at step {step}")
        return {"state": state, "message": f"Restored run #{run_id} at step {step}: the shared run restarted from its weights."}

    @socketio.on("setup:link")
    @answered
    def on_setup_link(payload=None):
        # The page asks over the socket (a refusal is an answer, not a failed HTTP load).
        link = parse(LinkRequest, payload)
        try:
            config, ignored = config_from_query(dict(parse_qsl(link.query.lstrip("?"), keep_blank_values=True)))
        except LinkError as err:
            raise ConfigError(str(err)) from None
        return {"config": config.model_dump(), "query": config_to_query(config), "ignored": ignored}

    # ---- HTTP ------------------------------------------------------------------------------
    def send_weights(data: bytes, name: str):
        response = send_file(io.BytesIO(data), mimetype="application/octet-stream", as_attachment=True,
                             download_name=name, max_age=0)
        response.headers["Cache-Control"] = "no-store"
        return response

    @app.get("/api/checkpoint")
    def download_checkpoint():
        def save(model, trainer):
            return state_dict_bytes(model), trainer.config, trainer.global_step
        data, config, step = session.with_model(save)
        return send_weights(data, checkpoint_name(config, step))

    @app.get("/api/runs/<int:run_id>/checkpoint")
    def download_run_checkpoint(run_id: int):
        try:
            run = store.get(run_id, curves=False)
            step, data = store.checkpoint(run_id)
        except RunError as err:
            return jsonify({"error": str(err)}), 404
        config = TrainConfig.model_validate(run["config"])
        return send_weights(data, checkpoint_name(config, step, run=run_id))

    @app.post("/api/checkpoint")
    def upload_checkpoint():
        require_control()
        if request.mimetype != UPLOAD_CONTENT_TYPE:
            # A type a cross-site form cannot send: another site's page cannot swap the weights.
            return jsonify({"error": (
                f"send the .pt file itself as the request body with Content-Type: {UPLOAD_CONTENT_TYPE} "
                "(e.g. curl --data-binary @model.pt -H 'Content-Type: application/octet-stream' .../api/checkpoint)")}), 415
        request.max_content_length = MAX_CHECKPOINT_BYTES
        try:
            data = request.get_data(cache=False)
        except RequestEntityTooLarge:
            return jsonify({"error": (
                f"the file is too big: the limit is {MAX_CHECKPOINT_BYTES:,} bytes (the biggest network "
                "the playground builds needs about 57 MB)")}), 413
        config = session.config  # checked against, then applied: shapes cannot drift in between
        try:
            state_dict = load_state_dict_bytes(data, config)
        except CheckpointError as err:
            return jsonify({"error": f"Checkpoint refused: {str(err).rstrip('.')}. Nothing was changed."}), 400
        state = load_weights(state_dict, config, "uploaded checkpoint")
        n = sum(t.numel() for t in state_dict.values())
        return jsonify({"ok": True, "run_id": state["run_id"], "parameters": n,
                        "message": f"Loaded {n:,} weights: the shared run restarted from them (idle, step 0)."})

    @app.get("/api/export.py")
    def export_python():
        source = export_source(session.config, filename="model.pt")
        response = send_file(io.BytesIO(source.encode()), mimetype="text/x-python", as_attachment=True,
                             download_name="nn_linear_playground.py", max_age=0)
        response.headers["Cache-Control"] = "no-store"
        return response

    @app.get("/api/setup")
    def read_setup_link():
        try:
            config, ignored = config_from_query(request.args)
        except LinkError as err:
            return jsonify({"error": str(err)}), 400
        return jsonify({"config": config.model_dump(), "query": config_to_query(config), "ignored": ignored})
