"""Real bad disks for the tests: a small tmpfs that fills up, a folder that is mounted read-only.

As root (the tests' machines) `mount -t tmpfs` makes a real file system of a given size; where
mounting is refused, a full disk falls back to SQLite's own full condition (PRAGMA
max_page_count: every write past the pages the database has fails with SQLITE_FULL, as on a
full disk) and each test says which one it had."""
from __future__ import annotations

import errno
import os
import subprocess
from contextlib import contextmanager
from pathlib import Path

import pytest
from sqlalchemy import event


def _mount(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["mount", *args], capture_output=True, text=True, timeout=30)


@contextmanager
def tmpfs(folder: Path, size: str):
    """`folder` as a real tmpfs of `size` (e.g. "4m"); yields None where mounting is refused."""
    folder.mkdir(parents=True, exist_ok=True)
    mounted = _mount("-t", "tmpfs", "-o", f"size={size},mode=0755", "tmpfs", str(folder))
    if mounted.returncode != 0:
        print(f"mount refused ({mounted.stderr.strip()}): no real small disk here")
        yield None
        return
    try:
        yield folder
    finally:
        subprocess.run(["umount", "-l", str(folder)], capture_output=True, timeout=30)


class FullDisk:
    """Fill the disk under `folder` (a tmpfs) so that only `leave` bytes stay free, or, with no
    tmpfs, cap the store's SQLite file at its current size plus `leave` bytes."""

    def __init__(self, folder: Path, store, real: bool):
        self.folder, self.store, self.real = folder, store, real
        self.filler = folder / "filler"
        self.kind = "a real tmpfs, filled up by a file" if real else "SQLite's PRAGMA max_page_count (mount refused)"
        print(f"full disk: {self.kind}")

    def fill(self, leave: int = 0) -> None:
        if self.real:
            stats = os.statvfs(self.folder)
            to_write = max(0, stats.f_bavail * stats.f_frsize - leave)
            with open(self.filler, "ab", buffering=0) as filler:  # unbuffered: nothing left to flush
                try:
                    while to_write > 0:
                        to_write -= filler.write(b"\0" * min(to_write, 1 << 20))
                    # tmpfs counts whole pages: with nothing to leave, write until nothing fits.
                    while leave == 0:
                        filler.write(b"\0" * 4096)
                except OSError as err:
                    assert err.errno == errno.ENOSPC, err
            return
        import sqlite3

        with sqlite3.connect(self.store.path) as db:
            page_size, pages = db.execute("PRAGMA page_size").fetchone()[0], db.execute("PRAGMA page_count").fetchone()[0]
        db.close()
        cap = pages + leave // page_size

        def cap_pages(dbapi_connection, record):
            dbapi_connection.execute(f"PRAGMA max_page_count = {cap}")

        self._listener = cap_pages
        event.listen(self.store.engine, "connect", cap_pages)

    def free(self) -> None:
        if self.real:
            self.filler.unlink(missing_ok=True)
        else:
            event.remove(self.store.engine, "connect", self._listener)


@contextmanager
def read_only_folder(folder: Path, size: str = "16m"):
    """Yields a function that turns `folder` (a tmpfs the test may first fill) read-only for
    everyone, root included (remount ro). Without mounting, a non-root user gets permission bits
    instead; as root without mounting nothing can be made read-only and the test fails so."""
    with tmpfs(folder, size) as mounted:
        def make_read_only():
            if mounted is not None:
                result = _mount("-o", "remount,ro", str(folder))
                assert result.returncode == 0, result.stderr
                return "a tmpfs remounted read-only"
            if os.geteuid() == 0:
                pytest.fail("cannot make a read-only folder here: mounting is refused and root ignores permission bits")
            for path in [folder, *folder.iterdir()]:
                path.chmod(0o555 if path.is_dir() else 0o444)
            return "permission bits (mount refused)"

        try:
            yield make_read_only
        finally:
            if mounted is None:
                for path in [folder, *folder.iterdir()]:
                    path.chmod(0o755)


@contextmanager
def read_only_file(path: Path):
    """`path` (an existing file) made read-only for everyone, root included, in a folder that
    stays writable: a read-only bind mount of the file onto itself."""
    bound = _mount("--bind", str(path), str(path))
    if bound.returncode != 0:
        if os.geteuid() == 0:
            pytest.fail(f"cannot make a read-only file here: mounting is refused ({bound.stderr.strip()}) and root "
                        "ignores permission bits")
        path.chmod(0o444)
        try:
            yield "permission bits (mount refused)"
        finally:
            path.chmod(0o644)
        return
    try:
        result = _mount("-o", "remount,bind,ro", str(path))
        assert result.returncode == 0, result.stderr
        yield "a read-only bind mount of the file"
    finally:
        subprocess.run(["umount", str(path)], capture_output=True, timeout=30)
