"""The reward database's declarative base, its outbox and Idempotency-Key tables."""

from sqlalchemy.orm import DeclarativeBase

from service_kit.db import new_metadata
from service_kit.idempotency import IdempotencyKeyMixin
from service_kit.outbox import OutboxMessageMixin


class Base(DeclarativeBase):
    metadata = new_metadata()


class OutboxMessage(OutboxMessageMixin, Base):
    pass


class IdempotencyKey(IdempotencyKeyMixin, Base):
    pass
