"""The reward center (SPEC §3.4): manual issuances, batch files, and their review.

An issuance becomes reward records through the same call as an activity's grants
(``records.service.create_from_grant``) with grant keys ``manual:<issuance>:<n>`` and task
``manual``, so winners list, stats, state machine and fulfilment adapters all apply and a
replay can never create a second record. A single issuance creates its records in the
request's transaction; a batch queues ``reward.create_from_grant`` through the outbox in
the transaction that accepts (or approves) it, so a 5,000-line file is not one long request.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import quote

from pydantic import BaseModel, ValidationError
from sqlalchemy.ext.asyncio import AsyncSession

from contracts import jobs
from contracts.payloads import Grant, IssuanceForm
from reward_service.center.models import IssuanceBatch, ManualIssuance
from reward_service.center.repository import CenterRepository
from reward_service.center.rules import (
    MANUAL_TASK,
    MAX_ACTIVITY_CODES,
    BatchLine,
    BatchStatus,
    FileProblem,
    IssuanceStatus,
    grant_key,
    grant_keys,
    may_review,
    normalize_code,
    parse_batch,
)
from reward_service.center.schemas import (
    BatchLineRead,
    BatchRead,
    IssuanceCreate,
    IssuanceRead,
    LineOutcome,
    RecordRef,
)
from reward_service.db import OutboxMessage
from reward_service.records import service as records
from service_kit.errors import Conflict, Forbidden, NotFound, Unprocessable, UpstreamUnavailable
from service_kit.http import ServiceClient
from service_kit.i18n import texts_of
from service_kit.outbox import OutboxRepository


@dataclass(frozen=True)
class ActivityInfo:
    """What the reward center needs of an activity, as activity_service answers it."""

    code: str
    name: str | None
    status: str
    review_required: bool
    issuance_form: IssuanceForm
    names: dict[str, str] | None = None


ActivityLookup = Callable[[str], Awaitable[ActivityInfo | None]]


class _ActivityAnswer(BaseModel):
    activity_code: str
    name: dict[str, Any] | None = None
    status: str
    review_required: bool
    issuance_form: IssuanceForm


def activity_lookup(http: ServiceClient, activity_url: str, tenant_id: str) -> ActivityLookup:
    """Ask activity_service for an activity by code (service token for the tenant, so another
    tenant's code is simply not found). None when it does not exist; 503 when unanswerable."""

    async def lookup(code: str) -> ActivityInfo | None:
        response = await http.get(
            activity_url, f"/v1/activities/by-code/{quote(code, safe='')}", tenant_id=tenant_id
        )
        if response.status_code in (404, 422):
            return None
        if response.status_code != 200:
            raise UpstreamUnavailable(
                f"The activity service answered {response.status_code} for {code}.",
                code="activity_service_unavailable",
            )
        try:
            answer = _ActivityAnswer.model_validate(response.json())
        except (ValueError, ValidationError) as exc:
            raise UpstreamUnavailable(
                "The activity service's answer could not be read.",
                code="activity_service_unavailable",
            ) from exc
        name = answer.name or {}
        return ActivityInfo(
            code=answer.activity_code,
            name=name.get("en") or name.get("zh-Hans") or name.get("zh-Hant"),
            names=texts_of(name),
            status=answer.status,
            review_required=answer.review_required,
            issuance_form=answer.issuance_form,
        )

    return lookup


def _outbox(session: AsyncSession) -> OutboxRepository:
    return OutboxRepository.from_session(session, OutboxMessage)


def _grant(issuance: ManualIssuance, n: int, now: datetime) -> Grant:
    return Grant(
        tenant_id=issuance.tenant_id,
        grant_key=grant_key(issuance.id, n),
        activity_code=issuance.activity_code,
        activity_name=issuance.activity_name,
        activity_names=issuance.activity_names,
        rule_id=MANUAL_TASK,
        user_id=issuance.user_id,
        app_id=issuance.app_id,
        counterpart_id=issuance.counterpart_id,
        task=MANUAL_TASK,
        achieved_at=now,
        prize_id=str(issuance.prize_id),
        issuance_form=IssuanceForm(issuance.issuance_form),
    )


async def _create_records(session: AsyncSession, issuance: ManualIssuance, now: datetime) -> None:
    """Records now, in this transaction (automatic ones are submitted for issuing at once)."""
    grants = [(_grant(issuance, n, now), now) for n in range(1, issuance.quantity + 1)]
    await records.create_from_grants(session, grants)


def _queue_records(session: AsyncSession, issuance: ManualIssuance, now: datetime) -> None:
    """Records by the reward worker, queued in this transaction: never lost, never doubled
    (the job id and the record's unique key are both the grant key)."""
    outbox = _outbox(session)
    for n in range(1, issuance.quantity + 1):
        grant = _grant(issuance, n, now)
        outbox.add(
            "reward",
            jobs.REWARD_CREATE_FROM_GRANT,
            grant.model_dump(mode="json"),
            job_id=grant.grant_key,
        )


def _usable(activity: ActivityInfo | None, code: str) -> ActivityInfo:
    if activity is None:
        raise Unprocessable(f"No activity {code} in this tenant.", code="activity_not_found")
    if activity.status == "closed":
        raise Unprocessable(
            f"Activity {code} is closed; rewards cannot be issued under it.",
            code="activity_closed",
        )
    return activity


# --------------------------------------------------------------------------- single issuance


async def create_issuance(
    session: AsyncSession,
    tenant_id: str,
    actor: str,
    body: IssuanceCreate,
    lookup: ActivityLookup,
    now: datetime,
) -> ManualIssuance:
    """One user, one prize (× quantity)."""
    repo = CenterRepository.from_session(session)
    body.activity_code = normalize_code(body.activity_code)
    body.user_id = body.user_id.strip()
    # Asked before the first query, so no database transaction is held open across the call.
    answer = await lookup(body.activity_code)
    prize = (await repo.prizes_by_ids(tenant_id, [body.prize_id])).get(body.prize_id)
    if prize is None:
        raise Unprocessable(f"No prize {body.prize_id} in this tenant.", code="prize_not_found")
    activity = _usable(answer, body.activity_code)
    status = IssuanceStatus.awaiting_review if activity.review_required else IssuanceStatus.approved
    issuance = await repo.insert_issuance(
        {
            "id": uuid.uuid4(),
            "tenant_id": tenant_id,
            "activity_code": activity.code,
            "activity_name": activity.name,
            "activity_names": activity.names,
            "review_required": activity.review_required,
            "issuance_form": activity.issuance_form.value,
            "user_id": body.user_id,
            "app_id": body.app_id,
            "counterpart_id": body.counterpart_id,
            "prize_id": prize.id,
            "prize_name": prize.name,
            "prize_type": prize.type,
            "quantity": body.quantity,
            "remarks": body.remarks,
            "status": status.value,
            "submitter": actor,
            "version": 1,
            "created_at": now,
            "updated_at": now,
        }
    )
    if status is IssuanceStatus.approved:
        await _create_records(session, issuance, now)
    return issuance


async def get_issuance(
    session: AsyncSession, tenant_id: str, issuance_id: uuid.UUID
) -> ManualIssuance:
    issuance = await CenterRepository.from_session(session).get_issuance(tenant_id, issuance_id)
    if issuance is None:
        raise NotFound(f"No issuance {issuance_id} in this tenant.", code="issuance_not_found")
    return issuance


def _check_reviewable(
    status: str, submitter: str, reviewer: str | None, actor: str, approve: bool, what: str
) -> bool:
    """True when this is a replay of the actor's own identical decision (answer, do nothing)."""
    decided = IssuanceStatus.approved if approve else IssuanceStatus.rejected
    if status == decided.value and reviewer == actor:
        return True
    if status != IssuanceStatus.awaiting_review.value:
        raise Conflict(
            f"The {what} is {status}, not awaiting review.", code=f"{what}_not_awaiting_review"
        )
    if approve and not may_review(submitter, actor):
        raise Forbidden(
            f"The {what} must be approved by another operator than its submitter.",
            code="self_approval",
        )
    return False


async def review_issuance(
    session: AsyncSession,
    tenant_id: str,
    issuance_id: uuid.UUID,
    *,
    actor: str,
    approve: bool,
    now: datetime,
    reason: str | None = None,
) -> ManualIssuance:
    """Approve (records are created in the same transaction) or reject a single issuance."""
    if not approve and not (reason and reason.strip()):
        raise Unprocessable("Give a reason to reject.", code="reason_required")
    issuance = await get_issuance(session, tenant_id, issuance_id)
    if issuance.batch_id is not None:
        raise Conflict(
            "This issuance is a line of a batch; approve or reject the batch.",
            code="review_the_batch",
            batch_id=str(issuance.batch_id),
        )
    if _check_reviewable(
        issuance.status, issuance.submitter, issuance.reviewer, actor, approve, "issuance"
    ):
        return issuance
    decided = IssuanceStatus.approved if approve else IssuanceStatus.rejected
    moved = await CenterRepository.from_session(session).review_issuance(
        issuance.id,
        IssuanceStatus.awaiting_review.value,
        {
            "status": decided.value,
            "reviewer": actor,
            "reviewed_at": now,
            "reject_reason": None if approve else reason,
        },
        now,
    )
    if moved is None:
        raise Conflict(
            "Another review of this issuance got there first.",
            code="issuance_not_awaiting_review",
        )
    if approve:
        await _create_records(session, moved, now)
    return moved


# --------------------------------------------------------------------------- batches


def _rejected_line(item: BatchLine) -> dict[str, Any]:
    return {
        "line": item.line,
        "user_id": item.user_id,
        "prize_id": item.prize_id_text,
        "activity_code": item.activity_code,
        "quantity": item.quantity,
        "code": item.code,
        "detail": item.detail,
    }


async def create_batch(
    session: AsyncSession,
    tenant_id: str,
    actor: str,
    data: bytes,
    *,
    activity_code: str | None,
    file_name: str | None,
    lookup: ActivityLookup,
    now: datetime,
) -> IssuanceBatch:
    """Check every line, store the accepted ones as issuances (awaiting review where the
    activity requires it, otherwise queued for records at once) and the rejected ones with
    their code. A file-level problem refuses the whole upload and stores nothing."""
    repo = CenterRepository.from_session(session)
    default_code = normalize_code(activity_code) or None
    try:
        lines = parse_batch(data, default_code)
    except FileProblem as problem:
        raise Unprocessable(problem.detail, code=problem.code) from problem
    codes = {item.activity_code for item in lines if item.ok} | (
        {default_code} if default_code else set()
    )
    if len(codes) > MAX_ACTIVITY_CODES:
        raise Unprocessable(
            f"At most {MAX_ACTIVITY_CODES} activity codes per batch.",
            code="too_many_activity_codes",
        )
    # Asked before the first query, so no database transaction is held open across the calls.
    ordered = sorted(codes)
    answers = await asyncio.gather(*(lookup(code) for code in ordered))
    activities: dict[str, ActivityInfo | None] = dict(zip(ordered, answers, strict=True))
    if default_code:
        _usable(activities[default_code], default_code)
    prize_ids = {item.prize_id for item in lines if item.ok and item.prize_id}
    prizes = await repo.prizes_by_ids(tenant_id, [p for p in prize_ids if p is not None])
    for item in lines:
        if not item.ok:
            continue
        activity = activities.get(item.activity_code)
        if item.prize_id not in prizes:
            item.reject("prize_not_found", f"No prize {item.prize_id_text} in this tenant.")
        elif activity is None:
            item.reject("activity_not_found", f"No activity {item.activity_code} in this tenant.")
        elif activity.status == "closed":
            item.reject("activity_closed", f"Activity {item.activity_code} is closed.")
    accepted = [item for item in lines if item.ok]
    waiting = any(
        a.review_required for i in accepted if (a := activities.get(i.activity_code)) is not None
    )
    batch_id = uuid.uuid4()
    batch = await repo.insert_batch(
        {
            "id": batch_id,
            "tenant_id": tenant_id,
            "activity_code": default_code,
            "file_name": file_name,
            "status": (BatchStatus.awaiting_review if waiting else BatchStatus.approved).value,
            "line_count": len(lines),
            "accepted": len(accepted),
            "rejected": len(lines) - len(accepted),
            "rejected_lines": [_rejected_line(i) for i in lines if not i.ok],
            "submitter": actor,
            "version": 1,
            "created_at": now,
            "updated_at": now,
        }
    )
    rows: list[dict[str, Any]] = []
    for item in accepted:
        activity = activities[item.activity_code]
        assert activity is not None and item.prize_id is not None
        prize = prizes[item.prize_id]
        rows.append(
            {
                "id": uuid.uuid4(),
                "tenant_id": tenant_id,
                "batch_id": batch_id,
                "line": item.line,
                "activity_code": activity.code,
                "activity_name": activity.name,
                "activity_names": activity.names,
                "review_required": activity.review_required,
                "issuance_form": activity.issuance_form.value,
                "user_id": item.user_id,
                "app_id": item.app_id,
                "counterpart_id": item.counterpart_id,
                "prize_id": prize.id,
                "prize_name": prize.name,
                "prize_type": prize.type,
                "quantity": item.quantity,
                "remarks": item.remarks,
                "status": (
                    IssuanceStatus.awaiting_review
                    if activity.review_required
                    else IssuanceStatus.approved
                ).value,
                "submitter": actor,
                "version": 1,
                "created_at": now,
                "updated_at": now,
            }
        )
    await repo.insert_issuances(rows)
    for issuance in await repo.batch_issuances(batch_id, IssuanceStatus.approved.value):
        _queue_records(session, issuance, now)
    return batch


async def get_batch(session: AsyncSession, tenant_id: str, batch_id: uuid.UUID) -> IssuanceBatch:
    batch = await CenterRepository.from_session(session).get_batch(tenant_id, batch_id)
    if batch is None:
        raise NotFound(f"No batch {batch_id} in this tenant.", code="batch_not_found")
    return batch


async def review_batch(
    session: AsyncSession,
    tenant_id: str,
    batch_id: uuid.UUID,
    *,
    actor: str,
    approve: bool,
    now: datetime,
    reason: str | None = None,
) -> IssuanceBatch:
    """Approve (every waiting line's records are queued in this transaction) or reject."""
    if not approve and not (reason and reason.strip()):
        raise Unprocessable("Give a reason to reject.", code="reason_required")
    repo = CenterRepository.from_session(session)
    batch = await get_batch(session, tenant_id, batch_id)
    if _check_reviewable(batch.status, batch.submitter, batch.reviewer, actor, approve, "batch"):
        return batch
    decision = {
        "status": (BatchStatus.approved if approve else BatchStatus.rejected).value,
        "reviewer": actor,
        "reviewed_at": now,
        "reject_reason": None if approve else reason,
    }
    moved = await repo.review_batch(batch.id, BatchStatus.awaiting_review.value, decision, now)
    if moved is None:
        raise Conflict(
            "Another review of this batch got there first.", code="batch_not_awaiting_review"
        )
    lines = await repo.review_batch_issuances(batch.id, decision, now)
    if approve:
        for issuance in lines:
            _queue_records(session, issuance, now)
    return moved


# --------------------------------------------------------------------------- views


async def _refs(
    repo: CenterRepository, tenant_id: str, issuances: list[ManualIssuance]
) -> dict[uuid.UUID, list[RecordRef]]:
    keys = [k for i in issuances for k in grant_keys(i.id, i.quantity)]
    found = await repo.records_by_grant_keys(tenant_id, keys)
    refs: dict[uuid.UUID, list[RecordRef]] = {}
    for issuance in issuances:
        refs[issuance.id] = [
            RecordRef(id=r.id, number=r.number, status=r.status)
            for k in grant_keys(issuance.id, issuance.quantity)
            if (r := found.get(k)) is not None
        ]
    return refs


async def issuance_views(
    session: AsyncSession, tenant_id: str, issuances: list[ManualIssuance]
) -> list[IssuanceRead]:
    refs = await _refs(CenterRepository.from_session(session), tenant_id, issuances)
    out = []
    for issuance in issuances:
        view = IssuanceRead.model_validate(issuance)
        view.records = refs[issuance.id]
        out.append(view)
    return out


def batch_summary(batch: IssuanceBatch) -> BatchRead:
    return BatchRead(
        id=batch.id,
        activity_code=batch.activity_code,
        file_name=batch.file_name,
        status=BatchStatus(batch.status),
        line_count=batch.line_count,
        accepted=batch.accepted,
        rejected=batch.rejected,
        submitter=batch.submitter,
        reviewer=batch.reviewer,
        reviewed_at=batch.reviewed_at,
        reject_reason=batch.reject_reason,
        created_at=batch.created_at,
    )


async def batch_view(session: AsyncSession, batch: IssuanceBatch) -> BatchRead:
    """The batch with every line in file order: accepted lines with their issuance and the
    current status of its records, rejected lines with their code."""
    repo = CenterRepository.from_session(session)
    issuances = await repo.batch_issuances(batch.id)
    refs = await _refs(repo, batch.tenant_id, issuances)
    lines = [
        BatchLineRead(
            line=i.line or 0,
            user_id=i.user_id,
            prize_id=str(i.prize_id),
            activity_code=i.activity_code,
            quantity=i.quantity,
            outcome=LineOutcome.accepted,
            issuance_id=i.id,
            issuance_status=IssuanceStatus(i.status),
            records=refs[i.id],
        )
        for i in issuances
    ]
    lines += [
        BatchLineRead(outcome=LineOutcome.rejected, **row) for row in batch.rejected_lines or []
    ]
    lines.sort(key=lambda line: line.line)
    view = batch_summary(batch)
    view.lines = lines
    return view


RESULT_COLUMNS = [
    "line",
    "user_id",
    "prize_id",
    "activity_code",
    "quantity",
    "outcome",
    "code",
    "detail",
    "issuance_status",
    "record_numbers",
    "record_statuses",
]


def result_rows(view: BatchRead) -> list[list[Any]]:
    return [
        [
            line.line,
            line.user_id,
            line.prize_id,
            line.activity_code,
            line.quantity,
            line.outcome.value,
            line.code,
            line.detail,
            line.issuance_status.value if line.issuance_status else None,
            " ".join(r.number for r in line.records),
            " ".join(r.status for r in line.records),
        ]
        for line in view.lines
    ]
