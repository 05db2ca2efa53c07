"""Which names the server answers to, and which pages may change it (as Jupyter does).

DNS rebinding: a page on evil.example points its name at 127.0.0.1 and then talks to this
server "same-origin", with `Host: evil.example:5000` and the matching Origin, from a loopback
address (so it even counts as a local viewer). So every HTTP request and every Socket.IO
handshake must name a Host the server is meant to be reached by:
- loopback names and addresses (localhost, *.localhost, 127.0.0.0/8, ::1);
- the address it is bound to (--host), and when bound to every interface (0.0.0.0, ::) the
  machine's own host names and any IP address (an address cannot be rebound: only names can);
- the names given with --allowed-host (a proxy's public name, say).
A request naming any other Host gets 403 with words and nothing else.

Cross-site writes: a request that changes something (POST, PUT, PATCH, DELETE) and carries an
Origin must come from a page of this server (the Origin's host and port are the Host's).
Requests without an Origin (curl, scripts) are not pages, and go on to the usual checks.

A WSGI middleware around the whole app, so the Socket.IO endpoint (mounted by Flask-SocketIO in
front of Flask) is covered as well as every Flask route.
"""
from __future__ import annotations

import ipaddress
import json
import socket
from typing import Iterable, Optional
from urllib.parse import urlsplit

from ..settings import split_host

MUTATING_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
EVERY_INTERFACE = ("0.0.0.0", "::", "")
DEFAULT_PORTS = {"http": 80, "https": 443, "ws": 80, "wss": 443}


def _address(name: str):
    try:
        return ipaddress.ip_address(name)
    except ValueError:
        return None


class HostPolicy:
    """The names one server answers to (see the module's docstring)."""

    def __init__(self, bound_host: str, allowed_hosts: Iterable[str] = ()):
        self.names = {"localhost"}
        for host in allowed_hosts:
            parsed = split_host(host)
            if parsed:
                self.names.add(parsed[0])
        self.every_interface = bound_host in EVERY_INTERFACE
        if self.every_interface:
            for name in {socket.gethostname(), socket.getfqdn()}:
                parsed = split_host(name)
                if parsed:
                    self.names.add(parsed[0])
        else:
            parsed = split_host(bound_host)
            if parsed:
                self.names.add(parsed[0])

    def allows(self, name: str) -> bool:
        if name in self.names or name.endswith(".localhost"):  # *.localhost is loopback (RFC 6761)
            return True
        address = _address(name)
        if address is None:
            return False
        mapped = getattr(address, "ipv4_mapped", None)
        return (mapped or address).is_loopback or self.every_interface


def _refusal(start_response, message: str):
    body = json.dumps({"error": message}).encode()
    start_response("403 FORBIDDEN", [("Content-Type", "application/json"), ("Content-Length", str(len(body))),
                                     ("Cache-Control", "no-store"), ("X-Content-Type-Options", "nosniff")])
    return [body]


def host_refusal(host: str, parsed) -> str:
    if parsed is None:
        return f"refused: the request's Host header {host!r} is not a host name"
    return (f"refused: this server does not answer to the name {parsed[0]!r} (the request's Host). If that name "
            f"really is this machine, start the server with --allowed-host {parsed[0]}. (A page reaching a local "
            "server under a name it does not know is how a DNS rebinding attack works.)")


def origin_refusal(origin: str, host: str) -> str:
    return (f"refused: a page from {origin} may not change this server; only its own pages (at {host}) may. "
            "Open the playground at its own address.")


class HostAndOriginCheck:
    """WSGI middleware: refuse unknown Hosts on every request, foreign Origins on writes."""

    def __init__(self, wsgi_app, policy: HostPolicy):
        self.wsgi_app = wsgi_app
        self.policy = policy

    def __call__(self, environ, start_response):
        host = environ.get("HTTP_HOST")
        if host is not None:  # HTTP/1.0 without a Host: not a browser, nothing to rebind
            parsed = split_host(host)
            if parsed is None or not self.policy.allows(parsed[0]):
                return _refusal(start_response, host_refusal(host, parsed))
        if environ.get("REQUEST_METHOD", "GET").upper() in MUTATING_METHODS:
            origin = environ.get("HTTP_ORIGIN")
            if origin is not None and not same_origin(origin, host):
                return _refusal(start_response, origin_refusal(origin, host or "its own address"))
        return self.wsgi_app(environ, start_response)


def same_origin(origin: str, host: Optional[str]) -> bool:
    """Is `origin` (a page's `scheme://host:port`) the server's own, as reached by `host`?"""
    if host is None:
        return False
    try:
        parts = urlsplit(origin.strip())
    except ValueError:
        return False
    if parts.scheme not in DEFAULT_PORTS or not parts.netloc or parts.path or parts.query:
        return False  # "null" (sandboxed pages, files) and anything else that is not an origin
    page, ours = split_host(parts.netloc), split_host(host)
    if page is None or ours is None:
        return False
    # A browser leaves out the default port of the scheme it used, in Origin and Host alike (and
    # behind a TLS proxy that scheme is not this server's): both default to the page's scheme's.
    default = DEFAULT_PORTS[parts.scheme]
    return (page[0], page[1] or default) == (ours[0], ours[1] or default)


def init_app(app, playground) -> None:
    """Wrap the whole app (Flask routes and the Socket.IO endpoint in front of them)."""
    settings = playground.settings
    policy = HostPolicy(settings.host, settings.allowed_hosts)
    playground.host_policy = policy
    app.wsgi_app = HostAndOriginCheck(app.wsgi_app, policy)
