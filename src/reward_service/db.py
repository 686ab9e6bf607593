"""The reward database's declarative base, its outbox, Idempotency-Key and sandbox
clock tables."""

from sqlalchemy.orm import DeclarativeBase

from service_kit.db import new_metadata
from service_kit.idempotency import IdempotencyKeyMixin
from service_kit.outbox import OutboxMessageMixin
from service_kit.sandbox import SandboxClockMixin


class Base(DeclarativeBase):
    metadata = new_metadata()


class OutboxMessage(OutboxMessageMixin, Base):
    pass


class IdempotencyKey(IdempotencyKeyMixin, Base):
    pass


class SandboxClock(SandboxClockMixin, Base):
    pass
