"""SPEC §1.3: allowed operations per status, frozen fields, explicit rule replacement, ETags."""

from __future__ import annotations

from datetime import UTC, datetime

from tests.service.activity_config.helpers import (
    act,
    basic_body,
    create,
    non_standard_body,
    patch,
    prizes,
    referral_body,
    team_body,
)
from tests.service.harness import Platform

SHORT = {"starts_at": "2026-11-01T00:00:00+00:00", "ends_at": "2026-12-01T00:00:00+00:00"}
AFTER_END = datetime(2026, 12, 1, tzinfo=UTC)


def _problem(response, status: int, code: str) -> None:  # noqa: ANN001
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    assert response.json()["code"] == code, response.text


async def test_forbidden_operations_per_status(platform: Platform) -> None:
    running = await create(platform, non_standard_body(**SHORT))
    await act(platform, running, "publish")
    _problem(await act(platform, running, "publish"), 409, "activity_not_draft")

    closed = await create(platform, non_standard_body())
    await act(platform, closed, "close")
    _problem(await act(platform, closed, "publish"), 409, "activity_not_draft")
    _problem(await act(platform, closed, "close"), 409, "activity_not_closable")
    _problem(
        await patch(platform, closed, {"remarks": "x"}, version=2), 409, "activity_not_editable"
    )

    stale_draft = await create(platform, non_standard_body(**SHORT))
    platform.clock.set(AFTER_END)
    ended = await platform.activity.get(
        f"/v1/activities/{running['id']}", headers=platform.operator()
    )
    assert ended.json()["status"] == "ended"
    _problem(await act(platform, running, "close"), 409, "activity_not_closable")
    _problem(await act(platform, running, "publish"), 409, "activity_not_draft")
    _problem(
        await patch(platform, running, {"remarks": "x"}, version=2), 409, "activity_not_editable"
    )
    # A draft whose window is over can no longer go live.
    _problem(await act(platform, stale_draft, "publish"), 409, "window_ended")
    assert (await act(platform, stale_draft, "close")).status_code == 200


async def test_running_activity_keeps_kind_reward_type_and_task_types(platform: Platform) -> None:
    p = await prizes(platform, 4)
    referral = await create(platform, referral_body(p))
    await act(platform, referral, "publish")
    version = 2
    _problem(
        await patch(platform, referral, {"kind": "basic", **basic_body(p)}, version),
        409,
        "kind_frozen",
    )
    fixed_rules = [{"task": "open_account", "prize_id": p[0]}]
    _problem(
        await patch(platform, referral, {"reward_type": "fixed", "rules": fixed_rules}, version),
        409,
        "reward_type_frozen",
    )
    other_task = referral_body(p)["rules"]
    other_task[0]["task"] = "register"
    _problem(
        await patch(platform, referral, {"rules": other_task}, version),
        409,
        "task_types_frozen",
    )
    # Ranges and prizes may still be tuned.
    tuned = referral_body(p)["rules"]
    tuned[0]["tiers"][0]["max_invites"] = 3
    tuned[0]["tiers"][1]["min_invites"] = 4
    ok = await patch(platform, referral, {"rules": tuned}, version)
    assert ok.status_code == 200, ok.text
    assert ok.json()["config"]["rules"][0]["tiers"][1]["min_invites"] == 4

    basic = await create(platform, basic_body(p))
    await act(platform, basic, "publish")
    rules = basic_body(p)["rules"]
    rules.append({"task": "first_deposit", "threshold": "100", "currency": "HKD", "prize_id": p[2]})
    _problem(await patch(platform, basic, {"rules": rules}, 2), 409, "task_types_frozen")
    higher = basic_body(p)["rules"]
    higher[1]["threshold"] = "20000"
    assert (await patch(platform, basic, {"rules": higher}, 2)).status_code == 200
    _problem(
        await patch(platform, basic, {"ends_at": "2026-11-01T00:00:01+00:00"}, 3),
        422,
        "ends_at_in_past",
    )


async def test_draft_reward_type_change_requires_new_rules(platform: Platform) -> None:
    p = await prizes(platform, 4)
    draft = await create(platform, referral_body(p))
    _problem(
        await patch(platform, draft, {"reward_type": "fixed"}, 1),
        422,
        "rules_required_on_reward_type_change",
    )
    new_rules = [{"task": "register", "prize_id": p[1]}]
    # The old prize limit (on a tier prize) would limit nothing: rejected, not kept silently.
    _problem(
        await patch(platform, draft, {"reward_type": "fixed", "rules": new_rules}, 1),
        422,
        "prize_limit_unknown_prize",
    )
    changed = await patch(
        platform,
        draft,
        {"reward_type": "fixed", "rules": new_rules, "prize_limits": []},
        1,
    )
    assert changed.status_code == 200, changed.text
    config = changed.json()["config"]
    assert config["reward_type"] == "fixed"
    assert [(r["task"], r["prize_id"], r["tiers"]) for r in config["rules"]] == [
        ("register", p[1], [])
    ]
    assert changed.json()["version"] == 2 and config["prize_limits"] == []


async def test_draft_kind_change_starts_from_scratch(platform: Platform) -> None:
    p = await prizes(platform, 2)
    draft = await create(platform, basic_body(p))
    missing = await patch(platform, draft, {"kind": "team"}, 1)
    _problem(missing, 422, "validation_error")
    stray = await patch(platform, draft, {"kind": "team", "timing": "at_end"}, 1)
    _problem(stray, 422, "field_not_applicable")
    team = {k: v for k, v in team_body(p).items() if k not in ("name", "starts_at", "ends_at")}
    changed = await patch(platform, draft, team, 1)
    assert changed.status_code == 200, changed.text
    body = changed.json()
    assert body["kind"] == "team" and body["attribute"] == "assist"
    assert "rules" not in body["config"] and body["config"]["helpers_needed"] == 3
    assert body["name"] == basic_body(p)["name"]


async def test_etag_if_match(platform: Platform) -> None:
    activity = await create(platform, non_standard_body())
    _problem(await patch(platform, activity, {"remarks": "a"}), 428, "precondition_required")
    bad = await platform.activity.patch(
        f"/v1/activities/{activity['id']}",
        json={"remarks": "a"},
        headers={**platform.operator(), "If-Match": "*"},
    )
    _problem(bad, 428, "precondition_required")

    # Two operators read version 1; the first save wins, the second is told to reload.
    first = await patch(platform, activity, {"remarks": "first"}, 1)
    assert first.status_code == 200 and first.headers["ETag"] == '"2"'
    second = await patch(platform, activity, {"remarks": "second"}, 1)
    _problem(second, 412, "version_mismatch")
    assert second.json()["current_version"] == 2
    weak = await platform.activity.patch(
        f"/v1/activities/{activity['id']}",
        json={"remarks": "second"},
        headers={**platform.operator(), "If-Match": 'W/"2"'},
    )
    assert weak.status_code == 200 and weak.json()["remarks"] == "second"

    # A no-op edit changes nothing, not even the version.
    same = await patch(platform, activity, {"remarks": "second"}, 3)
    assert same.status_code == 200 and same.headers["ETag"] == '"3"'

    stale_publish = await platform.activity.post(
        f"/v1/activities/{activity['id']}/publish",
        headers={**platform.operator(), "If-Match": '"1"'},
    )
    _problem(stale_publish, 412, "version_mismatch")

    immutable = await patch(platform, activity, {"activity_code": "ACT-00000000"}, 3)
    _problem(immutable, 422, "code_immutable")


async def test_concurrent_creations_and_edits(platform: Platform) -> None:
    import asyncio

    made = await asyncio.gather(*(create(platform, non_standard_body()) for _ in range(6)))
    assert sorted(a["seq"] for a in made) == [1, 2, 3, 4, 5, 6]
    target = made[0]
    results = await asyncio.gather(
        *(patch(platform, target, {"remarks": f"edit {i}"}, 1) for i in range(4))
    )
    statuses = sorted(r.status_code for r in results)
    assert statuses == [200, 412, 412, 412], [r.text for r in results]
    trail = await platform.activity.get(
        f"/v1/activities/{target['id']}/audit", headers=platform.operator()
    )
    entries = sorted(trail.json()["items"], key=lambda e: e["version"])
    assert [e["action"] for e in entries] == ["created", "updated"]
