from __future__ import annotations

from datetime import datetime

from sqlalchemy import DateTime, Index, String
from sqlalchemy.orm import Mapped, mapped_column

from reward_service.db import Base


class UserProfile(Base):
    """What business events said about a user that the reward views need (SPEC §3.2, §3.5):
    the phone operators look coupons up by, and the certified enterprise of the winners
    list. Fed by ``reward.user_profile`` from the activity service; each field keeps the
    newest fact (by the event's time), so late or replayed events never undo a newer one."""

    __tablename__ = "user_profiles"
    __table_args__ = (Index("ix_user_profiles_tenant_phone", "tenant_id", "phone"),)

    tenant_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    user_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    # Digits only (profiles/rules.py), as it is searched.
    phone: Mapped[str | None] = mapped_column(String(32))
    phone_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    enterprise_id: Mapped[str | None] = mapped_column(String(128))
    enterprise_name: Mapped[str | None] = mapped_column(String(200))
    certified_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
