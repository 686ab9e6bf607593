from pydantic_settings import SettingsConfigDict

from service_kit.config import ServiceSettings


class ReferralSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="REFERRAL_", extra="ignore", populate_by_name=True)

    service_name: str = "referral"
    database_url: str = "postgresql+asyncpg://postgres@127.0.0.1:5432/referral"

    # Grace after registration during which a user may still enter an invite code, for
    # tenants that did not set their own (PUT /v1/settings).
    registration_bind_grace_hours: int = 72
    # Wrong invite codes per caller (tenant + sub) allowed in a fixed window before lookups
    # are refused with 429: 30^8 codes cannot be enumerated at 10 guesses per 10 minutes.
    code_failure_limit: int = 10
    code_failure_window_seconds: int = 600
    # A trusted back end resolves codes for many end users, typos included: same window,
    # a higher ceiling, still far too low to enumerate the code space.
    code_failure_limit_service: int = 300
