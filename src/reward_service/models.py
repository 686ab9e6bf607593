"""Every table of the reward database, imported for alembic's metadata."""

from reward_service.db import Base, OutboxMessage
from reward_service.prizes.models import Prize
from reward_service.records.models import RecordTransition, RewardRecord
from reward_service.wallet.models import WalletCoupon

__all__ = ["Base", "OutboxMessage", "Prize", "RecordTransition", "RewardRecord", "WalletCoupon"]
