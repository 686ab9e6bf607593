"""Coupons in the user's wallet (SPEC §3.5) and the coupon fulfilment adapter."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from reward_service.prizes.models import Prize
from reward_service.records.models import RewardRecord
from reward_service.records.repository import RecordRepository
from reward_service.records.texts import record_texts
from reward_service.wallet import rules
from reward_service.wallet.models import WalletCoupon
from reward_service.wallet.repository import WalletRepository
from reward_service.wallet.rules import new_coupon_code
from reward_service.wallet.schemas import CouponRead, CouponStatus
from service_kit.errors import Conflict, NotFound
from service_kit.i18n import DEFAULT_LANGUAGE, Served


def coupon_window(prize: Prize, issued_at: datetime) -> tuple[datetime | None, datetime | None]:
    validity = prize.details.get("validity") or {}
    if validity.get("days_from_issue"):
        return issued_at, issued_at + timedelta(days=int(validity["days_from_issue"]))
    start, end = validity.get("valid_from"), validity.get("valid_until")
    return (
        datetime.fromisoformat(start) if start else None,
        datetime.fromisoformat(end) if end else None,
    )


def coupon_entry(
    tenant_id: str, user_id: str, record_id: uuid.UUID, prize: Prize, now: datetime
) -> dict[str, Any]:
    """The wallet entry of a record's coupon, issued ``now`` (its id is the table's
    default)."""
    valid_from, expires_at = coupon_window(prize, now)
    return {
        "tenant_id": tenant_id,
        "user_id": user_id,
        "record_id": record_id,
        "code": new_coupon_code(),
        "prize_id": prize.id,
        "coupon_type": prize.details.get("coupon_type", "other"),
        "title": prize.details.get("title") or {"en": prize.name},
        "instructions": prize.details.get("instructions", ""),
        "status": "unused",
        "valid_from": valid_from,
        "expires_at": expires_at,
    }


async def put_coupon_in_wallet(
    session: AsyncSession, record: RewardRecord, prize: Prize, now: datetime
) -> None:
    """The coupon adapter: idempotent per record (a redelivered issuance adds nothing)."""
    entry = coupon_entry(record.tenant_id, record.user_id, record.id, prize, now)
    await WalletRepository.from_session(session).put_if_absent(entry)


async def insert_wallet_entries(session: AsyncSession, entries: list[dict[str, Any]]) -> None:
    """The coupons of records moved to Issued in this same transaction, which cannot have
    their entry yet (nothing to check): one statement for them all."""
    await WalletRepository.from_session(session).insert_new(entries)


def effective_status(coupon: WalletCoupon, now: datetime) -> CouponStatus:
    return rules.effective_status(coupon.status, coupon.expires_at, now)


async def read_coupons(
    session: AsyncSession, coupons: Sequence[WalletCoupon], now: datetime, served: Served
) -> list[CouponRead]:
    """Coupons as a reader sees them: title and activity name in their language."""
    records = await RecordRepository.from_session(session).by_ids(
        coupons[0].tenant_id if coupons else "", [c.record_id for c in coupons]
    )
    return [to_read(c, now, served, records.get(c.record_id)) for c in coupons]


def to_read(
    coupon: WalletCoupon,
    now: datetime,
    served: Served | None = None,
    record: RewardRecord | None = None,
) -> CouponRead:
    served = served or Served(DEFAULT_LANGUAGE)
    title_text, title_language = served.text(coupon.title)
    texts = record_texts(record, served) if record is not None else None
    return CouponRead(
        title_text=title_text,
        title_language=title_language,
        activity_code=record.activity_code if record is not None else None,
        activity_name=texts.activity_name if texts else None,
        activity_name_language=texts.activity_name_language if texts else None,
        id=coupon.id,
        user_id=coupon.user_id,
        record_id=coupon.record_id,
        code=coupon.code,
        prize_id=coupon.prize_id,
        coupon_type=coupon.coupon_type,
        title=coupon.title,
        instructions=coupon.instructions,
        status=effective_status(coupon, now),
        valid_from=coupon.valid_from,
        expires_at=coupon.expires_at,
        used_at=coupon.used_at,
        used_by=coupon.used_by,
        used_reference=coupon.used_reference,
        created_at=coupon.created_at,
    )


async def use_my_coupon(
    session: AsyncSession,
    tenant_id: str,
    user_id: str,
    coupon_id: uuid.UUID,
    actor: str,
    reference: str | None,
    now: datetime,
) -> WalletCoupon:
    """The app user marks one of their own coupons used."""
    coupon = await WalletRepository.from_session(session).get_for_user(
        tenant_id, user_id, coupon_id
    )
    if coupon is None:
        raise NotFound(f"No coupon {coupon_id} in your wallet.", code="coupon_not_found")
    return await use_coupon(session, coupon, actor, reference, now)


async def find_coupon(
    session: AsyncSession,
    tenant_id: str,
    *,
    coupon_id: uuid.UUID | None = None,
    code: str | None = None,
) -> WalletCoupon:
    """A coupon of the tenant by id or by redemption code; 404 when there is none (another
    tenant's coupon included)."""
    repo = WalletRepository.from_session(session)
    if coupon_id is not None:
        coupon = await repo.get(tenant_id, coupon_id)
        missing = f"No coupon {coupon_id} in this tenant."
    else:
        coupon = await repo.get_by_code(tenant_id, rules.normalize_code(code or ""))
        missing = "No coupon with this code in this tenant."
    if coupon is None:
        raise NotFound(missing, code="coupon_not_found")
    return coupon


async def use_coupon(
    session: AsyncSession,
    coupon: WalletCoupon,
    actor: str,
    reference: str | None,
    now: datetime,
) -> WalletCoupon:
    """unused → used, idempotent for its caller (see wallet/rules.py): a replay answers with
    the coupon as it was used; anything else on a used, expired or not yet valid coupon is a
    409 that changes nothing."""
    repo = WalletRepository.from_session(session)
    for _ in range(2):
        decision = rules.decide_use(
            stored_status=coupon.status,
            valid_from=coupon.valid_from,
            expires_at=coupon.expires_at,
            used_by=coupon.used_by,
            used_reference=coupon.used_reference,
            caller=actor,
            reference=reference,
            now=now,
        )
        if decision.replay:
            return coupon
        if decision.refusal is not None:
            raise _refused(decision.refusal, coupon)
        used = await repo.mark_used(coupon.id, now, actor, reference)
        if used is not None:
            return used
        # Another use won the race: judge again against what it wrote (it may have been
        # this same request sent twice, which is then a replay).
        fresh = await repo.get(coupon.tenant_id, coupon.id)
        if fresh is None:
            break
        coupon = fresh
    raise _refused("coupon_used", coupon)


_REFUSALS = {
    "coupon_used": "The coupon has already been used.",
    "coupon_expired": "The coupon's validity has ended.",
    "coupon_not_yet_valid": "The coupon is not valid yet.",
}


def _refused(code: str, coupon: WalletCoupon) -> Conflict:
    return Conflict(
        _REFUSALS.get(code, "The coupon cannot be used."),
        code=code,
        coupon_id=str(coupon.id),
        used_at=coupon.used_at.isoformat() if coupon.used_at else None,
        valid_from=coupon.valid_from.isoformat() if coupon.valid_from else None,
        expires_at=coupon.expires_at.isoformat() if coupon.expires_at else None,
    )
