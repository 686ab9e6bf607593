from pydantic_settings import SettingsConfigDict

from service_kit.config import ServiceSettings


class RewardSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="REWARD_", extra="ignore", populate_by_name=True)

    service_name: str = "reward"
    database_url: str = "postgresql+asyncpg://postgres@127.0.0.1:5432/reward"

    # Cash (SPEC §3.7): the cash system used by tenants that configured none of their own.
    default_cash_endpoint_url: str | None = None
    # The key of the signature of calls to that default cash system (``service_kit.signing``);
    # outside dev, ``serve`` and ``worker`` refuse to start with a default URL and no key.
    default_cash_signing_secret: str = ""
    cash_timeout_seconds: float = 5.0
    # First retry delay of a payout after a transient error; doubled per try, capped at 30 s.
    cash_retry_base_seconds: float = 1.0

    # Issuance jobs mostly wait on other services: more of them at once.
    worker_max_jobs: int = 20
    # Issuance jobs are short; a killed worker's job is re-run by arq after this + 10 s.
    job_timeout_seconds: float = 10.0
    # The reconciler: a record left in Issuing longer than this is re-driven.
    issuing_deadline_seconds: float = 30.0
    reconcile_interval_seconds: int = 10
    reconcile_batch_size: int = 500
    # A lock-up whose check could not be answered (activity service down) is asked again after.
    lock_recheck_seconds: float = 300.0
