"""Class polls, the web side: who may open, reveal and close (whoever may control the shared
run, as for train:*), an anonymous id per connection for the one-answer-per-viewer rule (made
here, passed to the engine, never sent to anyone), and the engine's `poll` messages fanned out.

The poll itself lives in the engine (server/engine/polls.py), so several web processes can
serve one class. Socket.IO, relayed to the engine (web/relays.py; docs/protocol.md, "Class polls"):
  poll:open {step}, poll:reveal {pixels?}, poll:close (control), poll:answer {poll, choice}, poll:get
Broadcasts: `poll` to every viewer ({"poll": ... or null}; the counts only once revealed),
`poll:results` to the viewers who may control (the counts as answers arrive).
"""
from __future__ import annotations

import secrets
from typing import Optional

from flask import Flask, request
from flask_socketio import join_room

from ..errors import UserError
from .access import access_level

VOTER_KEY = "playground.poll_voter"  # the connection's anonymous id, in its WSGI environ
RESULTS_ROOM = "poll:results"  # the viewers who may control see the answers arrive


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
