"""Evaluation of users against activities, writing each decision as a grant with its outbox
message in one transaction (SPEC §1.4–§1.7).

Three entry points, all idempotent through deterministic grant keys:
- ``evaluate_event``: real-time tasks (actions, first deposit/transfer) at an event;
- ``run_daily``: the daily run of a tenant's local day — cumulative amount tasks of
  real-time activities (each tier once) and the T+1 settlement of at-end activities (the
  highest tier only); resumable after a crash from its saved progress;
- ``follow_record_status`` / ``follow_record_statuses``: the grant ledger follows the
  reward records.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from sqlalchemy.ext.asyncio import AsyncSession

from activity_service.activities.models import Activity
from activity_service.activities.rules import TaskType
from activity_service.db import OutboxMessage
from activity_service.evaluation.catalog import CATALOGS, Catalog
from activity_service.evaluation.daily_repository import GRANTS_PER_MESSAGE
from activity_service.evaluation.engine import (
    LOOKBACK,
    REAL_TIME_TRIGGERS,
    Achievement,
    Certification,
    MissingRate,
    UserFacts,
    Window,
    achievement,
    grant_key,
    is_real_time_task,
    node_of,
    not_done_reason,
    tier_award,
)
from activity_service.evaluation.limits import (
    BUDGET_EXHAUSTED,
    CAP_REACHED,
    QUANTITY_EXHAUSTED,
    NoCost,
    limits_of,
)
from activity_service.evaluation.models import Grant
from activity_service.evaluation.referral_client import ReferralLookup
from activity_service.evaluation.repository import (
    EvaluationRepository,
    GrantRepository,
    ReferralRepository,
)
from activity_service.events.models import Event
from activity_service.events.repository import EventRepository
from activity_service.progress.flows import CUMULATIVE_TASKS, EVENT_FLOWS, Flow
from activity_service.progress.repository import DeviceRepository
from activity_service.tenants.service import TenantContext, tenant_context
from contracts import jobs
from contracts.payloads import (
    NODE_EVENT_TYPES,
    IssuanceForm,
    LockUp,
    Node,
    NodeCompleted,
    RecordStatusChanged,
    ReferralRole,
)
from contracts.payloads import Grant as GrantPayload
from service_kit.correlation import stamp
from service_kit.i18n import texts_of
from service_kit.outbox import OutboxRepository
from service_kit.outbox.bundles import bundle

if TYPE_CHECKING:
    from activity_service.evaluation.daily_run import DailyRunResult as DailyRunResult
    from activity_service.evaluation.daily_run import run_daily as run_daily

log = logging.getLogger(__name__)

MONEY_TYPES = tuple(EVENT_FLOWS)
FACT_TYPES = (
    "user.registered",
    "account.opened",
    "enterprise.certified",
    "app.login",
    *MONEY_TYPES,
)
ACTION_EVENT_TYPES: dict[TaskType, tuple[str, ...]] = {
    TaskType.register: ("user.registered",),
    TaskType.open_account: ("account.opened",),
    TaskType.enterprise_certification: ("enterprise.certified",),
    TaskType.download: ("app.login",),
    TaskType.first_deposit: ("cash.deposited",),
    TaskType.first_transfer: ("stock.transferred_in",),
}


# --------------------------------------------------------------------------- facts


def facts_of(
    user_id: str, events: Sequence[Any], new_device_login_at: datetime | None = None
) -> UserFacts:
    """The user's facts from their events, oldest first (loaded one user at a time by
    ``load_facts``, or a chunk of users at a time by the daily run)."""
    facts = UserFacts(user_id=user_id, new_device_login_at=new_device_login_at)
    for event in events:
        if event.type == "user.registered" and facts.registered_at is None:
            facts.registered_at = event.occurred_at
            facts.app_id = event.app_id
        elif event.type == "account.opened" and facts.opened_at is None:
            facts.opened_at = event.occurred_at
        elif event.type == "app.login":
            if facts.first_login_at is None:
                facts.first_login_at = event.occurred_at
        elif event.type == "enterprise.certified":
            facts.certifications.append(
                Certification(
                    event.occurred_at,
                    event.event_id,
                    str(event.payload.get("enterprise_id")),
                    event.payload.get("enterprise_name"),
                )
            )
        elif event.type in EVENT_FLOWS:
            facts.flows.append(
                Flow(
                    event.occurred_at,
                    event.event_id,
                    EVENT_FLOWS[event.type],
                    _decimal(event.payload["amount"]),
                    event.payload["currency"],
                )
            )
        if facts.app_id is None:
            facts.app_id = event.app_id
    return facts


async def load_facts(
    session: AsyncSession, tenant_id: str, user_id: str, *, with_device: bool = True
) -> UserFacts:
    """What is known of the user over their whole history (not just a window); the first
    login on a new device only ``with_device`` (only download tasks need it)."""
    events = _delivery_cache(session).get(("history", tenant_id, user_id))
    if events is None:
        events = await EventRepository.from_session(session).of_user(tenant_id, user_id, FACT_TYPES)
    facts = facts_of(user_id, events)
    if not with_device:
        return facts
    device = await DeviceRepository.from_session(session).first_new_device_login(tenant_id, user_id)
    if device is not None:
        facts.new_device_login_at = device.first_seen_at
    return facts


def _decimal(value: Any) -> Decimal:
    return Decimal(str(value))


# --------------------------------------------------------------------------- grants


@dataclass
class Evaluation:
    """One unit of evaluation work: its session, tenant, clock and referral lookups."""

    session: AsyncSession
    tenant: TenantContext
    now: datetime
    referral: ReferralLookup | None
    source_event_id: str | None = None
    # When the event being evaluated happened (real-time evaluation only).
    event_at: datetime | None = None
    grants: list[Grant] = field(default_factory=list)
    # Outcomes, and the grants that no limit guards, kept in the session and written
    # together by ``write_deferred`` before the unit of work commits: one statement each
    # for a whole delivery instead of one per rule, and the delivery's reward messages
    # bundled (``stage_grant``).
    defer_writes: bool = False

    @property
    def tenant_id(self) -> str:
        return self.tenant.tenant_id

    async def outcome(
        self, activity: Activity, user_id: str, rule_id: str, outcome: str, detail: str | None
    ) -> None:
        if self.defer_writes:
            pending = self.session.info.setdefault(PENDING_OUTCOMES, {})
            key = (self.tenant_id, activity.id, user_id, rule_id)
            pending.pop(key, None)  # the latest decision wins, as with the upsert
            pending[key] = (outcome, detail, self.now)
            return
        await EvaluationRepository.from_session(self.session).record_outcome(
            self.tenant_id, activity.id, user_id, rule_id, outcome, detail, self.now
        )


PENDING_OUTCOMES = "pending_outcomes"


async def write_deferred(session: AsyncSession) -> None:
    """Write the grants and outcomes deferred in this session (``Evaluation.defer_writes``)."""
    await write_staged_grants(session)
    await write_outcomes(session)


async def write_outcomes(session: AsyncSession) -> None:
    """Write the outcomes deferred in this session (see ``Evaluation.defer_writes``)."""
    pending = session.info.pop(PENDING_OUTCOMES, None)
    if pending:
        await EvaluationRepository.from_session(session).record_outcomes(
            [
                (tenant_id, activity_id, user_id, rule_id, outcome, detail, at)
                for (tenant_id, activity_id, user_id, rule_id), (outcome, detail, at) in (
                    pending.items()
                )
            ]
        )


# session.info: the grants without limits a unit of work decided, by (tenant, grant key),
# written by ``write_staged_grants``.
STAGED_GRANTS = "staged_grants"


@dataclass
class _StagedGrant:
    values: dict[str, Any]
    # The reward message's payload, stamped with the request that caused it.
    message: dict[str, Any]
    # The outcome recorded for it: (tenant, activity, user, rule).
    outcome_key: tuple[str, uuid.UUID, str, str]


async def stage_grant(
    ev: Evaluation,
    activity: Activity,
    values: dict[str, Any],
    payload: dict[str, Any],
    rule_id: str,
) -> tuple[Grant | None, str]:
    """A grant without limits decided in a deferred unit of work: kept with its reward
    message until ``write_staged_grants`` inserts the unit's grants in one statement. The
    outcome says "granted" at once, so later decisions of the same rule still follow it;
    a key the ledger already had is skipped then, its outcome left as it was (as
    ``insert_if_new`` does)."""
    staged: dict[tuple[str, str], _StagedGrant] = ev.session.info.setdefault(STAGED_GRANTS, {})
    key = (ev.tenant_id, values["grant_key"])
    if key in staged:
        return None, "already_granted"
    staged[key] = _StagedGrant(
        values, stamp(payload), (ev.tenant_id, activity.id, values["user_id"], rule_id)
    )
    grant = Grant(**values)
    ev.grants.append(grant)
    await ev.outcome(activity, values["user_id"], rule_id, "granted", values["grant_key"])
    return grant, "granted"


async def write_staged_grants(session: AsyncSession) -> None:
    """Insert the grants staged in this session (``stage_grant``) and announce the new
    ones to reward_service, ``GRANTS_PER_MESSAGE`` to a message per tenant as the daily
    run does. Called before anything reads the grant ledger in the unit of work."""
    staged: dict[tuple[str, str], _StagedGrant] | None = session.info.pop(STAGED_GRANTS, None)
    if not staged:
        return
    inserted = await GrantRepository.from_session(session).insert_new(
        [grant.values for grant in staged.values()]
    )
    pending = session.info.get(PENDING_OUTCOMES, {})
    messages: dict[str, list[dict[str, Any]]] = {}
    for (tenant_id, key), grant in staged.items():
        if (tenant_id, key) in inserted:
            messages.setdefault(tenant_id, []).append(grant.message)
        elif pending.get(grant.outcome_key, (None, None))[:2] == ("granted", key):
            del pending[grant.outcome_key]  # granted before: its outcome stays as it was
    outbox = OutboxRepository.from_session(session, OutboxMessage)
    for tenant_id, payloads in messages.items():
        for start in range(0, len(payloads), GRANTS_PER_MESSAGE):
            # A bundle even of one: each grant keeps the request that caused it (its own
            # stamp), the bundle carries the job's.
            chunk = payloads[start : start + GRANTS_PER_MESSAGE]
            outbox.add(
                "reward",
                jobs.REWARD_CREATE_FROM_GRANT,
                bundle(chunk, tenant_id),
                job_id=f"grants:{chunk[0]['grant_key']}+{len(chunk)}",
            )


class _QualifiedConcurrently(Exception):
    pass


class _NotGranted(Exception):
    def __init__(self, reason: str, detail: str | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.detail = detail


def _activity_name(activity: Activity) -> str | None:
    name = activity.name or {}
    return name.get("en") or name.get("zh-Hans") or name.get("zh-Hant")


def _activity_names(activity: Activity) -> dict[str, str] | None:
    return texts_of(activity.name)


def _caps(activity: Activity) -> dict[str, int]:
    return limits_of(activity.config).caps


async def write_grant(
    ev: Evaluation,
    activity: Activity,
    *,
    rule_id: str,
    prize_id: str,
    task: TaskType | str,
    achieved_at: datetime,
    user_id: str,
    app_id: str | None,
    counterpart_id: str | None = None,
    period: str = "once",
    lock_up: dict[str, Any] | None = None,
    enterprise_name: str | None = None,
    referral_role: ReferralRole | None = None,
) -> tuple[Grant | None, str]:
    """Record one decision (once per grant key) with its outbox message, taking in the same
    savepoint what the activity limits it by — a slot of the prize's per-user cap, one of
    the prize's total quantity, its cost from the budget (``limits.py``); returns (grant,
    outcome). A refusal is explained: ``cap_reached``, ``quantity_exhausted``,
    ``budget_exhausted``.

    Without a limit there is nothing to give back when the key exists: the insert's ``ON
    CONFLICT DO NOTHING`` alone decides, with no savepoint, and the outbox row is written
    with the others of the unit of work at commit."""
    key = grant_key(str(activity.id), rule_id, user_id, counterpart_id, period)
    repo = GrantRepository.from_session(ev.session)
    limits = limits_of(activity.config)
    cap, total = limits.caps.get(prize_id), limits.totals.get(prize_id)
    guarded = limits.guards(prize_id)
    if guarded and await repo.exists(ev.tenant_id, key):
        return None, "already_granted"
    cost: Decimal | None = None
    if limits.budget is not None:
        try:
            cost = limits.cost(prize_id, ev.tenant.rates, ev.now)
        except NoCost as unknown:
            await ev.outcome(activity, user_id, rule_id, unknown.reason, str(unknown))
            return None, unknown.reason
    # Team grants name their own tasks (team_initiator, team_assist).
    task_name = task.value if isinstance(task, TaskType) else task
    payload = GrantPayload(
        tenant_id=activity.tenant_id,
        grant_key=key,
        activity_code=activity.activity_code,
        activity_name=_activity_name(activity),
        activity_names=_activity_names(activity),
        rule_id=rule_id,
        user_id=user_id,
        app_id=app_id,
        counterpart_id=counterpart_id,
        task=task_name,
        achieved_at=achieved_at,
        prize_id=prize_id,
        issuance_form=IssuanceForm(activity.issuance_form),
        lock_up=LockUp.model_validate(lock_up) if lock_up else None,
        enterprise_name=enterprise_name,
        referral_role=referral_role,
    ).model_dump(mode="json")
    values = {
        "id": uuid.uuid4(),
        "tenant_id": activity.tenant_id,
        "grant_key": key,
        "activity_id": activity.id,
        "activity_code": activity.activity_code,
        "rule_id": rule_id,
        "user_id": user_id,
        "counterpart_id": counterpart_id,
        "task": task_name,
        "achieved_at": achieved_at,
        "prize_id": uuid.UUID(prize_id),
        "source_event_id": ev.source_event_id,
        "new_user_reward": activity.kind == "basic" and activity.attribute == "new_user",
    }
    outbox = OutboxRepository.from_session(ev.session, OutboxMessage)
    if not guarded and ev.defer_writes:
        return await stage_grant(ev, activity, values, payload, rule_id)
    await write_staged_grants(ev.session)  # what follows reads the ledger
    if not guarded:
        grant = await repo.insert_if_new(values)
        if grant is None:
            return None, "already_granted"
        outbox.add("reward", jobs.REWARD_CREATE_FROM_GRANT, payload, job_id=key)
    else:
        prize = uuid.UUID(prize_id)
        try:
            # Taken in a fixed order (cap, total, budget), as the daily run and give_back
            # do, so concurrent units of work lock the counters in the same order.
            async with ev.session.begin_nested():
                if cap is not None and not await repo.claim_cap_slot(
                    ev.tenant_id, activity.id, user_id, prize, cap
                ):
                    raise _NotGranted(CAP_REACHED, f"prize {prize_id} cap {cap}")
                if total is not None and not await repo.claim_total_slot(
                    ev.tenant_id, activity.id, prize, total
                ):
                    raise _NotGranted(QUANTITY_EXHAUSTED, f"prize {prize_id} total {total}")
                if (
                    cost is not None
                    and limits.budget is not None
                    and not await repo.claim_budget(ev.tenant_id, activity.id, cost, limits.budget)
                ):
                    raise _NotGranted(
                        BUDGET_EXHAUSTED,
                        f"budget {limits.budget} {limits.currency}; this reward costs {cost}",
                    )
                grant = await repo.insert_if_new(
                    {
                        **values,
                        "cap_slot": cap is not None,
                        "total_slot": total is not None,
                        "budget_cost": cost,
                    }
                )
                if grant is None:  # a concurrent evaluation won: give its slots back
                    raise _NotGranted("already_granted", f"prize {prize_id} cap {cap}")
                outbox.add("reward", jobs.REWARD_CREATE_FROM_GRANT, payload, job_id=key)
                await ev.session.flush()
        except _NotGranted as refused:
            await ev.outcome(activity, user_id, rule_id, refused.reason, refused.detail)
            return None, refused.reason
    ev.grants.append(grant)
    await ev.outcome(activity, user_id, rule_id, "granted", key)
    return grant, "granted"


# --------------------------------------------------------------------------- eligibility


def window_of(activity: Activity) -> Window | None:
    if activity.starts_at is None or activity.ends_at is None:
        return None
    return Window(activity.starts_at, activity.ends_at)


async def _in_segment(ev: Evaluation, activity: Activity, user_id: str, at: datetime) -> bool:
    """Membership in the snapshot taken at most the refresh delay before the achievement."""
    if activity.segment_id is None:
        return True
    from activity_service.segments.service import is_member

    return await is_member(
        ev.session,
        ev.tenant_id,
        activity.segment_id,
        user_id,
        activity.segment_refresh or "5m",
        at,
        ev.tenant.zone,
    )


async def _basic_eligibility(
    ev: Evaluation, activity: Activity, user_id: str, at: datetime
) -> str | None:
    """None when the user may earn in this basic activity, else the reason (SPEC §1.6)."""
    if not await _in_segment(ev, activity, user_id, at):
        return "not_in_segment"
    attribute = activity.attribute or "unlimited"
    if attribute == "unlimited":
        return None
    repo = GrantRepository.from_session(ev.session)
    await repo.lock_user(ev.tenant_id, user_id)
    await write_staged_grants(ev.session)  # the new-user question reads the ledger
    # Judged at the achievement, not at evaluation time, so the order activities or events
    # are evaluated in does not matter: a user is new until a new-user reward was achieved
    # (at the same moment too: one new-user reward per user), and old only from a new-user
    # reward achieved strictly earlier.
    if attribute == "new_user":
        had = await repo.has_new_user_reward(
            ev.tenant_id, user_id, other_than=activity.id, achieved_by=at, inclusive=True
        )
        return "not_new_user" if had else None
    if attribute == "old_user":
        had = await repo.has_new_user_reward(
            ev.tenant_id, user_id, other_than=activity.id, achieved_by=at, inclusive=False
        )
        return None if had else "not_old_user"
    return None


# --------------------------------------------------------------------------- basic


async def _grant_basic(
    ev: Evaluation,
    activity: Activity,
    rule: dict[str, Any],
    done: Achievement,
    facts: UserFacts,
    period: str,
) -> None:
    reason = await _basic_eligibility(ev, activity, facts.user_id, done.achieved_at)
    if reason is not None:
        await ev.outcome(activity, facts.user_id, rule["id"], reason, None)
        return
    await write_grant(
        ev,
        activity,
        rule_id=rule["id"],
        prize_id=str(rule["prize_id"]),
        task=done.task,
        achieved_at=done.achieved_at,
        user_id=facts.user_id,
        app_id=facts.app_id,
        period=period,
        lock_up=rule.get("lock_up"),
        enterprise_name=done.enterprise_name,
    )


async def evaluate_basic(
    ev: Evaluation,
    activity: Activity,
    facts: UserFacts,
    *,
    mode: str,
    until: datetime | None = None,
    event_type: str | None = None,
) -> None:
    """``mode``: "event" (real-time tasks at an event) or "daily" (cumulative tasks up to
    ``until``, each tier once). At-end activities are settled by the daily run only
    (``daily_run.decide_basic``), which holds their one tier per user by constraint."""
    window = window_of(activity)
    if window is None:
        return
    config = activity.config or {}
    timing = config.get("timing", "real_time")
    rules: list[dict[str, Any]] = list(config.get("rules", []))
    if mode not in ("event", "daily") or timing != "real_time":
        return
    for rule in rules:
        task = TaskType(rule["task"])
        if mode == "event" and not (
            is_real_time_task(task) and event_type in REAL_TIME_TRIGGERS.get(task, ())
        ):
            continue
        if mode == "daily" and task not in CUMULATIVE_TASKS:
            continue
        try:
            done = achievement(
                rule, facts, window, zone=ev.tenant.zone, rates=ev.tenant.rates, until=until
            )
        except MissingRate as exc:
            await ev.outcome(activity, facts.user_id, rule["id"], "no_fx_rate", str(exc))
            continue
        if done is None:
            await ev.outcome(
                activity,
                facts.user_id,
                rule["id"],
                not_done_reason(task, facts, window, ev.event_at),
                None,
            )
            continue
        await _grant_basic(ev, activity, rule, done, facts, "once")


# --------------------------------------------------------------------------- referral


async def evaluate_referral(
    ev: Evaluation,
    activity: Activity,
    facts: UserFacts,
    *,
    mode: str,
    until: datetime | None = None,
    event_type: str | None = None,
) -> None:
    """``mode`` as for basic activities, plus "binding": every real-time task again, after
    the invitee's inviter was bound (the binding may land after the task's event).

    The invitee ``facts.user_id`` completing a rule's task earns their effective inviter
    for the task's node the rule's reward (fixed) or the reward of the range their count
    falls in (tiered, plus a one-off bonus on entering a range); the invitee may be rewarded
    too. Regular activities: an inviter takes part in one at a time."""
    window = window_of(activity)
    if window is None or ev.referral is None:
        return
    config = activity.config or {}
    reward_type = config.get("reward_type", "fixed")
    invitee = facts.user_id
    for rule in config.get("rules", []):
        task = TaskType(rule["task"])
        if mode == "event" and not (
            is_real_time_task(task) and event_type in REAL_TIME_TRIGGERS.get(task, ())
        ):
            continue
        if mode == "binding" and not is_real_time_task(task):
            continue
        if mode == "daily" and task not in CUMULATIVE_TASKS:
            continue
        if mode == "settle":
            continue
        try:
            done = achievement(
                rule, facts, window, zone=ev.tenant.zone, rates=ev.tenant.rates, until=until
            )
        except MissingRate as exc:
            await ev.outcome(activity, invitee, rule["id"], "no_fx_rate", str(exc))
            continue
        if done is None:
            reason = not_done_reason(task, facts, window, ev.event_at)
            await ev.outcome(activity, invitee, rule["id"], reason, None)
            continue
        inviter = await ev.referral.effective_inviter(ev.tenant_id, invitee, node_of(task))
        if inviter is None or inviter == invitee:
            await ev.outcome(
                activity, invitee, rule["id"], "no_inviter", f"node {node_of(task).value}"
            )
            continue
        if rule.get("invitee_prize_id"):
            await write_grant(
                ev,
                activity,
                rule_id=f"{rule['id']}:invitee",
                prize_id=str(rule["invitee_prize_id"]),
                task=task,
                achieved_at=done.achieved_at,
                user_id=invitee,
                app_id=facts.app_id,
                counterpart_id=inviter,
                referral_role=ReferralRole.invitee,
            )
        await _reward_inviter(ev, activity, rule, done, inviter, invitee, reward_type)


async def _reward_inviter(
    ev: Evaluation,
    activity: Activity,
    rule: dict[str, Any],
    done: Achievement,
    inviter: str,
    invitee: str,
    reward_type: str,
) -> None:
    if not await _in_segment(ev, activity, inviter, done.achieved_at):
        await ev.outcome(activity, inviter, rule["id"], "not_in_segment", f"invitee {invitee}")
        return
    repo = ReferralRepository.from_session(ev.session)
    regular = (activity.attribute or "regular") == "regular"
    existing = await repo.qualification(ev.tenant_id, activity.id, rule["id"], invitee)
    if existing is None:
        if regular and activity.ends_at is not None:
            taking_part = await repo.claim_regular(
                ev.tenant_id, inviter, activity.id, activity.ends_at, ev.now
            )
            if taking_part != activity.id:
                await ev.outcome(
                    activity,
                    inviter,
                    rule["id"],
                    "in_other_regular_activity",
                    f"takes part in {taking_part}; invitee {invitee}",
                )
                return
        try:
            async with ev.session.begin_nested():
                seq = await repo.next_seq(ev.tenant_id, activity.id, rule["id"], inviter)
                existing = await repo.add_qualification(
                    {
                        "tenant_id": ev.tenant_id,
                        "activity_id": activity.id,
                        "rule_id": rule["id"],
                        "invitee_id": invitee,
                        "inviter_id": inviter,
                        "seq": seq,
                        "achieved_at": done.achieved_at,
                        "counted": regular,
                    }
                )
                if existing is None:
                    # Qualified concurrently (another evaluation of this invitee, e.g. after
                    # its binding, committed between our read and our insert): the number
                    # taken goes back with the savepoint, or the inviter's next invitee
                    # would skip one and land in the wrong range.
                    raise _QualifiedConcurrently
        except _QualifiedConcurrently:  # use that decision
            existing = await repo.qualification(ev.tenant_id, activity.id, rule["id"], invitee)
            assert existing is not None
    # The inviter is the one the invitee qualified for, whatever the binding says now.
    inviter = existing.inviter_id
    if reward_type == "tiered":
        award = tier_award(rule, existing.seq)
        if award is None:
            await ev.outcome(
                activity, inviter, rule["id"], "beyond_last_range", f"invitee #{existing.seq}"
            )
            return
        await write_grant(
            ev,
            activity,
            rule_id=award.rule_id,
            prize_id=award.prize_id,
            task=done.task,
            achieved_at=existing.achieved_at,
            user_id=inviter,
            app_id=None,
            counterpart_id=invitee,
            referral_role=ReferralRole.inviter,
        )
        if award.bonus_rule_id and award.bonus_prize_id:
            await write_grant(
                ev,
                activity,
                rule_id=award.bonus_rule_id,
                prize_id=award.bonus_prize_id,
                task=done.task,
                achieved_at=existing.achieved_at,
                user_id=inviter,
                app_id=None,
                period="bonus",
                referral_role=ReferralRole.inviter,
            )
        return
    if rule.get("prize_id"):
        await write_grant(
            ev,
            activity,
            rule_id=rule["id"],
            prize_id=str(rule["prize_id"]),
            task=done.task,
            achieved_at=existing.achieved_at,
            user_id=inviter,
            app_id=None,
            counterpart_id=invitee,
            referral_role=ReferralRole.inviter,
        )


# --------------------------------------------------------------------------- at an event


def _deposit_node_message(event: Event) -> tuple[str, str, dict[str, Any], str]:
    fact = NodeCompleted(
        tenant_id=event.tenant_id,
        user_id=event.user_id,
        node=Node.deposit,
        completed_at=event.occurred_at,
        event_id=event.event_id,
    )
    return (
        "referral",
        jobs.REFERRAL_NODE_COMPLETED,
        fact.model_dump(mode="json"),
        f"node:deposit:{event.tenant_id}:{event.user_id}:{event.event_id}",
    )


def _delivery_cache(session: AsyncSession) -> dict[Any, Any]:
    """What one delivery of messages reads once for all its messages (the session lives
    exactly as long as the delivery): its events, each tenant's context and published
    activities. A campaign published meanwhile is seen by the next delivery."""
    return session.info.setdefault("evaluation_cache", {})  # type: ignore[no-any-return]


async def prefetch_events(session: AsyncSession, keys: list[tuple[str, str]]) -> None:
    """Read what a delivery's events need, one query per tenant and kind instead of one per
    event: the events, the histories of the users whose events some running campaign may
    use (``load_facts``), and whether each deposit is its user's first (the deposit node).
    Nothing a delivery's evaluation writes changes them: it writes no events."""
    cache = _delivery_cache(session)
    by_tenant: dict[str, list[str]] = {}
    for tenant_id, event_id in keys:
        by_tenant.setdefault(tenant_id, []).append(event_id)
    repo = EventRepository.from_session(session)
    for tenant_id, event_ids in by_tenant.items():
        found = await repo.get_many(tenant_id, event_ids)
        for event_id in event_ids:
            cache[("event", tenant_id, event_id)] = found.get(event_id)
        events = list(found.values())
        deposits = [e for e in events if e.type in DEPOSIT_NODE_TYPES]
        earlier = await repo.with_earlier(tenant_id, deposits, DEPOSIT_NODE_TYPES)
        for event in deposits:
            cache[("earlier_deposit", tenant_id, event.event_id)] = event.event_id in earlier
        catalog = await _catalog(session, tenant_id)
        users = sorted({e.user_id for e in events if _activities_at(catalog, e)})
        histories = await repo.of_users(tenant_id, users, FACT_TYPES)
        for user_id in users:
            cache[("history", tenant_id, user_id)] = histories.get(user_id, [])


async def _event(session: AsyncSession, tenant_id: str, event_id: str) -> Event | None:
    cache = _delivery_cache(session)
    key = ("event", tenant_id, event_id)
    if key not in cache:
        cache[key] = await EventRepository.from_session(session).get(tenant_id, event_id)
    return cache[key]  # type: ignore[no-any-return]


async def _has_earlier_deposit(session: AsyncSession, event: Event) -> bool:
    known = _delivery_cache(session).get(("earlier_deposit", event.tenant_id, event.event_id))
    if known is not None:
        return bool(known)
    return await EventRepository.from_session(session).has_earlier(event, DEPOSIT_NODE_TYPES)


def _activities_at(catalog: Catalog, event: Event) -> list[Activity]:
    """The running campaigns an event may count for. A task completes at or after its event,
    except download (a login before registering counts when the user registers): windows
    that ended well before cannot be earned."""
    since = event.occurred_at - LOOKBACK
    return [a for a in catalog.triggered_by(event.type) if a.ends_at is None or a.ends_at > since]


async def _catalog(session: AsyncSession, tenant_id: str) -> Catalog:
    cache = _delivery_cache(session)
    key = ("catalog", tenant_id)
    if key not in cache:
        cache[key] = await CATALOGS.get(session, tenant_id)
    return cache[key]  # type: ignore[no-any-return]


async def _tenant(session: AsyncSession, tenant_id: str) -> TenantContext:
    cache = _delivery_cache(session)
    key = ("tenant", tenant_id)
    if key not in cache:
        cache[key] = await tenant_context(session, tenant_id)
    return cache[key]  # type: ignore[no-any-return]


def _uses_devices(activities: Sequence[Activity]) -> bool:
    """Whether any rule is a download task, the only one that needs the user's devices."""
    return any(
        rule.get("task") == TaskType.download.value
        for activity in activities
        for rule in (activity.config or {}).get("rules", [])
    )


DEPOSIT_NODE_TYPES = NODE_EVENT_TYPES[Node.deposit]


async def evaluate_event(
    session: AsyncSession,
    tenant_id: str,
    event_id: str,
    *,
    now: datetime,
    referral: ReferralLookup | None,
    defer_writes: bool = False,
) -> list[Grant]:
    """Grants earned by one stored event. Re-running it grants nothing new.

    An event no running campaign can use costs a cached lookup (plus, for a deposit, one
    indexed query whether it is the user's first): the user's history is read only when
    some rule may be completed by it. ``defer_writes``: see ``Evaluation``."""
    event = await _event(session, tenant_id, event_id)
    if event is None:
        return []
    if event.type == "app.login":
        # The device belongs to its earliest login among all received (not just evaluated)
        # ones, so a later login evaluated first cannot take a new device from its owner.
        device_id = str(event.payload["device_id"])
        first = await EventRepository.from_session(session).first_login_on_device(
            tenant_id, event.app_id, device_id
        )
        owner = first or event
        await DeviceRepository.from_session(session).claim(
            tenant_id,
            event.app_id,
            device_id,
            owner.user_id,
            owner.occurred_at,
            owner.event_id,
        )
    if event.type in DEPOSIT_NODE_TYPES and not await _has_earlier_deposit(session, event):
        # The deposit node completes with the user's first deposit or stock transfer in.
        queue, job, payload, job_id = _deposit_node_message(event)
        OutboxRepository.from_session(session, OutboxMessage).add(
            queue, job, payload, job_id=job_id
        )
    activities = _activities_at(await _catalog(session, tenant_id), event)
    if not activities:
        return []
    facts = await load_facts(
        session, tenant_id, event.user_id, with_device=_uses_devices(activities)
    )
    ev = Evaluation(
        session=session,
        tenant=await _tenant(session, tenant_id),
        now=now,
        referral=referral,
        source_event_id=event.event_id,
        event_at=event.occurred_at,
        defer_writes=defer_writes,
    )
    for activity in activities:
        if activity.kind == "basic":
            await evaluate_basic(ev, activity, facts, mode="event", event_type=event.type)
        else:
            await evaluate_referral(ev, activity, facts, mode="event", event_type=event.type)
    return ev.grants


async def evaluate_invitee(
    session: AsyncSession,
    tenant_id: str,
    invitee_id: str,
    *,
    now: datetime,
    referral: ReferralLookup | None,
    defer_writes: bool = False,
) -> list[Grant]:
    """After a binding of ``invitee_id`` changed: the real-time referral rules the invitee
    already completed are decided again (keys make it a no-op when nothing changed)."""
    activities = (await _catalog(session, tenant_id)).referral_real_time
    if not activities:
        return []
    facts = await load_facts(session, tenant_id, invitee_id, with_device=_uses_devices(activities))
    ev = Evaluation(
        session=session,
        tenant=await _tenant(session, tenant_id),
        now=now,
        referral=referral,
        defer_writes=defer_writes,
    )
    for activity in activities:
        await evaluate_referral(ev, activity, facts, mode="binding")
    return ev.grants


# --------------------------------------------------------------------------- daily run


def __getattr__(name: str) -> Any:
    """``run_daily`` and ``DailyRunResult`` live in ``daily_run`` (set-based), which builds
    on this module; they are still importable from here."""
    if name in ("run_daily", "DailyRunResult"):  # imported lazily: daily_run imports this
        from activity_service.evaluation import daily_run

        return getattr(daily_run, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


# --------------------------------------------------------------------------- ledger


async def follow_record_status(session: AsyncSession, change: RecordStatusChanged) -> None:
    """The grant follows its record; a Cancelled record gives back what its grant held."""
    repo = GrantRepository.from_session(session)
    await repo.set_record_status(
        change.tenant_id,
        change.grant_key,
        change.to_status,
        change.record_number,
        change.record_version,
    )
    if change.to_status == "cancelled":
        await give_back(session, change.tenant_id, change.grant_key, change.at)


async def follow_record_statuses(
    session: AsyncSession, changes: Sequence[RecordStatusChanged]
) -> None:
    """``follow_record_status`` of a delivery's messages: the grants follow their records
    in one statement (per grant, the newest record version among the messages wins, as
    one after the other would), then each Cancelled record gives back what its grant
    held."""
    latest: dict[tuple[str, str], RecordStatusChanged] = {}
    for change in changes:
        key = (change.tenant_id, change.grant_key)
        kept = latest.get(key)
        if (
            kept is None
            or change.record_version is None
            or kept.record_version is None
            or change.record_version > kept.record_version
        ):
            latest[key] = change
    await GrantRepository.from_session(session).set_record_statuses(
        [
            (c.tenant_id, c.grant_key, c.to_status, c.record_number, c.record_version)
            for c in latest.values()
        ]
    )
    for change in changes:
        if change.to_status == "cancelled":
            await give_back(session, change.tenant_id, change.grant_key, change.at)


async def give_back(session: AsyncSession, tenant_id: str, grant_key: str, at: datetime) -> None:
    """A cancelled reward was never received (SPEC §6 "Budgets"): its grant gives back what
    it held, once — the slot of its prize's per-user cap, the one of its prize's total
    quantity, its cost to the budget. The grant itself stays, so the same decision is never
    made twice; what it frees is there for other grants. A cancelled new-user reward no
    longer makes its user "old" (``has_new_user_reward``)."""
    repo = GrantRepository.from_session(session)
    grant = await repo.take_back_cancelled(tenant_id, grant_key, at)
    if grant is None:
        return
    if grant.cap_slot:
        await repo.release_cap_slot(tenant_id, grant.activity_id, grant.user_id, grant.prize_id)
    if grant.total_slot:
        await repo.release_total_slot(tenant_id, grant.activity_id, grant.prize_id)
    if grant.budget_cost:
        await repo.release_budget(tenant_id, grant.activity_id, grant.budget_cost)
