"""A throwaway local PostgreSQL server, for tests and benchmarks of the store on a real server.

Uses the Debian ``postgresql`` package's binaries (``/usr/lib/postgresql/<ver>/bin``). As root,
``initdb``/``pg_ctl`` run as the ``postgres`` system user (PostgreSQL refuses to run as root)
on a temporary directory owned by it. The server listens on 127.0.0.1 on a free port, trusts
local connections, and is stopped and deleted by :meth:`PostgresServer.stop`.
"""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
import uuid
from pathlib import Path

NOT_INSTALLED = "PostgreSQL not installed (run make system-deps)"


def find_pg_bin() -> Path | None:
    """The newest ``/usr/lib/postgresql/*/bin`` holding initdb and pg_ctl, or None."""
    found = []
    for d in glob.glob("/usr/lib/postgresql/*/bin"):
        p = Path(d)
        if (p / "initdb").exists() and (p / "pg_ctl").exists():
            ver = p.parent.name
            found.append((int(ver) if ver.isdigit() else 0, p))
    return max(found)[1] if found else None


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class PostgresServer:
    """``with PostgresServer() as pg: url = pg.create_database()``."""

    def __init__(self, bin_dir: Path | None = None) -> None:
        self.bin_dir = bin_dir or find_pg_bin()
        if self.bin_dir is None:
            raise RuntimeError(NOT_INSTALLED)
        self.as_root = os.geteuid() == 0
        self.port = free_port()
        self.root = Path(tempfile.mkdtemp(prefix="ktpath-pg-"))
        self.data_dir = self.root / "data"
        self.user = "postgres" if self.as_root else os.environ.get("USER", "postgres")
        self._started = False

    def _run(self, *args: str) -> None:
        cmd = [str(a) for a in args]
        if self.as_root:
            cmd = ["runuser", "-u", "postgres", "--", *cmd]
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
        if proc.returncode != 0:
            raise RuntimeError(f"{' '.join(cmd)} failed: {proc.stderr.strip() or proc.stdout.strip()}")

    def start(self) -> PostgresServer:
        if self.as_root:
            shutil.chown(self.root, "postgres", "postgres")
        self._run(self.bin_dir / "initdb", "-D", self.data_dir, "-A", "trust", "-U", self.user, "--no-sync", "-E", "UTF8")
        opts = f"-p {self.port} -h 127.0.0.1 -k {self.root} -F -c max_connections=200"
        self._run(self.bin_dir / "pg_ctl", "-D", self.data_dir, "-o", opts, "-l", self.root / "server.log", "-w", "start")
        self._started = True
        return self

    def stop(self) -> None:
        if self._started:
            try:
                self._run(self.bin_dir / "pg_ctl", "-D", self.data_dir, "-m", "immediate", "-w", "stop")
            finally:
                self._started = False
        shutil.rmtree(self.root, ignore_errors=True)

    def url(self, database: str = "postgres") -> str:
        return f"postgresql+psycopg://{self.user}@127.0.0.1:{self.port}/{database}"

    def create_database(self, name: str | None = None) -> str:
        """Create an empty database and return its SQLAlchemy URL."""
        import psycopg

        name = name or f"kt_{uuid.uuid4().hex[:12]}"
        with psycopg.connect(f"host=127.0.0.1 port={self.port} user={self.user} dbname=postgres", autocommit=True) as c:
            c.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def __enter__(self) -> PostgresServer:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
