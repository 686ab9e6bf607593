"""Reward center routes (SPEC §3.4): manual issuance, batch files, review."""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request, Response, status
from starlette.datastructures import UploadFile

from reward_service.center import service
from reward_service.center.repository import CenterRepository
from reward_service.center.rules import MAX_FILE_BYTES, MAX_LINES, BatchStatus, IssuanceStatus
from reward_service.center.schemas import BatchRead, IssuanceCreate, IssuanceRead, ReviewDecision
from reward_service.exports import csv_line
from service_kit.auth import RIGHTS_READ, RIGHTS_WRITE, Authenticator, CallerKind, Principal
from service_kit.db import SessionDep
from service_kit.deps import ClockDep, HttpDep
from service_kit.errors import PROBLEM_RESPONSES, Unprocessable, problems
from service_kit.idempotency import IdempotencyDep
from service_kit.pagination import Page, PageParamsDep
from service_kit.routing import ServiceRoute

router = APIRouter(
    route_class=ServiceRoute,
    prefix="/v1/reward-center",
    tags=["reward center"],
    responses=PROBLEM_RESPONSES,
)

CenterReader = Annotated[
    Principal, Depends(Authenticator(kinds={CallerKind.operator}, permissions=RIGHTS_READ))
]
CenterWriter = Annotated[
    Principal, Depends(Authenticator(kinds={CallerKind.operator}, permissions=RIGHTS_WRITE))
]

ISSUE_DOC = (
    "The activity (usually non-standard) is looked up in activity_service; its review mode "
    "and issuance form apply. Without review the reward records are created at once "
    "(automatic: submitted for issuing; manual: Pending). With review the issuance waits in "
    "`awaiting_review` until another operator approves it."
)

ACTIVITY_UNREACHABLE = {
    503: {
        "upstream_unavailable": "the activity service cannot be reached",
        "activity_service_unavailable": "the activity service answered the look-up badly",
    }
}
SELF_APPROVAL = {403: {"self_approval": "another operator than the submitter approves"}}
REASON_REQUIRED = {"reason_required": "a rejection needs a reason"}


def _lookup(request: Request, http: HttpDep, principal: Principal) -> service.ActivityLookup:
    return service.activity_lookup(
        http, request.app.state.settings.activity_url, principal.tenant_id
    )


async def _issuance_read(session: SessionDep, principal: Principal, issuance: Any) -> IssuanceRead:
    (view,) = await service.issuance_views(session, principal.tenant_id, [issuance])
    return view


@router.post(
    "/issuances",
    status_code=status.HTTP_201_CREATED,
    summary="Issue a reward by hand to one user",
    description=ISSUE_DOC,
    responses=problems(
        {
            422: {
                "activity_not_found": "no activity of that code in the tenant",
                "activity_closed": "the activity is closed",
                "prize_not_found": "no such prize in the tenant",
            },
            **ACTIVITY_UNREACHABLE,
        }
    ),
)
async def create_issuance(
    body: IssuanceCreate,
    request: Request,
    principal: CenterWriter,
    idempotency: IdempotencyDep,
    session: SessionDep,
    clock: ClockDep,
    http: HttpDep,
) -> IssuanceRead:
    issuance = await service.create_issuance(
        session,
        principal.tenant_id,
        principal.actor,
        body,
        _lookup(request, http, principal),
        clock.now(),
    )
    return await _issuance_read(session, principal, issuance)


@router.get("/issuances", summary="Manual issuances", responses=problems({}))
async def list_issuances(
    principal: CenterReader,
    session: SessionDep,
    page: PageParamsDep,
    activity_code: Annotated[str | None, Query(examples=["ACT-7K2M9QXD"])] = None,
    status: IssuanceStatus | None = None,
    user_id: str | None = None,
    batch_id: uuid.UUID | None = None,
    submitter: Annotated[str | None, Query(examples=["operator:ops-1"])] = None,
) -> Page[IssuanceRead]:
    rows, cursor = await CenterRepository.from_session(session).list_issuances(
        principal.tenant_id,
        page,
        activity_code=activity_code.strip().upper() if activity_code else None,
        status=status.value if status else None,
        user_id=user_id,
        batch_id=batch_id,
        submitter=submitter,
    )
    items = await service.issuance_views(session, principal.tenant_id, rows)
    return Page(items=items, next_cursor=cursor)


@router.get(
    "/issuances/{issuance_id}",
    summary="One manual issuance and its records",
    responses=problems({404: ["issuance_not_found"]}),
)
async def get_issuance(
    issuance_id: uuid.UUID, principal: CenterReader, session: SessionDep
) -> IssuanceRead:
    issuance = await service.get_issuance(session, principal.tenant_id, issuance_id)
    return await _issuance_read(session, principal, issuance)


REVIEW_DOC = (
    "Compare-and-set on `awaiting_review`: of two racing reviews one wins, the other is a 409 "
    "`issuance_not_awaiting_review`. The submitter cannot approve their own issuance (403 "
    "`self_approval`). Lines of a batch are reviewed with their batch (409 `review_the_batch`). "
    "Repeating one's own decision answers with the issuance."
)
ISSUANCE_REVIEW: dict[int, dict[str, str]] = {
    404: {"issuance_not_found": "no such issuance in the tenant"},
    409: {
        "issuance_not_awaiting_review": "the issuance was decided (or another review won)",
        "review_the_batch": "a line of a batch is reviewed with its batch",
    },
}


@router.post(
    "/issuances/{issuance_id}/approve",
    summary="Approve an issuance (review mode); creates its reward records",
    description=REVIEW_DOC,
    responses=problems({**SELF_APPROVAL, **ISSUANCE_REVIEW}),
)
async def approve_issuance(
    issuance_id: uuid.UUID,
    principal: CenterWriter,
    idempotency: IdempotencyDep,
    session: SessionDep,
    clock: ClockDep,
) -> IssuanceRead:
    issuance = await service.review_issuance(
        session,
        principal.tenant_id,
        issuance_id,
        actor=principal.actor,
        approve=True,
        now=clock.now(),
    )
    return await _issuance_read(session, principal, issuance)


@router.post(
    "/issuances/{issuance_id}/reject",
    summary="Reject an issuance (review mode); no record is created",
    description=REVIEW_DOC + " A reason is required (422 `reason_required`).",
    responses=problems({**ISSUANCE_REVIEW, 422: REASON_REQUIRED}),
)
async def reject_issuance(
    issuance_id: uuid.UUID,
    body: ReviewDecision,
    principal: CenterWriter,
    idempotency: IdempotencyDep,
    session: SessionDep,
    clock: ClockDep,
) -> IssuanceRead:
    issuance = await service.review_issuance(
        session,
        principal.tenant_id,
        issuance_id,
        actor=principal.actor,
        approve=False,
        now=clock.now(),
        reason=body.reason,
    )
    return await _issuance_read(session, principal, issuance)


BATCH_DOC = (
    "A UTF-8 CSV, as the request body (`text/csv`) or as the `file` part of a multipart form. "
    "Header: `user_id`, `prize_id`, optional `activity_code` (else the batch-wide "
    "`activity_code` query parameter or form field), `quantity` (1..100), `remarks`, "
    "`counterpart_id`, `app_id`. Every line is checked on its own (codes: `user_id_missing`, "
    "`prize_id_invalid`, `prize_not_found`, `activity_not_found`, `activity_closed`, "
    "`duplicate_line`, `quantity_invalid`, …); accepted lines become issuances — awaiting "
    "review when their activity requires it (approve the batch), otherwise their records are "
    f"created right away by the worker. Limits: {MAX_FILE_BYTES // (1024 * 1024)} MB and "
    f"{MAX_LINES} lines (422 `file_too_large`, `too_many_lines`); `invalid_csv`, `empty_file`, "
    "`activity_code_required` refuse the whole file."
)
CSV_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {
            "text/csv": {
                "schema": {"type": "string"},
                "example": "user_id,prize_id,remarks\nu-10001,6f1c2d1e-8a43-4b0e-9a53-"
                "0c8e6f3b1a27,VIP gift\n",
            },
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["file"],
                    "properties": {
                        "file": {"type": "string", "format": "binary"},
                        "activity_code": {"type": "string"},
                    },
                }
            },
        },
    }
}


async def _read_upload(request: Request) -> tuple[bytes, str | None, str | None]:
    """The file bytes (read at most to the limit + 1), its name and a form's activity code."""
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > MAX_FILE_BYTES + 64 * 1024:
        raise Unprocessable(
            f"The file is larger than {MAX_FILE_BYTES} bytes.", code="file_too_large"
        )
    content_type = request.headers.get("content-type", "")
    if content_type.startswith("multipart/form-data"):
        form = await request.form(max_files=1, max_fields=5)
        upload = form.get("file")
        if not isinstance(upload, UploadFile):
            raise Unprocessable("The form needs a `file` part.", code="file_missing")
        data = await upload.read(MAX_FILE_BYTES + 1)
        code = form.get("activity_code")
        return data, upload.filename, code if isinstance(code, str) else None
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_FILE_BYTES:
            raise Unprocessable(
                f"The file is larger than {MAX_FILE_BYTES} bytes.", code="file_too_large"
            )
        chunks.append(chunk)
    return b"".join(chunks), None, None


@router.post(
    "/batches",
    status_code=status.HTTP_201_CREATED,
    summary="Issue rewards from a batch file (CSV) with per-line results",
    description=BATCH_DOC,
    openapi_extra=CSV_BODY,
    responses=problems(
        {
            # The whole file refused (nothing stored); a line's own problem is in its result.
            422: {
                "file_missing": "the form has no `file` part",
                "file_too_large": "the file is too large",
                "empty_file": "the file has no lines",
                "invalid_csv": "not UTF-8 CSV with the required header",
                "too_many_lines": "too many lines in one file",
                "activity_code_required": "no activity code for the batch or its lines",
                "too_many_activity_codes": "too many activity codes in one batch",
                "activity_not_found": "no activity of the batch's code in the tenant",
                "activity_closed": "the batch's activity is closed",
            },
            **ACTIVITY_UNREACHABLE,
        }
    ),
)
async def create_batch(
    request: Request,
    principal: CenterWriter,
    idempotency: IdempotencyDep,
    session: SessionDep,
    clock: ClockDep,
    http: HttpDep,
    activity_code: Annotated[
        str | None, Query(description="Activity code for lines without one", max_length=32)
    ] = None,
    file_name: Annotated[str | None, Query(max_length=200, description="Shown in lists")] = None,
) -> BatchRead:
    data, upload_name, form_code = await _read_upload(request)
    batch = await service.create_batch(
        session,
        principal.tenant_id,
        principal.actor,
        data,
        activity_code=activity_code or form_code,
        file_name=file_name or upload_name,
        lookup=_lookup(request, http, principal),
        now=clock.now(),
    )
    return await service.batch_view(session, batch)


@router.get(
    "/batches", summary="Batch files, newest first (without their lines)", responses=problems({})
)
async def list_batches(
    principal: CenterReader,
    session: SessionDep,
    page: PageParamsDep,
    status: BatchStatus | None = None,
) -> Page[BatchRead]:
    rows, cursor = await CenterRepository.from_session(session).list_batches(
        principal.tenant_id, page, status=status.value if status else None
    )
    return Page(items=[service.batch_summary(b) for b in rows], next_cursor=cursor)


@router.get(
    "/batches/{batch_id}",
    summary="A batch with its per-line results",
    responses=problems({404: ["batch_not_found"]}),
)
async def get_batch(batch_id: uuid.UUID, principal: CenterReader, session: SessionDep) -> BatchRead:
    batch = await service.get_batch(session, principal.tenant_id, batch_id)
    return await service.batch_view(session, batch)


@router.get(
    "/batches/{batch_id}/results",
    summary="Per-line results of a batch (CSV)",
    response_class=Response,
    responses={
        200: {"content": {"text/csv": {}}, "description": "CSV with a header row"},
        **problems({404: ["batch_not_found"]}),
    },
)
async def export_batch_results(
    batch_id: uuid.UUID, principal: CenterReader, session: SessionDep
) -> Response:
    batch = await service.get_batch(session, principal.tenant_id, batch_id)
    view = await service.batch_view(session, batch)
    body = "\ufeff" + csv_line(service.RESULT_COLUMNS)
    body += "".join(csv_line(row) for row in service.result_rows(view))
    return Response(
        body,
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="batch-{batch_id}.csv"'},
    )


BATCH_REVIEW_DOC = (
    "Decides every line still awaiting review at once. Compare-and-set on the batch status "
    "(409 `batch_not_awaiting_review` for the loser of a race); not by its submitter (403 "
    "`self_approval`)."
)
BATCH_REVIEW: dict[int, dict[str, str]] = {
    404: {"batch_not_found": "no such batch in the tenant"},
    409: {"batch_not_awaiting_review": "the batch was decided (or another review won)"},
}


@router.post(
    "/batches/{batch_id}/approve",
    summary="Approve a batch (review mode); its records are created by the worker",
    description=BATCH_REVIEW_DOC,
    responses=problems({**SELF_APPROVAL, **BATCH_REVIEW}),
)
async def approve_batch(
    batch_id: uuid.UUID,
    principal: CenterWriter,
    idempotency: IdempotencyDep,
    session: SessionDep,
    clock: ClockDep,
) -> BatchRead:
    batch = await service.review_batch(
        session,
        principal.tenant_id,
        batch_id,
        actor=principal.actor,
        approve=True,
        now=clock.now(),
    )
    return await service.batch_view(session, batch)


@router.post(
    "/batches/{batch_id}/reject",
    summary="Reject a batch (review mode)",
    description=BATCH_REVIEW_DOC + " A reason is required (422 `reason_required`).",
    responses=problems({**BATCH_REVIEW, 422: REASON_REQUIRED}),
)
async def reject_batch(
    batch_id: uuid.UUID,
    body: ReviewDecision,
    principal: CenterWriter,
    idempotency: IdempotencyDep,
    session: SessionDep,
    clock: ClockDep,
) -> BatchRead:
    batch = await service.review_batch(
        session,
        principal.tenant_id,
        batch_id,
        actor=principal.actor,
        approve=False,
        now=clock.now(),
        reason=body.reason,
    )
    return await service.batch_view(session, batch)
