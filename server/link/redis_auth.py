"""What crosses Redis is signed (issue 23, item 6): every command, answer, engine message, engine
load and Flask-SocketIO queue message carries an HMAC-SHA256 made with a secret every web and
engine process shares (environment variable PLAYGROUND_REDIS_SECRET, never the command line).
Whoever reaches Redis without the secret can still read what passes and stop it (Redis access
is control of the service, docs/deploy.md says so), but cannot make an engine act, answer for an
engine, tell the pages anything or pose as an engine: what it writes is dropped unread.

A sealed item is `tag (32 bytes) + data`; `open` gives the data back only when the tag is the
secret's for exactly those bytes. Commands also carry who asked and when (signed with them), and
an engine takes each command once (`SeenCommands`): one copied off the wire and pushed again is
dropped.
"""
from __future__ import annotations

import hashlib
import hmac
import json
import logging
import os
import threading
import time
from typing import Optional

from ..errors import UserError

log = logging.getLogger(__name__)

SECRET_ENV = "PLAYGROUND_REDIS_SECRET"
TAG_BYTES = 32
MIN_SECRET_CHARS = 16
REFUSED_LOG_INTERVAL_S = 60.0  # one line a minute about unsigned items, however many come
NO_SECRET_WORDS = (f"the processes on Redis need a shared secret: set the environment variable {SECRET_ENV} "
                   f"(at least {MIN_SECRET_CHARS} characters, the same for every web and engine process; e.g. "
                   "`openssl rand -hex 32`)")


class Signer:
    def __init__(self, secret: str | bytes):
        key = secret.encode() if isinstance(secret, str) else bytes(secret)
        if len(key) < MIN_SECRET_CHARS:
            raise UserError(NO_SECRET_WORDS)
        self._key = key
        self._refused = 0
        self._told_at = 0.0
        self._lock = threading.Lock()

    @classmethod
    def of(cls, secret: Optional[str | bytes] = None) -> "Signer":
        """A signer for `secret`, or for the environment's when None (refused in words if none)."""
        secret = secret or os.environ.get(SECRET_ENV)
        if not secret:
            raise UserError(NO_SECRET_WORDS)
        return cls(secret)

    def tag(self, data: bytes) -> bytes:
        return hmac.new(self._key, data, hashlib.sha256).digest()

    def seal(self, data: bytes) -> bytes:
        return self.tag(data) + data

    def open(self, sealed, what: str = "item") -> Optional[bytes]:
        """The data if `sealed` carries this secret's tag for it; else None (and a line in the
        log, at most one a minute, saying how many were dropped)."""
        if isinstance(sealed, (bytes, bytearray, memoryview)) and len(sealed) > TAG_BYTES:
            sealed = bytes(sealed)
            tag, data = sealed[:TAG_BYTES], sealed[TAG_BYTES:]
            if hmac.compare_digest(tag, self.tag(data)):
                return data
        self.refused(what)
        return None

    def refused(self, what: str) -> None:
        with self._lock:
            self._refused += 1
            now = time.monotonic()
            if now - self._told_at < REFUSED_LOG_INTERVAL_S:
                return
            self._told_at, count = now, self._refused
        log.warning("dropped a Redis %s without a valid signature (%d so far): whoever wrote it does not have "
                    "this deployment's %s", what, count, SECRET_ENV)

    @property
    def refused_count(self) -> int:
        return self._refused


class SeenCommands:
    """The commands an engine has taken, by (reply list, id), until they expire: a command
    pushed again (copied off the wire by someone who can read Redis) is not run twice."""

    def __init__(self):
        self._expiry: dict[tuple, float] = {}
        self._lock = threading.Lock()
        self._pruned_at = 0.0

    def first_time(self, key: tuple, expires: float) -> bool:
        now = time.time()
        with self._lock:
            if now - self._pruned_at > 5.0:
                self._expiry = {k: t for k, t in self._expiry.items() if t > now}
                self._pruned_at = now
            if key in self._expiry:
                return False
            self._expiry[key] = expires
            return True


class SignedJson:
    """The `json` module Flask-SocketIO's Redis queue uses between web processes, signing what
    it publishes and dropping what is not signed (python-socketio ignores a message its
    `loads` cannot read)."""

    def __init__(self, signer: Signer):
        self.signer = signer

    def dumps(self, data, **kwargs) -> str:
        text = json.dumps(data, **kwargs)
        return self.signer.tag(text.encode()).hex() + "." + text

    def loads(self, message, **kwargs):
        if isinstance(message, (bytes, bytearray)):
            message = bytes(message).decode("utf-8", "replace")
        tag, _, text = str(message).partition(".")
        try:
            good = hmac.compare_digest(bytes.fromhex(tag), self.signer.tag(text.encode()))
        except ValueError:
            good = False
        if not good:
            self.signer.refused("Socket.IO queue message")
            raise ValueError("not signed with this deployment's secret")
        return json.loads(text, **kwargs)
