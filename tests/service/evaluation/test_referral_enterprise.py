"""A referral rule may name the enterprise of the certification task, as a basic rule can:
only an invitee certifying that enterprise earns their inviter the reward."""

from __future__ import annotations

from tests.service.evaluation.steps import (
    activity,
    event,
    explain,
    grants,
    post,
    prizes,
    register_invitees,
    table,
)
from tests.service.harness import Platform

WHEN = "2026-12-04T10:00:00+08:00"


async def test_a_referral_rule_for_a_named_enterprise(platform: Platform) -> None:
    p_named, p_any = await prizes(platform, 2)
    act = await activity(
        platform,
        {
            "kind": "referral",
            "attribute": "marketing",
            "reward_type": "fixed",
            "rules": [
                {
                    "id": "named",
                    "task": "enterprise_certification",
                    "enterprise_id": "ent-42",
                    "prize_id": p_named,
                },
                {"id": "any", "task": "enterprise_certification", "prize_id": p_any},
            ],
        },
    )
    assert act["config"]["rules"][0]["enterprise_id"] == "ent-42"
    await register_invitees(platform, "inv", ["a", "b"])
    await post(
        platform,
        event("enterprise.certified", "a", WHEN, enterprise_id="ent-7"),
        event("enterprise.certified", "b", WHEN, enterprise_id="ent-42"),
    )
    await platform.drain()
    names = {p_named: "named", p_any: "any"}
    rows = await grants(platform, act["id"])
    assert table(rows, names) == [
        ("inv", "any", "any"),
        ("inv", "any", "any"),
        ("inv", "named", "named"),
    ]
    assert next(g.counterpart_id for g in rows if g.rule_id == "named") == "b"
    why = await explain(platform, act["id"], "a")
    assert any(o["rule_id"] == "named" for o in why["outcomes"])


async def test_an_enterprise_belongs_to_the_certification_task_only(platform: Platform) -> None:
    (prize,) = await prizes(platform, 1)
    refused = await platform.activity.post(
        "/v1/activities",
        json={
            "kind": "referral",
            "name": {"en": "Invite"},
            "starts_at": "2026-12-01T00:00:00+08:00",
            "ends_at": "2027-01-01T00:00:00+08:00",
            "reward_type": "fixed",
            "rules": [{"task": "register", "enterprise_id": "ent-42", "prize_id": prize}],
        },
        headers=platform.operator(),
    )
    assert refused.status_code == 422, refused.text
    assert refused.json()["code"] == "enterprise_id_not_applicable"
