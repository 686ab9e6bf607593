"""Segments (SPEC §1.9): bulk membership, the refresh-delay snapshot, the external source."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from activity_service.segments import service as segments
from service_kit.http import ServiceClient
from tests.service.activity_config.helpers import segment
from tests.service.harness import BASE_URLS, Platform

# The platform fixture's clock: 2026-11-23 02:00 UTC = 10:00 in Hong Kong.
T0 = datetime(2026, 11, 23, 2, 0, tzinfo=UTC)


async def _check(platform: Platform, seg: dict[str, Any], user: str, refresh: str) -> bool:
    response = await platform.activity.get(
        f"/v1/segments/{seg['id']}/members/{user}",
        params={"refresh": refresh},
        headers=platform.service(),
    )
    assert response.status_code == 200, response.text
    return bool(response.json()["member"])


async def _upload(
    platform: Platform, seg: dict[str, Any], suffix: str, content: Any, content_type: str
) -> httpx.Response:
    method = platform.activity.put if suffix == "" else platform.activity.post
    body = content if isinstance(content, bytes) else None
    kwargs: dict[str, Any] = {"content": body} if body is not None else {"json": content}
    headers = platform.operator()
    if body is not None:
        headers["Content-Type"] = content_type
    return await method(f"/v1/segments/{seg['id']}/members{suffix}", headers=headers, **kwargs)


async def test_create_and_read(platform: Platform) -> None:
    seg = await segment(platform, "VIP")
    assert seg["member_count"] == 0 and seg["source"] == "upload"
    again = await platform.activity.post(
        "/v1/segments", json={"name": "VIP"}, headers=platform.operator()
    )
    assert again.status_code == 409 and again.json()["code"] == "segment_name_taken"
    no_url = await platform.activity.post(
        "/v1/segments", json={"name": "x", "source": "external"}, headers=platform.operator()
    )
    assert no_url.status_code == 422
    listed = await platform.activity.get("/v1/segments", headers=platform.operator())
    assert [s["id"] for s in listed.json()["items"]] == [seg["id"]]
    missing = await platform.activity.get(
        f"/v1/segments/{uuid.uuid4()}", headers=platform.operator()
    )
    assert missing.status_code == 404 and missing.json()["code"] == "segment_not_found"


async def test_bulk_upload_formats_and_modes(platform: Platform) -> None:
    seg = await segment(platform)
    replaced = await _upload(platform, seg, "", ["u1", "u2", "u3", "u2"], "")
    assert replaced.status_code == 200, replaced.text
    assert replaced.json() | {"at": None, "visible_for_5m_from": None} == {
        "segment_id": seg["id"],
        "mode": "replace",
        "received": 3,
        "added": 3,
        "removed": 0,
        "member_count": 3,
        "at": None,
        "visible_for_5m_from": None,
        "visible_for_1d_from": "2026-11-23T16:00:00Z",
    }
    added = await _upload(platform, seg, ":add", b"user_id\nu3\nu4\n", "text/csv")
    assert (added.json()["added"], added.json()["member_count"]) == (1, 4)
    removed = await _upload(platform, seg, ":remove", b"u1\nu9\n", "text/plain")
    assert (removed.json()["removed"], removed.json()["member_count"]) == (1, 3)
    swapped = await _upload(platform, seg, "", b"u4\nu5\n", "text/plain; charset=utf-8")
    assert (swapped.json()["added"], swapped.json()["removed"]) == (1, 2)
    assert swapped.json()["member_count"] == 2
    read = await platform.activity.get(f"/v1/segments/{seg['id']}", headers=platform.operator())
    assert read.json()["member_count"] == 2 and read.json()["last_refreshed_at"] is not None

    bad = await _upload(platform, seg, "", b"ok\n" + b"x" * 300, "text/plain")
    assert bad.status_code == 422 and bad.json()["code"] == "invalid_member_id"
    assert bad.json()["line"] == 2
    xml = await _upload(platform, seg, "", b"<ids/>", "application/xml")
    assert xml.status_code == 415 and xml.json()["code"] == "unsupported_media_type"
    # A failed upload changes nothing.
    assert (
        await platform.activity.get(f"/v1/segments/{seg['id']}", headers=platform.operator())
    ).json()["member_count"] == 2


async def test_large_upload(platform: Platform) -> None:
    seg = await segment(platform)
    ids = "\n".join(f"user-{i:07d}" for i in range(50_000)).encode()
    response = await _upload(platform, seg, "", ids, "text/plain")
    assert response.status_code == 200, response.text
    assert response.json()["member_count"] == 50_000
    half = "\n".join(f"user-{i:07d}" for i in range(25_000, 75_000)).encode()
    again = await _upload(platform, seg, "", half, "text/plain")
    assert (again.json()["added"], again.json()["removed"]) == (25_000, 25_000)


async def test_five_minute_refresh_delay(platform: Platform) -> None:
    seg = await segment(platform)
    platform.clock.set(T0 + timedelta(minutes=2))  # 02:02
    await _upload(platform, seg, ":add", ["u1"], "")
    assert not await _check(platform, seg, "u1", "5m")
    live = await platform.activity.get(
        f"/v1/segments/{seg['id']}/members/u1", headers=platform.operator()
    )
    assert (
        live.json()["member_now"] is True and live.json()["snapshot_at"] == "2026-11-23T02:00:00Z"
    )
    platform.clock.set(T0 + timedelta(minutes=4, seconds=59))
    assert not await _check(platform, seg, "u1", "5m")
    platform.clock.set(T0 + timedelta(minutes=5))  # the next 5-minute refresh
    assert await _check(platform, seg, "u1", "5m")
    # Removal is seen the same way: still a member until the next refresh.
    platform.clock.set(T0 + timedelta(minutes=6))
    await _upload(platform, seg, ":remove", ["u1"], "")
    assert await _check(platform, seg, "u1", "5m")
    platform.clock.set(T0 + timedelta(minutes=10))
    assert not await _check(platform, seg, "u1", "5m")


async def test_one_day_refresh_delay_uses_the_tenant_midnight(platform: Platform) -> None:
    seg = await segment(platform)
    await _upload(platform, seg, ":add", ["u1"], "")  # 10:00 in Hong Kong
    platform.clock.set(T0 + timedelta(hours=6))
    assert await _check(platform, seg, "u1", "5m")
    assert not await _check(platform, seg, "u1", "1d")
    platform.clock.set(datetime(2026, 11, 23, 15, 59, tzinfo=UTC))  # 23:59 HK
    assert not await _check(platform, seg, "u1", "1d")
    platform.clock.set(datetime(2026, 11, 23, 16, 0, tzinfo=UTC))  # midnight HK
    assert await _check(platform, seg, "u1", "1d")


async def test_one_day_refresh_follows_the_tenant_time_zone(platform: Platform) -> None:
    zone = await platform.activity.put(
        "/v1/tenant-settings",
        json={"time_zone": "UTC"},
        headers={**platform.operator(), "If-Match": '"0"'},
    )
    assert zone.status_code == 200, zone.text
    seg = await segment(platform)
    added = await _upload(platform, seg, ":add", ["u1"], "")
    assert added.json()["visible_for_1d_from"] == "2026-11-24T00:00:00Z"
    platform.clock.set(datetime(2026, 11, 23, 23, 59, tzinfo=UTC))
    assert not await _check(platform, seg, "u1", "1d")
    platform.clock.set(datetime(2026, 11, 24, 0, 0, tzinfo=UTC))
    assert await _check(platform, seg, "u1", "1d")


async def test_is_member_for_the_evaluation_engine(platform: Platform) -> None:
    seg = await segment(platform)
    platform.clock.set(T0 + timedelta(minutes=1))
    await _upload(platform, seg, "", ["u1"], "")
    later = T0 + timedelta(days=1)
    soon = T0 + timedelta(minutes=4)
    seg_id = uuid.UUID(seg["id"])
    async with platform.db("activity").session() as session:
        assert await segments.is_member(session, "tenant-a", seg_id, "u1", "5m", later)
        assert await segments.is_member(session, "tenant-a", seg_id, "u1", "1d", later)
        assert not await segments.is_member(session, "tenant-a", seg_id, "u1", "5m", soon)
        assert not await segments.is_member(session, "tenant-a", seg_id, "u2", "5m", later)
        assert not await segments.is_member(session, "tenant-b", seg_id, "u1", "5m", later)


def _source(pages: dict[str | None, Any], fail: list[bool]) -> Starlette:
    async def members(request: Request) -> JSONResponse:
        assert "authorization" not in request.headers  # the platform's token stays inside
        if fail[0]:
            return JSONResponse({"error": "down"}, status_code=500)
        return JSONResponse(pages[request.query_params.get("cursor")])

    return Starlette(routes=[Route("/segments/dormant", members)])


async def test_external_source_refresh(platform: Platform) -> None:
    fail = [False]
    pages: dict[str | None, Any] = {
        None: {"items": ["e1", "e2"], "next_cursor": "p2"},
        "p2": {"items": ["e3", 4], "next_cursor": None},
    }
    app = platform.apps["activity"]
    original = app.state.http
    mounts: dict[str, httpx.AsyncBaseTransport] = {
        url: httpx.ASGITransport(app=platform.apps[name]) for name, url in BASE_URLS.items()
    }
    mounts["http://segments.example"] = httpx.ASGITransport(app=_source(pages, fail))
    app.state.http = ServiceClient(platform.settings["activity"], mounts=mounts, retries=1)
    try:
        created = await platform.activity.post(
            "/v1/segments",
            json={
                "name": "Dormant",
                "source": "external",
                "external_url": "http://segments.example/segments/dormant",
            },
            headers=platform.operator(),
        )
        assert created.status_code == 201, created.text
        seg = created.json()
        refreshed = await platform.activity.post(
            f"/v1/segments/{seg['id']}/refresh", headers=platform.operator()
        )
        assert refreshed.status_code == 200, refreshed.text
        assert refreshed.json()["member_count"] == 4 and refreshed.json()["added"] == 4

        pages[None] = ["e2", "e5"]  # a plain JSON list is one page
        again = await platform.activity.post(
            f"/v1/segments/{seg['id']}/refresh", headers=platform.operator()
        )
        assert (again.json()["added"], again.json()["removed"]) == (1, 3)

        fail[0] = True
        broken = await platform.activity.post(
            f"/v1/segments/{seg['id']}/refresh", headers=platform.operator()
        )
        assert broken.status_code == 502
        assert broken.json()["code"] == "external_segment_unavailable"
        read = await platform.activity.get(f"/v1/segments/{seg['id']}", headers=platform.operator())
        assert read.json()["member_count"] == 2  # unchanged by the failure

        upload = await _upload(platform, seg, ":add", ["x"], "")
        assert upload.status_code == 409 and upload.json()["code"] == "segment_is_external"

        # The worker's periodic job does the same and records a failure on the segment.
        from activity_service.segments.tasks import refresh_all_external

        ctx = {
            "db": platform.db("activity"),
            "http": app.state.http,
            "clock": platform.clock,
            "clocks": platform.job_clocks("activity"),
        }
        assert await refresh_all_external(ctx) == 0
        read = await platform.activity.get(f"/v1/segments/{seg['id']}", headers=platform.operator())
        assert "500" in read.json()["last_refresh_error"]
        fail[0] = False
        pages[None] = ["e9"]
        assert await refresh_all_external(ctx) == 1
        read = await platform.activity.get(f"/v1/segments/{seg['id']}", headers=platform.operator())
        assert read.json()["member_count"] == 1 and read.json()["last_refresh_error"] is None

        plain = await segment(platform, "plain")
        not_external = await platform.activity.post(
            f"/v1/segments/{plain['id']}/refresh", headers=platform.operator()
        )
        assert not_external.status_code == 409
        assert not_external.json()["code"] == "segment_not_external"
    finally:
        await app.state.http.aclose()
        app.state.http = original
