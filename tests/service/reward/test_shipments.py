"""SPEC §3.6: physical prizes wait for the user's address; operators export, mark shipping
(the address is then locked), and enter or import tracking numbers the app shows."""

from __future__ import annotations

import csv
import io
from typing import Any

import httpx

from tests.service.harness import Platform
from tests.service.reward.helpers import create_record, drain, grant, physical_prize

ADDRESS = {
    "recipient_name": "Chan Tai Man",
    "phone": "+852 9123 4567",
    "country": "HK",
    "city": "Hong Kong",
    "district": "Central and Western",
    "address_line": "Flat 12A, 1 Queen's Road",
}


async def shipments_for(platform: Platform, users: list[str]) -> list[dict[str, Any]]:
    prize = await physical_prize(platform, stock=10)
    for user in users:
        await create_record(platform, grant(prize["id"], user))
    await drain(platform)
    found = []
    for user in users:
        mine = await platform.reward.get("/v1/me/shipments", headers=platform.user(user))
        found.extend(mine.json()["items"])
    return found


async def put_address(
    platform: Platform, shipment: dict[str, Any], user: str, **change: Any
) -> httpx.Response:
    return await platform.reward.put(
        f"/v1/me/shipments/{shipment['id']}/address",
        json={**ADDRESS, **change},
        headers=platform.user(user),
    )


async def test_address_can_change_until_shipping(platform: Platform) -> None:
    (shipment,) = await shipments_for(platform, ["u-1"])
    assert shipment["status"] == "awaiting_address"
    first = await put_address(platform, shipment, "u-1")
    assert first.status_code == 200 and first.json()["status"] == "ready"
    changed = await put_address(platform, shipment, "u-1", city="Kowloon")
    assert changed.json()["city"] == "Kowloon"
    other_user = await put_address(platform, shipment, "u-2")
    assert other_user.status_code == 404 and other_user.json()["code"] == "shipment_not_found"

    marked = await platform.reward.post(
        "/v1/shipments/mark-shipping",
        json={"shipment_ids": [shipment["id"]]},
        headers=platform.operator(),
    )
    assert marked.json()["succeeded"] == 1
    refused = await put_address(platform, shipment, "u-1", city="Sha Tin")
    assert refused.status_code == 409 and refused.json()["code"] == "shipment_address_locked"
    mine = await platform.reward.get("/v1/me/shipments", headers=platform.user("u-1"))
    assert mine.json()["items"][0]["city"] == "Kowloon"


async def test_invalid_address_is_a_clear_422(platform: Platform) -> None:
    (shipment,) = await shipments_for(platform, ["u-1"])
    response = await put_address(platform, shipment, "u-1", recipient_name="")
    assert response.status_code == 422 and response.json()["code"] == "validation_error"


async def test_export_mark_shipping_and_tracking(platform: Platform) -> None:
    a, b, c = await shipments_for(platform, ["u-a", "u-b", "u-c"])
    await put_address(platform, a, "u-a")
    await put_address(platform, b, "u-b", address_line="=HYPERLINK(1)")

    export = await platform.reward.get("/v1/shipments/export", headers=platform.operator())
    assert export.status_code == 200 and export.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(export.text.lstrip("\ufeff"))))
    assert {r["shipment_id"] for r in rows} == {a["id"], b["id"]}  # only those with an address
    by_id = {r["shipment_id"]: r for r in rows}
    assert by_id[b["id"]]["address_line"] == "'=HYPERLINK(1)"  # not run as a formula
    assert by_id[a["id"]]["phone"] == "'+852 9123 4567"

    marked = await platform.reward.post(
        "/v1/shipments/mark-shipping",
        json={"shipment_ids": [a["id"], c["id"], "00000000-0000-0000-0000-000000000000"]},
        headers=platform.operator(),
    )
    body = marked.json()
    assert (body["succeeded"], body["failed"]) == (1, 2)
    assert [r["code"] for r in body["results"]] == [None, "address_missing", "shipment_not_found"]

    tracked = await platform.reward.put(
        f"/v1/shipments/{a['id']}/tracking",
        json={"logistics_company": "SF Express", "tracking_number": "SF100"},
        headers=platform.operator(),
    )
    assert tracked.status_code == 200 and tracked.json()["status"] == "shipped"
    no_address = await platform.reward.put(
        f"/v1/shipments/{c['id']}/tracking",
        json={"logistics_company": "SF Express", "tracking_number": "SF101"},
        headers=platform.operator(),
    )
    assert no_address.status_code == 409 and no_address.json()["code"] == "address_missing"
    mine = await platform.reward.get("/v1/me/shipments", headers=platform.user("u-a"))
    assert mine.json()["items"][0]["tracking_number"] == "SF100"

    queue = await platform.reward.get(
        "/v1/shipments", params={"status": "shipped"}, headers=platform.operator()
    )
    assert [s["id"] for s in queue.json()["items"]] == [a["id"]]


async def test_tracking_import_reports_every_line(platform: Platform) -> None:
    a, b, c = await shipments_for(platform, ["u-a", "u-b", "u-c"])
    await put_address(platform, a, "u-a")
    await put_address(platform, b, "u-b")
    text = (
        "shipment_id,record_number,logistics_company,tracking_number\n"
        f"{a['id']},,SF Express,SF200\n"
        f",{b['record_number']},Kerry,KE300\n"
        f"{c['id']},,SF Express,SF400\n"
        ",RR-00000000-00000000,SF Express,SF500\n"
        f"{a['id']},,,\n"
    )
    response = await platform.reward.post(
        "/v1/shipments/tracking",
        files={"file": ("tracking.csv", text.encode(), "text/csv")},
        headers=platform.operator(),
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["succeeded"], body["failed"]) == (2, 3)
    assert [r["code"] for r in body["results"]] == [
        None,
        None,
        "address_missing",
        "shipment_not_found",
        "missing_field",
    ]
    listed = await platform.reward.get(
        "/v1/shipments", params={"record_number": b["record_number"]}, headers=platform.operator()
    )
    (shipment,) = listed.json()["items"]
    assert (shipment["logistics_company"], shipment["tracking_number"]) == ("Kerry", "KE300")


async def test_tracking_import_rejects_a_file_without_the_columns(platform: Platform) -> None:
    response = await platform.reward.post(
        "/v1/shipments/tracking",
        files={"file": ("t.csv", b"foo,bar\n1,2\n", "text/csv")},
        headers=platform.operator(),
    )
    assert response.status_code == 422 and response.json()["code"] == "invalid_csv"


async def test_shipments_are_per_tenant_and_need_rights(platform: Platform) -> None:
    (shipment,) = await shipments_for(platform, ["u-1"])
    other = await platform.reward.get("/v1/shipments", headers=platform.operator("tenant-b"))
    assert other.json()["items"] == []
    denied = await platform.reward.post(
        "/v1/shipments/mark-shipping",
        json={"shipment_ids": [shipment["id"]]},
        headers=platform.operator(permissions=["RightsSystemRead"]),
    )
    assert denied.status_code == 403
    as_user = await platform.reward.get("/v1/shipments", headers=platform.user("u-1"))
    assert as_user.status_code == 403
