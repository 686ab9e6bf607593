"""Alembic environment of the reward database."""

from reward_service.models import Base
from service_kit.migrations import run_env

run_env(Base.metadata)
