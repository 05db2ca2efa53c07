"""A script's own network on the page (client/, `linear_playground.watch`): the run a
watching script opens, checked (server/watch_frames.py: sizes bounded, shapes consistent,
numbers finite; a refusal in words changes nothing) and handed to the engine holding its run
(server/engine/watched.py). The script is a Socket.IO client like a page, known by the viewer
secret it connects with: the run is its own (its owner), every page on the run's link watches
it read-only. Opening a run needs control: a script on this machine, or one that gives the
control token (`watch(..., token=...)`), as the page's controls do.

Socket.IO (docs/protocol.md, "Watch your own network"): watch:open here; watch:steps,
watch:snapshot, watch:close and watch:control are rows of the relay table (relays.py).
"""
from __future__ import annotations

from flask import request
from flask_socketio import leave_room

from ..errors import UserError
from ..link.names import SHARED, run_room
from ..watch_frames import OpenRequest
from .access import require_control
from .answers import answered, parse
from .limits import throttle

OPEN_TIMEOUT_S = 30.0  # a new run builds its network and its replica


def link_of(key: str) -> str:
    return f"/?run={key}"


def init_app(app, playground) -> None:
    socketio = playground.socketio

    def owner() -> str:
        return playground.viewers.owner_of(request.sid)

    def still_ours(key: str) -> bool:
        """The run this script had is still here (the connection dropped, the server did not
        restart): it carries on in it. Someone else's run: refused in words."""
        try:
            playground.request("watch:control", {"run": key, "owner": owner()})
        except UserError as err:
            if err.status == 404:
                return False
            raise
        return True

    @socketio.on("watch:open")
    @answered
    def on_open(payload=None):
        require_control()
        throttle("watch-open", 1.0, 5, "watch:open")
        body = parse(OpenRequest, payload)
        if body.resume is not None and still_ours(body.resume):
            answer = playground.request("state", {"run": body.resume})
            key, state = body.resume, answer["state"]
        else:
            answer = playground.engine.create_run({"owner": owner(), "spec": body.model_dump()},
                                                  timeout=OPEN_TIMEOUT_S, command="watch:open")
            key, state = answer["run"], answer["state"]
        # A script is no page: the shared run's broadcasts (state, metrics, ten a second while it
        # trains) are not for it.
        leave_room(run_room(SHARED), sid=request.sid, namespace="/")
        watched = state["watched"]
        return {"run": key, "link": link_of(key), "shows_network": watched["shows_network"],
                "why_not": watched["why_not"], "predicts": watched.get("predicts", watched["shows_network"])}

    def layers_to_pages(message):
        """The histograms of a snapshot (its layers' activations and gradients), to the run's pages."""
        socketio.emit("watch:layers", message["payload"], to=run_room(message["run"]), ignore_queue=True)

    playground.subscribe("watch:layers", layers_to_pages)
