"""Pure arithmetic of the stats (no I/O): reward counts, cost in the base currency and the
cost per acquired user. Unit-tested in tests/unit/stats."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Any

from activity_service.stats.schemas import (
    PRIZE_TYPES,
    RECORD_STATUSES,
    CostSummary,
    CurrencyAmount,
    CurrencyNet,
    FunnelStage,
    NetInflow,
    RewardCounts,
    TypeCost,
)
from activity_service.tenants.fx import NoRate, RateTable, quantize

# Latest outcomes that say the user could not take part in a basic or team activity: they
# acted outside the window or are not in its audience. Anyone else evaluated is a participant.
NOT_TAKING_PART = frozenset(
    {
        "outside_window",
        "no_inviter",
        "not_in_segment",
        "not_new_user",
        "not_old_user",
        "in_other_regular_activity",
    }
)
# Latest outcomes of a participant who completed the rule's task but got no (further) reward
# for it: the prize cap, the prize's total quantity or the budget ran out, or an earlier
# grant of the same rule.
COMPLETED_WITHOUT_GRANT = frozenset(
    {"cap_reached", "already_granted", "quantity_exhausted", "budget_exhausted"}
)


def rule_tasks(config: Mapping[str, Any]) -> dict[str, str]:
    """Rule id → task type of an activity's rules (kinds without rules give nothing)."""
    return {
        str(rule["id"]): str(rule["task"])
        for rule in config.get("rules") or []
        if isinstance(rule, Mapping) and rule.get("id") and rule.get("task")
    }


@dataclass(frozen=True)
class IssuedCostRow:
    """One group of Issued records as reward_service sums them; ``currency`` None means
    the prize has no cost."""

    prize_type: str
    currency: str | None
    records: int
    amount: Decimal | None


def counts_from_reward_service(answer: Mapping[str, Any]) -> RewardCounts:
    """reward_service's counts; its ``all`` counts each record once (``locked`` also counts
    rewards issued at once whose lock runs, which are ``issued`` too)."""
    values = {s: int(answer.get(s) or 0) for s in RECORD_STATUSES}
    every = answer.get("all")
    total = int(every) if every is not None else sum(values.values())
    return RewardCounts(source="reward_service", **values, all=total)


def counts_from_ledger(by_record_status: Mapping[str, int]) -> RewardCounts:
    """The grant ledger mirrors each record's status; ``granted`` means no record yet."""
    values = {s: int(by_record_status.get(s, 0)) for s in RECORD_STATUSES}
    return RewardCounts(
        source="grant_ledger",
        **values,
        all=sum(values.values()),
        not_yet_recorded=int(by_record_status.get("granted", 0)),
    )


def cost_summary(
    rows: Iterable[IssuedCostRow], base_currency: str, rates: RateTable, at: datetime
) -> CostSummary:
    """Sums per prize type and currency, converted to ``base_currency`` with the rate
    effective at ``at`` (one conversion per type and currency, half-even to 6 places).
    Amounts without a rate stay in their currency and make the summary incomplete."""
    by_type: dict[str, dict[str, list[Decimal | int]]] = {t: {} for t in PRIZE_TYPES}
    records: dict[str, int] = defaultdict(int)
    uncosted: dict[str, int] = defaultdict(int)
    for row in rows:
        by_type.setdefault(row.prize_type, {})
        records[row.prize_type] += row.records
        if row.currency is None or row.amount is None:
            uncosted[row.prize_type] += row.records
            continue
        summed = by_type[row.prize_type].setdefault(row.currency, [Decimal(0), 0])
        summed[0] = Decimal(summed[0]) + row.amount
        summed[1] = int(summed[1]) + row.records
    types: list[TypeCost] = []
    unconverted: dict[str, list[Decimal | int]] = {}
    total = Decimal(0)
    for prize_type, currencies in by_type.items():
        converted = Decimal(0)
        complete = uncosted[prize_type] == 0
        parts: list[CurrencyAmount] = []
        for currency in sorted(currencies):
            amount, n = Decimal(currencies[currency][0]), int(currencies[currency][1])
            parts.append(CurrencyAmount(currency=currency, amount=amount, records=n))
            try:
                converted += rates.convert(amount, currency, base_currency, at)
            except NoRate:
                complete = False
                left = unconverted.setdefault(currency, [Decimal(0), 0])
                left[0] = Decimal(left[0]) + amount
                left[1] = int(left[1]) + n
        types.append(
            TypeCost(
                prize_type=prize_type,
                records=records[prize_type],
                amount=quantize(converted),
                complete=complete,
                uncosted_records=uncosted[prize_type],
                by_currency=parts,
            )
        )
        total += converted
    return CostSummary(
        currency=base_currency,
        total=quantize(total),
        complete=all(t.complete for t in types),
        by_type=types,
        unconverted=[
            CurrencyAmount(currency=c, amount=Decimal(v[0]), records=int(v[1]))
            for c, v in sorted(unconverted.items())
        ],
        uncosted_records=sum(uncosted.values()),
    )


def cost_per_user(cost: CostSummary | None, acquired_users: int) -> Decimal | None:
    """Only a complete cost is divided: a partial total would understate it."""
    if cost is None or not cost.complete or acquired_users <= 0:
        return None
    return quantize(cost.total / acquired_users)


RATE_PLACES = Decimal("0.0001")


def funnel(stages: Sequence[tuple[str, int]]) -> list[FunnelStage]:
    """Conversion rates of a funnel: each stage over the previous one and over the first."""
    out: list[FunnelStage] = []
    first = stages[0][1] if stages else 0
    previous: int | None = None
    for name, users in stages:
        out.append(
            FunnelStage(
                stage=name,  # type: ignore[arg-type]
                users=users,
                rate_from_previous=_rate(users, previous),
                rate_from_start=_rate(users, first) if previous is not None else None,
            )
        )
        previous = users
    return out


def _rate(users: int, of: int | None) -> Decimal | None:
    if not of:
        return None
    return (Decimal(users) / Decimal(of)).quantize(RATE_PLACES, rounding=ROUND_HALF_EVEN)


def net_inflow(
    rows: Iterable[tuple[str, Decimal, int]], base_currency: str, rates: RateTable, at: datetime
) -> NetInflow:
    """Net amounts per currency and their sum in the base currency (rate effective at
    ``at``); a currency without a rate stays out of the total and makes it incomplete."""
    total = Decimal(0)
    complete = True
    parts = []
    for currency, amount, users in rows:
        amount = Decimal(amount)
        parts.append(CurrencyNet(currency=currency, amount=quantize(amount), users=users))
        try:
            total += rates.convert(amount, currency, base_currency, at)
        except NoRate:
            complete = False
    return NetInflow(
        currency=base_currency, total=quantize(total), complete=complete, by_currency=parts
    )
