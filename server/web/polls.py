"""Class polls, the web side: who may open, reveal and close (whoever may control the shared
run, as for train:*), an anonymous id per connection for the one-answer-per-viewer rule (made
here, passed to the engine, never sent to anyone), and the engine's `poll` messages fanned out.

The poll itself lives in the engine (server/engine/polls.py), so several web processes can
serve one class. Socket.IO, answered by acknowledgement (docs/protocol.md, "Class polls"):
  poll:open {step}, poll:reveal {pixels?}, poll:close (control), poll:answer {poll, choice}, poll:get
Broadcasts: `poll` to every viewer ({"poll": ... or null}; the counts only once revealed),
`poll:results` to the viewers who may control (the counts as answers arrive).
"""
from __future__ import annotations

import secrets
from typing import Any, Optional

from flask import Flask, request
from flask_socketio import join_room
from pydantic import Field

from ..errors import UserError
from ..preprocess import preprocess_pixels
from .access import access_level, require_control
from .answers import answered, parse
from .inside import float32_bytes
from .limits import throttle
from .schemas import Strict

VOTER_KEY = "playground.poll_voter"  # the connection's anonymous id, in its WSGI environ
RESULTS_ROOM = "poll:results"  # the viewers who may control see the answers arrive
MAX_STEP = 50
ANSWERS_PER_SECOND, ANSWERS_BURST = 2.0, 5
REVEALS_PER_SECOND, REVEALS_BURST = 1.0, 3


class OpenRequest(Strict):
    step: int = Field(ge=1, le=MAX_STEP)


class AnswerRequest(Strict):
    poll: int = Field(ge=1, le=2**53)
    choice: int = Field(ge=0, le=63)


class RevealRequest(Strict):
    pixels: Optional[list[Any]] = Field(None, max_length=784 * 4)  # the teacher's drawing, if the step needs one


def public(poll: Optional[dict]) -> Optional[dict]:
    """What every viewer sees: an open poll without its counts (nobody answers by the crowd)."""
    if poll is None or poll["status"] != "open":
        return poll
    return {key: value for key, value in poll.items() if key not in ("counts", "answers")}


def voter() -> str:
    """This connection's anonymous id (made at connect)."""
    environ = request.environ
    if VOTER_KEY not in environ:
        environ[VOTER_KEY] = secrets.token_hex(12)
    return environ[VOTER_KEY]


def init_app(app: Flask, playground) -> None:
    socketio = playground.socketio
    shown = {"key": None}  # (id, status) of the poll every viewer was last sent

    def on_poll(message):
        poll = message["payload"]["poll"]
        key = None if poll is None else (poll["id"], poll["status"])
        if key != shown["key"]:
            shown["key"] = key
            # (every web process hears the engine's poll message: each tells its own viewers)
            socketio.emit("poll", {"poll": public(poll)}, ignore_queue=True)
        if poll is not None:
            socketio.emit("poll:results", {"poll": poll}, to=RESULTS_ROOM, ignore_queue=True)

    playground.subscribe("poll", on_poll)

    def greet(sid):
        voter()
        if access_level()["control"]:
            join_room(RESULTS_ROOM, sid=sid, namespace="/")
        try:
            poll = playground.request("poll:get")["poll"]
        except UserError:
            return  # the engine is starting: the poll comes with its next message
        if poll is not None:
            socketio.emit("poll", {"poll": public(poll)}, to=sid, ignore_queue=True)
            if access_level()["control"]:
                socketio.emit("poll:results", {"poll": poll}, to=sid, ignore_queue=True)

    playground.on_connect.append(greet)

    @socketio.on("poll:open")
    @answered
    def on_open(payload=None):
        require_control()
        body = parse(OpenRequest, payload)
        return playground.request("poll:open", {"step": body.step})

    @socketio.on("poll:answer")
    @answered
    def on_answer(payload=None):
        throttle("poll-answer", ANSWERS_PER_SECOND, ANSWERS_BURST, "poll answer")
        body = parse(AnswerRequest, payload)
        return playground.request("poll:answer", {"voter": voter(), "poll": body.poll, "choice": body.choice})

    @socketio.on("poll:reveal")
    @answered
    def on_reveal(payload=None):
        require_control()
        throttle("poll-reveal", REVEALS_PER_SECOND, REVEALS_BURST, "poll reveal")
        body = parse(RevealRequest, payload, optional=True)
        args = {"pixels": float32_bytes(preprocess_pixels(body.pixels))} if body.pixels is not None else {}
        return playground.request("poll:reveal", args, timeout=30.0)

    @socketio.on("poll:close")
    @answered
    def on_close(payload=None):
        require_control()
        return playground.request("poll:close")

    @socketio.on("poll:get")
    @answered
    def on_get(payload=None):
        answer = playground.request("poll:get")
        poll = answer["poll"]
        return {"poll": poll if access_level()["control"] else public(poll)}
