from pydantic_settings import SettingsConfigDict

from service_kit.config import ServiceSettings


class ReferralSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="REFERRAL_", extra="ignore", populate_by_name=True)

    service_name: str = "referral"
    database_url: str = "postgresql+asyncpg://postgres@127.0.0.1:5432/referral"
