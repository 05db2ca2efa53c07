"""Socket.IO events: translate messages into session calls and results into answers.

Every handler answers by acknowledgement: {"ok": true, ...} or {"ok": false, "error": words}.
A bad payload changes nothing.
"""
from __future__ import annotations

import logging
from functools import wraps

from flask import request
from flask_socketio import SocketIO, emit
from pydantic import BaseModel, ValidationError

from ..config import ConfigError, describe_validation_error
from ..preprocess import PreprocessError, preprocess_canvas, preprocess_pixels
from ..session import SessionError, TrainingSession
from .access import remember_auth, require_control
from .limits import answer_inline, throttle_predict
from .schemas import ConfigRequest, PredictRequest, StepRequest

log = logging.getLogger(__name__)
EXPECTED_ERRORS = (ConfigError, SessionError, PreprocessError)


def parse(schema: type[BaseModel], payload, *, optional: bool = False):
    """Validate a payload against `schema`; a missing payload means defaults if optional."""
    if payload is None and optional:
        payload = {}
    if not isinstance(payload, dict):
        raise ConfigError(f"payload must be an object, got {type(payload).__name__}")
    try:
        return schema.model_validate(payload)
    except ValidationError as err:
        raise ConfigError(describe_validation_error(err)) from None


def answered(handler):
    """Turn a handler's result or expected error into the acknowledgement."""
    @wraps(handler)
    def wrapper(*args):
        try:
            return {"ok": True, **handler(*args)}
        except EXPECTED_ERRORS as err:
            return {"ok": False, "error": str(err)}
        except Exception:  # keep serving; the log has the traceback
            log.exception("handler %s failed", handler.__name__)
            return {"ok": False, "error": "internal error while handling the request (see the server log)"}
    return wrapper


def pixels_from(body: PredictRequest):
    if body.image is not None:
        image = body.image
        return preprocess_canvas(image.width, image.height, image.data)
    return preprocess_pixels(body.pixels)


def init_app(socketio: SocketIO, session: TrainingSession, connect_hooks: list) -> None:
    """`connect_hooks`: callables(sid) that feature modules add to greet a new viewer."""
    # Broadcasts from the session (training thread or a handler) go to every viewer.
    session.subscribe(lambda event, payload: socketio.emit(event, payload))

    @socketio.on("connect")
    def on_connect(auth=None):
        remember_auth(auth)  # the control token, if this viewer gave one
        # A late joiner gets the whole run so far (config, status, curve history) at once.
        emit("state", session.state())
        for hook in list(connect_hooks):
            hook(request.sid)

    @answered
    def on_predict(environ, payload=None):
        throttle_predict(environ)
        body = parse(PredictRequest, payload)
        return session.predict(pixels_from(body))

    # Every drawing of every viewer: answered in the connection's thread (limits.answer_inline).
    answer_inline(socketio, "predict", on_predict)

    @socketio.on("train:start")
    @answered
    def on_start(payload=None):
        require_control()
        body = parse(ConfigRequest, payload, optional=True)
        return {"state": session.start(body.config)}

    @socketio.on("train:pause")
    @answered
    def on_pause(payload=None):
        require_control()
        return {"state": session.pause()}

    @socketio.on("train:step")
    @answered
    def on_step(payload=None):
        require_control()
        body = parse(StepRequest, payload, optional=True)
        return {"state": session.step(body.batches)}

    @socketio.on("train:reset")
    @answered
    def on_reset(payload=None):
        require_control()
        body = parse(ConfigRequest, payload, optional=True)
        return {"state": session.reset(body.config)}

    @socketio.on("config:update")
    @answered
    def on_config_update(payload=None):
        require_control()
        if not isinstance(payload, dict) or not payload:
            raise ConfigError("config:update needs an object of setup fields to change, e.g. {\"lr\": 0.01}")
        return {"state": session.update_config(payload)}

    @socketio.on_error_default
    def on_error(err):  # pragma: no cover - answered() catches what handlers raise
        log.exception("socket event failed: %s", err)
