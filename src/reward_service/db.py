"""The reward database's declarative base and its outbox table."""

from sqlalchemy.orm import DeclarativeBase

from service_kit.db import new_metadata
from service_kit.outbox import OutboxMessageMixin


class Base(DeclarativeBase):
    metadata = new_metadata()


class OutboxMessage(OutboxMessageMixin, Base):
    pass
