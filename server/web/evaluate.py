"""Evaluate, compare and keep: the web side of evaluation, the dataset browser, runs,
checkpoints (the exports: web/exports.py). The engine's `evaluation` and `runs` messages become
broadcasts, to the viewers who take them (broadcasts:subscribe).

Relayed to the engine as they are (web/relays.py, docs/protocol.md): evaluate:get,
evaluate:cell, dataset:get, dataset:samples, runs:list, runs:get, runs:rename, runs:delete,
runs:restore.
Broadcasts: `evaluation` (each epoch end, and after a checkpoint is loaded), `runs` (the list
changed). HTTP: GET/POST /api/checkpoint, GET /api/runs/<id>/checkpoint.
"""
from __future__ import annotations

import io
from typing import Literal

from flask import Flask, jsonify, request, send_file
from flask_socketio import join_room, leave_room
from pydantic import Field
from werkzeug.exceptions import RequestEntityTooLarge

from ..errors import AccessError, NotFound, UserError
from ..link.names import SHARED, broadcast_room
from .access import access_level, asked_at_connect
from .answers import answered, parse
from .schemas import MAX_RUN_ID, Strict
from .viewers import current_owner, current_run, require_run_control, run_args, visible_runs

UPLOAD_CONTENT_TYPE = "application/octet-stream"
# The biggest network the setup allows (784 -> 4 x 2048 -> 10, float32) is about 57 MB.
MAX_CHECKPOINT_BYTES = 64 * 1024 * 1024
CHECKPOINT_TIMEOUT_S = 120.0  # saving or loading the biggest network takes seconds


BROADCASTS = ("evaluation", "runs")


class BroadcastsRequest(Strict):
    topics: list[Literal["evaluation", "runs"]] = Field(max_length=len(BROADCASTS))


def send_weights(data: bytes, name: str):
    response = send_file(io.BytesIO(data), mimetype="application/octet-stream", as_attachment=True,
                         download_name=name, max_age=0)
    response.headers["Cache-Control"] = "no-store"
    return response


def init_app(app: Flask, playground) -> None:
    socketio = playground.socketio

    # `evaluation` and `runs` go to the viewers who take them: by default everyone (the first
    # protocol); a page says which it wants when connecting (auth {"broadcasts": [...]}) and
    # changes its mind with broadcasts:subscribe (the page: when those panels are in view).
    def on_evaluation(message):
        socketio.emit("evaluation", message["payload"], to=broadcast_room("evaluation", message["run"]),
                      ignore_queue=True)  # each web process, its own viewers

    playground.subscribe("evaluation", on_evaluation)

    def send_runs(payload):
        """The runs list to the viewers who take it, each web process to its own: the same list
        to all, but a private run's key (its link) only to its owner and its watchers, each of
        whom gets a list of its own (web/runs.py visible_runs)."""
        public = visible_runs(payload, None, SHARED)
        own = {}
        for sid, topics in list(taken.items()):
            if "runs" not in topics:
                continue
            mine = visible_runs(payload, playground.viewers.owner_of(sid), playground.viewers.run_of(sid))
            if mine != public:
                own[sid] = mine
        socketio.emit("runs", public, to=broadcast_room("runs"), skip_sid=list(own) or None, ignore_queue=True)
        for sid, mine in own.items():
            socketio.emit("runs", mine, to=sid, ignore_queue=True)

    def on_runs(message):
        payload = message["payload"]
        if payload is None:
            try:  # an engine without the shared run: the list comes from the one with it
                payload = playground.request("runs:list")
            except UserError:
                return
        send_runs(payload)

    playground.subscribe("runs", on_runs, asks_engine=True)  # it may ask for the list
    taken: dict[str, set] = {}  # sid -> the broadcasts it takes

    def take(sid, topics, run=None):
        run = run or playground.viewers.run_of(sid)
        taken[sid] = set(topics)
        for topic in BROADCASTS:
            (join_room if topic in topics else leave_room)(broadcast_room(topic, run), sid=sid, namespace="/")

    def greet(sid):
        wanted = asked_at_connect("broadcasts", BROADCASTS)
        take(sid, BROADCASTS if wanted is None else wanted)

    playground.on_connect.append(greet)
    playground.on_disconnect.append(lambda sid: taken.pop(sid, None))

    def moved(sid, old, new):
        topics = taken.get(sid, set(BROADCASTS))
        leave_room(broadcast_room("evaluation", old), sid=sid, namespace="/")
        take(sid, topics, new)

    playground.on_switch.append(moved)

    @socketio.on("broadcasts:subscribe")
    @answered
    def on_broadcasts_subscribe(payload=None):
        topics = parse(BroadcastsRequest, payload).topics
        take(request.sid, set(topics))
        return {"topics": sorted(set(topics))}

    # ---- HTTP ------------------------------------------------------------------------------
    @app.get("/api/checkpoint")
    def download_checkpoint():
        answer = playground.request("checkpoint:get", {"run": current_run()}, timeout=CHECKPOINT_TIMEOUT_S)
        return send_weights(answer["data"], answer["filename"])

    @app.get("/api/runs/<int:run_id>/checkpoint")
    def download_run_checkpoint(run_id: int):
        if not 1 <= run_id <= MAX_RUN_ID:
            raise NotFound(f"there is no run #{run_id}")
        asker = {"owner": current_owner(), "teacher": access_level()["control"]}  # X-Viewer, the token
        try:
            answer = playground.request("runs:checkpoint", {"id": run_id, **asker}, timeout=CHECKPOINT_TIMEOUT_S)
        except AccessError:
            raise  # 403, in words
        except UserError as err:
            raise NotFound(str(err)) from None
        return send_weights(answer["data"], answer["filename"])

    @app.post("/api/checkpoint")
    def upload_checkpoint():
        require_run_control()
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
        answer = playground.request("checkpoint:load", run_args(data=data), timeout=CHECKPOINT_TIMEOUT_S)
        return jsonify({"ok": True, "run_id": answer["run_id"], "parameters": answer["parameters"],
                        "message": answer["message"]})
