"""``POST /v1/events`` answered directly by its route (``service_kit.routing``): the same
answer FastAPI gives, byte for byte; every request it does not take (another JSON media
type, a body the model refuses) answered by FastAPI as before; and an endpoint of another
shape refused when the application is built."""

from __future__ import annotations

from typing import Annotated

import pytest
from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel

from activity_service.events.endpoints import router as events_router
from service_kit.auth import Authenticator, CallerKind, Principal
from service_kit.routing import ServiceRoute, answered_directly
from tests.service.flows import registered_event
from tests.service.harness import Platform

# FastAPI decodes every ``+json`` media type as JSON; the route answers ``application/json``
# itself: this one goes FastAPI's way with the same body.
FASTAPI_JSON = "application/vnd.platform+json"


async def test_a_direct_answer_is_fastapis_answer(platform: Platform) -> None:
    (route,) = [r for r in events_router.routes if getattr(r, "path", None) == "/v1/events"]
    assert isinstance(route, ServiceRoute) and route.direct is not None
    body = registered_event("u-direct", "evt-direct-1")
    headers = platform.service()
    direct = await platform.activity.post("/v1/events", json=body, headers=headers)
    assert direct.status_code == 202, direct.text
    assert direct.json()["status"] == "accepted"

    replay = await platform.activity.post(
        "/v1/events",
        content=direct.request.content,
        headers={**headers, "Content-Type": FASTAPI_JSON},
    )
    assert replay.status_code == 202, replay.text
    assert replay.json()["status"] == "duplicate"
    assert replay.content == direct.content.replace(b'"accepted"', b'"duplicate"')
    assert replay.headers["content-type"] == direct.headers["content-type"]

    # And a replay answered directly is the same duplicate.
    again = await platform.activity.post("/v1/events", json=body, headers=headers)
    assert again.content == replay.content


async def test_a_body_the_model_refuses_gets_fastapis_422(platform: Platform) -> None:
    bad = {**registered_event("u-direct", "evt-direct-2"), "occurred_at": "yesterday"}
    response = await platform.activity.post("/v1/events", json=bad, headers=platform.service())
    assert response.status_code == 422, response.text
    problem = response.json()
    assert problem["code"] == "validation_error"
    assert problem["errors"][0]["loc"] == ["body", "occurred_at"]

    broken = await platform.activity.post(
        "/v1/events",
        content=b'{"event_id": ',
        headers={**platform.service(), "Content-Type": "application/json"},
    )
    assert broken.status_code == 422, broken.text
    assert broken.json()["errors"][0]["type"] == "json_invalid"

    # Nothing was stored: the id is still free.
    good = registered_event("u-direct", "evt-direct-2")
    stored = await platform.activity.post("/v1/events", json=good, headers=platform.service())
    assert stored.json()["status"] == "accepted"


async def test_the_caller_is_checked_before_the_body(platform: Platform) -> None:
    body = registered_event("u-direct", "evt-direct-3")
    response = await platform.activity.post("/v1/events", json=body, headers=platform.user("u1"))
    assert response.status_code == 403, response.text
    assert response.json()["code"] == "event_not_allowed"
    unauthenticated = await platform.activity.post("/v1/events", content=b"{")
    assert unauthenticated.status_code == 401, unauthenticated.text


class _Thing(BaseModel):
    name: str


_Caller = Annotated[Principal, Depends(Authenticator(kinds={CallerKind.service}))]


def test_an_endpoint_of_another_shape_is_refused_at_build_time() -> None:
    router = APIRouter(route_class=ServiceRoute)

    async def with_query(body: _Thing, principal: _Caller, page: int = 1) -> _Thing:
        return body

    with pytest.raises(TypeError, match="answered directly"):
        router.post("/things")(answered_directly(with_query))

    async def plain(body: _Thing, principal: _Caller, request: Request) -> _Thing:
        return body

    router.post("/things")(answered_directly(plain))
    route = router.routes[-1]
    assert isinstance(route, ServiceRoute) and route.direct is not None
