from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Depends, File, Query, UploadFile
from fastapi.responses import Response

from reward_service.shipments import service
from reward_service.shipments.repository import ShipmentRepository
from reward_service.shipments.schemas import (
    AddressWrite,
    BatchResult,
    MarkShippingRequest,
    ShipmentRead,
    ShipmentStatus,
    TrackingWrite,
)
from service_kit.auth import RIGHTS_READ, RIGHTS_WRITE, Authenticator, CallerKind, Principal
from service_kit.db import SessionDep
from service_kit.deps import ClockDep
from service_kit.errors import PROBLEM_RESPONSES, Unprocessable, problems
from service_kit.i18n import AcceptLanguage, say_served, served_for
from service_kit.idempotency import IdempotencyDep
from service_kit.pagination import Page, PageParamsDep
from service_kit.routing import ServiceRoute

router = APIRouter(route_class=ServiceRoute, tags=["shipments"], responses=PROBLEM_RESPONSES)

AppUser = Annotated[Principal, Depends(Authenticator(kinds={CallerKind.user}))]
ShipmentReader = Annotated[
    Principal, Depends(Authenticator(kinds={CallerKind.operator}, permissions=RIGHTS_READ))
]
ShipmentWriter = Annotated[
    Principal, Depends(Authenticator(kinds={CallerKind.operator}, permissions=RIGHTS_WRITE))
]
MAX_UPLOAD_BYTES = 5 * 1024 * 1024


@router.get(
    "/v1/me/shipments",
    summary="My physical prizes and their tracking numbers",
    responses=problems({422: ["invalid_cursor"]}),
)
async def list_my_shipments(
    principal: AppUser,
    session: SessionDep,
    page: PageParamsDep,
    response: Response,
    accept_language: AcceptLanguage = None,
) -> Page[ShipmentRead]:
    """Prize titles and activity names follow Accept-Language (as `/v1/me/rewards`)."""
    rows, cursor = await ShipmentRepository.from_session(session).list(
        principal.tenant_id, page, user_id=principal.sub
    )
    served = served_for(accept_language)
    items = await service.read_for_user(session, rows, served)
    say_served(response, served)
    return Page(items=items, next_cursor=cursor)


@router.put(
    "/v1/me/shipments/{shipment_id}/address",
    summary="Give or change my shipping address",
    description="Refused with `shipment_address_locked` once the item is shipping.",
    responses=problems({404: ["shipment_not_found"], 409: ["shipment_address_locked"]}),
)
async def put_my_shipment_address(
    shipment_id: uuid.UUID,
    body: AddressWrite,
    principal: AppUser,
    session: SessionDep,
    clock: ClockDep,
    response: Response,
    accept_language: AcceptLanguage = None,
) -> ShipmentRead:
    shipment = await service.set_address(
        session, principal.tenant_id, principal.sub, shipment_id, body, clock.now()
    )
    served = served_for(accept_language)
    (read,) = await service.read_for_user(session, [shipment], served)
    say_served(response, served)
    return read


@router.get(
    "/v1/shipments",
    summary="The fulfilment queue",
    responses=problems({422: ["invalid_cursor"]}),
)
async def list_shipments(
    principal: ShipmentReader,
    session: SessionDep,
    page: PageParamsDep,
    status: ShipmentStatus | None = None,
    user_id: str | None = None,
    activity_code: str | None = None,
    record_number: str | None = None,
) -> Page[ShipmentRead]:
    rows, cursor = await ShipmentRepository.from_session(session).list(
        principal.tenant_id,
        page,
        user_id=user_id,
        status=status.value if status else None,
        activity_code=activity_code,
        record_number=record_number,
    )
    return Page(items=[ShipmentRead.model_validate(r) for r in rows], next_cursor=cursor)


@router.get(
    "/v1/shipments/export",
    summary="Export pending shipments (CSV)",
    description="By default the shipments with an address that are not yet shipping "
    "(`ready`); pass `status` (repeatable) for others.",
    response_class=Response,
    responses={
        200: {"content": {"text/csv": {}}, "description": "CSV with a header row"},
        **problems({}),
    },
)
async def export_shipments(
    principal: ShipmentReader,
    session: SessionDep,
    status: Annotated[list[ShipmentStatus] | None, Query()] = None,
    activity_code: str | None = None,
) -> Response:
    statuses = [s.value for s in status] if status else [ShipmentStatus.ready.value]
    rows = await ShipmentRepository.from_session(session).all_in_status(
        principal.tenant_id, statuses, activity_code
    )
    return Response(
        service.export_csv(rows),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": 'attachment; filename="shipments.csv"'},
    )


@router.post(
    "/v1/shipments/mark-shipping",
    summary="Mark shipments as shipping (locks the address)",
    # Each shipment's own refusal is in its result.
    responses=problems({}),
)
async def mark_shipments_shipping(
    body: MarkShippingRequest,
    principal: ShipmentWriter,
    idempotency: IdempotencyDep,
    session: SessionDep,
    clock: ClockDep,
) -> BatchResult:
    return await service.mark_shipping(session, principal.tenant_id, body.shipment_ids, clock.now())


@router.put(
    "/v1/shipments/{shipment_id}/tracking",
    summary="Enter a tracking number",
    responses=problems({404: ["shipment_not_found"], 409: ["address_missing"]}),
)
async def put_shipment_tracking(
    shipment_id: uuid.UUID,
    body: TrackingWrite,
    principal: ShipmentWriter,
    session: SessionDep,
    clock: ClockDep,
) -> ShipmentRead:
    shipment = await service.set_tracking(
        session, principal.tenant_id, shipment_id, body, clock.now()
    )
    return ShipmentRead.model_validate(shipment)


@router.post(
    "/v1/shipments/tracking",
    summary="Import tracking numbers (CSV)",
    description="Header: `shipment_id` or `record_number`, `logistics_company`, "
    "`tracking_number`. Each line is applied on its own; the answer lists every line.",
    responses=problems(
        {
            # The whole file refused; a line's own problem is in its result.
            422: {
                "file_too_large": "the file is larger than 5 MB",
                "invalid_csv": "not UTF-8 CSV with the required header",
                "too_many_lines": "too many lines in one file",
            }
        }
    ),
)
async def import_shipment_tracking(
    principal: ShipmentWriter,
    idempotency: IdempotencyDep,
    session: SessionDep,
    clock: ClockDep,
    file: Annotated[UploadFile, File(description="UTF-8 CSV")],
) -> BatchResult:
    data = await file.read(MAX_UPLOAD_BYTES + 1)
    if len(data) > MAX_UPLOAD_BYTES:
        raise Unprocessable("The file is larger than 5 MB.", code="file_too_large")
    return await service.import_tracking(session, principal.tenant_id, data, clock.now())
