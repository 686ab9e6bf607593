"""All processes started as `activity-platform dev` starts them, talking real HTTP."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from sqlalchemy.engine import make_url

from activity_platform.embedded import database_url, free_port
from service_kit.auth import CallerKind, encode_token
from service_kit.config import DEV_JWT_SECRET
from tests.infra import Infra, drop_databases

# Six processes start on shared cores: a loaded machine may need longer (E2E_STARTUP_TIMEOUT).
STARTUP_TIMEOUT_SECONDS = float(os.environ.get("E2E_STARTUP_TIMEOUT", "90"))


@dataclass
class RunningPlatform:
    urls: dict[str, str]
    process: subprocess.Popen[bytes]
    log_path: Path
    # Where each worker serves its Prometheus metrics.
    worker_metrics: dict[str, str]
    # The stack's Redis and queue prefix, to start a job as its cron would.
    redis_url: str = ""
    queue_prefix: str = ""

    def token(
        self,
        kind: str,
        *,
        tenant: str = "tenant-e2e",
        sub: str = "x",
        app: str | None = None,
        permissions: tuple[str, ...] = (),
    ) -> dict[str, str]:
        jwt = encode_token(
            DEV_JWT_SECRET,
            sub=sub,
            tenant_id=tenant,
            kind=CallerKind(kind),
            app_id=app,
            permissions=permissions,
        )
        return {"Authorization": f"Bearer {jwt}"}

    def log_tail(self, lines: int = 60) -> str:
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])


def _wait_ready(urls: dict[str, str], process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + STARTUP_TIMEOUT_SECONDS
    pending = dict(urls)
    while pending and time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"dev exited early:\n{log.read_text(errors='replace')[-4000:]}")
        for name, url in list(pending.items()):
            try:
                if httpx.get(f"{url}/readyz", timeout=1).status_code == 200:
                    pending.pop(name)
            except httpx.HTTPError:
                pass
        time.sleep(0.3)
    if pending:
        raise RuntimeError(
            f"not ready: {sorted(pending)}\n{log.read_text(errors='replace')[-4000:]}"
        )


@contextmanager
def start_platform(
    infra: Infra,
    tmp_path_factory: pytest.TempPathFactory,
    extra_env: dict[str, str] | None = None,
    name: str = "e2e",
) -> Iterator[RunningPlatform]:
    """``activity-platform dev`` on databases and a queue prefix of its own, stopped and its
    databases dropped at the end; ``extra_env`` adds to the processes' environment."""
    data_dir = tmp_path_factory.mktemp("dev-data")
    suffix = f"_{name}{os.getpid()}"
    db_urls = {name: infra.db_url(name, suffix) for name in ("activity", "referral", "reward")}
    ports = {name: free_port() for name in db_urls}
    metrics_ports = {name: free_port() for name in db_urls}
    env = dict(os.environ)
    env.update(
        {
            "ACTIVITY_DATABASE_URL": db_urls["activity"],
            "REFERRAL_DATABASE_URL": db_urls["referral"],
            "REWARD_DATABASE_URL": db_urls["reward"],
            "REDIS_URL": infra.redis_url,
            "QUEUE_PREFIX": f"{infra.queue_prefix}-{name}",
            "LOG_LEVEL": "WARNING",
            **{f"{n.upper()}_WORKER_METRICS_PORT": str(p) for n, p in metrics_ports.items()},
            **(extra_env or {}),
        }
    )
    log_path = data_dir / "dev.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "activity_platform.cli",
                "dev",
                "--data-dir",
                str(data_dir),
                "--activity-port",
                str(ports["activity"]),
                "--referral-port",
                str(ports["referral"]),
                "--reward-port",
                str(ports["reward"]),
            ],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    urls = {name: f"http://127.0.0.1:{port}" for name, port in ports.items()}
    worker_metrics = {n: f"http://127.0.0.1:{p}/metrics" for n, p in metrics_ports.items()}
    running = RunningPlatform(
        urls=urls,
        process=process,
        log_path=log_path,
        worker_metrics=worker_metrics,
        redis_url=infra.redis_url,
        queue_prefix=env["QUEUE_PREFIX"],
    )
    try:
        _wait_ready(urls, process, log_path)
        yield running
    finally:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        import asyncio

        # The reference cash system's database sits next to the reward database.
        reward_db = make_url(db_urls["reward"]).database
        cash = {"cash": database_url(db_urls["reward"], f"{reward_db}_cash")}
        asyncio.run(drop_databases(infra, {**db_urls, **cash}))


@pytest.fixture(scope="module")
def running_platform(
    infra: Infra, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RunningPlatform]:
    with start_platform(infra, tmp_path_factory) as running:
        yield running
