"""What the benchmarks and the tests both need, in one place (bench/ imports no test module; the
tests import these from here): Debian's Chromium and its flags, a Socket.IO client that handles
messages in order, processes from /proc, a free port, and a real Redis in a temporary folder."""
from __future__ import annotations

import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import engineio
import socketio

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]


class _OrderedEngineIOClient(engineio.Client):
    """python-socketio handles each incoming message on its own thread, so a binary attachment
    can overtake its header and swallow the next packet. Tests handle messages in order."""

    def _trigger_event(self, event, *args, **kwargs):
        if event == "message":
            kwargs["run_async"] = False
        return super()._trigger_event(event, *args, **kwargs)


class OrderedClient(socketio.Client):
    def _engineio_client_class(self):
        return _OrderedEngineIOClient


def free_port() -> int:
    """A loopback port nothing listens on now (for a server the test starts)."""
    import socket as sockets

    with sockets.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def descendants(pid: int) -> list[int]:
    """Every process below `pid` (children, their children, ...), from /proc."""
    parents = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except (OSError, ValueError):
                continue
            parents[int(entry.name)] = int(stat.rsplit(")", 1)[1].split()[1])
    found, frontier = [], [pid]
    while frontier:
        parent = frontier.pop()
        children = [child for child, ppid in parents.items() if ppid == parent]
        found += children
        frontier += children
    return found


def command_line(pid: int) -> str:
    try:
        return (Path("/proc") / str(pid) / "cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


REDIS_SERVER = "redis-server"
START_TIMEOUT_S = 10.0


class RedisServer:
    def __init__(self):
        self.binary = shutil.which(REDIS_SERVER)
        if self.binary is None:
            raise FileNotFoundError(f"{REDIS_SERVER} is not installed: `make test` installs Debian's redis-server "
                                    "(apt-get install -y redis-server)")
        self.folder = Path(tempfile.mkdtemp(prefix="playground-redis-"))
        self.port = free_port()
        self.process: subprocess.Popen | None = None
        self.starts = 0

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> "RedisServer":
        command = [self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--dir", str(self.folder),
                   "--save", "", "--appendonly", "no", "--daemonize", "no", "--protected-mode", "yes",
                   "--logfile", str(self.folder / "redis.log")]
        setpriv = shutil.which("setpriv")
        if setpriv:
            command = [setpriv, "--pdeathsig", "KILL", "--"] + command
        self.process = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                        stderr=subprocess.PIPE)
        self.starts += 1
        deadline = time.monotonic() + START_TIMEOUT_S
        while not self._answers_ping():
            if self.process.poll() is not None:
                raise RuntimeError(f"redis-server exited ({self.process.returncode}): {self._log()}")
            if time.monotonic() > deadline:
                self.stop(remove=False)
                raise RuntimeError(f"redis-server did not answer on port {self.port} within {START_TIMEOUT_S:g} s: "
                                   f"{self._log()}")
            time.sleep(0.02)
        return self

    def _answers_ping(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as sock:
                sock.sendall(b"PING\r\n")
                return sock.recv(16).startswith(b"+PONG")
        except OSError:
            return False

    def _log(self) -> str:
        path = self.folder / "redis.log"
        errors = self.process.stderr.read().decode(errors="replace") if self.process and self.process.poll() is not None else ""
        return (path.read_text(errors="replace")[-2000:] if path.exists() else "") + errors

    def stop(self, *, remove: bool = True, kill: bool = False) -> None:
        """Stop the server (SIGTERM, or SIGKILL with `kill`) and wait until it has exited."""
        process, self.process = self.process, None
        if process is not None and process.poll() is None:
            process.send_signal(signal.SIGKILL if kill else signal.SIGTERM)
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(10)
        if process is not None and process.stderr:
            process.stderr.close()
        if remove:
            shutil.rmtree(self.folder, ignore_errors=True)

    def restart(self, *, down_s: float = 0.0) -> None:
        """Stop and start again on the same port, empty (nothing is saved); `down_s` seconds
        in between, so clients notice it was away."""
        self.stop(remove=False)
        time.sleep(down_s)
        self.start()
