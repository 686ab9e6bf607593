"""Idempotency-Key: what counts as the same request, and the wiring of every creating POST."""

from __future__ import annotations

from collections.abc import Iterable, Iterator

import pytest
from fastapi.routing import APIRoute
from starlette.routing import BaseRoute

from activity_platform.services import SERVICES
from service_kit.auth import Authenticator
from service_kit.idempotency.dependency import _claim
from service_kit.idempotency.fingerprint import canonical_body, fingerprint
from service_kit.routing import ServiceRoute

# An event is made idempotent by its own ``event_id`` (SPEC: same id and content →
# `duplicate`, other content → 409), on a connection of its own outside any session.
KEYED_BY_EVENT_ID = {("activity", "/v1/events")}


def test_json_bodies_compare_by_value() -> None:
    a = canonical_body("application/json", b'{"a": 1, "b": [1, 2]}')
    b = canonical_body("application/json; charset=utf-8", b'{"b":[1,2],"a":1}')
    assert a == b
    assert canonical_body("application/json", b'{"a": 2}') != a
    # not JSON after all: compared byte for byte (the endpoint refuses it anyway)
    assert canonical_body("application/json", b"{oops") == b"{oops"


def test_multipart_bodies_compare_without_their_boundary() -> None:
    def form(boundary: str, content: str) -> tuple[str, bytes]:
        body = (
            f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="a.csv"'
            f"\r\n\r\n{content}\r\n--{boundary}--\r\n"
        )
        return f"multipart/form-data; boundary={boundary}", body.encode()

    one, two, other = form("x1", "u-1"), form("y22", "u-1"), form("x1", "u-2")
    assert canonical_body(*one) == canonical_body(*two)
    assert canonical_body(*one) != canonical_body(*other)


def test_fingerprint_names_operation_parameters_and_body() -> None:
    base = fingerprint("POST", "/v1/prizes", [("a", "1")], "text/csv", b"x")
    assert base == fingerprint("post", "/v1/prizes", [("a", "1")], "text/csv", b"x")
    assert base != fingerprint("POST", "/v1/segments", [("a", "1")], "text/csv", b"x")
    assert base != fingerprint("POST", "/v1/prizes", [("a", "2")], "text/csv", b"x")
    assert base != fingerprint("POST", "/v1/prizes", [("a", "1")], "text/csv", b"y")
    # query order does not matter
    assert fingerprint("POST", "/p", [("a", "1"), ("b", "2")], "", b"") == fingerprint(
        "POST", "/p", [("b", "2"), ("a", "1")], "", b""
    )


def _api_routes(routes: Iterable[BaseRoute]) -> Iterator[APIRoute]:
    """Routes of the app and of the routers it includes (kept apart since FastAPI 0.16x)."""
    for route in routes:
        if isinstance(route, APIRoute):
            yield route
        included = getattr(route, "original_router", None)
        if included is not None:
            yield from _api_routes(included.routes)


def _dependency_calls(route: APIRoute) -> list[object]:
    return [d.call for d in route.dependant.dependencies]


@pytest.mark.parametrize("service", sorted(SERVICES))
def test_every_creating_post_honours_the_idempotency_key(service: str) -> None:
    """Every POST claims the key after its caller is authenticated, on a route that stores
    the answer; otherwise a key could be claimed for ever or scoped to nobody."""
    app = SERVICES[service].create_app()
    posts = [r for r in _api_routes(app.routes) if "POST" in r.methods]
    assert posts
    for route in posts:
        calls = _dependency_calls(route)
        if route.name == "post_event":
            assert _claim not in calls
            continue
        assert isinstance(route, ServiceRoute), route.path
        assert _claim in calls, f"{service} POST {route.path} ignores Idempotency-Key"
        auth = next(i for i, c in enumerate(calls) if isinstance(c, Authenticator))
        assert auth < calls.index(_claim), f"{route.path}: the key is claimed before the caller"
    document = app.openapi()
    for path, operations in document["paths"].items():
        if "post" in operations and (service, path) not in KEYED_BY_EVENT_ID:
            names = [p["name"] for p in operations["post"].get("parameters", [])]
            assert "Idempotency-Key" in names, path
