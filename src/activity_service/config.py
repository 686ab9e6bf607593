from pydantic import Field
from pydantic_settings import SettingsConfigDict

from service_kit.config import ServiceSettings


class ActivitySettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="ACTIVITY_", extra="ignore", populate_by_name=True)

    service_name: str = "activity"
    database_url: str = "postgresql+asyncpg://postgres@127.0.0.1:5432/activity"

    # History kept in the monthly partitions of ``events``: the current month and this many
    # before it (0: everything kept). Older months are dropped whole by the worker's
    # ``events.history`` cron job, and their event ids forgotten (see docs/architecture.md
    # for what explain and stats keep).
    history_retention_months: int = Field(0, ge=0)
    # Months of partitions created ahead of time.
    history_partitions_ahead: int = Field(3, ge=1, le=24)
