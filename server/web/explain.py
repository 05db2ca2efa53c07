"""The nn.Linear explainer's web side: the generated code, the Linear sandbox and the forward
steps of a drawing. Translation only; the work is in the engine (server/engine/explain.py,
server/engine/codegen.py).

HTTP: GET /api/code.py, GET /api/explain/code, GET|POST /api/linear, POST /api/linear/random.
Socket.IO: `explain:forward` (relayed to the engine: web/relays.py).
"""
from __future__ import annotations

from typing import Annotated, Optional

from flask import Flask, Response, jsonify, request
from pydantic import BaseModel, Field

from ..errors import UserError
from .viewers import current_run
from .answers import parse
from .limits import throttle
from .schemas import Strict

# Per-viewer rates: the page sends at most one sandbox computation per edit (debounced); bursts
# leave room for fast typing.
SANDBOX_PER_SECOND, SANDBOX_BURST = 30.0, 60

# The sandbox's bounds (the engine's explain.SANDBOX_MAX_SIZE / SANDBOX_MAX_ABS, checked here
# before anything is sent to it).
MAX = 8
MAX_ABS = 1e6
Number = Annotated[float, Field(allow_inf_nan=False, ge=-MAX_ABS, le=MAX_ABS)]
Row = Annotated[list[Number], Field(min_length=1, max_length=MAX)]


class LinearRequest(Strict):
    x: list[Row] = Field(min_length=1, max_length=MAX)
    weight: list[Row] = Field(min_length=1, max_length=MAX)
    bias: list[Number] = Field(min_length=1, max_length=MAX)


class RandomLinearRequest(Strict):
    in_features: int = Field(ge=1, le=MAX)
    out_features: int = Field(ge=1, le=MAX)
    seed: Optional[int] = Field(None, ge=0, le=2**31 - 1)


def json_body(schema: type[BaseModel]):
    """The request's JSON validated by `schema` (a UserError in words when it is not)."""
    body = request.get_json(silent=True)
    if not isinstance(body, dict):
        raise UserError("send a JSON object (Content-Type: application/json)")
    return parse(schema, body)


def init_app(app: Flask, playground) -> None:
    @app.get("/api/code.py")
    def code_py():
        """The network on screen as a Python file (the current setup)."""
        return Response(playground.request("explain:code", {"run": current_run()})["source"], mimetype="text/x-python",
                        headers={"Content-Disposition": 'inline; filename="network.py"'})

    @app.get("/api/explain/code")
    def code_json():
        return jsonify(playground.request("explain:code", {"run": current_run()})["payload"])

    @app.get("/api/linear")
    def linear_defaults():
        """The question's example, computed, and the sandbox's limits."""
        return jsonify(playground.request("linear", {"defaults": True}))

    @app.post("/api/linear")
    def linear():
        throttle("linear", SANDBOX_PER_SECOND, SANDBOX_BURST, "sandbox")
        body = json_body(LinearRequest)
        return jsonify(playground.request("linear", body.model_dump()))

    @app.post("/api/linear/random")
    def linear_random():
        throttle("linear", SANDBOX_PER_SECOND, SANDBOX_BURST, "sandbox")
        body = json_body(RandomLinearRequest)
        return jsonify(playground.request("linear", {"random": True, **body.model_dump()}))
