"""CSV uploads the csv module cannot read (bare CR, a giant field, an unterminated quote)
are a 422 invalid_csv and store nothing: segment members and tracking numbers."""

from __future__ import annotations

import pytest

from tests.service.harness import Platform

BROKEN = {
    "bare_cr": b"user_id\nu1\ru2\n",
    "giant_field": b"user_id\nu1\n" + b"x" * 131_073 + b"\n",
    "unterminated_quote": b'user_id\nu1\n"u2\n',
}


@pytest.mark.parametrize("name", sorted(BROKEN))
async def test_segment_uploads(platform: Platform, name: str) -> None:
    created = await platform.activity.post(
        "/v1/segments",
        json={"name": f"vip-{name}", "source": "upload"},
        headers=platform.operator(),
    )
    assert created.status_code == 201, created.text
    url = f"/v1/segments/{created.json()['id']}/members"
    headers = {**platform.operator(), "Content-Type": "text/csv"}
    for method, suffix in (("PUT", ""), ("POST", ":add")):
        answer = await platform.activity.request(
            method, url + suffix, content=BROKEN[name], headers=headers
        )
        assert answer.status_code == 422, answer.text
        assert answer.headers["content-type"].startswith("application/problem+json")
        assert answer.json()["code"] == "invalid_csv" and answer.json()["line"] >= 2
    read = await platform.activity.get(
        f"/v1/segments/{created.json()['id']}", headers=platform.operator()
    )
    assert read.json()["member_count"] == 0


@pytest.mark.parametrize("name", sorted(BROKEN))
async def test_tracking_imports(platform: Platform, name: str) -> None:
    header = b"shipment_id,logistics_company,tracking_number\n"
    answer = await platform.reward.post(
        "/v1/shipments/tracking",
        files={"file": ("t.csv", header + BROKEN[name].split(b"\n", 1)[1], "text/csv")},
        headers=platform.operator(),
    )
    assert answer.status_code == 422, answer.text
    assert answer.json()["code"] == "invalid_csv"
