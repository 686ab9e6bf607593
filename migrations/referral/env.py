"""Alembic environment of the referral database."""

from referral_service.models import Base
from service_kit.migrations import run_env

run_env(Base.metadata)
