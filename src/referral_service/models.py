"""Every table of the referral database, imported for alembic's metadata."""

from referral_service.bindings.models import Binding, BindingHistory, NodeCompletion
from referral_service.db import Base, IdempotencyKey, OutboxMessage
from referral_service.invite_codes.models import InviteCode
from referral_service.tenant_settings.models import TenantSettings

__all__ = [
    "Base",
    "Binding",
    "BindingHistory",
    "IdempotencyKey",
    "InviteCode",
    "NodeCompletion",
    "OutboxMessage",
    "TenantSettings",
]
