"""A request's id is carried into every job it causes, across the three services' workers,
and written on their log lines with the service's name."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import text

from service_kit.logs import log_handler
from tests.service.flows import create_coupon_prize, create_register_activity, registered_event
from tests.service.harness import Platform


@contextmanager
def captured_logs() -> Iterator[list[dict[str, Any]]]:
    """The JSON lines the process logs inside the block (the production handler)."""
    stream = io.StringIO()
    handler = log_handler("test", json_logs=True, stream=stream)
    root = logging.getLogger()
    level = root.level
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    lines: list[dict[str, Any]] = []
    try:
        yield lines
    finally:
        root.removeHandler(handler)
        root.setLevel(level)
        lines.extend(json.loads(line) for line in stream.getvalue().splitlines() if line)


async def test_the_jobs_an_event_causes_log_its_request_id(platform: Platform) -> None:
    prize = await create_coupon_prize(platform)
    await create_register_activity(platform, prize["id"])
    code = await platform.referral.get("/v1/me/invite-code", headers=platform.user("u-inviter"))
    await platform.drain()

    with captured_logs() as lines:
        response = await platform.activity.post(
            "/v1/events",
            json=registered_event("u-new", "evt-req", code.json()["code"]),
            headers={**platform.service(), "X-Request-ID": "req-registration-1"},
        )
        assert response.status_code == 202, response.text
        assert response.headers["x-request-id"] == "req-registration-1"
        async with platform.db("activity").session() as session:
            metas = (
                await session.execute(text("SELECT payload -> '_meta' FROM outbox_messages"))
            ).scalars()
            assert {m["request_id"] for m in metas} == {"req-registration-1"}
        await platform.drain()

    access = [line for line in lines if line["logger"] == "access"]
    assert access[0]["service"] == "activity"
    assert access[0]["request_id"] == "req-registration-1"
    assert (access[0]["method"], access[0]["route"], access[0]["status"]) == (
        "POST",
        "/v1/events",
        202,
    )

    jobs = {(line["service"], line["job_name"]): line for line in lines if "job_name" in line}
    # The event's evaluation, the referral binding and the evaluation it caused in turn,
    # the reward record and the grant ledger following it: all in the request's name.
    for caused in [
        ("activity", "activity.evaluate_event"),
        ("referral", "referral.user_registered"),
        ("activity", "activity.binding_changed"),
        ("reward", "reward.create_from_grant"),
        ("activity", "activity.record_status_changed"),
    ]:
        assert caused in jobs, sorted(jobs)
        line = jobs[caused]
        assert line["request_id"] == "req-registration-1", line
        assert line["outcome"] == "ok" and line["job"].startswith(caused[1] + ":")
        assert line["duration_ms"] >= 0
    assert all(line["service"] for line in lines), [ln for ln in lines if not ln["service"]]
