from __future__ import annotations

import re
import uuid
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query, Request, Response
from fastapi.responses import StreamingResponse

from reward_service.exports import csv_line
from reward_service.payouts.repository import PayoutRepository
from reward_service.payouts.schemas import CashPayoutRead
from reward_service.records import service
from reward_service.records.models import RewardRecord
from reward_service.records.repository import RecordRepository
from reward_service.records.schemas import (
    InvitationTotal,
    InvitationTotals,
    IssuedCost,
    MoveRequest,
    MyRewardRead,
    RecordCosts,
    RecordStats,
    RewardRecordDetail,
    RewardRecordRead,
    TransitionRead,
)
from reward_service.records.state import Action, RecordStatus
from reward_service.records.texts import record_texts
from reward_service.shipments.repository import ShipmentRepository
from reward_service.shipments.schemas import ShipmentRead
from reward_service.wallet import service as wallet_service
from reward_service.wallet.repository import WalletRepository
from service_kit.auth import RIGHTS_READ, RIGHTS_WRITE, Authenticator, CallerKind, Principal
from service_kit.db import SessionDep
from service_kit.deps import ClockDep
from service_kit.errors import PROBLEM_RESPONSES, problems
from service_kit.i18n import AcceptLanguage, say_served, served_for
from service_kit.idempotency import IdempotencyDep
from service_kit.pagination import Page, PageParamsDep
from service_kit.routing import ServiceRoute

router = APIRouter(route_class=ServiceRoute, tags=["reward records"], responses=PROBLEM_RESPONSES)

RecordReader = Annotated[
    Principal,
    Depends(
        Authenticator(kinds={CallerKind.operator, CallerKind.service}, permissions=RIGHTS_READ)
    ),
]
RecordWriter = Annotated[
    Principal, Depends(Authenticator(kinds={CallerKind.operator}, permissions=RIGHTS_WRITE))
]
AppUser = Annotated[Principal, Depends(Authenticator(kinds={CallerKind.user}))]

LockState = Literal["running", "held", "broken"]


def _filters(
    activity_code: Annotated[str | None, Query(examples=["ACT-7K2M9QXD"])] = None,
    status: RecordStatus | None = None,
    user_id: str | None = None,
    task: Annotated[str | None, Query(examples=["register"])] = None,
    prize_type: Annotated[str | None, Query(examples=["cash"])] = None,
    number: Annotated[str | None, Query(examples=["RR-20261123-00000042"])] = None,
    achieved_from: Annotated[datetime | None, Query(description="achieved_at ≥")] = None,
    achieved_until: Annotated[datetime | None, Query(description="achieved_at <")] = None,
    issued_from: Annotated[datetime | None, Query(description="issued_at ≥")] = None,
    issued_until: Annotated[datetime | None, Query(description="issued_at <")] = None,
    lock: Annotated[
        LockState | None,
        Query(
            description="Lock-up: `running` (锁仓中, inside the lock period), `held`, or "
            "`broken` (cancelled when waiting on the lock, flagged when issued at once)"
        ),
    ] = None,
) -> dict[str, Any]:
    return {
        "activity_code": activity_code,
        "status": status.value if status else None,
        "user_id": user_id,
        "task": task,
        "prize_type": prize_type,
        "number": number,
        "since": achieved_from,
        "until": achieved_until,
        "issued_since": issued_from,
        "issued_until": issued_until,
        "lock": lock,
    }


Filters = Annotated[dict[str, Any], Depends(_filters)]


@router.get("/v1/reward-records", summary="Winners list", responses=problems({}))
async def list_reward_records(
    principal: RecordReader, session: SessionDep, page: PageParamsDep, filters: Filters
) -> Page[RewardRecordRead]:
    rows, cursor = await RecordRepository.from_session(session).list(
        principal.tenant_id, page, **filters
    )
    enterprises = await service.certified_enterprises(session, principal.tenant_id, rows)
    return Page(items=[_winner(r, enterprises) for r in rows], next_cursor=cursor)


def _winner(record: RewardRecord, enterprises: dict[str, str]) -> RewardRecordRead:
    line = RewardRecordRead.model_validate(record)
    line.enterprise_name = service.enterprise_of(record, enterprises)
    return line


EXPORT_COLUMNS = [
    "number",
    "activity_code",
    "user_id",
    "counterpart_id",
    "enterprise_name",
    "task",
    "achieved_at",
    "prize_name",
    "prize_type",
    "issuance_form",
    "status",
    "issued_at",
    "issued_to",
    "lock_amount",
    "lock_currency",
    "lock_days",
    "lock_expires_at",
    "lock_issue_after",
    "lock_result",
    "lock_detail",
    "failure_reason",
]


@router.get(
    "/v1/reward-records/export",
    summary="Export the winners list (CSV)",
    description="The same filters as the winners list; every matching record, oldest first.",
    response_class=StreamingResponse,
    responses={
        200: {"content": {"text/csv": {}}, "description": "CSV with a header row"},
        **problems({}),
    },
)
async def export_reward_records(
    request: Request, principal: RecordReader, filters: Filters
) -> StreamingResponse:
    db = request.app.state.db
    tenant_id = principal.tenant_id

    async def lines() -> AsyncIterator[str]:
        yield "\ufeff" + csv_line(EXPORT_COLUMNS)
        # Its own read-only session: the response streams after the request dependency ends.
        async with db.session() as session:
            async for chunk in RecordRepository.from_session(session).stream(tenant_id, **filters):
                enterprises = await service.certified_enterprises(session, tenant_id, chunk)
                for record in chunk:
                    line = {"enterprise_name": service.enterprise_of(record, enterprises)}
                    yield csv_line([line.get(c, getattr(record, c)) for c in EXPORT_COLUMNS])

    # The code as the client sent it may hold any character; a header carries Latin-1 only
    # (and a quote or a line break would break it), so the file name keeps the safe ones.
    name = re.sub(r"[^A-Za-z0-9._-]", "_", filters.get("activity_code") or "all")
    return StreamingResponse(
        lines(),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="reward-records-{name}.csv"'},
    )


@router.get(
    "/v1/reward-records/stats", summary="Reward record counts per status", responses=problems({})
)
async def reward_record_stats(
    principal: RecordReader, session: SessionDep, activity_code: str | None = None
) -> RecordStats:
    """Counts per status; `locked` (锁仓中) counts every record inside its lock period, so a
    reward issued at once while its lock runs counts as `issued` and as `locked`; `all`
    counts each record once."""
    repo = RecordRepository.from_session(session)
    counts = await repo.count_by_status(principal.tenant_id, activity_code)
    every = sum(counts.values())
    counts["locked"] = await repo.count_locked(principal.tenant_id, activity_code)
    return RecordStats(activity_code=activity_code, **counts, all=every)


@router.get(
    "/v1/reward-records/costs",
    summary="Cost of an activity's issued rewards",
    responses=problems({}),
)
async def reward_record_costs(
    principal: RecordReader,
    session: SessionDep,
    activity_code: Annotated[str, Query(min_length=1, max_length=32, examples=["ACT-7K2M9QXD"])],
) -> RecordCosts:
    """Issued records per prize type and currency with their summed cost — cash: the amount
    paid; coupons and physical items: the prize's `cost_amount` (a prize without a cost is a
    row with `currency` null) — and the distinct users rewarded. Currencies are not
    converted here: the activity service converts with the tenant's FX rates."""
    repo = RecordRepository.from_session(session)
    rows = await repo.issued_costs(principal.tenant_id, activity_code)
    users, issued_users = await repo.distinct_users(principal.tenant_id, activity_code)
    return RecordCosts(
        activity_code=activity_code,
        issued=[
            IssuedCost(prize_type=t, currency=c, records=n, amount=amount)
            for t, c, n, amount in rows
        ],
        users=users,
        issued_users=issued_users,
    )


async def _detail(session: SessionDep, record: RewardRecord, now: datetime) -> RewardRecordDetail:
    history = await RecordRepository.from_session(session).transitions(record.id)
    coupon = (await WalletRepository.from_session(session).by_records([record.id])).get(record.id)
    shipment = (await ShipmentRepository.from_session(session).by_records([record.id])).get(
        record.id
    )
    payout = await PayoutRepository.from_session(session).get_by_record(record.id)
    enterprises = await service.certified_enterprises(session, record.tenant_id, [record])
    return RewardRecordDetail(
        **_winner(record, enterprises).model_dump(),
        transitions=[TransitionRead.model_validate(t) for t in history],
        coupon=wallet_service.to_read(coupon, now) if coupon else None,
        shipment=ShipmentRead.model_validate(shipment) if shipment else None,
        payout=CashPayoutRead.model_validate(payout) if payout else None,
    )


@router.get(
    "/v1/reward-records/{record_id}",
    summary="One reward record with its transition history",
    responses=problems({404: ["record_not_found"]}),
)
async def get_reward_record(
    record_id: uuid.UUID, principal: RecordReader, session: SessionDep, clock: ClockDep
) -> RewardRecordDetail:
    record = await service.get_record(session, principal.tenant_id, record_id)
    return await _detail(session, record, clock.now())


MOVE_DOC = (
    "Compare-and-set on the record's status: any move SPEC §3.2 does not draw from the "
    "current status, or one that loses a race, is a 409 with `code` = `invalid_transition` "
    "and changes nothing."
)


def _add_operator_move(action: Action, verb: str, name: str, summary: str) -> None:
    """One POST /v1/reward-records/{id}/<verb> route per operator move of the state machine."""

    async def move_record(
        record_id: uuid.UUID,
        principal: RecordWriter,
        idempotency: IdempotencyDep,
        session: SessionDep,
        clock: ClockDep,
        body: MoveRequest | None = None,
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

    router.post(
        f"/v1/reward-records/{{record_id}}/{verb}",
        summary=summary,
        description=MOVE_DOC,
        name=name,
        responses=problems(
            {
                404: ["record_not_found"],
                409: {
                    "invalid_transition": "not a move from the record's status, or it lost a race"
                },
            }
        ),
    )(move_record)


_add_operator_move(
    Action.submit, "submit", "submit_reward_record", "Submit a pending record for issuance"
)
_add_operator_move(
    Action.cancel, "cancel", "cancel_reward_record", "Cancel a pending, locked or failed record"
)
_add_operator_move(
    Action.resubmit, "resubmit", "resubmit_reward_record", "Resubmit a failed record"
)


@router.get("/v1/me/invitation-totals", summary="What I earned by inviting", responses=problems({}))
async def get_my_invitation_totals(principal: AppUser, session: SessionDep) -> InvitationTotals:
    """The caller's rewards as an inviter of referral activities (cancelled ones left out):
    counts and values per prize type and currency, issued or still on their way. Answered
    here because this service owns the records, their statuses and what was paid; the
    referral service only knows who invited whom."""
    rows, invitees = await RecordRepository.from_session(session).invitation_totals(
        principal.tenant_id, principal.sub
    )
    return InvitationTotals(
        user_id=principal.sub,
        invitees_rewarded=invitees,
        totals=[
            InvitationTotal(
                prize_type=t, currency=c, records=n, issued=i, amount=a, issued_amount=ia
            )
            for t, c, n, i, a, ia in rows
        ],
    )


@router.get("/v1/me/rewards", summary="My rewards, in my language", responses=problems({}))
async def list_my_rewards(
    principal: AppUser,
    session: SessionDep,
    page: PageParamsDep,
    response: Response,
    status: RecordStatus | None = None,
    activity_code: str | None = None,
    accept_language: AcceptLanguage = None,
) -> Page[MyRewardRead]:
    """Activity names and prize titles follow Accept-Language with the fallback of
    `/v1/me/activities`; `*_language` fields and `Content-Language` say what was served."""
    rows, cursor = await RecordRepository.from_session(session).list(
        principal.tenant_id,
        page,
        user_id=principal.sub,
        status=status.value if status else None,
        activity_code=activity_code,
    )
    ids = [r.id for r in rows]
    coupons = await WalletRepository.from_session(session).by_records(ids)
    shipments = await ShipmentRepository.from_session(session).by_records(ids)
    served = served_for(accept_language)
    items = []
    for r in rows:
        item = MyRewardRead.model_validate(r)
        texts = record_texts(r, served)
        item.activity_name, item.activity_name_language = (
            texts.activity_name,
            texts.activity_name_language,
        )
        item.prize_name, item.prize_name_language = texts.prize_name, texts.prize_name_language
        item.coupon_id = coupons[r.id].id if r.id in coupons else None
        item.shipment_id = shipments[r.id].id if r.id in shipments else None
        items.append(item)
    say_served(response, served)
    return Page(items=items, next_cursor=cursor)
