from pydantic_settings import SettingsConfigDict

from service_kit.config import ServiceSettings


class ActivitySettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="ACTIVITY_", extra="ignore", populate_by_name=True)

    service_name: str = "activity"
    database_url: str = "postgresql+asyncpg://postgres@127.0.0.1:5432/activity"
