"""Reward records: creation from grants, the state machine's moves, and issuance."""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from contracts import jobs
from contracts.payloads import Grant, IssuanceForm, RecordStatusChanged
from reward_service.db import OutboxMessage
from reward_service.prizes.models import Prize
from reward_service.prizes.repository import PrizeRepository
from reward_service.profiles.repository import ProfileRepository
from reward_service.records.fulfilment import FulfilmentFailed
from reward_service.records.lockup import terms_at_arrival, terms_at_creation
from reward_service.records.models import RecordTransition, RewardRecord
from reward_service.records.repository import RecordRepository
from reward_service.records.state import Action, InvalidTransition, RecordStatus, next_status
from reward_service.shipments.service import ship_physical_prize
from reward_service.wallet.service import (
    coupon_entry,
    insert_wallet_entries,
    put_coupon_in_wallet,
)
from service_kit.errors import NotFound
from service_kit.i18n import texts_of
from service_kit.outbox import OutboxRepository
from service_kit.outbox.bundles import bundled
from service_kit.telemetry import STATE_TRANSITIONS

__all__ = [
    "SYSTEM_ACTOR",
    "FulfilmentFailed",
    "create_from_grant",
    "create_from_grants",
    "get_record",
    "issue",
    "move",
    "operator_move",
]

SYSTEM_ACTOR = "system:reward"


def number_prefix(at: datetime) -> str:
    """A record number's part before its sequence value (``format_number``)."""
    return f"RR-{at:%Y%m%d}-"


def format_number(seq: int, at: datetime) -> str:
    """Human-friendly, unique and sortable: RR-20261123-00000042 (written by the records'
    insert, ``RecordRepository.insert_new``, which draws the sequence value)."""
    return f"{number_prefix(at)}{seq:08d}"


def _outbox(session: AsyncSession) -> OutboxRepository:
    return OutboxRepository.from_session(session, OutboxMessage)


def _record_transition(
    session: AsyncSession,
    record: RewardRecord,
    from_status: str | None,
    action: str,
    actor: str,
    at: datetime,
    reason: str | None = None,
    to_status: str | None = None,
    *,
    mirror: bool = True,
) -> None:
    """Record one move of ``record``; ``mirror``: tell the activity service its status
    (a caller recording several moves at once tells it once, after the last)."""
    to_status = to_status or record.status
    RecordRepository.from_session(session).add_transition(
        RecordTransition(**_transition(record, from_status, to_status, action, actor, at, reason))
    )
    if mirror:
        mirror_status(session, record, from_status, at)


def _transition(
    record: RewardRecord,
    from_status: str | None,
    to_status: str,
    action: str,
    actor: str,
    at: datetime,
    reason: str | None,
) -> dict[str, Any]:
    """The row of one move (counted as it is made)."""
    STATE_TRANSITIONS.labels(from_status or "none", to_status).inc()
    return {
        "record_id": record.id,
        "from_status": from_status,
        "to_status": to_status,
        "action": action,
        "actor": actor,
        "reason": reason,
        "at": at,
    }


@dataclass
class _CouponRows:
    """The rows the coupon records of one bulk move add (their transitions, wallet entries
    and, for records created Issued, status messages), written by one statement per table
    (``write``): added to the session one by one, the ORM's bookkeeping of a few thousand
    objects cost more than the writes. Written by the call that made them, before it
    returns, so they stand or fall with the savepoint around it."""

    transitions: list[dict[str, Any]] = field(default_factory=list)
    wallet: list[dict[str, Any]] = field(default_factory=list)
    statuses: list[dict[str, Any]] = field(default_factory=list)
    # Moves counted per (from, to) once written rather than one by one.
    moves: Counter[tuple[str, str]] = field(default_factory=Counter)

    async def write(self, session: AsyncSession) -> None:
        await RecordRepository.from_session(session).insert_transitions(self.transitions)
        await insert_wallet_entries(session, self.wallet)
        await _outbox(session).insert_many(
            "activity", jobs.ACTIVITY_RECORD_STATUS_CHANGED, bundled(self.statuses)
        )
        for (from_status, to_status), count in self.moves.items():
            STATE_TRANSITIONS.labels(from_status, to_status).inc(count)


def mirror_status(
    session: AsyncSession, record: RewardRecord, from_status: str | None, at: datetime
) -> None:
    """Tell activity_service the record's status, so its grant ledger follows (nothing lost:
    same transaction). Several moves of one record in one transaction (created, submitted,
    issued) send one message with the last status; the record's version lets the ledger
    ignore a message that arrives after a newer one."""
    pending: dict[uuid.UUID, Any] = session.info.setdefault("status_mirror", {})
    earlier = pending.get(record.id)
    if earlier is not None and earlier not in session:
        earlier = None  # rolled back with its savepoint
    change = RecordStatusChanged(
        tenant_id=record.tenant_id,
        grant_key=record.grant_key,
        record_id=str(record.id),
        record_number=record.number,
        from_status=earlier.payload.get("from_status") if earlier is not None else from_status,
        to_status=record.status,
        at=at,
        record_version=record.version,
    ).model_dump(mode="json")
    if earlier is not None:
        _outbox(session).restate(earlier, change)
        return
    pending[record.id] = _outbox(session).add(
        "activity", jobs.ACTIVITY_RECORD_STATUS_CHANGED, change
    )


def queue_issuance(session: AsyncSession, record: RewardRecord, attempt: str | None = None) -> None:
    """Queue ``reward.issue`` for a record in Issuing (through the outbox: never lost).

    job id = record id + version: a resubmission after failure is a new job, while a
    redelivery of the same attempt is dropped by arq and is a no-op anyway. The reconciler
    passes ``attempt`` so its re-drive is not swallowed by a finished job's kept result.
    """
    job_id = f"reward.issue:{record.id}:{record.version}"
    if attempt:
        job_id += f":{attempt}"
    _outbox(session).add(
        "reward",
        jobs.REWARD_ISSUE,
        {"tenant_id": record.tenant_id, "record_id": str(record.id)},
        job_id=job_id,
    )


async def move(
    session: AsyncSession,
    record: RewardRecord,
    action: Action,
    *,
    actor: str,
    at: datetime,
    reason: str | None = None,
    extra: dict[str, Any] | None = None,
    queue: bool = True,
) -> RewardRecord:
    """Apply one state machine move by compare-and-set; raises InvalidTransition if the
    move is not allowed from the record's current status or another move won the race.
    A move to Issuing queues ``reward.issue`` unless the caller issues at once (``queue``)."""
    current = RecordStatus(record.status)
    target = next_status(action, current)
    values: dict[str, Any] = {"status": target.value, **(extra or {})}
    if target is RecordStatus.failed:
        values["failure_reason"] = reason
    elif target is RecordStatus.cancelled and reason:
        values["failure_reason"] = reason
    elif target is RecordStatus.issuing:
        # A resubmitted record starts a fresh attempt: the old reason no longer applies.
        values["failure_reason"] = None
        values["redriven_at"] = None
    repo = RecordRepository.from_session(session)
    moved = await repo.compare_and_set(record.id, current.value, values, at=at)
    if moved is None:
        fresh = await repo.get_by_id(record.id)
        now_status = fresh.status if fresh else "missing"
        raise InvalidTransition(
            f"The record changed concurrently (now {now_status}); {action.value} not applied.",
            current_status=now_status,
            action=action.value,
        )
    _record_transition(session, moved, current.value, action.value, actor, at, reason)
    if target is RecordStatus.issuing and queue:
        queue_issuance(session, moved)
    return moved


# The moves of an automatic coupon record, made at its creation.
_COUPON_AT_ONCE = (
    (None, RecordStatus.pending.value, "create"),
    (RecordStatus.pending.value, RecordStatus.issuing.value, Action.submit.value),
    (RecordStatus.issuing.value, RecordStatus.issued.value, Action.fulfil.value),
)


async def recorded_grants(
    session: AsyncSession, keys: list[tuple[str, str]]
) -> set[tuple[str, str]]:
    """Which (tenant, grant key) grants already have their record: creating it again would
    do nothing (the record is idempotent on the grant key)."""
    return await RecordRepository.from_session(session).recorded_grants(keys)


def _waits_for_lock(grant: Grant) -> bool:
    return grant.lock_up is not None and grant.lock_up.issue_after_lock


async def create_from_grant(
    session: AsyncSession, grant: Grant, now: datetime
) -> RewardRecord | None:
    """Insert the record of a grant (idempotent on the grant key); None if it existed.
    ``create_from_grants`` for one grant, the record read back as it now is."""
    created = (await create_from_grants(session, [(grant, now)])).get(grant.grant_key)
    if created is None:
        return None
    return await RecordRepository.from_session(session).get_by_id(created)


async def create_from_grants(
    session: AsyncSession, grants: Sequence[tuple[Grant, datetime]]
) -> dict[str, uuid.UUID]:
    """Insert the records of grants (each at its own time) in one statement, idempotent on
    the grant key; the new ones' ids by grant key (a grant that already had its record, or
    came twice, has one entry at most).

    Automatic records are submitted at once; records whose reward is issued only after a
    lock-up wait in Locked until the lock expires (SPEC §3.3); a reward issued at once
    starts its lock when it is Issued (``records.lockup``).
    """
    planned: dict[tuple[str, str], _NewRecord] = {}
    for grant, now in grants:
        key = (grant.tenant_id, grant.grant_key)
        if key not in planned:
            planned[key] = await _plan_record(session, grant, now)
    inserted = await RecordRepository.from_session(session).insert_new(
        [(plan.values, number_prefix(plan.now)) for plan in planned.values()]
    )
    created: dict[str, uuid.UUID] = {}
    coupons = _CouponRows()
    for plan in planned.values():
        new = inserted.get((plan.grant.tenant_id, plan.grant.grant_key))
        if new is not None:
            record_id, plan.values["number"] = new
            created[plan.grant.grant_key] = record_id
            await _after_creation(session, record_id, plan, coupons)
    await coupons.write(session)
    return created


@dataclass
class _NewRecord:
    """A grant's record as it will be inserted, and what its creation does next."""

    grant: Grant
    prize: Prize
    now: datetime
    values: dict[str, Any]
    coupon_at_once: bool


async def _plan_record(session: AsyncSession, grant: Grant, now: datetime) -> _NewRecord:
    try:
        prize_id = uuid.UUID(grant.prize_id)
    except ValueError as exc:
        raise NotFound(f"grant {grant.grant_key} names unknown prize {grant.prize_id}") from exc
    prize = await _prize_of(session, grant.tenant_id, prize_id)
    if prize is None:
        raise NotFound(f"grant {grant.grant_key} names unknown prize {grant.prize_id}")
    lock = grant.lock_up
    status = RecordStatus.locked if _waits_for_lock(grant) else RecordStatus.pending
    # A coupon issued automatically is created Issued in one insert: the record is new and
    # nobody sees it before this transaction commits, so the create → submit → fulfil moves
    # need no compare-and-set; they are recorded as transitions all the same.
    coupon_at_once = (
        status is RecordStatus.pending
        and grant.issuance_form is IssuanceForm.automatic
        and prize.type == "coupon"
    )
    if coupon_at_once:
        status = RecordStatus.issued
    values = {
        "tenant_id": grant.tenant_id,
        "grant_key": grant.grant_key,
        "activity_code": grant.activity_code,
        "activity_name": grant.activity_name,
        "activity_names": texts_of(grant.activity_names),
        "rule_id": grant.rule_id,
        "user_id": grant.user_id,
        "app_id": grant.app_id,
        "counterpart_id": grant.counterpart_id,
        "referral_role": grant.referral_role.value if grant.referral_role else None,
        "enterprise_name": grant.enterprise_name,
        "task": grant.task,
        "achieved_at": grant.achieved_at,
        "prize_id": prize.id,
        "prize_type": prize.type,
        "prize_name": prize.name,
        "prize_title": texts_of(prize.details.get("title")),
        "issuance_form": grant.issuance_form.value,
        "status": status.value,
        # Lock expiry = the reward's arrival + the lock period (SPEC §3.3): from now when
        # the record waits Locked, from its issue when it is issued at once.
        **terms_at_creation(lock, now),
        **(terms_at_arrival(lock.days, False, None, now) if coupon_at_once and lock else {}),
        "issued_at": now if coupon_at_once else None,
        "issued_to": grant.user_id if coupon_at_once else None,
        "version": len(_COUPON_AT_ONCE) if coupon_at_once else 1,
        "updated_at": now,
    }
    return _NewRecord(grant, prize, now, values, coupon_at_once)


async def _after_creation(
    session: AsyncSession, record_id: uuid.UUID, plan: _NewRecord, coupons: _CouponRows
) -> None:
    """The transitions, status message and first moves of a record just inserted (a
    coupon issued at once: its rows in ``coupons``)."""
    grant, prize, now = plan.grant, plan.prize, plan.now
    if plan.coupon_at_once:
        _issue_new_coupon(record_id, plan, coupons)
        return
    record = RewardRecord(id=record_id, **plan.values)
    _record_transition(session, record, None, "create", SYSTEM_ACTOR, now)
    if record.status == RecordStatus.pending.value and (
        grant.issuance_form is IssuanceForm.automatic
    ):
        # A physical item is fulfilled inside this database too (stock, shipment): issue it
        # in the same transaction (a queued hop would buy nothing). Cash calls another
        # system with no transaction open, so it goes through ``reward.issue``.
        at_once = prize.type == "physical"
        record = await move(
            session, record, Action.submit, actor=SYSTEM_ACTOR, at=now, queue=not at_once
        )
        if at_once:
            # The compare-and-set of the submit holds the row lock until commit.
            await _fulfil_and_mark(session, record, prize, now)


async def certified_enterprises(
    session: AsyncSession, tenant_id: str, records: Sequence[RewardRecord]
) -> dict[str, str]:
    """The enterprise each user of ``records`` is certified for (企业认证 in the winners
    list), from their latest ``enterprise.certified`` event, whatever task the record is
    for: the name, or the id when the event gave no name."""
    profiles = await ProfileRepository.from_session(session).of_users(
        tenant_id, [r.user_id for r in records]
    )
    return {
        user_id: profile.enterprise_name or profile.enterprise_id
        for user_id, profile in profiles.items()
        if profile.enterprise_id
    }


def enterprise_of(record: RewardRecord, enterprises: dict[str, str]) -> str | None:
    """The user's certified enterprise; else the one the record's own task named (records
    from before certifications reached this service)."""
    return enterprises.get(record.user_id) or record.enterprise_name


async def get_record(session: AsyncSession, tenant_id: str, record_id: uuid.UUID) -> RewardRecord:
    record = await RecordRepository.from_session(session).get(tenant_id, record_id)
    if record is None:
        raise NotFound(f"No reward record {record_id} in this tenant.", code="record_not_found")
    return record


OPERATOR_ACTIONS = frozenset({Action.submit, Action.cancel, Action.resubmit})


async def operator_move(
    session: AsyncSession,
    tenant_id: str,
    record_id: uuid.UUID,
    action: Action,
    *,
    actor: str,
    at: datetime,
    reason: str | None = None,
) -> RewardRecord:
    """An operator's submit / cancel / resubmit (a retry with the same Idempotency-Key is
    answered before this runs)."""
    if action not in OPERATOR_ACTIONS:
        raise InvalidTransition(f"Operators cannot {action.value} a record.", action=action.value)
    record = await get_record(session, tenant_id, record_id)
    return await move(session, record, action, actor=actor, at=at, reason=reason)


async def fulfil(session: AsyncSession, record: RewardRecord, prize: Prize, now: datetime) -> None:
    """The in-database fulfilment adapters (coupon, physical); each is idempotent per record.
    Cash goes through ``payouts.service.issue_cash`` because it calls another system."""
    if prize.type == "coupon":
        await put_coupon_in_wallet(session, record, prize, now)
        return
    if prize.type == "physical":
        await ship_physical_prize(session, record, prize, now)
        return
    raise FulfilmentFailed(f"no fulfilment adapter for prize type {prize.type}")


async def fail(
    session: AsyncSession, record: RewardRecord, reason: str, now: datetime
) -> RewardRecord | None:
    try:
        return await move(session, record, Action.fail, actor=SYSTEM_ACTOR, at=now, reason=reason)
    except InvalidTransition:
        return None


async def mark_issued(
    session: AsyncSession, record: RewardRecord, now: datetime, issued_to: str | None = None
) -> RewardRecord | None:
    """Issuing → Issued; None when another run of the same issuance got there first.
    ``issued_to`` is the account paid; by default the user's own (wallet, shipment)."""
    try:
        return await move(
            session,
            record,
            Action.fulfil,
            actor=SYSTEM_ACTOR,
            at=now,
            extra={
                "issued_at": now,
                "issued_to": issued_to or record.user_id,
                **terms_at_arrival(
                    record.lock_days, record.lock_issue_after, record.lock_started_at, now
                ),
            },
        )
    except InvalidTransition:
        return None


async def issue(session: AsyncSession, record_id: uuid.UUID, now: datetime) -> RewardRecord | None:
    """Issuing → Issued (or Failed) for coupons and physical items. Safe to run any number of
    times for one record: the record row is locked for the attempt, a record that is no longer
    Issuing is left alone, and the wallet entry / shipment is unique per record."""
    repo = RecordRepository.from_session(session)
    record = await repo.lock_in_status(record_id, RecordStatus.issuing.value)
    if record is None:
        return None
    if record.prize_type == "cash":
        raise RuntimeError("cash records are issued by payouts.service.issue_cash")
    prize = await PrizeRepository.from_session(session).get(record.tenant_id, record.prize_id)
    if prize is None:
        return await fail(session, record, "prize_missing", now)
    return await _fulfil_and_mark(session, record, prize, now)


async def _fulfil_and_mark(
    session: AsyncSession, record: RewardRecord, prize: Prize, now: datetime
) -> RewardRecord | None:
    try:
        await fulfil(session, record, prize, now)
    except FulfilmentFailed as failure:
        return await fail(session, record, failure.reason, now)
    return await mark_issued(session, record, now)


async def submit_released(session: AsyncSession, record: RewardRecord, now: datetime) -> None:
    """Submit an automatic record whose lock-up just released it. A coupon or physical item
    is fulfilled inside this database, so it is issued in the same transaction, as at a
    record's creation (a queued hop would buy nothing); cash goes through ``reward.issue``."""
    at_once = record.prize_type in ("coupon", "physical")
    submitted = await move(
        session, record, Action.submit, actor=SYSTEM_ACTOR, at=now, queue=not at_once
    )
    if not at_once:
        return
    # The compare-and-set of the submit holds the row lock until commit.
    prize = await _prize_of(session, submitted.tenant_id, submitted.prize_id)
    if prize is None:
        await fail(session, submitted, "prize_missing", now)
        return
    await _fulfil_and_mark(session, submitted, prize, now)


# The moves of an automatic coupon released by its lock-up, made in one compare-and-set.
_RELEASED_COUPON = (
    (RecordStatus.locked.value, RecordStatus.pending.value, Action.release_lock.value),
    (RecordStatus.pending.value, RecordStatus.issuing.value, Action.submit.value),
    (RecordStatus.issuing.value, RecordStatus.issued.value, Action.fulfil.value),
)
LOCK_HELD_REASON = "lock-up condition held"


async def issue_released_coupons(
    session: AsyncSession, records: Sequence[RewardRecord], verdict: dict[str, Any], now: datetime
) -> list[RewardRecord]:
    """Locked → Issued for automatic coupon records whose lock-up held, all in one
    compare-and-set: released, submitted and put in the wallet as ``submit_released`` would
    one by one (a coupon is fulfilled inside this database), the three moves recorded as
    transitions. Returns those moved; a record whose prize is gone, or that moved
    meanwhile, is not (the caller takes the first one by one)."""
    prizes = {r.id: await _prize_of(session, r.tenant_id, r.prize_id) for r in records}
    moved = await RecordRepository.from_session(session).move_locked(
        [record_id for record_id, prize in prizes.items() if prize is not None],
        {
            **verdict,
            "status": RecordStatus.issued.value,
            "failure_reason": None,
            "redriven_at": None,
            "issued_at": now,
            "issued_to": RewardRecord.user_id,
        },
        now,
        moves=len(_RELEASED_COUPON),
    )
    coupons = _CouponRows()
    for record in moved:
        prize = prizes[record.id]
        assert prize is not None
        # Locked until this compare-and-set, so it has no wallet entry yet.
        _issue_coupon_in_moves(
            session, record, prize, _RELEASED_COUPON, now, coupons, reason=LOCK_HELD_REASON
        )
    await coupons.write(session)
    return moved


def _issue_coupon_in_moves(
    session: AsyncSession,
    record: RewardRecord,
    prize: Prize,
    moves: tuple[tuple[str | None, str, str], ...],
    now: datetime,
    rows: _CouponRows,
    reason: str | None = None,
) -> None:
    """A coupon record's ``moves`` made by one write (its creation, or its lock's
    release): a transition each (``reason`` on the first) and the coupon's wallet entry
    (the record had none) in ``rows``, the activity service told the last status once."""
    _coupon_moves(record.id, moves, now, rows, reason)
    mirror_status(session, record, moves[0][0], now)
    rows.wallet.append(coupon_entry(record.tenant_id, record.user_id, record.id, prize, now))


def _issue_new_coupon(record_id: uuid.UUID, plan: _NewRecord, rows: _CouponRows) -> None:
    """``_issue_coupon_in_moves`` of a coupon record created Issued, from the values it was
    inserted with. Its status message goes in ``rows`` too: the record is new in this
    transaction and Issued is final, so no other message about it can follow in it."""
    values, now = plan.values, plan.now
    _coupon_moves(record_id, _COUPON_AT_ONCE, now, rows)
    rows.statuses.append(
        RecordStatusChanged(
            tenant_id=values["tenant_id"],
            grant_key=values["grant_key"],
            record_id=str(record_id),
            record_number=values["number"],
            from_status=_COUPON_AT_ONCE[0][0],
            to_status=values["status"],
            at=now,
            record_version=values["version"],
        ).model_dump(mode="json")
    )
    rows.wallet.append(
        coupon_entry(values["tenant_id"], values["user_id"], record_id, plan.prize, now)
    )


def _coupon_moves(
    record_id: uuid.UUID,
    moves: tuple[tuple[str | None, str, str], ...],
    now: datetime,
    rows: _CouponRows,
    reason: str | None = None,
) -> None:
    """The transitions of a coupon record's ``moves`` (``reason`` on the first), in order."""
    for index, (from_status, to_status, action) in enumerate(moves):
        rows.transitions.append(
            {
                "record_id": record_id,
                "from_status": from_status,
                "to_status": to_status,
                "action": action,
                "actor": SYSTEM_ACTOR,
                "reason": reason if index == 0 else None,
                "at": now,
            }
        )
        rows.moves[(from_status or "none", to_status)] += 1


async def cancel_broken_locks(
    session: AsyncSession, reasons: dict[uuid.UUID, str], verdict: dict[str, Any], now: datetime
) -> list[RewardRecord]:
    """Locked → Cancelled for records whose lock-up broke, in one compare-and-set, each with
    its reason (on the record and its transition). Returns those moved."""
    moved = await RecordRepository.from_session(session).move_locked(
        reasons,
        {**verdict, "status": RecordStatus.cancelled.value},
        now,
        per_record={"failure_reason": reasons, "lock_detail": reasons},
    )
    for record in moved:
        _record_transition(
            session,
            record,
            RecordStatus.locked.value,
            Action.break_lock.value,
            SYSTEM_ACTOR,
            now,
            reasons[record.id],
        )
    return moved


async def _prize_of(session: AsyncSession, tenant_id: str, prize_id: uuid.UUID) -> Prize | None:
    """A prize read once per unit of work (a delivery of grants names the same few)."""
    cache: dict[tuple[str, uuid.UUID], Prize | None] = session.info.setdefault("prizes", {})
    key = (tenant_id, prize_id)
    if key not in cache:
        cache[key] = await PrizeRepository.from_session(session).get(tenant_id, prize_id)
    return cache[key]
