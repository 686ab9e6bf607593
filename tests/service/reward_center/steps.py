"""Steps shared by the reward center tests."""

from __future__ import annotations

from typing import Any

from tests.service.harness import Platform

OPS_1 = "ops-1"
OPS_2 = "ops-2"
OPS_3 = "ops-3"


def ops(platform: Platform, sub: str = OPS_1, tenant: str = "tenant-a") -> dict[str, str]:
    return platform.operator(tenant, sub=sub)


async def non_standard_activity(
    platform: Platform,
    *,
    review: bool,
    form: str = "automatic",
    tenant: str = "tenant-a",
    publish: bool = True,
) -> dict[str, Any]:
    response = await platform.activity.post(
        "/v1/activities",
        json={
            "kind": "non_standard",
            "name": {"en": "VIP appreciation", "zh-Hans": "大客户回馈"},
            "cost_type": "daily_operations",
            "review_required": review,
            "issuance_form": form,
            "remarks": "Offline event, rewards issued by hand",
        },
        headers=platform.operator(tenant),
    )
    assert response.status_code == 201, response.text
    activity = response.json()
    if publish:
        published = await platform.activity.post(
            f"/v1/activities/{activity['id']}/publish", headers=platform.operator(tenant)
        )
        assert published.status_code == 200, published.text
        activity = published.json()
    return activity


async def issue(
    platform: Platform,
    body: dict[str, Any],
    *,
    sub: str = OPS_1,
    key: str | None = None,
    tenant: str = "tenant-a",
) -> Any:
    headers = ops(platform, sub, tenant)
    if key:
        headers["Idempotency-Key"] = key
    return await platform.reward.post("/v1/reward-center/issuances", json=body, headers=headers)


async def upload(
    platform: Platform,
    csv_text: str,
    *,
    activity_code: str | None = None,
    sub: str = OPS_1,
    key: str | None = None,
) -> Any:
    headers = {**ops(platform, sub), "Content-Type": "text/csv"}
    if key:
        headers["Idempotency-Key"] = key
    params = {"activity_code": activity_code} if activity_code else {}
    return await platform.reward.post(
        "/v1/reward-center/batches",
        content=csv_text.encode(),
        headers=headers,
        params=params,
    )


async def winners(platform: Platform, activity_code: str) -> list[dict[str, Any]]:
    response = await platform.reward.get(
        "/v1/reward-records",
        params={"activity_code": activity_code},
        headers=platform.operator(),
    )
    assert response.status_code == 200, response.text
    return list(response.json()["items"])
