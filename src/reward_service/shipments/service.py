"""Physical fulfilment (SPEC §3.6): the adapter that turns an issued physical prize into a
shipment, the user's address, and the operators' export / shipping / tracking steps."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from reward_service.exports import csv_line
from reward_service.prizes.models import Prize
from reward_service.prizes.repository import PrizeRepository
from reward_service.records.fulfilment import FulfilmentFailed
from reward_service.records.models import RewardRecord
from reward_service.records.repository import RecordRepository
from reward_service.records.texts import record_texts
from reward_service.shipments.models import Shipment
from reward_service.shipments.repository import ShipmentRepository
from reward_service.shipments.schemas import (
    AddressWrite,
    BatchResult,
    LineResult,
    ShipmentRead,
    ShipmentStatus,
    TrackingWrite,
)
from service_kit.csvfile import read_csv
from service_kit.errors import Conflict, NotFound, Unprocessable
from service_kit.i18n import Served

S = ShipmentStatus
ADDRESS_EDITABLE = (S.awaiting_address.value, S.ready.value)
TRACKABLE = (S.ready.value, S.shipping.value, S.shipped.value)
MAX_IMPORT_LINES = 10_000


async def ship_physical_prize(
    session: AsyncSession, record: RewardRecord, prize: Prize, now: datetime
) -> None:
    """Take one item from stock and open the record's shipment, in the caller's transaction.

    Idempotent per record: when the shipment exists the stock was already taken (both are
    written in the same transaction), so nothing happens. Out of stock is a definite failure.
    """
    repo = ShipmentRepository.from_session(session)
    if await repo.get_by_record(record.id) is not None:
        return
    if not await PrizeRepository.from_session(session).take_one_from_stock(prize.id):
        raise FulfilmentFailed("out_of_stock")
    await repo.insert_if_absent(
        {
            "id": uuid.uuid4(),
            "tenant_id": record.tenant_id,
            "record_id": record.id,
            "record_number": record.number,
            "activity_code": record.activity_code,
            "user_id": record.user_id,
            "prize_id": prize.id,
            "prize_name": prize.name,
            "status": S.awaiting_address.value,
            "created_at": now,
            "updated_at": now,
        }
    )


async def set_address(
    session: AsyncSession,
    tenant_id: str,
    user_id: str,
    shipment_id: uuid.UUID,
    body: AddressWrite,
    now: datetime,
) -> Shipment:
    repo = ShipmentRepository.from_session(session)
    updated = await repo.update_if_status(
        tenant_id,
        shipment_id,
        ADDRESS_EDITABLE,
        {
            **body.model_dump(),
            "status": S.ready.value,
            "address_updated_at": now,
            "updated_at": now,
        },
        user_id=user_id,
    )
    if updated is not None:
        return updated
    current = await repo.get(tenant_id, shipment_id)
    if current is None or current.user_id != user_id:
        raise NotFound(f"No shipment {shipment_id} of yours.", code="shipment_not_found")
    raise Conflict(
        f"The shipment is {current.status}; the address can no longer be changed.",
        code="shipment_address_locked",
        shipment_status=current.status,
    )


async def get_shipment(session: AsyncSession, tenant_id: str, shipment_id: uuid.UUID) -> Shipment:
    shipment = await ShipmentRepository.from_session(session).get(tenant_id, shipment_id)
    if shipment is None:
        raise NotFound(f"No shipment {shipment_id} in this tenant.", code="shipment_not_found")
    return shipment


async def mark_shipping(
    session: AsyncSession, tenant_id: str, shipment_ids: list[uuid.UUID], now: datetime
) -> BatchResult:
    """Batch "shipping" (after export): from then on the user cannot change the address.
    Already shipping counts as success, so a repeated request is harmless."""
    repo = ShipmentRepository.from_session(session)
    results: list[LineResult] = []
    for line, shipment_id in enumerate(shipment_ids, start=1):
        ref = str(shipment_id)
        moved = await repo.update_if_status(
            tenant_id,
            shipment_id,
            (S.ready.value,),
            {"status": S.shipping.value, "shipping_at": now, "updated_at": now},
        )
        if moved is not None:
            results.append(LineResult(line=line, ref=ref, ok=True, shipment_id=shipment_id))
            continue
        current = await repo.get(tenant_id, shipment_id)
        if current is None:
            results.append(LineResult(line=line, ref=ref, ok=False, code="shipment_not_found"))
        elif current.status == S.shipping.value:
            results.append(LineResult(line=line, ref=ref, ok=True, shipment_id=shipment_id))
        elif current.status == S.awaiting_address.value:
            results.append(
                LineResult(
                    line=line,
                    ref=ref,
                    ok=False,
                    code="address_missing",
                    detail="The user has not given a shipping address yet.",
                    shipment_id=shipment_id,
                )
            )
        else:
            results.append(
                LineResult(
                    line=line,
                    ref=ref,
                    ok=False,
                    code="already_shipped",
                    detail="The item is already shipped.",
                    shipment_id=shipment_id,
                )
            )
    return _batch(results)


async def set_tracking(
    session: AsyncSession,
    tenant_id: str,
    shipment_id: uuid.UUID,
    body: TrackingWrite,
    now: datetime,
) -> Shipment:
    """Company + tracking number: the item is shipped (a correction of either is allowed)."""
    repo = ShipmentRepository.from_session(session)
    current = await get_shipment(session, tenant_id, shipment_id)
    values = {
        "logistics_company": body.logistics_company,
        "tracking_number": body.tracking_number,
        "status": S.shipped.value,
        "shipped_at": current.shipped_at or now,
        "shipping_at": current.shipping_at or now,
        "updated_at": now,
    }
    updated = await repo.update_if_status(tenant_id, shipment_id, TRACKABLE, values)
    if updated is None:
        raise Conflict(
            "The user has not given a shipping address yet.",
            code="address_missing",
            shipment_status=current.status,
        )
    return updated


def _batch(results: list[LineResult]) -> BatchResult:
    ok = sum(1 for r in results if r.ok)
    return BatchResult(succeeded=ok, failed=len(results) - ok, results=results)


def _column(row: dict[str, str], *names: str) -> str:
    for name in names:
        value = row.get(name)
        if value and value.strip():
            return value.strip()
    return ""


async def import_tracking(
    session: AsyncSession, tenant_id: str, data: bytes, now: datetime
) -> BatchResult:
    """CSV with a header: ``shipment_id`` or ``record_number``, ``logistics_company``,
    ``tracking_number``. Every line is tried on its own and reported; bad lines change
    nothing (each good line is applied)."""
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise Unprocessable("The file must be UTF-8 CSV.", code="invalid_csv") from exc
    rows = read_csv(text)
    header = [name.strip() for name in rows[0]] if rows else []
    fields = set(header)
    if (
        not ({"shipment_id", "record_number"} & fields)
        or not {
            "logistics_company",
            "tracking_number",
        }
        <= fields
    ):
        raise Unprocessable(
            "The header must name shipment_id or record_number, logistics_company and "
            "tracking_number.",
            code="invalid_csv",
        )
    repo = ShipmentRepository.from_session(session)
    results: list[LineResult] = []
    data_rows = [r for r in rows[1:] if r]  # blank lines are skipped, as csv.DictReader did
    if len(data_rows) > MAX_IMPORT_LINES:
        raise Unprocessable(f"At most {MAX_IMPORT_LINES} lines per file.", code="too_many_lines")
    for line, raw in enumerate(data_rows, start=1):
        row = {name: raw[i] if i < len(raw) else "" for i, name in enumerate(header)}
        ref_id = _column(row, "shipment_id")
        number = _column(row, "record_number")
        ref = ref_id or number
        company = _column(row, "logistics_company")
        tracking = _column(row, "tracking_number")
        if not ref or not company or not tracking:
            results.append(
                LineResult(
                    line=line,
                    ref=ref,
                    ok=False,
                    code="missing_field",
                    detail="Each line needs a shipment id or record number, a logistics "
                    "company and a tracking number.",
                )
            )
            continue
        if len(company) > 100 or len(tracking) > 100:
            results.append(LineResult(line=line, ref=ref, ok=False, code="field_too_long"))
            continue
        shipment: Shipment | None = None
        if ref_id:
            try:
                shipment = await repo.get(tenant_id, uuid.UUID(ref_id))
            except ValueError:
                shipment = None
        else:
            shipment = await repo.get_by_number(tenant_id, number)
        if shipment is None:
            results.append(LineResult(line=line, ref=ref, ok=False, code="shipment_not_found"))
            continue
        try:
            await set_tracking(
                session,
                tenant_id,
                shipment.id,
                TrackingWrite(logistics_company=company, tracking_number=tracking),
                now,
            )
        except Conflict as exc:
            results.append(
                LineResult(
                    line=line,
                    ref=ref,
                    ok=False,
                    code=exc.code,
                    detail=exc.detail,
                    shipment_id=shipment.id,
                )
            )
            continue
        results.append(LineResult(line=line, ref=ref, ok=True, shipment_id=shipment.id))
    return _batch(results)


EXPORT_COLUMNS = [
    "shipment_id",
    "record_number",
    "activity_code",
    "user_id",
    "prize_name",
    "status",
    "recipient_name",
    "phone",
    "country",
    "province",
    "city",
    "district",
    "address_line",
    "postal_code",
    "logistics_company",
    "tracking_number",
]


def export_csv(shipments: list[Shipment]) -> str:
    # Every column is the shipment attribute of the same name, but for its id.
    attributes = ["id", *EXPORT_COLUMNS[1:]]
    lines = ["\ufeff" + csv_line(EXPORT_COLUMNS)]
    lines += [csv_line([getattr(s, a) for a in attributes]) for s in shipments]
    return "".join(lines)


async def read_for_user(
    session: AsyncSession, shipments: Sequence[Shipment], served: Served
) -> list[ShipmentRead]:
    """Shipments as the app shows them: prize title and activity name in the user's
    language, from the records they fulfil."""
    records = await RecordRepository.from_session(session).by_ids(
        shipments[0].tenant_id if shipments else "", [s.record_id for s in shipments]
    )
    reads = []
    for shipment in shipments:
        read = ShipmentRead.model_validate(shipment)
        record = records.get(shipment.record_id)
        if record is not None:
            texts = record_texts(record, served)
            read.prize_name = texts.prize_name or read.prize_name
            read.prize_name_language = texts.prize_name_language
            read.activity_name = texts.activity_name
            read.activity_name_language = texts.activity_name_language
        reads.append(read)
    return reads
