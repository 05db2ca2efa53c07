"""The nn.Linear explainer's web side: the generated code, the Linear sandbox and the forward
steps of a drawing. Translation only; the work is in server/explain.py.

HTTP: GET /api/code.py, GET /api/explain/code, GET|POST /api/linear, POST /api/linear/random.
Socket.IO: `explain:forward` (acknowledged, like every request).
"""
from __future__ import annotations

import logging
from typing import Annotated, Any, Optional

import torch
from flask import Flask, Response, jsonify, request
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from .. import explain
from ..config import ConfigError
from ..preprocess import PreprocessError, preprocess_pixels
from ..session import SessionError, TrainingSession
from .limits import throttle

# Per-viewer rates: the page sends at most one sandbox computation per edit (debounced) and one
# forward explanation per prediction; bursts leave room for fast typing.
SANDBOX_PER_SECOND, SANDBOX_BURST = 30.0, 60
FORWARD_PER_SECOND, FORWARD_BURST = 20.0, 40

log = logging.getLogger(__name__)

MAX = explain.SANDBOX_MAX_SIZE
Number = Annotated[float, Field(allow_inf_nan=False, ge=-explain.SANDBOX_MAX_ABS, le=explain.SANDBOX_MAX_ABS)]
Row = Annotated[list[Number], Field(min_length=1, max_length=MAX)]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class LinearRequest(Strict):
    x: list[Row] = Field(min_length=1, max_length=MAX)
    weight: list[Row] = Field(min_length=1, max_length=MAX)
    bias: list[Number] = Field(min_length=1, max_length=MAX)


class RandomLinearRequest(Strict):
    in_features: int = Field(ge=1, le=MAX)
    out_features: int = Field(ge=1, le=MAX)
    seed: Optional[int] = Field(None, ge=0, le=2**31 - 1)


class ForwardRequest(Strict):
    pixels: list[Any] = Field(max_length=784 * 4)  # checked by preprocess_pixels
    layer: str = Field("hidden", max_length=16)
    neuron: Optional[int] = Field(None, ge=0)
    top: int = Field(8, ge=1, le=explain.TOP_TERMS_MAX)


def describe(err: ValidationError) -> str:
    """Pydantic's errors with the place written as people index it: x[0][1]: ..."""
    parts = []
    for e in err.errors():
        where = ""
        for part in e["loc"]:
            where += f"[{part}]" if isinstance(part, int) else (f".{part}" if where else str(part))
        message = "unknown field" if e["type"] == "extra_forbidden" else e["msg"]
        if e["type"] in ("float_type", "int_type") and "input" in e:
            message += f", got {type(e['input']).__name__} {e['input']!r}"[:120]
        parts.append(f"{where or 'body'}: {message}")
    return "; ".join(parts)


def json_body(schema: type[BaseModel]):
    """The request's JSON validated by `schema`, or a 400 answer (tuple) that says why."""
    body = request.get_json(silent=True)
    if not isinstance(body, dict):
        return None, (jsonify({"error": "send a JSON object (Content-Type: application/json)"}), 400)
    try:
        return schema.model_validate(body), None
    except ValidationError as err:
        return None, (jsonify({"error": describe(err)}), 400)


def init_app(app: Flask, socketio, session: TrainingSession) -> None:
    @app.get("/api/code.py")
    def code_py():
        """The network on screen as a Python file (the current setup)."""
        return Response(explain.model_code(session.config), mimetype="text/x-python",
                        headers={"Content-Disposition": 'inline; filename="network.py"'})

    @app.get("/api/explain/code")
    def code_json():
        return jsonify(explain.code_payload(session.config))

    @app.get("/api/linear")
    def linear_defaults():
        """The question's example, computed, and the sandbox's limits."""
        return jsonify({"defaults": explain.SANDBOX_DEFAULTS, "max_size": MAX,
                        "max_abs": explain.SANDBOX_MAX_ABS,
                        **explain.linear_sandbox(**explain.SANDBOX_DEFAULTS)})

    @app.post("/api/linear")
    def linear():
        throttle("linear", SANDBOX_PER_SECOND, SANDBOX_BURST, "sandbox")
        body, refusal = json_body(LinearRequest)
        if refusal:
            return refusal
        try:
            return jsonify(explain.linear_sandbox(body.x, body.weight, body.bias))
        except explain.SandboxError as err:
            return jsonify({"error": str(err)}), 400

    @app.post("/api/linear/random")
    def linear_random():
        throttle("linear", SANDBOX_PER_SECOND, SANDBOX_BURST, "sandbox")
        body, refusal = json_body(RandomLinearRequest)
        if refusal:
            return refusal
        return jsonify(explain.random_linear(body.in_features, body.out_features, body.seed))

    @socketio.on("explain:forward")
    def on_forward(payload=None):
        try:
            throttle("explain", FORWARD_PER_SECOND, FORWARD_BURST, "explain:forward")
            if not isinstance(payload, dict):
                raise ConfigError("explain:forward needs an object: {\"pixels\": [784 numbers], \"neuron\": j}")
            try:
                body = ForwardRequest.model_validate(payload)
            except ValidationError as err:
                raise ConfigError(describe(err)) from None
            pixels = torch.as_tensor(preprocess_pixels(body.pixels))
            # Between training steps, so every number comes from one set of weights.
            model = session.with_model(lambda model, trainer: explain.snapshot(model))
            return {"ok": True, **explain.forward_steps(model, pixels, layer=body.layer,
                                                        neuron=body.neuron, top=body.top)}
        except (ConfigError, PreprocessError, SessionError, explain.ExplainError) as err:
            return {"ok": False, "error": str(err)}
        except Exception:  # keep serving; the log has the traceback
            log.exception("explain:forward failed")
            return {"ok": False, "error": "internal error while explaining (see the server log)"}
