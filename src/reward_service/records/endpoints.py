from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Query

from reward_service.records import service
from reward_service.records.repository import RecordRepository
from reward_service.records.schemas import (
    MoveRequest,
    RecordStats,
    RewardRecordDetail,
    RewardRecordRead,
    TransitionRead,
)
from reward_service.records.state import Action, RecordStatus
from service_kit.auth import RIGHTS_READ, RIGHTS_WRITE, Authenticator, CallerKind, Principal
from service_kit.db import SessionDep
from service_kit.deps import ClockDep
from service_kit.errors import PROBLEM_RESPONSES
from service_kit.pagination import Page, PageParamsDep

router = APIRouter(
    prefix="/v1/reward-records", tags=["reward records"], responses=PROBLEM_RESPONSES
)

RecordReader = Annotated[
    Principal,
    Depends(
        Authenticator(kinds={CallerKind.operator, CallerKind.service}, permissions=RIGHTS_READ)
    ),
]
RecordWriter = Annotated[
    Principal, Depends(Authenticator(kinds={CallerKind.operator}, permissions=RIGHTS_WRITE))
]


@router.get("", summary="Winners list")
async def list_reward_records(
    principal: RecordReader,
    session: SessionDep,
    page: PageParamsDep,
    activity_code: Annotated[str | None, Query(examples=["ACT-7K2M9QXD"])] = None,
    status: RecordStatus | None = None,
    user_id: str | None = None,
    task: str | None = None,
    achieved_from: Annotated[datetime | None, Query(description="achieved_at ≥")] = None,
    achieved_until: Annotated[datetime | None, Query(description="achieved_at <")] = None,
) -> Page[RewardRecordRead]:
    rows, cursor = await RecordRepository.from_session(session).list(
        principal.tenant_id,
        page,
        activity_code=activity_code,
        status=status.value if status else None,
        user_id=user_id,
        task=task,
        since=achieved_from,
        until=achieved_until,
    )
    return Page(items=[RewardRecordRead.model_validate(r) for r in rows], next_cursor=cursor)


@router.get("/stats", summary="Reward record counts per status")
async def reward_record_stats(
    principal: RecordReader, session: SessionDep, activity_code: str | None = None
) -> RecordStats:
    counts = await RecordRepository.from_session(session).count_by_status(
        principal.tenant_id, activity_code
    )
    return RecordStats(activity_code=activity_code, **counts, all=sum(counts.values()))


@router.get("/{record_id}", summary="One reward record with its transition history")
async def get_reward_record(
    record_id: uuid.UUID, principal: RecordReader, session: SessionDep
) -> RewardRecordDetail:
    record = await service.get_record(session, principal.tenant_id, record_id)
    history = await RecordRepository.from_session(session).transitions(record.id)
    return RewardRecordDetail(
        **RewardRecordRead.model_validate(record).model_dump(),
        transitions=[TransitionRead.model_validate(t) for t in history],
    )


async def _operator_move(
    action: Action,
    record_id: uuid.UUID,
    principal: Principal,
    session: SessionDep,
    clock: ClockDep,
    body: MoveRequest | None,
) -> RewardRecordRead:
    record = await service.operator_move(
        session,
        principal.tenant_id,
        record_id,
        action,
        actor=principal.actor,
        at=clock.now(),
        reason=body.reason if body else None,
    )
    return RewardRecordRead.model_validate(record)


@router.post("/{record_id}/submit", summary="Submit a pending record for issuance")
async def submit_reward_record(
    record_id: uuid.UUID,
    principal: RecordWriter,
    session: SessionDep,
    clock: ClockDep,
    body: MoveRequest | None = None,
) -> RewardRecordRead:
    return await _operator_move(Action.submit, record_id, principal, session, clock, body)


@router.post("/{record_id}/cancel", summary="Cancel a pending, locked or failed record")
async def cancel_reward_record(
    record_id: uuid.UUID,
    principal: RecordWriter,
    session: SessionDep,
    clock: ClockDep,
    body: MoveRequest | None = None,
) -> RewardRecordRead:
    return await _operator_move(Action.cancel, record_id, principal, session, clock, body)


@router.post("/{record_id}/resubmit", summary="Resubmit a failed record")
async def resubmit_reward_record(
    record_id: uuid.UUID,
    principal: RecordWriter,
    session: SessionDep,
    clock: ClockDep,
    body: MoveRequest | None = None,
) -> RewardRecordRead:
    return await _operator_move(Action.resubmit, record_id, principal, session, clock, body)
