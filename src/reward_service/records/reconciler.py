"""Nothing stuck (ARCHITECTURE "Reliability rules"): the periodic pass that re-drives records
a crash or a lost job left behind, and that settles lock-ups at expiry (SPEC §3.3).

Postgres is the source of truth: every question here is asked of the records table, so a
lost Redis queue or a worker killed mid-job is repaired from the rows alone.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from pydantic import ValidationError
from sqlalchemy.ext.asyncio import AsyncSession

from contracts.payloads import LockCheckAnswer, LockCheckAnswers
from reward_service.config import RewardSettings
from reward_service.records.lockup import BROKEN, HELD
from reward_service.records.models import RewardRecord
from reward_service.records.repository import RecordRepository, TenantScope
from reward_service.records.service import (
    SYSTEM_ACTOR,
    cancel_broken_locks,
    issue_released_coupons,
    move,
    queue_issuance,
    submit_released,
)
from reward_service.records.state import Action, InvalidTransition, RecordStatus
from service_kit.db import Database
from service_kit.errors import UpstreamUnavailable
from service_kit.http import ServiceClient

log = logging.getLogger(__name__)

# The longest a record stuck in Issuing waits between two re-drives.
MAX_REDRIVE_GAP = timedelta(minutes=10)
# Lock-ups asked about in one call (one tenant's), and calls in flight at once.
LOCK_CHECKS_PER_CALL = 200
LOCK_CHECKS_IN_FLIGHT = 4


@dataclass
class ReconcileReport:
    redriven: int = 0
    submitted: int = 0
    released: int = 0
    broken: int = 0
    lock_checks_deferred: int = 0
    # Lock-ups found due in this pass (at most the batch size: more wait for the next).
    locks_due: int = 0


async def redrive_stuck(
    db: Database, settings: RewardSettings, now: datetime, tenants: TenantScope = (None, ())
) -> tuple[int, int]:
    """Re-queue issuance of records in Issuing past the deadline (their job died or was
    lost) and submit automatic records whose submit never happened. Issuance is idempotent
    per record, so re-driving one that is merely slow is harmless."""
    older_than = now - timedelta(seconds=settings.issuing_deadline_seconds)
    stamp = f"redrive:{int(now.timestamp())}"
    async with db.session() as session:
        repo = RecordRepository.from_session(session)
        stuck = await repo.claim_stuck_issuing(
            now, older_than, settings.reconcile_batch_size, MAX_REDRIVE_GAP, tenants
        )
        for record in stuck:
            await repo.touch(record.id, {"redriven_at": now})
            queue_issuance(session, record, attempt=stamp)
        unsubmitted = await repo.claim_unsubmitted_automatic(
            older_than, settings.reconcile_batch_size, tenants
        )
        submitted = 0
        for record in unsubmitted:
            try:
                await move(
                    session,
                    record,
                    Action.submit,
                    actor=SYSTEM_ACTOR,
                    at=now,
                    reason="reconciler: automatic record was not submitted",
                )
                submitted += 1
            except InvalidTransition:
                continue
    if stuck or submitted:
        log.info("reconciler re-drove %d issuing and submitted %d pending", len(stuck), submitted)
    return len(stuck), submitted


async def ask_lock_checks(
    http: ServiceClient, settings: RewardSettings, tenant_id: str, records: list[RewardRecord]
) -> list[LockCheckAnswer] | None:
    """activity_service's verdicts on lock-ups of one tenant (one round trip for them all),
    in the records' order; None when it cannot answer now."""
    checks = []
    for record in records:
        assert record.lock_amount is not None and record.lock_expires_at is not None
        started = record.lock_started_at or record.lock_expires_at - timedelta(
            days=record.lock_days or 0
        )
        checks.append(
            {
                "user_id": record.user_id,
                "currency": record.lock_currency,
                "amount": format(Decimal(record.lock_amount), "f"),
                "from": started.isoformat(),
                "until": record.lock_expires_at.isoformat(),
            }
        )
    try:
        response = await http.ask(
            settings.activity_url,
            "/v1/positions/lock-checks",
            tenant_id=tenant_id,
            json={"checks": checks},
        )
    except UpstreamUnavailable:
        return None
    if response.status_code != 200:
        log.warning("lock-checks of %d lock-ups answered %s", len(records), response.status_code)
        return None
    try:
        answers = LockCheckAnswers.model_validate(response.json()).answers
    except (ValueError, ValidationError):
        log.warning("lock-checks answer is not a LockCheckAnswers")
        return None
    if len(answers) != len(records):
        log.warning("lock-checks answered %d of %d lock-ups", len(answers), len(records))
        return None
    return answers


def break_reason(record: RewardRecord, answer: LockCheckAnswer) -> str:
    if answer.reason:
        return f"lock_broken: {answer.reason}"[:500]
    low = f"; lowest position {answer.min_position}" if answer.min_position is not None else ""
    return (
        f"lock_broken: {record.lock_amount} {record.lock_currency} not kept for "
        f"{record.lock_days} days{low}"
    )[:500]


async def settle_lock(
    session: AsyncSession, record: RewardRecord, answer: LockCheckAnswer, now: datetime
) -> str | None:
    """The lock-up verdict at expiry (SPEC §3.3), for both ways of issuing, in the caller's
    unit of work:

    - issued only after the lock-up (the record is Locked): Pending (→ Issuing when
      automatic, → Issued at once for a coupon or physical item) if the condition held,
      else Cancelled with the reason;
    - issued at once (the record is Issued): the reward has reached the user and stays
      Issued; the verdict is kept on the record (``lock_result``), and a broken lock is
      flagged for the operator (``lock_result`` "broken" with ``lock_detail``), who decides
      what to do — cash cannot be taken back, and the prize may have been used.

    ``record`` may be stale: every write is a compare-and-set on what it read. Returns
    "released" / "broken" / "held", or None when the record had already moved or was
    settled by another pass."""
    detail = None if answer.held else break_reason(record, answer)
    verdict: dict[str, Any] = {
        "lock_result": HELD if answer.held else BROKEN,
        "lock_settled_at": now,
        "lock_detail": detail,
    }
    repo = RecordRepository.from_session(session)
    if record.lock_result is not None:
        return None
    if record.status == RecordStatus.issued.value:
        settled = await repo.settle_issued_lock(record.id, verdict)
        if not settled:
            return None
        return "held" if answer.held else "broken"
    if record.status != RecordStatus.locked.value:
        return None
    try:
        if not answer.held:
            await move(
                session,
                record,
                Action.break_lock,
                actor=SYSTEM_ACTOR,
                at=now,
                reason=detail,
                extra=verdict,
            )
            return "broken"
        released = await move(
            session,
            record,
            Action.release_lock,
            actor=SYSTEM_ACTOR,
            at=now,
            reason="lock-up condition held",
            extra=verdict,
        )
        if released.issuance_form == "automatic":
            await submit_released(session, released, now)
        return "released"
    except InvalidTransition:
        return None


async def settle_locks(
    session: AsyncSession, checked: list[tuple[RewardRecord, LockCheckAnswer]], now: datetime
) -> list[str | None]:
    """``settle_lock`` of many records, their outcomes in the same order, the common moves
    made together: the verdicts kept on issued rewards, the broken lock-ups of Locked
    records cancelled, the held ones of automatic coupons issued, each a compare-and-set of
    them all (the rest one by one)."""
    outcomes: dict[uuid.UUID, str | None] = {}
    issued: dict[uuid.UUID, tuple[str, str | None]] = {}
    broken: dict[uuid.UUID, str] = {}
    coupons: list[RewardRecord] = []
    alone: list[tuple[RewardRecord, LockCheckAnswer]] = []
    for record, answer in checked:
        if record.lock_result is not None:
            continue
        if record.status == RecordStatus.issued.value:
            detail = None if answer.held else break_reason(record, answer)
            issued[record.id] = (HELD if answer.held else BROKEN, detail)
        elif record.status != RecordStatus.locked.value:
            continue
        elif not answer.held:
            broken[record.id] = break_reason(record, answer)
        elif record.issuance_form == "automatic" and record.prize_type == "coupon":
            coupons.append(record)
        else:
            alone.append((record, answer))
    repo = RecordRepository.from_session(session)
    for record_id in await repo.settle_issued_locks(issued, now):
        outcomes[record_id] = "held" if issued[record_id][0] == HELD else "broken"
    verdict = {"lock_settled_at": now}
    for record in await cancel_broken_locks(
        session, broken, {**verdict, "lock_result": BROKEN}, now
    ):
        outcomes[record.id] = "broken"
    released = await issue_released_coupons(
        session, coupons, {**verdict, "lock_result": HELD, "lock_detail": None}, now
    )
    for record in released:
        outcomes[record.id] = "released"
    # A coupon not moved had its prize gone, or moved meanwhile: ``settle_lock`` tells which.
    left = {record.id for record in coupons} - {record.id for record in released}
    alone.extend((r, a) for r, a in checked if r.id in left)
    for record, answer in alone:
        outcomes[record.id] = await settle_lock(session, record, answer, now)
    return [outcomes.get(record.id) for record, _ in checked]


async def settle_due_locks(
    db: Database,
    http: ServiceClient,
    settings: RewardSettings,
    now: datetime,
    tenants: TenantScope = (None, ()),
) -> tuple[int, int, int, int]:
    """Settle every lock-up that has expired by ``now`` (``settle_lock``): records waiting
    Locked and rewards issued at once alike. The HTTP question is asked outside any
    transaction; an unanswered question leaves the record as it is and is asked again later.
    Returns (released, broken, deferred, due); a broken lock of an issued reward counts as
    broken, a held one is not counted (nothing moved). At most the batch size is settled
    per pass (``due`` tells whether more may be waiting)."""
    checked_before = now - timedelta(seconds=settings.lock_recheck_seconds)
    async with db.session() as session:
        due = await RecordRepository.from_session(session).due_locks(
            now, checked_before, settings.reconcile_batch_size, tenants
        )
    released = broken = deferred = 0
    by_tenant: dict[str, list[RewardRecord]] = {}
    for record in due:
        by_tenant.setdefault(record.tenant_id, []).append(record)
    chunks = [
        records[start : start + LOCK_CHECKS_PER_CALL]
        for records in by_tenant.values()
        for start in range(0, len(records), LOCK_CHECKS_PER_CALL)
    ]
    # A few questions in flight at once: a pass over many expiring locks fits its timeout.
    gate = asyncio.Semaphore(LOCK_CHECKS_IN_FLIGHT)

    async def settle(records: list[RewardRecord]) -> list[str | None]:
        async with gate:
            answers = await ask_lock_checks(http, settings, records[0].tenant_id, records)
            async with db.session() as session:
                repo = RecordRepository.from_session(session)
                if answers is None:
                    await repo.touch_many([r.id for r in records], {"lock_checked_at": now})
                    return ["deferred"] * len(records)
                # The chunk's verdicts in one unit of work, its new rows (transitions,
                # status messages, wallet entries) written together at commit.
                with session.no_autoflush:
                    return await settle_locks(
                        session, list(zip(records, answers, strict=True)), now
                    )

    for outcomes in await asyncio.gather(*(settle(chunk) for chunk in chunks)):
        for outcome in outcomes:
            if outcome == "released":
                released += 1
            elif outcome == "broken":
                broken += 1
            elif outcome == "deferred":
                deferred += 1
    return released, broken, deferred, len(due)


async def reconcile_once(
    db: Database,
    http: ServiceClient,
    settings: RewardSettings,
    now: datetime,
    tenants: TenantScope = (None, ()),
) -> ReconcileReport:
    """One pass at ``now``: over every tenant but ``tenants``' skipped ones (the cron, on
    the system clock), or over one sandbox tenant at its own time (its clock's advance)."""
    report = ReconcileReport()
    report.redriven, report.submitted = await redrive_stuck(db, settings, now, tenants)
    (
        report.released,
        report.broken,
        report.lock_checks_deferred,
        report.locks_due,
    ) = await settle_due_locks(db, http, settings, now, tenants)
    return report
