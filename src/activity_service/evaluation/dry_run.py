"""Dry-run of a draft or running activity against the stored events of a past period: who
would have earned what, what it would have cost in the base currency, and which limits
would have bitten and for whom — without writing a grant, an outcome, a record, a binding or
anything else in any service.

The period stands in for the activity's window. The decisions per kind are in
``dry_run_decisions`` (basic and referral activities); then the activity's limits are
applied over every candidate in achievement order (ties in rule order), as the evaluation
takes them when grants arrive one by one: the per-user cap of a prize, the prize's total
quantity over the activity, the activity's budget (each grant's cost converted at its
achievement). Team activities are decided by assists to their teams — requests, not stored
business events — so a past period holds nothing to replay for them (``dry_run_unsupported``),
nor for non-standard ones, whose rewards are issued by hand.

The work is bounded: at most ``MAX_PERIOD``, at most ``user_limit`` users (the first by id)
with events in the period, read in chunks. A dry-run's later pages are answered from its
result, kept for ``KEEP_SECONDS`` by the process that made it (another process decides
the same bounded set again).
"""

from __future__ import annotations

import gc
import time
from collections import Counter, OrderedDict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from itertools import groupby
from operator import attrgetter
from typing import Any

from activity_service.activities.models import Activity
from activity_service.activities.repository import ActivityRepository
from activity_service.evaluation.dry_run_decisions import (
    Bite,
    Candidate,
    DryRun,
    basic_candidates,
    referral_candidates,
    sorted_by,
    timed,
    users_of,
)
from activity_service.evaluation.engine import Window
from activity_service.evaluation.limits import (
    BUDGET_EXHAUSTED,
    CAP_REACHED,
    QUANTITY_EXHAUSTED,
    NoCost,
    limits_of,
)
from activity_service.evaluation.referral_bulk import InviterDirectory
from activity_service.tenants.fx import NoRate
from activity_service.tenants.service import TenantContext, tenant_context
from contracts.payloads import PrizeSummary
from service_kit.db import Database
from service_kit.errors import Conflict, NotFound, Unprocessable, UpstreamUnavailable
from service_kit.http import ServiceClient

MAX_PERIOD = timedelta(days=92)
MAX_USERS = 100_000
KEEP_SECONDS = 300.0
KEPT_RUNS = 2
FIRST_USERS = 10  # users named per limit that bit (all of them: the refused list)

UNSUPPORTED = {
    "team": "A team activity is decided by assists to its teams, which are requests to the "
    "platform, not stored business events: a past period holds nothing to replay for it.",
    "non_standard": "A non-standard activity has no rules to replay: its rewards are issued "
    "by hand under its code.",
}


def apply_limits(
    activity: Activity, tenant: TenantContext, candidates: list[Candidate], report: DryRun
) -> None:
    """Grant the candidates in achievement order (ties in rule order) as far as the
    activity's limits let them, as ``service.write_grant`` takes them: the cost first (a
    budgeted grant needs one), then the prize's per-user cap, its total, the budget."""
    limits = limits_of(activity.config)
    budget = limits.budget
    # A cost stated in the budget's currency is the same at any time: looked up, not converted.
    same_currency = {
        prize: amount
        for prize, (amount, currency) in limits.costs.items()
        if currency == limits.currency
    }
    caps, totals_of = limits.caps, limits.totals
    per_user: Counter[tuple[str, str]] = Counter()
    totals: Counter[str] = Counter()
    spent = Decimal(0)
    grants = report.grants
    for c in sorted_by(candidates, *_ACHIEVED):
        prize = c.prize_id
        assert prize is not None
        cost: Decimal | None = None
        if budget is not None:
            cost = same_currency.get(prize)
            if cost is None:
                try:
                    cost = limits.cost(prize, tenant.rates, c.achieved_at)
                except NoCost as unknown:
                    report.refuse(c, unknown.reason, str(unknown))
                    continue
        cap, total = caps.get(prize), totals_of.get(prize)
        if cap is not None and per_user[(c.user_id, prize)] >= cap:
            _bite(report, c, CAP_REACHED, "per_user_cap", prize, Decimal(cap), None)
            continue
        if total is not None and totals[prize] >= total:
            _bite(report, c, QUANTITY_EXHAUSTED, "total_quantity", prize, Decimal(total), None)
            continue
        if cost is not None and budget is not None and spent + cost > budget:
            _bite(report, c, BUDGET_EXHAUSTED, "budget", None, budget, limits.currency)
            continue
        if cap is not None:
            per_user[(c.user_id, prize)] += 1
        if total is not None:
            totals[prize] += 1
        if cost is not None:
            spent += cost
        grants.append(c)
    report.budget_spent = spent if budget is not None else None
    sorted_in_runs(grants, _USER, _listed)
    report.refusals.sort(key=lambda r: _listed(r.candidate))


def _counterpart(c: Candidate) -> str:
    return c.counterpart_id or ""


# Achievement order: time, rule order, user, counterpart (none first).
_ACHIEVED = (attrgetter("achieved_at"), attrgetter("order"), attrgetter("user_id"), _counterpart)
# The order of the answer's lists: per user, then in time and rule order.
_USER = attrgetter("user_id")


def sorted_in_runs(
    items: list[Candidate],
    first: Callable[[Candidate], Any],
    key: Callable[[Candidate], tuple[Any, ...]],
) -> list[Candidate]:
    """``items`` sorted in place by ``key``, whose first element is ``first``: one sort by
    ``first``, then each run of items equal in it by the whole key. For the answer's order,
    per user: a user has a few grants, so this is a third of the time of a sort per key."""
    items.sort(key=first)
    ordered: list[Candidate] = []
    for _, run in groupby(items, key=first):
        same = list(run)
        if len(same) > 1:
            same.sort(key=key)
        ordered.extend(same)
    items[:] = ordered
    return items


def _listed(c: Candidate) -> tuple[Any, ...]:
    """The order of the answer's lists: per user, then in time and rule order."""
    return (c.user_id, c.achieved_at, c.order, c.rule_id, c.counterpart_id or "")


def _bite(
    report: DryRun,
    c: Candidate,
    reason: str,
    limit: str,
    prize: str | None,
    value: Decimal,
    currency: str | None,
) -> None:
    bite = report.bites.get((limit, prize))
    if bite is None:
        bite = report.bites[(limit, prize)] = Bite(limit, prize, value, currency)
    bite.refused += 1
    if c.user_id not in bite.users and len(bite.first_users) < FIRST_USERS:
        bite.first_users.append(c.user_id)
    bite.users.add(c.user_id)
    if bite.first_at is None or c.achieved_at < bite.first_at:
        bite.first_at = c.achieved_at
    detail = f"{limit} {value}" + (f" {currency}" if currency else "")
    report.refuse(c, reason, detail)


async def dry_run(
    db: Database,
    activity: Activity,
    tenant: TenantContext,
    window: Window,
    user_limit: int,
    inviters: InviterDirectory,
) -> DryRun:
    rules = list((activity.config or {}).get("rules", []))
    report = DryRun()
    began = time.perf_counter()
    with timed(report, "users"):
        users = await users_of(db, tenant.tenant_id, rules, window)
    report.users_truncated = len(users) > user_limit
    users = users[:user_limit]
    report.users_evaluated = len(users)
    with collector_paused():
        if activity.kind == "referral":
            found = await referral_candidates(db, activity, tenant, window, users, inviters, report)
        else:
            found = await basic_candidates(db, activity, tenant, window, users, report)
        with timed(report, "limits"):
            apply_limits(activity, tenant, found, report)
    report.phases["total"] = time.perf_counter() - began
    return report


_pausing = 0  # dry-runs of this process deciding now, with the collector paused


@contextmanager
def collector_paused() -> Iterator[None]:
    """Python's cyclic garbage collector paused while a dry-run decides. It allocates
    millions of objects (facts, flows, candidates) that all live until the answer, and
    the collector would scan them again and again as they pile up: half of the dry-run's
    CPU. Reference counting still frees what is dropped; cycles made meanwhile (by any
    request of the process) wait until the last dry-run deciding is done."""
    global _pausing
    if _pausing == 0:
        if not gc.isenabled():  # paused by someone else: theirs to resume
            yield
            return
        gc.disable()
    _pausing += 1
    try:
        yield
    finally:
        _pausing -= 1
        if _pausing == 0:
            gc.enable()


@dataclass
class PrizeCost:
    prize_id: str
    grants: int
    unit_amount: Decimal | None
    currency: str | None
    total_base: Decimal | None  # None: no cost known, or no FX rate to the base currency


async def costs(
    http: ServiceClient,
    reward_url: str,
    tenant: TenantContext,
    grants: list[Candidate],
    at: datetime,
) -> list[PrizeCost]:
    """What the grants would cost per prize, converted to the base currency at ``at``, as
    the campaign report counts an Issued record: a cash prize costs its amount; others their
    cost, when the operator set one."""
    counts = Counter(g.prize_id for g in grants if g.prize_id is not None)
    result = []
    for prize_id, n in sorted(counts.items()):
        response = await http.get(reward_url, f"/v1/prizes/{prize_id}", tenant_id=tenant.tenant_id)
        if response.status_code == 404:
            result.append(PrizeCost(prize_id, n, None, None, None))
            continue
        if response.status_code != 200:
            raise UpstreamUnavailable(f"reward_service answered {response.status_code}.")
        body = response.json()
        prize = PrizeSummary.model_validate(body)
        amount, currency = prize.cost_amount, prize.cost_currency
        if amount is None and prize.type == "cash":
            details = body.get("details") or {}
            if details.get("amount") is not None:
                amount, currency = Decimal(str(details["amount"])), details.get("currency")
        total = None
        if amount is not None and currency:
            try:
                total = tenant.rates.convert(amount * n, currency, tenant.base_currency, at)
            except NoRate:
                total = None
        result.append(PrizeCost(prize_id, n, amount, currency, total))
    return result


@dataclass
class DryRunAnswer:
    activity: Activity
    window: Window
    tenant: TenantContext
    report: DryRun
    prize_costs: list[PrizeCost]


# Recent dry-runs of this process, for their later pages: key → (made at, answer).
_KEPT: OrderedDict[tuple[Any, ...], tuple[float, DryRunAnswer]] = OrderedDict()


def _kept(key: tuple[Any, ...]) -> DryRunAnswer | None:
    found = _KEPT.get(key)
    if found is None or time.monotonic() - found[0] > KEEP_SECONDS:
        _KEPT.pop(key, None)
        return None
    return found[1]


def _keep(key: tuple[Any, ...], answer: DryRunAnswer) -> None:
    _KEPT[key] = (time.monotonic(), answer)
    _KEPT.move_to_end(key)
    while len(_KEPT) > KEPT_RUNS:
        _KEPT.popitem(last=False)


async def dry_run_activity(
    db: Database,
    http: ServiceClient,
    reward_url: str,
    referral_url: str,
    tenant_id: str,
    activity_id: Any,
    window: Window,
    user_limit: int,
    now: datetime,
    *,
    next_page: bool = False,
) -> DryRunAnswer:
    """Check the request, then dry-run the activity over ``window`` (a past period).
    ``next_page``: a later page of a dry-run, answered from its result while it is kept."""
    if window.ends_at <= window.starts_at:
        raise Unprocessable("ends_at must be after starts_at.", code="invalid_period")
    if window.ends_at > now:
        raise Unprocessable(
            "A dry-run replays stored events of a past period; ends_at is in the future.",
            code="period_not_over",
        )
    if window.ends_at - window.starts_at > MAX_PERIOD:
        raise Unprocessable(
            f"A dry-run covers at most {MAX_PERIOD.days} days.", code="period_too_long"
        )
    async with db.session() as session:
        activity = await ActivityRepository.from_session(session).get(tenant_id, activity_id)
        if activity is None:
            raise NotFound(f"No activity {activity_id} in this tenant.", code="activity_not_found")
        if activity.kind in UNSUPPORTED:
            raise Unprocessable(UNSUPPORTED[activity.kind], code="dry_run_unsupported")
        if activity.state == "closed":
            raise Conflict("A closed activity cannot be dry-run.", code="activity_closed")
        key = (tenant_id, activity.id, activity.version, window, user_limit)
        if next_page and (kept := _kept(key)) is not None:
            return kept
        tenant = await tenant_context(session, tenant_id)
    report = await dry_run(
        db, activity, tenant, window, user_limit, InviterDirectory(http, referral_url)
    )
    prize_costs = await costs(http, reward_url, tenant, report.grants, window.ends_at)
    answer = DryRunAnswer(activity, window, tenant, report, prize_costs)
    _keep(key, answer)
    return answer
