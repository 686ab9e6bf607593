"""A worker's poll asks Redis only about queued jobs it is not running itself."""

from __future__ import annotations

import asyncio

import pytest
from arq import Worker
from arq.worker import func

from service_kit.worker import ServiceWorker


async def _noop(ctx: dict[str, object]) -> None:
    return None


async def test_a_poll_skips_the_jobs_this_worker_is_running(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    asked: list[bytes] = []

    async def start_jobs(self: Worker, job_ids: list[bytes]) -> None:
        asked.extend(job_ids)

    monkeypatch.setattr(Worker, "start_jobs", start_jobs)
    worker = ServiceWorker(functions=[func(_noop, name="noop")], burst=True)
    loop = asyncio.get_running_loop()
    running, ended = loop.create_future(), loop.create_future()
    ended.set_result(None)  # its job may be queued again (Retry): asked about as usual
    worker.tasks = {"running": running, "ended": ended}  # type: ignore[dict-item]

    await worker.start_jobs([b"running", b"ended", b"queued"])

    assert asked == [b"ended", b"queued"]
    running.cancel()
