"""``POST /v1/events`` dispatched straight to its route (``service_kit.direct_dispatch``):
every kind of request, good and bad, gets the answer the full router gives, with the same
status, body and headers; the shortcut steps aside where it could differ."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from service_kit.direct_dispatch import DirectDispatch
from tests.service.flows import registered_event
from tests.service.harness import Platform

Request = Callable[[Platform, str], dict[str, Any]]


def _event(platform: Platform, run: str, **changes: Any) -> dict[str, Any]:
    body = {**registered_event(f"u-{run}", f"evt-{run}"), **changes}
    return {"json": body, "headers": platform.service()}


# Each request is made twice, once per path, with its own ids (``run``).
REQUESTS: dict[str, Request] = {
    "accepted": lambda p, run: _event(p, run),
    "invalid field": lambda p, run: _event(p, run, occurred_at="yesterday"),
    "broken JSON": lambda p, run: {
        "content": b'{"event_id": ',
        "headers": {**p.service(), "Content-Type": "application/json"},
    },
    "other JSON media type": lambda p, run: {
        "content": json.dumps(registered_event(f"u-{run}", f"evt-{run}")).encode(),
        "headers": {**p.service(), "Content-Type": "application/vnd.platform+json"},
    },
    "form body": lambda p, run: {"data": {"event_id": f"evt-{run}"}, "headers": p.service()},
    "no token": lambda p, run: {"json": registered_event(f"u-{run}", f"evt-{run}")},
    "bad token": lambda p, run: {
        "json": registered_event(f"u-{run}", f"evt-{run}"),
        "headers": {"Authorization": "Bearer nope"},
    },
    "user posting a registration": lambda p, run: {
        "json": registered_event(f"u-{run}", f"evt-{run}"),
        "headers": p.user(f"u-{run}"),
    },
    "over the body limit": lambda p, run: {
        "content": b'{"event_id": "' + b"x" * 70_000 + b'"}',
        "headers": {**p.service(), "Content-Type": "application/json"},
    },
    "with an Idempotency-Key": lambda p, run: {
        **_event(p, run),
        "headers": {**p.service(), "Idempotency-Key": f"key-{run}"},
    },
}


def _answer(response: httpx.Response, run: str) -> tuple[int, str, Any]:
    """What must be equal on both paths: status, media type and body, ids and receipt times
    aside (each path stores its own event)."""
    text = response.text.replace(run, "RUN")
    try:
        body: Any = json.loads(text)
    except ValueError:
        body = text
    if isinstance(body, dict):
        body.pop("received_at", None)
    return response.status_code, response.headers.get("content-type", ""), body


@pytest.fixture
def dispatch(platform: Platform) -> DirectDispatch:
    app = platform.apps["activity"]
    if app.middleware_stack is None:
        app.middleware_stack = app.build_middleware_stack()
    assert isinstance(app.middleware_stack, DirectDispatch)
    return app.middleware_stack


@pytest.mark.parametrize("kind", list(REQUESTS))
async def test_the_direct_answer_is_the_routers(
    platform: Platform, dispatch: DirectDispatch, kind: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    routed_calls = 0
    routed = dispatch.routed

    async def counting(scope: Any, receive: Any, send: Any) -> None:
        nonlocal routed_calls
        routed_calls += 1
        await routed(scope, receive, send)

    monkeypatch.setattr(dispatch, "routed", counting)
    make = REQUESTS[kind]

    direct = await platform.activity.post("/v1/events", **make(platform, "direct"))
    assert routed_calls == 0, "the request went through the router"

    # Any dependency override makes the shortcut step aside (it could not honour it).
    app = platform.apps["activity"]
    monkeypatch.setitem(app.dependency_overrides, _never_used, _never_used)
    full = await platform.activity.post("/v1/events", **make(platform, "routed"))
    assert routed_calls == 1

    assert _answer(direct, "direct") == _answer(full, "routed"), (direct.text, full.text)
    # Even the framework's own 413, which the router's path answers from outside the
    # request context, carries the request id here.
    assert direct.headers["x-request-id"]


def _never_used() -> None:  # pragma: no cover - a key of dependency_overrides only
    raise AssertionError


async def test_a_duplicate_and_a_conflict_answered_directly(platform: Platform) -> None:
    first = await platform.activity.post("/v1/events", **_event(platform, "dup"))
    assert first.status_code == 202 and first.json()["status"] == "accepted"
    again = await platform.activity.post("/v1/events", **_event(platform, "dup"))
    assert again.status_code == 202
    assert again.json() == {**first.json(), "status": "duplicate"}
    other = await platform.activity.post(
        "/v1/events", **_event(platform, "dup", user_id="someone-else")
    )
    assert other.status_code == 409 and other.json()["code"] == "event_id_conflict"


async def test_other_methods_and_paths_go_through_the_router(
    platform: Platform, dispatch: DirectDispatch, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: list[str] = []
    routed = dispatch.routed

    async def recording(scope: Any, receive: Any, send: Any) -> None:
        seen.append(f"{scope['method']} {scope['path']}")
        await routed(scope, receive, send)

    monkeypatch.setattr(dispatch, "routed", recording)
    wrong_method = await platform.activity.get("/v1/events", headers=platform.service())
    assert wrong_method.status_code == 405
    slash = await platform.activity.post("/v1/events/", **_event(platform, "slash"))
    assert slash.status_code in (307, 404, 405)
    assert seen == ["GET /v1/events", "POST /v1/events/"]
