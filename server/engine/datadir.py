"""One server per data directory: a lock that a second server on the same folder cannot take.

Two servers on one data directory would overwrite each other's records (the second marks the
first's live run interrupted). `DataDirLock` takes `fcntl.flock` on a lock file in the folder
and writes who holds it (pid, command line, since when); a second process is refused with
`DataDirInUse`, whose message names the holder. The kernel drops the lock when the holder's
process ends however it ends (kill -9 included), so a stale lock file never blocks a start.
"""
from __future__ import annotations

import errno
import fcntl
import json
import os
import shlex
import socket
import sys
import time
from pathlib import Path
from typing import Optional

LOCK_NAME = "playground.lock"
HOLDER_READ_TRIES = 20  # the holder writes its name just after it takes the lock: wait for it
HOLDER_READ_PAUSE_S = 0.05


class DataDirInUse(RuntimeError):
    """The data directory is held by another process; the message says which, for people."""

    def __init__(self, message: str, holder: Optional[dict]):
        super().__init__(message)
        self.holder = holder


def own_command_line() -> str:
    """This process's command line as it was typed (`python -m server --port 5000`)."""
    try:
        parts = Path("/proc/self/cmdline").read_bytes().rstrip(b"\0").split(b"\0")
        return shlex.join(part.decode(errors="replace") for part in parts)
    except OSError:
        return shlex.join([sys.executable, *sys.argv])


class DataDirLock:
    """`with DataDirLock(folder):` or `lock = DataDirLock(folder).acquire()` ... `lock.release()`.

    `notice` is set (words) when the folder could not be locked because it is read-only: then
    nothing is written there anyway, and the start goes on."""

    def __init__(self, data_dir: Path | str):
        self.data_dir = Path(data_dir)
        self.path = self.data_dir / LOCK_NAME
        self.notice: Optional[str] = None
        self._file = None

    def acquire(self) -> "DataDirLock":
        try:
            self.data_dir.mkdir(parents=True, exist_ok=True)
            self._file = open(self.path, "a+")
        except OSError as err:
            if err.errno not in (errno.EROFS, errno.EACCES, errno.EPERM):
                raise
            if not self.path.exists():
                self.notice = (f"{self.data_dir} is read-only ({err.strerror}): it is not locked for this "
                               "server, and nothing is written to it")
                return self
            self._file = open(self.path)  # flock needs no write access: a read-only folder still locks
        try:
            fcntl.flock(self._file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = self._read_holder()
            self._file.close()
            self._file = None
            raise DataDirInUse(self._in_use_message(holder), holder) from None
        if self._file.writable():
            self._file.seek(0)
            self._file.truncate()
            json.dump({"pid": os.getpid(), "command": own_command_line(), "host": socket.gethostname(),
                       "since": time.strftime("%Y-%m-%d %H:%M:%S %z")}, self._file)
            self._file.write("\n")
            self._file.flush()
        return self

    def release(self) -> None:
        if self._file is None:
            return
        if self._file.writable():
            self._file.truncate(0)  # the file stays: removing it would race with a new holder
        fcntl.flock(self._file, fcntl.LOCK_UN)
        self._file.close()
        self._file = None

    def __enter__(self) -> "DataDirLock":
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()

    def _read_holder(self) -> Optional[dict]:
        for _ in range(HOLDER_READ_TRIES):
            try:
                holder = json.loads(self.path.read_text() or "null")
            except (OSError, ValueError):
                holder = None
            if isinstance(holder, dict) and "pid" in holder:
                return holder
            time.sleep(HOLDER_READ_PAUSE_S)
        return None

    def _in_use_message(self, holder: Optional[dict]) -> str:
        if holder is None:
            who = "another process (it did not say which)"
        else:
            who = f"process {holder.get('pid')} ({holder.get('command', 'command line unknown')})"
            if holder.get("host") and holder["host"] != socket.gethostname():
                who += f" on {holder['host']}"
            if holder.get("since"):
                who += f", since {holder['since']}"
        return (f"the data directory {self.data_dir} is in use by another playground server: {who}. "
                f"Stop that server first, or give this one another --data-dir (its lock: {self.path})")
