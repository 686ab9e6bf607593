"""Reward records: creation from grants, the state machine's moves, and issuance."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from contracts import jobs
from contracts.payloads import Grant, IssuanceForm, RecordStatusChanged
from reward_service.db import OutboxMessage
from reward_service.prizes.models import Prize
from reward_service.prizes.repository import PrizeRepository
from reward_service.records.models import RecordTransition, RewardRecord
from reward_service.records.repository import RecordRepository
from reward_service.records.state import Action, InvalidTransition, RecordStatus, next_status
from reward_service.wallet.service import put_coupon_in_wallet
from service_kit.errors import NotFound
from service_kit.outbox import OutboxRepository
from service_kit.telemetry import STATE_TRANSITIONS

SYSTEM_ACTOR = "system:reward"


def format_number(seq: int, at: datetime) -> str:
    """Human-friendly, unique and sortable: RR-20261123-00000042."""
    return f"RR-{at:%Y%m%d}-{seq:08d}"


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
) -> None:
    RecordRepository.from_session(session).add_transition(
        RecordTransition(
            record_id=record.id,
            from_status=from_status,
            to_status=record.status,
            action=action,
            actor=actor,
            reason=reason,
            at=at,
        )
    )
    STATE_TRANSITIONS.labels(from_status or "none", record.status).inc()
    # Status back to activity_service, so its grant ledger follows (nothing lost: same tx).
    _outbox(session).add(
        "activity",
        jobs.ACTIVITY_RECORD_STATUS_CHANGED,
        RecordStatusChanged(
            tenant_id=record.tenant_id,
            grant_key=record.grant_key,
            record_id=str(record.id),
            record_number=record.number,
            from_status=from_status,
            to_status=record.status,
            at=at,
        ).model_dump(mode="json"),
    )


def _queue_issuance(session: AsyncSession, record: RewardRecord) -> None:
    # job id = record id + version: a resubmission after failure is a new job, while a
    # redelivery of the same attempt is dropped by arq and is a no-op anyway.
    _outbox(session).add(
        "reward",
        jobs.REWARD_ISSUE,
        {"tenant_id": record.tenant_id, "record_id": str(record.id)},
        job_id=f"reward.issue:{record.id}:{record.version}",
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
) -> RewardRecord:
    """Apply one state machine move by compare-and-set; raises InvalidTransition if the
    move is not allowed from the record's current status or another move won the race."""
    current = RecordStatus(record.status)
    target = next_status(action, current)
    values: dict[str, Any] = {"status": target.value, **(extra or {})}
    if target is RecordStatus.failed:
        values["failure_reason"] = reason
    moved = await RecordRepository.from_session(session).compare_and_set(
        record.id, current.value, values
    )
    if moved is None:
        fresh = await RecordRepository.from_session(session).get_by_id(record.id)
        now_status = fresh.status if fresh else "missing"
        raise InvalidTransition(
            f"The record changed concurrently (now {now_status}); {action.value} not applied.",
            current_status=now_status,
            action=action.value,
        )
    _record_transition(session, moved, current.value, action.value, actor, at, reason)
    if target is RecordStatus.issuing:
        _queue_issuance(session, moved)
    return moved


async def create_from_grant(
    session: AsyncSession, grant: Grant, now: datetime
) -> RewardRecord | None:
    """Insert the record of a grant (idempotent on the grant key); None if it existed.

    Automatic records are submitted at once; with lock-up terms they wait in Locked.
    """
    prize = await PrizeRepository.from_session(session).get(
        grant.tenant_id, uuid.UUID(grant.prize_id)
    )
    if prize is None:
        raise NotFound(f"grant {grant.grant_key} names unknown prize {grant.prize_id}")
    repo = RecordRepository.from_session(session)
    lock = grant.lock_up
    status = RecordStatus.locked if lock is not None else RecordStatus.pending
    record = await repo.insert_if_new(
        {
            "id": uuid.uuid4(),
            "number": format_number(await repo.next_number_seq(), now),
            "tenant_id": grant.tenant_id,
            "grant_key": grant.grant_key,
            "activity_code": grant.activity_code,
            "rule_id": grant.rule_id,
            "user_id": grant.user_id,
            "app_id": grant.app_id,
            "counterpart_id": grant.counterpart_id,
            "enterprise_name": grant.enterprise_name,
            "task": grant.task,
            "achieved_at": grant.achieved_at,
            "prize_id": prize.id,
            "prize_type": prize.type,
            "issuance_form": grant.issuance_form.value,
            "status": status.value,
            "lock_amount": lock.amount if lock else None,
            "lock_currency": lock.currency if lock else None,
            "lock_days": lock.days if lock else None,
            "lock_expires_at": now + timedelta(days=lock.days) if lock else None,
            "version": 1,
        }
    )
    if record is None:
        return None
    _record_transition(session, record, None, "create", SYSTEM_ACTOR, now)
    if status is RecordStatus.pending and grant.issuance_form is IssuanceForm.automatic:
        record = await move(session, record, Action.submit, actor=SYSTEM_ACTOR, at=now)
    return record


async def get_record(session: AsyncSession, tenant_id: str, record_id: uuid.UUID) -> RewardRecord:
    record = await RecordRepository.from_session(session).get(tenant_id, record_id)
    if record is None:
        raise NotFound(f"No reward record {record_id} in this tenant.", code="record_not_found")
    return record


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
    record = await get_record(session, tenant_id, record_id)
    return await move(session, record, action, actor=actor, at=at, reason=reason)


class FulfilmentFailed(Exception):
    """A definite refusal: the record goes to Failed with this reason."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


async def fulfil(session: AsyncSession, record: RewardRecord, prize: Prize, now: datetime) -> None:
    """The fulfilment adapter for the record's prize type; each is idempotent per record."""
    if prize.type == "coupon":
        await put_coupon_in_wallet(session, record, prize, now)
        return
    raise FulfilmentFailed(f"no fulfilment adapter for prize type {prize.type}")


async def issue(session: AsyncSession, record_id: uuid.UUID, now: datetime) -> RewardRecord | None:
    """Issuing → Issued (or Failed). Safe to run any number of times for one record: a
    record that is no longer Issuing is left alone, and adapters are unique per record."""
    repo = RecordRepository.from_session(session)
    record = await repo.get_by_id(record_id)
    if record is None or record.status != RecordStatus.issuing.value:
        return None
    prize = await PrizeRepository.from_session(session).get(record.tenant_id, record.prize_id)
    if prize is None:
        return await move(
            session, record, Action.fail, actor=SYSTEM_ACTOR, at=now, reason="prize_missing"
        )
    try:
        await fulfil(session, record, prize, now)
    except FulfilmentFailed as failure:
        return await move(
            session, record, Action.fail, actor=SYSTEM_ACTOR, at=now, reason=failure.reason
        )
    try:
        return await move(
            session,
            record,
            Action.fulfil,
            actor=SYSTEM_ACTOR,
            at=now,
            extra={"issued_at": now, "issued_to": record.user_id},
        )
    except InvalidTransition:
        return None
