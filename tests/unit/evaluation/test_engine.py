"""Decision rules: action tasks, timing (§1.5), tiers, referral ranges and grant keys."""

from __future__ import annotations

import random
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from activity_service.activities.rules import TaskType
from activity_service.evaluation.engine import (
    GRANT_KEY_MAX,
    Certification,
    UserFacts,
    Window,
    achievement,
    grant_key,
    highest_tiers,
    in_daily_scope,
    node_of,
    run_day,
    settles_in,
    tier_award,
)
from activity_service.progress.flows import Flow, FlowKind, day_bounds
from activity_service.tenants.fx import RateTable
from contracts.payloads import Node

HK = ZoneInfo("Asia/Hong_Kong")
D = Decimal
WINDOW = Window(
    datetime.fromisoformat("2026-12-01T00:00:00+08:00"),
    datetime.fromisoformat("2027-01-01T00:00:00+08:00"),
)
RATES = RateTable()


def at(text: str) -> datetime:
    return datetime.fromisoformat(text)


def rule(task: str, threshold: str | None = None, rid: str = "r1", **extra: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"id": rid, "task": task, "prize_id": "p", **extra}
    if threshold is not None:
        body["threshold"], body["currency"] = threshold, "HKD"
    return body


ACTION_CASES = [
    # task, facts, expected achieved_at
    ("register", {"registered_at": "2026-12-05T10:00:00+08:00"}, "2026-12-05T10:00:00+08:00"),
    ("register", {"registered_at": "2026-11-30T10:00:00+08:00"}, None),  # before the window
    ("register", {"registered_at": "2027-01-01T00:00:00+08:00"}, None),  # end is exclusive
    ("open_account", {"opened_at": "2026-12-31T23:59:59+08:00"}, "2026-12-31T23:59:59+08:00"),
    # download: registered and a login on a never-seen device; done when both are
    (
        "download",
        {
            "registered_at": "2026-12-05T10:00:00+08:00",
            "new_device_login_at": "2026-12-06T10:00:00+08:00",
        },
        "2026-12-06T10:00:00+08:00",
    ),
    ("download", {"new_device_login_at": "2026-12-06T10:00:00+08:00"}, None),  # not registered
    ("download", {"registered_at": "2026-12-05T10:00:00+08:00"}, None),  # no new device
]


@pytest.mark.parametrize(("task", "given_facts", "expected"), ACTION_CASES)
def test_action_tasks(task: str, given_facts: dict[str, str], expected: str | None) -> None:
    facts = UserFacts("u1", **{k: at(v) for k, v in given_facts.items()})
    done = achievement(rule(task), facts, WINDOW, zone=HK, rates=RATES)
    assert (done.achieved_at if done else None) == (at(expected) if expected else None)


def test_a_rule_of_an_unknown_task_is_refused() -> None:
    with pytest.raises(ValueError, match="not_a_task"):
        achievement(rule("not_a_task"), UserFacts("u1"), WINDOW, zone=HK, rates=RATES)


def test_enterprise_certification_named_or_any() -> None:
    facts = UserFacts(
        "u1",
        certifications=[
            Certification(at("2026-12-03T10:00:00+08:00"), "e1", "ent-a", "Alpha Ltd"),
            Certification(at("2026-12-04T10:00:00+08:00"), "e2", "ent-b", "Beta Ltd"),
        ],
    )
    named = achievement(
        rule("enterprise_certification", enterprise_id="ent-b"), facts, WINDOW, zone=HK, rates=RATES
    )
    assert named is not None and named.enterprise_name == "Beta Ltd"
    anyone = achievement(rule("enterprise_certification"), facts, WINDOW, zone=HK, rates=RATES)
    assert anyone is not None and anyone.enterprise_name == "Alpha Ltd"
    other = achievement(
        rule("enterprise_certification", enterprise_id="ent-z"), facts, WINDOW, zone=HK, rates=RATES
    )
    assert other is None


@pytest.mark.parametrize(
    ("task", "node"),
    [
        ("register", Node.registration),
        ("download", Node.registration),
        ("open_account", Node.account_opening),
        ("first_deposit", Node.deposit),
        ("net_deposit", Node.deposit),
        ("transfer_reached", Node.deposit),
        ("first_transfer", Node.deposit),
    ],
)
def test_referral_node_per_task(task: str, node: Node) -> None:
    assert node_of(TaskType(task)) is node


TIERED = {
    "id": "r1",
    "tiers": [
        {"id": "t1", "min_invites": 1, "max_invites": 3, "prize_id": "A", "bonus_prize_id": None},
        {"id": "t2", "min_invites": 4, "max_invites": 8, "prize_id": "B", "bonus_prize_id": "X"},
        {"id": "t3", "min_invites": 9, "max_invites": None, "prize_id": "C", "bonus_prize_id": "Y"},
    ],
}
TIER_TABLE = {
    1: ("A", None), 2: ("A", None), 3: ("A", None),
    4: ("B", "X"), 5: ("B", None), 8: ("B", None),
    9: ("C", "Y"), 10: ("C", None), 12: ("C", None), 100: ("C", None),
}  # fmt: skip


@pytest.mark.parametrize(("seq", "expected"), sorted(TIER_TABLE.items()))
def test_tier_award_by_inviter_count(seq: int, expected: tuple[str, str | None]) -> None:
    award = tier_award(TIERED, seq)
    assert award is not None
    assert (award.prize_id, award.bonus_prize_id) == expected
    assert award.rule_id.startswith("r1:t")


def test_closed_last_range_gives_nothing_beyond() -> None:
    closed = {
        "id": "r1",
        "tiers": [{"id": "t1", "min_invites": 1, "max_invites": 2, "prize_id": "A"}],
    }
    assert tier_award(closed, 2) is not None
    assert tier_award(closed, 3) is None


def test_grant_keys_are_deterministic_and_bounded() -> None:
    assert grant_key("a", "r1", "u", None) == grant_key("a", "r1", "u", None) == "a:r1:u:-:once"
    assert grant_key("a", "r1", "u", "v", "bonus") == "a:r1:u:v:bonus"
    long = grant_key("a" * 36, "r1:t2:bonus", "u" * 128, "v" * 128)
    assert len(long) <= GRANT_KEY_MAX
    assert long == grant_key("a" * 36, "r1:t2:bonus", "u" * 128, "v" * 128)
    assert long != grant_key("a" * 36, "r1:t2:bonus", "u" * 128, "w" * 128)


RUN_DAY_CASES = [
    # now (UTC), run_at, expected day evaluated
    ("2026-12-02T16:40:00+00:00", "00:30", "2026-12-02"),  # 00:40 HK on Dec 3
    ("2026-12-02T16:20:00+00:00", "00:30", "2026-12-01"),  # 00:20 HK: not yet run time
    ("2026-12-03T03:00:00+00:00", "00:30", "2026-12-02"),
]


@pytest.mark.parametrize(("now", "run_at", "expected"), RUN_DAY_CASES)
def test_daily_run_day_uses_tenant_cut_off(now: str, run_at: str, expected: str) -> None:
    assert run_day(at(now), HK, run_at).isoformat() == expected


def test_daily_scope_and_t_plus_1_settlement() -> None:
    from datetime import date

    last_day = date(2026, 12, 31)
    start, end = day_bounds(last_day, HK)
    assert in_daily_scope(WINDOW, start, end)
    assert settles_in(WINDOW, start, end)  # the run of Dec 31 happens on Jan 1 = T+1
    before = day_bounds(date(2026, 12, 30), HK)
    assert not settles_in(WINDOW, *before)
    after = day_bounds(date(2027, 1, 3), HK)
    assert settles_in(WINDOW, *after)  # a missed run is caught up within a week
    long_after = day_bounds(date(2027, 1, 20), HK)
    assert not settles_in(WINDOW, *long_after)
    assert not in_daily_scope(WINDOW, *long_after)


def test_at_end_only_the_highest_tier_of_the_whole_window() -> None:
    rules = [
        rule("net_deposit", "10000", "tier1"),
        rule("net_deposit", "50000", "tier2"),
        rule("net_deposit", "100000", "tier3"),
        rule("deposit_reached", "1000", "other"),
    ]
    facts = UserFacts(
        "u1",
        flows=[
            Flow(at("2026-12-02T10:00:00+08:00"), "e1", FlowKind.deposit, D("80000"), "HKD"),
            Flow(at("2026-12-20T10:00:00+08:00"), "e2", FlowKind.withdrawal, D("20000"), "HKD"),
        ],
    )
    chosen = highest_tiers(rules, facts, WINDOW, RATES, "HKD")
    assert sorted((r["id"], value) for r, _, value in chosen) == [
        ("other", D("80000")),
        ("tier2", D("60000")),
    ]


# ---------------------------------------------------------------- properties

AMOUNT_TASKS = [
    "net_transfer_in",
    "net_deposit",
    "net_position_transfer",
    "deposit_reached",
    "transfer_reached",
    "net_asset_reached",
    "first_deposit",
    "first_transfer",
]
RULES = [
    rule(task, threshold, f"{task}-{threshold}")
    for task in AMOUNT_TASKS
    for threshold in ("1000", "5000")
]

flow_st = st.builds(
    lambda minutes, kind, amount: (minutes, kind, amount),
    st.integers(min_value=0, max_value=4 * 24 * 60),
    st.sampled_from(list(FlowKind)),
    st.integers(min_value=1, max_value=4000),
)


def decisions(flows: list[Flow], until: datetime) -> dict[str, datetime | None]:
    facts = UserFacts("u1", flows=flows)
    out = {}
    for r in RULES:
        done = achievement(r, facts, WINDOW, zone=HK, rates=RATES, until=until)
        out[r["id"]] = done.achieved_at if done else None
    return out


@settings(max_examples=200, deadline=None)
@given(st.lists(flow_st, min_size=1, max_size=12), st.randoms(use_true_random=False))
def test_reordering_or_replaying_a_users_events_never_changes_decisions(
    rows: list[tuple[int, FlowKind, int]], rnd: random.Random
) -> None:
    base = WINDOW.starts_at + timedelta(hours=1)
    flows = [
        Flow(base + timedelta(minutes=m), f"e{i}", kind, D(amount), "HKD")
        for i, (m, kind, amount) in enumerate(rows)
    ]
    shuffled = list(flows)
    rnd.shuffle(shuffled)
    replayed = shuffled + rnd.sample(flows, k=min(3, len(flows)))
    # stored events are unique by event id: a replay is dropped at ingestion
    stored = list({f.event_id: f for f in replayed}.values())
    for day in range(5):
        until = day_bounds((WINDOW.starts_at + timedelta(days=day)).date(), HK)[1]
        assert decisions(flows, until) == decisions(stored, until)


@settings(max_examples=100, deadline=None)
@given(st.lists(flow_st, min_size=1, max_size=10))
def test_tiers_are_monotone_a_higher_threshold_is_never_reached_first(
    rows: list[tuple[int, FlowKind, int]],
) -> None:
    base = WINDOW.starts_at
    flows = [
        Flow(base + timedelta(minutes=m), f"e{i}", kind, D(amount), "HKD")
        for i, (m, kind, amount) in enumerate(rows)
    ]
    facts = UserFacts("u1", flows=flows)
    for task in ("deposit_reached", "transfer_reached"):
        low = achievement(rule(task, "1000"), facts, WINDOW, zone=HK, rates=RATES)
        high = achievement(rule(task, "5000"), facts, WINDOW, zone=HK, rates=RATES)
        if high is not None:
            assert low is not None and low.achieved_at <= high.achieved_at
