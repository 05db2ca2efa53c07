"""Whose run a page shows: the shared run (the teacher's) or a private run of its own or of
someone else's, watched through its link (?run=<key>).

Each viewer watches one run at a time and is in that run's room (`run:<key>`): the run's
broadcasts (state, metrics, epoch, live views, evaluation) reach its watchers only. A viewer is
identified by the `viewer` secret its page keeps (connect auth; a connection without one is
its own viewer): the owner of a private run is the viewer that made it, by a hash of that
secret, so a reload keeps the run its own. Its owner controls it without a token; everyone
else watches it, read-only (the engine refuses their controls). A private run's key is its
link: it reaches its owner (and the teacher), never a list everyone sees, so whoever watches
a private run was sent its link by its owner.

Places come back: every engine hears who is connected (runs:present) a few times per grace
period (settings.owner_grace_s), and frees the runs of owners gone longer; their owners get them
back from their records (run:create {"record"}). One viewer holds at most 3 private runs,
whichever engines they are in. The teacher (whoever may control the shared run) sees every
private run (runs:private) and puts any away (run:put_away, a row of web/relays.py).

Socket.IO (docs/protocol.md): run:create, run:watch, runs:private; broadcast run:closed.
"""
from __future__ import annotations

import hashlib
import logging
from collections import defaultdict
import re
import threading
from typing import Literal, Optional

from flask import request
from flask_socketio import join_room, leave_room
from pydantic import Field, field_validator

from ..errors import AccessError, NotFound, UserError
from ..link.names import SHARED, run_room
from ..link.replica import ReplicaReader
from .access import access_level, client_address, connect_auth, require_control
from .answers import answered, parse
from .schemas import MAX_RUN_ID, Strict

log = logging.getLogger(__name__)

ENVIRON_VIEWER_KEY = "playground.viewer"
RUN_KEY = r"^(shared|p-[0-9a-f]{12})$"
VIEWER_SECRET = re.compile(r"^[A-Za-z0-9_-]{16,128}$")
BAD_KEY = "give \"shared\" or a private run's key (p- and 12 hex digits), as its link shows"
PRESENCE_INTERVAL_S = 60.0  # the engines hear who is here this often (they free abandoned runs)...
PRESENCE_PER_GRACE = 3  # ...and at least this often per grace period (a place comes back within it)
COPY_TIMEOUT_S = 120.0  # copying the biggest network's weights takes seconds


class CreateRequest(Strict):
    config: Optional[dict] = None  # a fresh setup (defaults + these); none: the shared run's setup
    weights: Optional[Literal["shared"]] = None  # "shared": start from the shared run's weights now
    record: Optional[int] = Field(None, ge=1, le=MAX_RUN_ID)  # a put-away run of one's own, back from its record

    @field_validator("record")
    @classmethod
    def _record_alone(cls, record, info):
        if record is not None and (info.data.get("config") is not None or info.data.get("weights") is not None):
            raise ValueError("a run back from its record takes its own setup and weights: give \"record\" alone")
        return record


class WatchRequest(Strict):
    run: str = Field(max_length=64)

    @field_validator("run")
    @classmethod
    def _a_run_key(cls, key: str) -> str:
        if not re.match(RUN_KEY, key):
            raise ValueError(BAD_KEY)
        return key


def owner_id(secret: str) -> str:
    """What the engines know a viewer by: never the secret itself."""
    return hashlib.sha256(secret.encode()).hexdigest()[:32]


class Viewers:
    """Which run each connected viewer watches, and who it is."""

    def __init__(self):
        self._lock = threading.Lock()
        self._by_sid: dict[str, list] = {}  # sid -> [run key, owner id]

    def add(self, sid: str, owner: str, run: str = SHARED) -> list:
        """The viewer's entry, [run key, owner id], kept up to date by move()."""
        with self._lock:
            entry = self._by_sid[sid] = [run, owner]
            return entry

    def remove(self, sid: str) -> None:
        with self._lock:
            self._by_sid.pop(sid, None)

    def run_of(self, sid: Optional[str]) -> str:
        with self._lock:
            entry = self._by_sid.get(sid)
        return entry[0] if entry else SHARED

    def owner_of(self, sid: str) -> str:
        with self._lock:
            entry = self._by_sid.get(sid)
        return entry[1] if entry else owner_id("sid:" + sid)

    def move(self, sid: str, run: str) -> str:
        with self._lock:
            entry = self._by_sid.setdefault(sid, [SHARED, owner_id("sid:" + sid)])
            old, entry[0] = entry[0], run
        return old

    def watching(self, run: str) -> list[str]:
        with self._lock:
            return [sid for sid, (key, _) in self._by_sid.items() if key == run]

    def owners(self) -> set:
        with self._lock:
            return {owner for _, owner in self._by_sid.values()}

    def __len__(self) -> int:
        with self._lock:
            return len(self._by_sid)


# ---- whose run keys a viewer sees ---------------------------------------------------------------

def visible_record(record: dict, owner: Optional[str], watched: str) -> dict:
    """A runs record as a viewer sees it: a private run's key (its link) only for its owner, or
    for a viewer who watches that run already (it has the link); for anyone else `run_key` is
    null (the record itself, its curves and scores, stay in the shared list)."""
    key = record.get("run_key")
    if key in (None, SHARED) or key == watched or (owner is not None and record.get("owner") == owner):
        return record
    return {**record, "run_key": None}


def visible_runs(payload: dict, owner: Optional[str], watched: str) -> dict:
    """The runs list (runs:list's answer, the `runs` broadcast) as a viewer sees it."""
    return {**payload, "runs": [visible_record(record, owner, watched) for record in payload.get("runs", [])]}


def runs_for_viewer(answer: dict) -> dict:
    return visible_runs(answer, current_owner(), current_run())


def record_for_viewer(answer: dict) -> dict:
    return {**answer, "run": visible_record(answer["run"], current_owner(), current_run())}


# ---- the current request's run -----------------------------------------------------------------

def _playground():
    from flask import current_app
    return current_app.extensions["playground"]


def run_of_environ(environ: dict) -> str:
    """The run a connection watches, from its environ (events answered outside Flask)."""
    entry = environ.get(ENVIRON_VIEWER_KEY)
    return entry[0] if entry else SHARED


def current_run() -> str:
    """The run the current request is about: a socket event's viewer's run; an HTTP request's
    ?run= (default the shared run)."""
    sid = getattr(request, "sid", None)
    if sid is not None:
        return _playground().viewers.run_of(sid)
    key = request.args.get("run", SHARED)
    if not re.match(RUN_KEY, key):
        raise UserError(f"run: {BAD_KEY}")
    return key


def current_owner() -> str:
    sid = getattr(request, "sid", None)
    if sid is not None:
        return _playground().viewers.owner_of(sid)
    secret = request.headers.get("X-Viewer", "")
    return owner_id(secret) if VIEWER_SECRET.match(secret) else owner_id("http:" + str(id(request)))


def run_args(**args) -> dict:
    """Engine command args for the current request's run: its key, and who asks (the engine
    lets only a private run's owner control it)."""
    # "control": whether the asker may control the shared run (local, or the token): a watched
    # run opened as controllable may be held and stepped by such a viewer (engine/watched.py).
    return {"run": current_run(), "owner": current_owner(), "control": access_level()["control"], **args}


def require_run_control() -> None:
    """The shared run: the control rules of web/access.py. A private run: its engine checks the
    owner (run_args carries it)."""
    if current_run() == SHARED:
        from .access import require_control
        require_control()


# ---- the feature --------------------------------------------------------------------------------

def init_app(app, playground) -> None:
    socketio = playground.socketio
    viewers = playground.viewers = Viewers()

    def switch(sid: str, new: str) -> None:
        old = viewers.move(sid, new)
        if old == new:
            return
        leave_room(run_room(old), sid=sid, namespace="/")
        join_room(run_room(new), sid=sid, namespace="/")
        for hook in list(playground.on_switch):
            try:
                hook(sid, old, new)
            except Exception:
                log.exception("moving a viewer to run %s failed", new)

    playground.switch_run = switch

    addresses: dict[str, Optional[str]] = {}  # sid -> the address it connects from (the teacher's list)

    def place(sid: str) -> Optional[str]:
        """At connect: the viewer's identity, and the run it asked for (auth {"run": key}), else
        the shared run. Words if the run asked for is not there."""
        addresses[sid] = client_address(request.environ)
        auth = connect_auth()
        secret = auth.get("viewer")
        owner = owner_id(secret) if isinstance(secret, str) and VIEWER_SECRET.match(secret) else owner_id("sid:" + sid)
        # Kept in the connection's environ too: events answered outside Flask (predict) read it.
        request.environ[ENVIRON_VIEWER_KEY] = viewers.add(sid, owner)
        join_room(run_room(SHARED), sid=sid, namespace="/")
        wanted = auth.get("run")
        if not isinstance(wanted, str) or wanted == SHARED:
            return None
        if not re.match(RUN_KEY, wanted):
            return f"the run link's key {wanted[:40]!r} is not a run's key: showing the shared run"
        try:
            playground.request("state", {"run": wanted})
        except UserError as err:
            return f"{err}: showing the shared run"
        switch(sid, wanted)
        return None

    playground.place_viewer = place

    def relation(sid: str, key: str, owner: Optional[str]) -> str:
        if key == SHARED:
            return "shared"
        return "you" if owner == viewers.owner_of(sid) else "someone"

    def describe(sid: str, key: str) -> dict:
        answer = playground.request("state", {"run": key})
        mine = relation(sid, key, answer.get("owner"))
        control = access_level()["control"] if key == SHARED else mine == "you"
        return {"run": key, "state": answer["state"], "owner": mine, "control": control}

    playground.describe_run = describe

    @socketio.on("disconnect")
    def on_disconnect(*_reason):
        sid = request.sid
        viewers.remove(sid)
        addresses.pop(sid, None)
        for hook in list(playground.on_disconnect):
            try:
                hook(sid)
            except Exception:
                log.exception("forgetting a viewer failed")

    def from_record(owner: str, record: int) -> dict:
        """run:create's args for a put-away run back from its record: its key, if it is the
        asker's and not still there (the engine checks whose it is again, from the record)."""
        saved = playground.request("runs:get", {"id": record})["run"]
        key = saved.get("run_key")
        if saved.get("owner") != owner or not isinstance(key, str) or not key.startswith("p-"):
            raise AccessError(f"run #{record} is not a run of yours: only its owner gets it back (\"Train my own "
                              "copy\" makes a run of your own)")
        try:
            playground.request("state", {"run": key})
        except NotFound:
            return {"owner": owner, "record": record}
        raise UserError(f"run #{record} is still there: go back to it (its link)")

    @socketio.on("run:create")
    @answered
    def on_create(payload=None):
        body = parse(CreateRequest, payload, optional=True)
        sid = request.sid
        owner = viewers.owner_of(sid)
        if body.record is not None:
            args = from_record(owner, body.record)
        else:
            shared_state = playground.request("state")["state"]
            config = dict(shared_state["config"]) if body.config is None else body.config
            args = {"owner": owner, "config": config}
            if body.weights == "shared":
                copy = playground.request("checkpoint:get", timeout=COPY_TIMEOUT_S)
                args["weights"] = copy["data"]
                args["origin"] = f"a copy of the shared run's weights at step {copy.get('step', shared_state['step'])}"
        # (the line counts the owner's runs in every engine, one run:create per owner at a time)
        answer = playground.engine.create_run(args, timeout=COPY_TIMEOUT_S)
        switch(sid, answer["run"])
        return {"run": answer["run"], "state": answer["state"], "owner": "you", "control": True}

    # ---- the teacher's view of the private runs ---------------------------------------------------
    @socketio.on("runs:private")
    @answered
    def on_private_runs(payload=None):
        """Every private run of every engine: whose (owner id, its connections and addresses
        here), its setup, status and memory. For whoever may control the shared run."""
        require_control()
        connected: dict[str, list] = defaultdict(list)
        for sid in list(addresses):
            connected[viewers.owner_of(sid)].append(addresses.get(sid))
        runs = [run for answer in playground.engine.everywhere("runs:private") for run in answer.get("runs", [])]
        for run in runs:
            here = connected.get(run["owner"], [])
            run["connections"] = len(here)
            run["addresses"] = sorted({address for address in here if address})
            run["watchers"] = len(viewers.watching(run["run"]))
        runs.sort(key=lambda run: (run["owner"], run["run"]))
        return {"runs": runs, "memory_bytes": sum(run["memory_bytes"] for run in runs)}

    @socketio.on("run:watch")
    @answered
    def on_watch(payload=None):
        key = parse(WatchRequest, payload).run
        described = describe(request.sid, key)  # NotFound in words if it is not there
        switch(request.sid, key)
        return described

    # ---- the engines' word on runs --------------------------------------------------------------
    def on_replica(message):
        key, name = message["run"], message["payload"]["name"]
        if playground.settings.predict_via_engine:
            return
        replica = playground.replica if key == SHARED else playground.replicas.setdefault(
            key, ReplicaReader(tracked=not playground.engines_elsewhere))
        try:
            replica.attach(name)
        except FileNotFoundError:  # an engine on another machine: predictions ask it instead
            playground.replicas.pop(key, None)

    playground.subscribe("replica", on_replica)

    def run_ended(key: str, reason: str, record=None) -> None:
        replica = playground.replicas.pop(key, None)
        if replica is not None:
            replica.close()
        # Every web process hears the engine's word: each tells its own viewers.
        socketio.emit("run:closed", {"run": key, "reason": reason, "record": record}, to=run_room(key),
                      ignore_queue=True)
        # The engine's messages are handled outside any request: moving viewers between rooms
        # (flask_socketio.join_room/leave_room, here and in the on_switch hooks) needs the app.
        with app.app_context():
            for sid in viewers.watching(key):
                switch(sid, SHARED)
                try:
                    socketio.emit("state", playground.request("state")["state"], to=sid, ignore_queue=True)
                except UserError:
                    pass

    playground.subscribe("run:closed", lambda message: run_ended(
        message["run"], message["payload"]["reason"], message["payload"].get("record")), asks_engine=True)
    playground.on_runs_lost.append(lambda runs, why: [run_ended(key, why) for key in runs])

    stop = threading.Event()
    playground.on_shutdown.append(stop.set)

    interval = min(PRESENCE_INTERVAL_S, playground.settings.owner_grace_s / PRESENCE_PER_GRACE)

    def tell_presence():
        while not stop.wait(interval):
            owners = sorted(viewers.owners())
            if owners:
                playground.engine.everywhere("runs:present", {"owners": owners})
            for hook in list(playground.on_presence):  # e.g. which streams are watched (inside.py)
                try:
                    hook()
                except Exception:
                    log.exception("telling the engines who is here failed")

    threading.Thread(target=tell_presence, name="runs-presence", daemon=True).start()


__all__ = ["init_app", "current_run", "run_args", "require_run_control", "NotFound"]
