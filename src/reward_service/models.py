"""Every table of the reward database, imported for alembic's metadata."""

from reward_service.center.models import IssuanceBatch, ManualIssuance
from reward_service.db import Base, IdempotencyKey, OutboxMessage
from reward_service.payouts.models import CashPayout, PayoutEndpoint
from reward_service.prizes.models import Prize
from reward_service.profiles.models import UserProfile
from reward_service.records.models import RecordTransition, RewardRecord
from reward_service.shipments.models import Shipment
from reward_service.wallet.models import WalletCoupon

__all__ = [
    "Base",
    "CashPayout",
    "IdempotencyKey",
    "IssuanceBatch",
    "ManualIssuance",
    "OutboxMessage",
    "PayoutEndpoint",
    "Prize",
    "RecordTransition",
    "RewardRecord",
    "Shipment",
    "UserProfile",
    "WalletCoupon",
]
