"""Coupons in the user's wallet (SPEC §3.5) and the coupon fulfilment adapter."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from reward_service.prizes.models import Prize
from reward_service.records.models import RewardRecord
from reward_service.wallet.models import WalletCoupon
from reward_service.wallet.repository import WalletRepository
from reward_service.wallet.schemas import CouponRead, CouponStatus
from service_kit.errors import Conflict, NotFound


def coupon_window(prize: Prize, issued_at: datetime) -> tuple[datetime | None, datetime | None]:
    validity = prize.details.get("validity") or {}
    if validity.get("days_from_issue"):
        return issued_at, issued_at + timedelta(days=int(validity["days_from_issue"]))
    start, end = validity.get("valid_from"), validity.get("valid_until")
    return (
        datetime.fromisoformat(start) if start else None,
        datetime.fromisoformat(end) if end else None,
    )


def _entry(record: RewardRecord, prize: Prize, now: datetime) -> dict[str, object]:
    valid_from, expires_at = coupon_window(prize, now)
    return {
        "id": uuid.uuid4(),
        "tenant_id": record.tenant_id,
        "user_id": record.user_id,
        "record_id": record.id,
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
    await WalletRepository.from_session(session).put_if_absent(_entry(record, prize, now))


def put_coupon_of_new_record(
    session: AsyncSession, record: RewardRecord, prize: Prize, now: datetime
) -> None:
    """The coupon of a record inserted in this same transaction (nothing to check)."""
    WalletRepository.from_session(session).add_for_new_record(_entry(record, prize, now))


def effective_status(coupon: WalletCoupon, now: datetime) -> CouponStatus:
    if coupon.status == "used":
        return CouponStatus.used
    if coupon.expires_at is not None and coupon.expires_at <= now:
        return CouponStatus.expired
    return CouponStatus.unused


def to_read(coupon: WalletCoupon, now: datetime) -> CouponRead:
    return CouponRead(
        id=coupon.id,
        user_id=coupon.user_id,
        record_id=coupon.record_id,
        prize_id=coupon.prize_id,
        coupon_type=coupon.coupon_type,
        title=coupon.title,
        instructions=coupon.instructions,
        status=effective_status(coupon, now),
        valid_from=coupon.valid_from,
        expires_at=coupon.expires_at,
        used_at=coupon.used_at,
        created_at=coupon.created_at,
    )


async def use_coupon(
    session: AsyncSession, tenant_id: str, user_id: str, coupon_id: uuid.UUID, now: datetime
) -> WalletCoupon:
    repo = WalletRepository.from_session(session)
    coupon = await repo.get_for_user(tenant_id, user_id, coupon_id)
    if coupon is None:
        raise NotFound(f"No coupon {coupon_id} in your wallet.", code="coupon_not_found")
    status = effective_status(coupon, now)
    if status is not CouponStatus.unused:
        raise Conflict(f"The coupon is {status.value}.", code=f"coupon_{status.value}")
    used = await repo.mark_used(coupon_id, now)
    if used is None:
        raise Conflict("The coupon is used.", code="coupon_used")
    return used
