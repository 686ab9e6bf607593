"""Batch issuance from a CSV file (SPEC §3.4): per-line results, review per batch, limits."""

from __future__ import annotations

import asyncio

from reward_service.center import rules
from tests.service.flows import create_coupon_prize
from tests.service.harness import Platform
from tests.service.reward_center.steps import (
    OPS_1,
    OPS_2,
    OPS_3,
    non_standard_activity,
    ops,
    upload,
    winners,
)

UNKNOWN_PRIZE = "00000000-0000-0000-0000-000000000001"


async def test_good_and_bad_lines_are_reported_per_line(platform: Platform) -> None:
    prize = await create_coupon_prize(platform)
    activity = await non_standard_activity(platform, review=False)
    code = activity["activity_code"]
    csv_text = (
        "user_id,prize_id,quantity,remarks\n"
        f"u-1,{prize['id']},1,VIP\n"
        f",{prize['id']},1,\n"
        f"u-2,not-a-uuid,1,\n"
        f"u-3,{UNKNOWN_PRIZE},1,\n"
        f"u-1,{prize['id']},1,pasted twice\n"
        f"u-4,{prize['id']},2,\n"
        f"u-5,{prize['id']},0,\n"
    )
    response = await upload(platform, csv_text, activity_code=code.lower())
    assert response.status_code == 201, response.text
    batch = response.json()
    assert batch["status"] == "approved" and batch["activity_code"] == code
    assert (batch["line_count"], batch["accepted"], batch["rejected"]) == (7, 2, 5)
    outcomes = [(line["line"], line["outcome"], line["code"]) for line in batch["lines"]]
    assert outcomes == [
        (1, "accepted", None),
        (2, "rejected", "user_id_missing"),
        (3, "rejected", "prize_id_invalid"),
        (4, "rejected", "prize_not_found"),
        (5, "rejected", "duplicate_line"),
        (6, "accepted", None),
        (7, "rejected", "quantity_invalid"),
    ]
    await platform.drain()
    shown = await platform.reward.get(
        f"/v1/reward-center/batches/{batch['id']}", headers=platform.operator()
    )
    lines = {line["line"]: line for line in shown.json()["lines"]}
    assert [r["status"] for r in lines[1]["records"]] == ["issued"]
    assert [r["status"] for r in lines[6]["records"]] == ["issued", "issued"]
    assert lines[6]["issuance_status"] == "approved" and lines[4]["records"] == []
    users = sorted(r["user_id"] for r in await winners(platform, code))
    assert users == ["u-1", "u-4", "u-4"]
    # The queued record jobs are keyed by the grant key: running them again changes nothing.
    await platform.drain()
    assert len(await winners(platform, code)) == 3
    export = await platform.reward.get(
        f"/v1/reward-center/batches/{batch['id']}/results", headers=platform.operator()
    )
    assert export.status_code == 200 and export.headers["content-type"].startswith("text/csv")
    rows = export.text.lstrip("\ufeff").splitlines()
    assert rows[0].startswith("line,user_id,prize_id") and len(rows) == 8
    assert ",rejected,prize_not_found," in rows[4]


async def test_review_is_per_batch_and_not_by_its_submitter(platform: Platform) -> None:
    prize = await create_coupon_prize(platform)
    activity = await non_standard_activity(platform, review=True)
    csv_text = f"user_id,prize_id\nu-1,{prize['id']}\nu-2,{prize['id']}\n"
    batch = (await upload(platform, csv_text, activity_code=activity["activity_code"])).json()
    assert batch["status"] == "awaiting_review"
    assert {line["issuance_status"] for line in batch["lines"]} == {"awaiting_review"}
    await platform.drain()
    assert await winners(platform, activity["activity_code"]) == []
    line_issuance = batch["lines"][0]["issuance_id"]
    single = await platform.reward.post(
        f"/v1/reward-center/issuances/{line_issuance}/approve", headers=ops(platform, OPS_2)
    )
    assert single.status_code == 409 and single.json()["code"] == "review_the_batch"
    url = f"/v1/reward-center/batches/{batch['id']}/approve"
    own = await platform.reward.post(url, headers=ops(platform, OPS_1))
    assert own.status_code == 403 and own.json()["code"] == "self_approval"
    first, second = await asyncio.gather(
        platform.reward.post(url, headers=ops(platform, OPS_2)),
        platform.reward.post(url, headers=ops(platform, OPS_3)),
    )
    assert sorted([first.status_code, second.status_code]) == [200, 409]
    winner = first if first.status_code == 200 else second
    assert winner.json()["status"] == "approved"
    await platform.drain()
    records = await winners(platform, activity["activity_code"])
    assert sorted(r["user_id"] for r in records) == ["u-1", "u-2"]
    assert {r["status"] for r in records} == {"issued"}
    shown = await platform.reward.get(
        f"/v1/reward-center/batches/{batch['id']}", headers=platform.operator()
    )
    assert all(line["records"][0]["status"] == "issued" for line in shown.json()["lines"])


async def test_rejected_batch_creates_nothing(platform: Platform) -> None:
    prize = await create_coupon_prize(platform)
    activity = await non_standard_activity(platform, review=True)
    csv_text = f"user_id,prize_id\nu-1,{prize['id']}\n"
    batch = (await upload(platform, csv_text, activity_code=activity["activity_code"])).json()
    rejected = await platform.reward.post(
        f"/v1/reward-center/batches/{batch['id']}/reject",
        json={"reason": "Wrong list"},
        headers=ops(platform, OPS_2),
    )
    assert rejected.status_code == 200, rejected.text
    assert rejected.json()["status"] == "rejected"
    assert rejected.json()["lines"][0]["issuance_status"] == "rejected"
    await platform.drain()
    assert await winners(platform, activity["activity_code"]) == []


async def test_activity_code_per_line_and_mixed_review(platform: Platform) -> None:
    prize = await create_coupon_prize(platform)
    open_activity = await non_standard_activity(platform, review=False)
    reviewed = await non_standard_activity(platform, review=True)
    csv_text = (
        "activity_code,user_id,prize_id\n"
        f"{open_activity['activity_code']},u-1,{prize['id']}\n"
        f"{reviewed['activity_code']},u-2,{prize['id']}\n"
        f"ACT-NOPE0000,u-3,{prize['id']}\n"
    )
    response = await upload(platform, csv_text)
    assert response.status_code == 201, response.text
    batch = response.json()
    assert batch["status"] == "awaiting_review"
    assert [(ln["issuance_status"], ln["code"]) for ln in batch["lines"]] == [
        ("approved", None),
        ("awaiting_review", None),
        (None, "activity_not_found"),
    ]
    await platform.drain()
    assert len(await winners(platform, open_activity["activity_code"])) == 1
    assert await winners(platform, reviewed["activity_code"]) == []


async def test_file_level_problems_refuse_the_whole_file(platform: Platform) -> None:
    prize = await create_coupon_prize(platform)
    activity = await non_standard_activity(platform, review=False)
    code = activity["activity_code"]
    cases = [
        ("user_id,prize\nu-1,x\n", code, "invalid_csv"),
        ("", code, "empty_file"),
        ("user_id,prize_id\n", code, "empty_file"),
        (f"user_id,prize_id\nu-1,{prize['id']}\n", None, "activity_code_required"),
        (f"user_id,prize_id\nu-1,{prize['id']}\n", "ACT-NOPE0000", "activity_not_found"),
    ]
    for text, batch_code, expected in cases:
        response = await upload(platform, text, activity_code=batch_code)
        assert response.status_code == 422, (expected, response.text)
        assert response.json()["code"] == expected
    too_many = "user_id,prize_id\n" + "".join(
        f"u-{n},{prize['id']}\n" for n in range(rules.MAX_LINES + 1)
    )
    response = await upload(platform, too_many, activity_code=code)
    assert response.status_code == 422 and response.json()["code"] == "too_many_lines"
    huge = "user_id,prize_id\n" + "x" * (rules.MAX_FILE_BYTES + 10)
    response = await upload(platform, huge, activity_code=code)
    assert response.status_code == 422 and response.json()["code"] == "file_too_large"
    listed = await platform.reward.get("/v1/reward-center/batches", headers=platform.operator())
    assert listed.json()["items"] == []


async def test_multipart_upload_replay_permissions_and_tenants(platform: Platform) -> None:
    prize = await create_coupon_prize(platform)
    activity = await non_standard_activity(platform, review=False)
    data = f"user_id,prize_id\nu-1,{prize['id']}\n".encode()
    headers = {**ops(platform), "Idempotency-Key": "batch-1"}
    form = {"activity_code": activity["activity_code"]}
    files = {"file": ("vip.csv", data, "text/csv")}
    first = await platform.reward.post(
        "/v1/reward-center/batches", data=form, files=files, headers=headers
    )
    assert first.status_code == 201, first.text
    assert first.json()["file_name"] == "vip.csv"
    again = await platform.reward.post(
        "/v1/reward-center/batches", data=form, files=files, headers=headers
    )
    # another multipart boundary, the same form: a replay
    assert again.status_code == 201 and again.json()["id"] == first.json()["id"]
    changed = await platform.reward.post(
        "/v1/reward-center/batches",
        data=form,
        files={"file": ("vip.csv", data + b"u-2," + prize["id"].encode() + b"\n", "text/csv")},
        headers=headers,
    )
    assert changed.status_code == 422 and changed.json()["code"] == "idempotency_key_reused"
    await platform.drain()
    assert len(await winners(platform, activity["activity_code"])) == 1
    url = f"/v1/reward-center/batches/{first.json()['id']}"
    reader = platform.operator(permissions=["RightsSystemRead"], sub="viewer")
    assert (await platform.reward.get(url, headers=reader)).status_code == 200
    refused = await platform.reward.post(
        "/v1/reward-center/batches",
        content=data,
        headers={**reader, "Content-Type": "text/csv"},
        params=form,
    )
    assert refused.status_code == 403
    other = platform.operator("tenant-b")
    hidden = await platform.reward.get(url, headers=other)
    assert hidden.status_code == 404 and hidden.json()["code"] == "batch_not_found"
    assert (await platform.reward.post(f"{url}/approve", headers=other)).status_code == 404
    listed = await platform.reward.get("/v1/reward-center/batches", headers=other)
    assert listed.json()["items"] == []


async def test_exported_results_are_formula_safe(platform: Platform) -> None:
    prize = await create_coupon_prize(platform)
    activity = await non_standard_activity(platform, review=False)
    csv_text = f'user_id,prize_id\n"=HYPERLINK(""http://x"")",{prize["id"]}\n'
    batch = (await upload(platform, csv_text, activity_code=activity["activity_code"])).json()
    export = await platform.reward.get(
        f"/v1/reward-center/batches/{batch['id']}/results", headers=platform.operator()
    )
    row = export.text.splitlines()[1]
    assert "'=HYPERLINK" in row
