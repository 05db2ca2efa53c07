"""The spine: health, predictions and setup links (the page and its assets: assets.py; the
run's controls, relayed to the engine: relays.py). The engine's messages become broadcasts.

Every handler answers by acknowledgement: {"ok": true, ...} or {"ok": false, "error": words}.
A bad payload changes nothing. `predict` is answered here, in the connection's own thread,
from the weights replica (server/link/replica.py): it never waits for training.
"""
from __future__ import annotations

import logging
from urllib.parse import parse_qsl

from flask import Flask, jsonify, request
from flask_socketio import emit
from pydantic import Field

from ..errors import EngineUnavailable, UserError
from ..experiment import ConfigError, LinkError, config_from_query, config_to_query
from ..link.arrays import decode_prediction, float32_bytes
from ..link.names import SHARED, run_room
from ..link.replica import forward
from ..preprocess import model_input, preprocess_canvas, preprocess_pixels
from .access import remember_auth
from .answers import answered, parse, rounded
from .framing import security_headers
from .limits import throttle_predict
from .viewers import run_of_environ
from .schemas import PredictRequest, Strict

log = logging.getLogger(__name__)

SECURITY_HEADERS = {
    # No inline script anywhere; Plotly injects <style> elements, hence style-src 'unsafe-inline'.
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
        "img-src 'self' data: blob:; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; "
        "form-action 'self'"),
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
}
NOT_READY = "the network is not ready yet (the training engine is starting); the drawing will be answered in a moment"
# The shared run's broadcasts, as the engine sends them (docs/protocol.md).
BROADCAST_TOPICS = ("state", "metrics", "epoch")


class LinkRequest(Strict):
    query: str = Field(max_length=4000)  # the page's location.search, "?hidden=256&..."


def pixels_from(body: PredictRequest):
    if body.image is not None:
        image = body.image
        return preprocess_canvas(image.width, image.height, image.data)
    return preprocess_pixels(body.pixels)


def remote_trace(playground, run: str, pixels) -> tuple:
    """A prediction asked of the engine holding `run` (its replica is on another machine):
    (the pass, run id, step, the input image its network reads or None)."""
    answer = playground.request("predict", {"run": run, "pixels": float32_bytes(pixels)})
    image = answer.get("image")
    return (*decode_prediction(answer), tuple(image) if image else None)


# The input the network saw goes back with the answer up to this many values (a 64×64 colour
# image); a larger one is said by its shape alone.
MAX_SHOWN_INPUT = 3 * 64 * 64


def predict_answer(playground, pixels, run: str = SHARED) -> dict:
    """The live network's answer for one drawing (784 pixels), from the run's replica: a
    network that reads another image is given the drawing resampled to it (model_input)."""
    replica = playground.replica_of(run)
    weights = replica.latest() if replica is not None else None
    if weights is not None:
        image = weights.image
        seen = model_input(pixels, image)
        trace, run_id, step = forward(weights, seen), weights.run_id, weights.step
    elif run == SHARED and not playground.engines_elsewhere:
        raise EngineUnavailable(NOT_READY)
    else:  # a private run's engine, or (--redis) one whose replica is on another machine
        trace, run_id, step, image = remote_trace(playground, run, pixels)
        seen = model_input(pixels, image)  # what the engine gave its network, for the page to show
    probabilities, logits, pixels_in, *hidden_layers = rounded(
        trace.probabilities, trace.logits, pixels, *trace.activations)
    answer = {
        "prediction": int(trace.probabilities.argmax()),
        "probabilities": probabilities,
        "logits": logits,
        "hidden": hidden_layers[0] if hidden_layers else [],
        "hidden_layers": hidden_layers,
        "input": pixels_in,
        # which weights answered: the run and the training step they are from
        "run_id": run_id,
        "step": step,
    }
    if seen is not pixels:  # resampled: the drawing as the network saw it, its shape and (small) its values
        answer["model_input"] = {"shape": list(image),
                                 "values": rounded(seen)[0] if seen.size <= MAX_SHOWN_INPUT else None}
    return answer


def setup_from_link(query: str) -> dict:
    try:
        config, ignored = config_from_query(dict(parse_qsl(query.lstrip("?"), keep_blank_values=True)))
    except LinkError as err:
        raise ConfigError(str(err)) from None
    return {"config": config.model_dump(), "query": config_to_query(config), "ignored": ignored}


def init_app(app: Flask, playground) -> None:
    socketio = playground.socketio
    # ---- HTTP ---------------------------------------------------------------------------
    @app.after_request
    def add_security_headers(response):
        # One run's read-only view may be framed by the --frame-ancestors pages (framing.py).
        headers = security_headers(SECURITY_HEADERS, request.path, request.args, playground.settings.frame_ancestors)
        for name, value in headers.items():
            response.headers.setdefault(name, value)
        return response

    @app.get("/healthz")
    def healthz():
        """Answered by the web tier alone, at once, whatever the engine is doing."""
        state = playground.latest_state or {}
        engine = playground.engine
        # --redis --role all: this machine's engines, and any that is missing (being restarted)
        missing_of = getattr(playground.local_engines, "missing", None)
        missing = missing_of() if missing_of is not None else []
        local = {"engines": {"expected": len(playground.local_engines), "missing": missing}} \
            if missing_of is not None else {}
        return jsonify({
            "status": "ok" if engine.status == "up" and not missing else "degraded",
            **local,
            "engine": {"status": engine.status, "reason": engine.reason, "restarts": engine.restarts},
            "training": state.get("status"),
            "step": state.get("step"),
            "device": state.get("device"),
            "dataset": state.get("dataset"),
            "model": state.get("model"),
        })

    @app.get("/api/setup")
    def read_setup_link():
        try:
            config, ignored = config_from_query(request.args)
        except LinkError as err:
            return jsonify({"error": str(err)}), 400
        return jsonify({"config": config.model_dump(), "query": config_to_query(config), "ignored": ignored})

    # ---- the engine's messages and status --------------------------------------------------
    def broadcast(message):  # a run's news, to its watchers
        # ignore_queue: with --redis every web process hears the engines and tells its own viewers
        socketio.emit(message["topic"], message["payload"], to=run_room(message["run"]), ignore_queue=True)

    for topic in BROADCAST_TOPICS:
        playground.subscribe(topic, broadcast)

    def on_storage(message):
        if message["run"] == SHARED:
            playground.storage_problem = message["payload"]["problem"]
        socketio.emit("storage", message["payload"], to=run_room(message["run"]), ignore_queue=True)

    playground.subscribe("storage", on_storage)

    def on_engine_status(status: dict):
        socketio.emit("engine", status, ignore_queue=True)  # every web process tells its own viewers
        if status["status"] == "up":
            hello = playground.request("hello")
            try:
                if not playground.settings.predict_via_engine:
                    playground.replica.attach(hello["replica"])
            except FileNotFoundError:  # the engine is on another machine: predictions ask it
                playground.replica.attach(None)
            playground.latest_state = hello["state"]
            playground.store_notices = hello.get("store_notices") or []
            playground.storage_problem = hello.get("storage_problem")
            if status["restarts"]:  # the shared run's pages resync from the new engine
                socketio.emit("state", hello["state"], to=run_room(SHARED), ignore_queue=True)

    playground.on_engine_status.append(on_engine_status)

    # ---- Socket.IO ------------------------------------------------------------------------
    @socketio.on("connect")
    def on_connect(auth=None):
        remember_auth(auth)  # the control token, if this viewer gave one, and what it asks for
        refused = playground.place_viewer(request.sid)  # whose run it watches (auth {"run": key})
        # A late joiner gets the whole run so far (config, status, curve history) at once.
        try:
            run = playground.viewers.run_of(request.sid)
            emit("state", playground.request("state", {"run": run})["state"], ignore_queue=True)
            if run != SHARED:
                emit("run", playground.describe_run(request.sid, run), ignore_queue=True)
        except EngineUnavailable:
            if playground.latest_state is not None:
                emit("state", playground.latest_state, ignore_queue=True)
        engine = playground.engine
        if engine.status != "up":
            emit("engine", {"status": engine.status, "reason": engine.reason, "restarts": engine.restarts}, ignore_queue=True)
        if refused:
            emit("run:unavailable", {"reason": refused}, ignore_queue=True)
        if playground.storage_problem:
            emit("storage", {"problem": playground.storage_problem}, ignore_queue=True)
        for hook in list(playground.on_connect):
            hook(request.sid)

    @answered
    def on_predict(environ, payload=None):
        throttle_predict(environ)
        body = parse(PredictRequest, payload)
        return predict_answer(playground, pixels_from(body), run_of_environ(environ))

    # Every drawing of every viewer: answered in the connection's thread (web/transport.py).
    playground.inline_events["predict"] = on_predict

    @socketio.on("setup:link")
    @answered
    def on_setup_link(payload=None):
        # The page asks over the socket (a refusal is an answer, not a failed HTTP load).
        return setup_from_link(parse(LinkRequest, payload).query)

    @socketio.on_error_default
    def on_error(err):  # pragma: no cover - answered() catches what handlers raise
        log.exception("socket event failed: %s", err)


__all__ = ["init_app", "predict_answer", "pixels_from", "UserError"]
