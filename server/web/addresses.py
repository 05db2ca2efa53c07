"""Whose a connection is (its client's address), and how many websockets one address may hold.

- The client's address is the peer's (REMOTE_ADDR), unless the peer is a proxy named with
  --trusted-proxy: then it is the address that proxy put last in X-Forwarded-For (werkzeug's
  ProxyFix, applied to that proxy's requests only: anyone else's X-Forwarded-For is ignored,
  or one client could pass for many). Behind the documented proxy (docs/deploy.md) every HTTP
  rate bucket was the proxy's, shared by the whole class.
- At most `--sockets-per-address` websockets from one address at once (a page holds one): the
  next is answered 429 in words. 200 sockets from one client held 827 threads and a core.
  Socket.IO events are also counted per address (web/transport.py `gate_events`).
"""
from __future__ import annotations

import ipaddress
import json
import threading
from typing import Iterable, Optional

from werkzeug.middleware.proxy_fix import ProxyFix

CLIENT_ADDRESS_KEY = "playground.client_address"


def networks(proxies: Iterable[str]) -> list:
    return [ipaddress.ip_network(proxy, strict=False) for proxy in proxies]


def _ip(address: Optional[str]):
    if not address:
        return None
    try:
        ip = ipaddress.ip_address(address.split("%", 1)[0])
    except ValueError:
        return None
    return getattr(ip, "ipv4_mapped", None) or ip


def client_address(environ: dict) -> str:
    """The client's address for per-address limits (after TrustedProxies ran: REMOTE_ADDR)."""
    return environ.get(CLIENT_ADDRESS_KEY) or environ.get("REMOTE_ADDR") or "unknown"


class TrustedProxies:
    """WSGI middleware: a trusted proxy's requests get their client's address as REMOTE_ADDR."""

    def __init__(self, wsgi_app, trusted: list):
        self.wsgi_app = wsgi_app
        self.trusted = trusted
        self.forwarded = ProxyFix(wsgi_app, x_for=1, x_proto=0, x_host=0, x_port=0, x_prefix=0)

    def is_trusted(self, address: Optional[str]) -> bool:
        ip = _ip(address)
        return ip is not None and any(ip in network for network in self.trusted)

    def __call__(self, environ, start_response):
        peer = environ.get("REMOTE_ADDR")
        if self.trusted and self.is_trusted(peer) and environ.get("HTTP_X_FORWARDED_FOR"):
            forwarded = (environ["HTTP_X_FORWARDED_FOR"].split(",")[-1]).strip()
            if _ip(forwarded) is not None:  # a proxy's header that is not an address: the proxy's own
                environ[CLIENT_ADDRESS_KEY] = forwarded
                return self.forwarded(environ, start_response)
        environ[CLIENT_ADDRESS_KEY] = peer or "unknown"
        return self.wsgi_app(environ, start_response)


def too_many_sockets_words(limit: int) -> str:
    return (f"refused: {limit} connections from your address are open already (at most {limit} at once, one "
            "per open page); close other playground tabs and reload")


class SocketsPerAddress:
    """WSGI middleware: at most `limit` websockets of one client address at once. A websocket's
    request lasts as long as the websocket (threading mode), so it is counted until it ends."""

    def __init__(self, wsgi_app, limit: int):
        self.wsgi_app, self.limit = wsgi_app, limit
        self._open: dict[str, int] = {}
        self._lock = threading.Lock()

    def open_sockets(self, address: str) -> int:
        with self._lock:
            return self._open.get(address, 0)

    def __call__(self, environ, start_response):
        if environ.get("HTTP_UPGRADE", "").lower() != "websocket":
            return self.wsgi_app(environ, start_response)
        address = client_address(environ)
        with self._lock:
            held = self._open.get(address, 0)
            if held < self.limit:
                self._open[address] = held + 1
        if held >= self.limit:
            body = json.dumps({"error": too_many_sockets_words(self.limit)}).encode()
            start_response("429 TOO MANY REQUESTS", [("Content-Type", "application/json"),
                                                     ("Content-Length", str(len(body))), ("Retry-After", "10")])
            return [body]
        try:
            # The websocket is served inside this call; what it returns is the whole of it.
            return self.wsgi_app(environ, start_response)
        finally:
            with self._lock:
                left = self._open.get(address, 1) - 1
                if left > 0:
                    self._open[address] = left
                else:
                    self._open.pop(address, None)


def init_app(app, playground) -> None:
    """Wrap the whole app, outside the Host check (after it in app.py's list)."""
    settings = playground.settings
    playground.sockets_per_address = SocketsPerAddress(app.wsgi_app, settings.sockets_per_address)
    app.wsgi_app = TrustedProxies(playground.sockets_per_address, networks(settings.trusted_proxies))
