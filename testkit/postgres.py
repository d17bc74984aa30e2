"""PostgresCluster: a throwaway PostgreSQL server from Debian's `postgresql` package — initdb into a temporary
folder, a free loopback port, its socket in that folder, stopped and deleted at the end."""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
import uuid
from pathlib import Path


def postgres_bin() -> Path | None:
    """The folder of `pg_ctl` and `initdb`: on PATH, else Debian's /usr/lib/postgresql/<version>/bin."""
    found = shutil.which("pg_ctl")
    if found and shutil.which("initdb"):
        return Path(found).resolve().parent
    versions = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"), key=lambda p: int(p.split("/")[4]))
    return Path(versions[-1]).parent if versions else None


def postgres_missing() -> str | None:
    """Why no cluster can be started here, or None."""
    if postgres_bin() is None:
        return "no pg_ctl/initdb (apt-get install postgresql)"
    if os.geteuid() == 0 and shutil.which("runuser") is None:
        return "running as root without runuser (initdb refuses root)"
    return None


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class PostgresCluster:
    """A PostgreSQL server on 127.0.0.1 (trust authentication: loopback only, a test's own throwaway data)."""

    def __init__(self, max_connections: int = 300) -> None:
        bindir = postgres_bin()
        if bindir is None:
            raise RuntimeError(postgres_missing())
        self.bindir = bindir
        self.folder = Path(tempfile.mkdtemp(prefix="pg-cluster-"))
        self.data = self.folder / "data"
        if os.geteuid() == 0:  # initdb refuses to run as root: the cluster belongs to the `postgres` user
            shutil.chown(self.folder, "postgres")
        self._run("initdb", "-D", str(self.data), "-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-sync")
        self.max_connections = max_connections
        for _attempt in range(5):
            self.port = _free_port()
            done = self._start()
            if done.returncode == 0:
                return
        log = (self.folder / "server.log").read_text() if (self.folder / "server.log").exists() else ""
        raise RuntimeError(f"PostgreSQL did not start: {done.stderr}\n{log[-2000:]}")

    def _start(self) -> subprocess.CompletedProcess[str]:
        options = (f"-p {self.port} -k {self.folder} -c listen_addresses=127.0.0.1 "
                   f"-c max_connections={self.max_connections}")
        return self._run("pg_ctl", "-D", str(self.data), "-l", str(self.folder / "server.log"), "-o", options,
                         "-w", "-t", "60", "start", check=False)

    def halt(self, mode: str = "fast") -> None:
        """Stop the server, keeping its data (`start` brings it back on the same port). `fast` (pg_ctl's default)
        ends every session with `AdminShutdown`, as a database restart or failover does."""
        self._run("pg_ctl", "-D", str(self.data), "-m", mode, "-w", "-t", "60", "stop")

    def start(self) -> None:
        """Start a halted server again, on the same port (`-w`: it accepts connections when this returns)."""
        done = self._start()
        if done.returncode != 0:
            raise RuntimeError(f"PostgreSQL did not start again: {done.stderr}")

    def running(self) -> bool:
        return self._run("pg_ctl", "-D", str(self.data), "status", check=False).returncode == 0

    def restart(self, mode: str = "fast") -> None:
        """A real restart: every connection is cut (AdminShutdown), the server is back when this returns."""
        self.halt(mode)
        self.start()

    def _run(self, tool: str, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        command = [str(self.bindir / tool), *args]
        if os.geteuid() == 0:
            command = ["runuser", "-u", "postgres", "--", *command]
        return subprocess.run(command, capture_output=True, text=True, check=check, timeout=120)

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    def create_database(self) -> str:
        """A new, empty database of this cluster; its URL."""
        import psycopg

        name = f"t_{uuid.uuid4().hex[:16]}"
        with psycopg.connect(self.url(), autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def stop(self) -> None:
        self._run("pg_ctl", "-D", str(self.data), "-m", "immediate", "stop", check=False)
        shutil.rmtree(self.folder, ignore_errors=True)
