"""Each configuration mistake is a 422 problem with its own code and the field it concerns."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

import pytest

from tests.service.activity_config.helpers import (
    basic_body,
    create,
    non_standard_body,
    prizes,
    referral_body,
    segment,
    team_body,
)
from tests.service.harness import Platform

Mutator = Callable[[list[str]], dict[str, Any]]


def _tiers(*ranges: tuple[int, int | None]) -> Mutator:
    def make(p: list[str]) -> dict[str, Any]:
        body = referral_body(p)
        body["rules"][0]["tiers"] = [
            {"min_invites": lo, "max_invites": hi, "prize_id": p[0]} for lo, hi in ranges
        ]
        return body

    return make


def _basic_rule(**rule: Any) -> Mutator:
    def make(p: list[str]) -> dict[str, Any]:
        return basic_body(p, rules=[{"prize_id": p[0], **rule}])

    return make


CASES: list[tuple[str, Mutator, str, list[Any]]] = [
    (
        "tier overlap",
        _tiers((1, 5), (5, None)),
        "tier_ranges_overlap",
        ["rules", 0, "tiers", 1, "min_invites"],
    ),
    (
        "tier gap",
        _tiers((1, 5), (7, None)),
        "tier_ranges_gap",
        ["rules", 0, "tiers", 1, "min_invites"],
    ),
    (
        "tier not from 1",
        _tiers((2, 5)),
        "tier_ranges_gap",
        ["rules", 0, "tiers", 0, "min_invites"],
    ),
    (
        "open range not last",
        _tiers((1, None), (6, 9)),
        "tier_ranges_overlap",
        ["rules", 0, "tiers", 0, "max_invites"],
    ),
    (
        "range backwards",
        _tiers((1, 5), (9, 6)),
        "tier_range_invalid",
        ["rules", 0, "tiers", 1, "max_invites"],
    ),
    ("tiered without tiers", _tiers(), "tiers_required", ["rules", 0, "tiers"]),
    (
        "fixed with tiers",
        lambda p: referral_body(
            p,
            "fixed",
            rules=[
                {
                    "task": "register",
                    "prize_id": p[0],
                    "tiers": [{"min_invites": 1, "prize_id": p[0]}],
                }
            ],
        ),
        "tiers_not_applicable",
        ["rules", 0, "tiers"],
    ),
    (
        "fixed without prize",
        lambda p: referral_body(p, "fixed", rules=[{"task": "register"}], prize_limits=[]),
        "prize_required",
        ["rules", 0, "prize_id"],
    ),
    (
        "threshold on action task",
        _basic_rule(task="register", threshold="100", currency="HKD"),
        "threshold_not_applicable",
        ["rules", 0, "threshold"],
    ),
    (
        "threshold missing",
        _basic_rule(task="net_deposit"),
        "threshold_required",
        ["rules", 0, "threshold"],
    ),
    (
        "currency missing",
        _basic_rule(task="deposit_reached", threshold="100"),
        "currency_required",
        ["rules", 0, "currency"],
    ),
    (
        "referral threshold on action task",
        lambda p: referral_body(
            p, "fixed", rules=[{"task": "open_account", "threshold": "5", "prize_id": p[0]}]
        ),
        "threshold_not_applicable",
        ["rules", 0, "threshold"],
    ),
    (
        "enterprise id on other task",
        _basic_rule(task="register", enterprise_id="ent-1"),
        "enterprise_id_not_applicable",
        ["rules", 0, "enterprise_id"],
    ),
    (
        "lock-up without days",
        _basic_rule(
            task="net_deposit",
            threshold="100",
            currency="HKD",
            lock_up={"amount": "100", "currency": "HKD"},
        ),
        "lock_up_incomplete",
        ["rules", 0, "lock_up", "days"],
    ),
    (
        "lock-up without amount",
        _basic_rule(task="register", lock_up={"currency": "HKD", "days": 30}),
        "lock_up_incomplete",
        ["rules", 0, "lock_up", "amount"],
    ),
    ("no rules", lambda p: basic_body(p, rules=[]), "rules_required", ["rules"]),
    (
        "duplicate rule id",
        lambda p: basic_body(
            p,
            rules=[
                {"id": "a", "task": "register", "prize_id": p[0]},
                {"id": "a", "task": "open_account", "prize_id": p[0]},
            ],
        ),
        "duplicate_rule_id",
        ["rules", 1, "id"],
    ),
    (
        "helpers too few",
        lambda p: team_body(p, helpers_needed=1),
        "helpers_needed_out_of_range",
        ["helpers_needed"],
    ),
    (
        "helpers too many",
        lambda p: team_body(p, helpers_needed=11),
        "helpers_needed_out_of_range",
        ["helpers_needed"],
    ),
    (
        "team split form",
        lambda p: team_body(p, form="team_split"),
        "team_form_not_available",
        ["form"],
    ),
    (
        "basic team form",
        lambda p: team_body(p, form="basic_team"),
        "team_form_not_available",
        ["form"],
    ),
    (
        "initiation limit zero",
        lambda p: team_body(p, initiation_limit=0),
        "limit_out_of_range",
        ["initiation_limit"],
    ),
    (
        "window backwards",
        lambda p: basic_body(
            p, starts_at="2026-12-01T00:00:00+00:00", ends_at="2026-11-30T00:00:00+00:00"
        ),
        "window_invalid",
        ["ends_at"],
    ),
    (
        "half a window",
        lambda p: non_standard_body(starts_at="2026-12-01T00:00:00+00:00"),
        "window_incomplete",
        ["ends_at"],
    ),
    ("no name", lambda p: non_standard_body(name={}), "name_required", ["name"]),
    (
        "unknown segment",
        lambda p: basic_body(p, segment_id=str(uuid.uuid4()), segment_refresh="5m"),
        "segment_not_found",
        ["segment_id"],
    ),
    (
        "unknown helper segment",
        lambda p: team_body(
            p,
            helper_rewards=[{"segment_id": str(uuid.uuid4()), "prize_id": p[0]}],
            segment_refresh="1d",
        ),
        "segment_not_found",
        ["helper_rewards", 0, "segment_id"],
    ),
    (
        "limit on unawarded prize",
        lambda p: referral_body(
            p, prize_limits=[{"prize_id": str(uuid.uuid4()), "max_per_user": 1}]
        ),
        "prize_limit_unknown_prize",
        ["prize_limits", 0, "prize_id"],
    ),
    (
        "duplicate prize limit",
        lambda p: referral_body(
            p,
            prize_limits=[
                {"prize_id": p[0], "max_per_user": 1},
                {"prize_id": p[0], "max_per_user": 2},
            ],
        ),
        "duplicate_prize_limit",
        ["prize_limits", 1, "prize_id"],
    ),
]


@pytest.mark.parametrize(("case", "make", "code", "loc"), CASES, ids=[c[0] for c in CASES])
async def test_configuration_error(
    platform: Platform, case: str, make: Mutator, code: str, loc: list[Any]
) -> None:
    p = await prizes(platform, 4)
    problem = await create(platform, make(p), expect=422)
    assert problem["code"] == code, problem
    assert problem["errors"][0]["loc"] == ["body", *loc], problem
    listed = await platform.activity.get("/v1/activities", headers=platform.operator())
    assert listed.json()["items"] == []


async def test_segment_needs_refresh_delay(platform: Platform) -> None:
    p = await prizes(platform, 2)
    seg = await segment(platform)
    problem = await create(platform, basic_body(p, segment_id=seg["id"]), expect=422)
    assert problem["code"] == "segment_refresh_required"
    ok = await create(platform, basic_body(p, segment_id=seg["id"], segment_refresh="1d"))
    assert ok["segment_id"] == seg["id"] and ok["segment_refresh"] == "1d"
    helpers = [{"segment_id": seg["id"], "prize_id": p[0]}, {"prize_id": p[1]}]
    problem = await create(platform, team_body(p, helper_rewards=helpers), expect=422)
    assert problem["code"] == "segment_refresh_required"
    team = await create(platform, team_body(p, helper_rewards=helpers, segment_refresh="5m"))
    assert team["config"]["helper_rewards"][0]["segment_id"] == seg["id"]
    assert team["segment_id"] is None


async def test_every_prize_of_every_kind_is_checked_in_reward_service(platform: Platform) -> None:
    p = await prizes(platform, 4)
    ghost = str(uuid.uuid4())
    bodies = []
    b = basic_body(p)
    b["rules"][1]["prize_id"] = ghost
    bodies.append(b)
    r = referral_body(p)
    r["rules"][0]["tiers"][1]["bonus_prize_id"] = ghost
    bodies.append(r)
    r2 = referral_body(p)
    r2["rules"][0]["invitee_prize_id"] = ghost
    bodies.append(r2)
    bodies.append(team_body(p, initiator_prize_id=ghost))
    bodies.append(team_body(p, helper_rewards=[{"prize_id": ghost}]))
    for body in bodies:
        problem = await create(platform, body, expect=422)
        assert problem["code"] == "prize_not_found" and problem["prize_id"] == ghost
    # A prize of another tenant does not exist here either.
    foreign = await prizes(platform, 1, tenant="tenant-b")
    problem = await create(platform, team_body(p, initiator_prize_id=foreign[0]), expect=422)
    assert problem["code"] == "prize_not_found"


async def test_shape_errors_are_validation_errors(platform: Platform) -> None:
    problem = await create(platform, {"kind": "lottery", "name": {"en": "x"}}, expect=422)
    assert problem["code"] == "validation_error"
    p = await prizes(platform, 2)
    naive = basic_body(p, starts_at="2026-12-01T00:00:00")
    assert (await create(platform, naive, expect=422))["code"] == "validation_error"
    typo = basic_body(p)
    typo["rule"] = typo.pop("rules")
    assert (await create(platform, typo, expect=422))["code"] == "validation_error"
