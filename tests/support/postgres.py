"""A real PostgreSQL 15 server for the tests: Debian's binaries, a new cluster in a temporary
folder, a free loopback port, stopped and removed after. PostgreSQL refuses to run as root, so
as root the cluster belongs to the `postgres` user (initdb and pg_ctl through runuser)."""
from __future__ import annotations

import itertools
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

from tests.support.helpers import free_port

PG_BIN = Path("/usr/lib/postgresql/15/bin")
PG_USER = "postgres"


class PostgresServer:
    def __init__(self):
        missing = [name for name in ("initdb", "pg_ctl") if not (PG_BIN / name).exists()]
        if missing:
            raise RuntimeError(f"{', '.join(PG_BIN / m for m in missing)} missing: `make test` installs "
                               "Debian's postgresql (apt-get install -y postgresql)")
        self.as_root = os.geteuid() == 0
        self.folder = Path(tempfile.mkdtemp(prefix="playground-pg-"))
        if self.as_root:
            shutil.chown(self.folder, PG_USER, PG_USER)
        self.data = self.folder / "data"
        self.port = free_port()
        self._names = itertools.count(1)

    def _run(self, *command: str) -> None:
        prefix = ["runuser", "-u", PG_USER, "--"] if self.as_root else []
        result = subprocess.run(prefix + list(command), capture_output=True, text=True, timeout=120)
        if result.returncode != 0:
            raise RuntimeError(f"{' '.join(command)} failed ({result.returncode}): {result.stdout}{result.stderr}")

    def start(self) -> "PostgresServer":
        # trust on loopback only, no fsync: a throwaway cluster for tests.
        self._run(str(PG_BIN / "initdb"), "-D", str(self.data), "-U", PG_USER, "-A", "trust",
                  "-E", "UTF8", "--locale=C", "--no-sync")
        options = (f"-p {self.port} -k {self.folder} -c listen_addresses=127.0.0.1 -c fsync=off "
                   "-c synchronous_commit=off -c full_page_writes=off")
        self._run(str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-l", str(self.folder / "server.log"),
                  "-o", options, "-w", "-t", "60", "start")
        return self

    def stop(self) -> None:
        try:
            if (self.data / "postmaster.pid").exists():
                self._run(str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-m", "fast", "-w", "-t", "60", "stop")
        finally:
            shutil.rmtree(self.folder, ignore_errors=True)

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://{PG_USER}@127.0.0.1:{self.port}/{database}"

    def new_database(self) -> str:
        """A new empty database; its URL."""
        import psycopg

        name = f"test_{next(self._names)}"
        with psycopg.connect(self.url(), autocommit=True) as db:
            db.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)
