"""Class polls, the web side: who may open, reveal and close (whoever may control the shared
run, as for train:*), who answers as the engine counts it (one answer per viewer secret and per
address: the keys made here, passed to the engine, never sent to anyone), an open poll's answer
kept from those who may not control until the teacher reveals it, and the engine's `poll`
messages fanned out.

The poll itself lives in the engine (server/engine/polls.py), so several web processes can
serve one class. Socket.IO, relayed to the engine (web/relays.py; docs/protocol.md, "Class polls"):
  poll:open {step}, poll:reveal {pixels?}, poll:close (control), poll:answer {poll, choice}, poll:get
Broadcasts: `poll` to every viewer ({"poll": ... or null}; the counts only once revealed),
`poll:results` to the viewers who may control (the counts as answers arrive).
"""
from __future__ import annotations

import hashlib
import ipaddress
from typing import Optional

from flask import Flask, request
from flask_socketio import join_room

from ..errors import AccessError, UserError
from .access import access_level, client_address

RESULTS_ROOM = "poll:results"  # the viewers who may control see the answers arrive


def public(poll: Optional[dict]) -> Optional[dict]:
    """What every viewer sees: an open poll without its counts (nobody answers by the crowd)."""
    if poll is None or poll["status"] != "open":
        return poll
    return {key: value for key, value in poll.items() if key not in ("counts", "answers")}


def voters() -> list[str]:
    """Who answers, as the engine counts answers: the viewer (by its owner id, a hash of its
    secret: a reload or a reconnection is the same viewer) and the address it answers from (new
    secrets from one address are still one viewer). Hashed again here: the engine learns
    neither the owner id nor the address."""
    from .viewers import current_owner  # (runs.py imports access.py, as this module does)
    keys = ["viewer:" + _hashed(current_owner())]
    address = client_address(request.environ)
    if address is not None:
        keys.append("address:" + _hashed(one_device(address)))
    return keys


def one_device(address: str) -> str:
    """An address as one device's: an IPv6 address by its /64 (a device makes up new addresses
    in its network's /64 at will: privacy extensions), an IPv4 address as it is."""
    ip = ipaddress.ip_address(address)
    if ip.version == 4:
        return str(ip)
    if ip.ipv4_mapped is not None:  # ::ffff:198.51.100.7 is 198.51.100.7
        return str(ip.ipv4_mapped)
    return str(ipaddress.ip_network(f"{ip}/64", strict=False))


def _hashed(text: str) -> str:
    return hashlib.sha256(("poll:" + text).encode()).hexdigest()[:24]


OPEN_POLL_ANSWER = ("the class poll on step {step} is open: its answer is shown when the teacher reveals it "
                    "(answer the poll on your screen)")


def keep_open_poll_answer(playground, step: int) -> None:
    """Refuse a step's answer (lesson:reveal) to a viewer who may not control the shared run
    while a class poll on that step is open: the poll's answer reaches the class at the reveal.
    Asked of the engine each time (the poll opens there), whichever run the viewer watches: a
    copy of the shared run gives the same answer."""
    if access_level()["control"]:
        return
    poll = playground.request("poll:get")["poll"]
    if poll is not None and poll["status"] == "open" and poll["step"] == step:
        raise AccessError(OPEN_POLL_ANSWER.format(step=step))


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
