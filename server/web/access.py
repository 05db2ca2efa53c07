"""Who may control the shared run.

Watching and drawing are open to every viewer. Controlling the run (start, pause, step, reset,
setup changes, checkpoint uploads and restores, run management) needs one of:
- a local client: the connection comes from a loopback address and not through a proxy
  (a request carrying X-Forwarded-For / Forwarded / X-Real-IP is treated as remote);
- the control token printed where the server started (as Jupyter does): in the Socket.IO
  connect `auth` dict (`{"token": ...}`; the page forwards `?token=` from its URL), or in an
  `X-Control-Token` header on HTTP requests.

Feature code calls `require_control()` first thing in any handler (socket event or HTTP view)
that changes the run; it raises `AccessError` (a `UserError`, status 403), which `answered`
turns into `{"ok": false, "error": ...}` and HTTP views answer as 403 JSON.
"""
from __future__ import annotations

import hmac
import ipaddress
import secrets
import socket
from typing import Optional

from flask import Flask, request

from ..errors import AccessError

CONTROL_TOKEN_HEADER = "X-Control-Token"
# The token a Socket.IO connection presented at connect, kept in that connection's WSGI
# environ: Flask-SocketIO hands the same dict to every event of the connection and drops it
# on disconnect, so nothing per-viewer outlives the viewer.
ENVIRON_TOKEN_KEY = "playground.control_token"
PROXY_HEADERS = ("X-Forwarded-For", "Forwarded", "X-Real-IP")

NO_TOKEN_MESSAGE = ("this viewer can watch and draw; controls need the control token printed "
                    "where the server started (open the page with ?token=...)")
WRONG_TOKEN_MESSAGE = ("this viewer can watch and draw; the control token it gave is not the one "
                       "printed where the server started, so controls are refused")


def new_control_token() -> str:
    return secrets.token_urlsafe(24)


def is_loopback(address: Optional[str]) -> bool:
    if not address:
        return False
    try:
        ip = ipaddress.ip_address(address.split("%", 1)[0])
    except ValueError:
        return False
    mapped = getattr(ip, "ipv4_mapped", None)  # ::ffff:127.0.0.1
    return (mapped or ip).is_loopback


def is_local_environ(environ: dict) -> bool:
    """A loopback peer that did not come through a proxy (a proxy on this machine would make
    every remote browser look local). No address at all means no network peer: an in-process
    test client, or a Unix socket (only this machine can open one)."""
    if any(environ.get("HTTP_" + name.upper().replace("-", "_")) for name in PROXY_HEADERS):
        return False
    address = environ.get("REMOTE_ADDR")
    return not address or is_loopback(address)


def client_address(environ: dict) -> Optional[str]:
    """The address a viewer connects from, as far as this server can tell (for rules per
    address, such as one poll answer per address): a peer on another machine, its own address;
    a loopback peer that came through a proxy (only this machine can open a loopback
    connection, so the proxy is this machine's), the address the proxy names (the last of
    X-Forwarded-For, the one the proxy itself added, else X-Real-IP); this machine itself
    (the teacher's browser, an in-process test client): None, no address rule."""
    address = environ.get("REMOTE_ADDR")
    if address and not is_loopback(address):
        return address
    forwarded = (environ.get("HTTP_X_FORWARDED_FOR") or "").split(",")[-1].strip() or \
        (environ.get("HTTP_X_REAL_IP") or "").strip()
    try:
        return str(ipaddress.ip_address(forwarded)) if forwarded else None
    except ValueError:
        return None


def _expected_token() -> str:
    from flask import current_app
    return current_app.extensions["playground"].control_token


def _presented_token() -> Optional[str]:
    """The token of the current request: a socket connection's connect auth, else the header."""
    if ENVIRON_TOKEN_KEY in request.environ:
        return request.environ[ENVIRON_TOKEN_KEY]
    return request.headers.get(CONTROL_TOKEN_HEADER)


CONNECT_AUTH_KEY = "playground.connect_auth"


def remember_auth(auth) -> None:
    """Call in the Socket.IO connect handler: keeps the token this connection presented, and
    its whole connect `auth` (what else it asked for: streams, broadcasts) for the features."""
    auth = auth if isinstance(auth, dict) else {}
    token = auth.get("token")
    request.environ[ENVIRON_TOKEN_KEY] = token if isinstance(token, str) and token else None
    request.environ[CONNECT_AUTH_KEY] = auth


def connect_auth() -> dict:
    """The connect `auth` dict of the current Socket.IO connection ({} when it gave none)."""
    return request.environ.get(CONNECT_AUTH_KEY) or {}


def asked_at_connect(name: str, known) -> Optional[list[str]]:
    """What this connection asked for under `name` in its connect auth (e.g. {"streams":
    [...]}): the known names among them, or None when it did not ask (not a list: not asked)."""
    wanted = connect_auth().get(name)
    if not isinstance(wanted, list):
        return None
    return [item for item in dict.fromkeys(wanted) if isinstance(item, str) and item in known]


EMBEDDED_MESSAGE = ("this is a run's view shown inside another page (a notebook's cell), read-only: "
                    "open the run's link to see the whole page")


def access_level() -> dict:
    """What the current client may do: {"control": bool, "reason": words or None}."""
    if connect_auth().get("embed") is True:  # a view framed by another page (framing.py): never controls
        return {"control": False, "reason": EMBEDDED_MESSAGE}
    if is_local_environ(request.environ):
        return {"control": True, "reason": None}
    token = _presented_token()
    if token is None:
        return {"control": False, "reason": NO_TOKEN_MESSAGE}
    if not hmac.compare_digest(token.encode(), _expected_token().encode()):
        return {"control": False, "reason": WRONG_TOKEN_MESSAGE}
    return {"control": True, "reason": None}


def require_control() -> None:
    """Raise AccessError unless the current client (socket event or HTTP request) may control
    the run. The one check every control handler calls."""
    level = access_level()
    if not level["control"]:
        raise AccessError(level["reason"])


def startup_lines(settings, token: str) -> list[str]:
    """What `python -m server` prints about access, Jupyter-style."""
    if settings.is_local:
        return [f"Control token (for a viewer that is not on this machine, e.g. through a proxy): "
                f"http://{settings.host}:{settings.port}/?token={token}"]
    host = settings.host
    if host in ("0.0.0.0", "::", ""):
        host = socket.gethostname()
    return [
        f"WARNING: serving on {settings.host}, not only on this machine: anyone who can reach port "
        f"{settings.port} can watch the run and draw. Only viewers with the control token (and "
        f"browsers on this machine) can start, pause, reset or change it.",
        f"Controls for other machines: http://{host}:{settings.port}/?token={token}",
    ]


def init_app(app: Flask, playground) -> None:
    playground.control_token = playground.settings.control_token or new_control_token()

    def tell_viewer_access(sid):
        # Tell a watch-only viewer up front, so the page can say so before a button is pressed;
        # and who it is to the runs list (its owner id: the records of its own runs carry it).
        from .viewers import current_owner  # (viewers.py imports this module)
        playground.socketio.emit("access", {**access_level(), "viewer": current_owner()}, to=sid, ignore_queue=True)

    playground.on_connect.append(tell_viewer_access)
