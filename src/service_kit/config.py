"""Settings base shared by the three services.

Infrastructure shared by every process (Redis, the JWT key, where the other services live)
is read from unprefixed variables (``REDIS_URL``, ``JWT_SECRET``, ``REWARD_URL`` ...); what a
single service owns (its database) is read with that service's prefix (``ACTIVITY_``, ...).
Every default is safe for local development.
"""

from __future__ import annotations

from pydantic import AliasChoices, Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

DEV_JWT_SECRET = "dev-only-secret-change-me-in-production-0123456789"
# An HMAC key shorter than this can be brute-forced from one token; RFC 7518 asks for at
# least the hash size (32 bytes for HS256).
MIN_JWT_SECRET_LENGTH = 32
# Set by ``activity-platform dev`` (and test harnesses) for their children: the development
# secret is then allowed.
DEV_MODE_VARIABLE = "ACTIVITY_PLATFORM_DEV"


def weak_secret(secret: str, algorithm: str) -> str | None:
    """Why ``secret`` must not sign tokens outside development, or None."""
    if not algorithm.upper().startswith("HS"):
        return None
    if not secret:
        return "JWT_SECRET is empty"
    if secret == DEV_JWT_SECRET:
        return "JWT_SECRET is the public development secret"
    if len(secret) < MIN_JWT_SECRET_LENGTH:
        return f"JWT_SECRET is shorter than {MIN_JWT_SECRET_LENGTH} characters"
    return None


ASYNC_DRIVER_SCHEME = "postgresql+asyncpg"
# Schemes people (and hosting providers) commonly write for PostgreSQL; the services talk to
# it through asyncpg whatever the URL says.
_PLAIN_SCHEMES = ("postgresql", "postgres")


def normalize_database_url(url: str) -> str:
    """``postgresql://…`` and ``postgres://…`` → ``postgresql+asyncpg://…``; others as given."""
    scheme, sep, rest = url.partition("://")
    if sep and scheme.lower() in _PLAIN_SCHEMES:
        return f"{ASYNC_DRIVER_SCHEME}://{rest}"
    return url


def _shared(name: str) -> AliasChoices:
    return AliasChoices(name, name.lower())


class ServiceSettings(BaseSettings):
    model_config = SettingsConfigDict(extra="ignore", populate_by_name=True)

    service_name: str = "service"
    database_url: str = "postgresql+asyncpg://postgres@127.0.0.1:5432/postgres"
    db_pool_size: int = 10
    # Jobs one worker runs at once. Its connection pool holds one per job plus the relay's
    # and the sweeps', so no job ever opens (and closes) a connection of its own.
    worker_max_jobs: int = 10
    # No request body may be larger (413 body_too_large); some routes set a smaller limit.
    max_body_bytes: int = 16 * 1024 * 1024
    # The worker serves its Prometheus metrics (jobs, outbox backlog, queue depth) on this
    # port (0: not served); the API serves its own at /metrics.
    worker_metrics_port: int = 0
    worker_metrics_host: str = "127.0.0.1"
    # How long opening one database connection may take before the request gets a 503.
    db_connect_timeout_seconds: float = 5.0

    redis_url: str = Field("redis://127.0.0.1:6379/0", validation_alias=_shared("REDIS_URL"))
    # Prefix of every Redis key the platform uses (queues): lets several stacks share a server.
    queue_prefix: str = Field("ap", validation_alias=_shared("QUEUE_PREFIX"))

    jwt_secret: str = Field(DEV_JWT_SECRET, validation_alias=_shared("JWT_SECRET"))
    jwt_algorithm: str = Field("HS256", validation_alias=_shared("JWT_ALGORITHM"))
    # Tokens of an identity provider: its key set (JWKS), the public-key algorithms accepted,
    # and the issuer and audience every token must name (when set). JWT_SECRET still signs
    # the services' own calls to each other.
    jwt_jwks_url: str = Field("", validation_alias=_shared("JWT_JWKS_URL"))
    jwt_algorithms: str = Field("RS256,ES256", validation_alias=_shared("JWT_ALGORITHMS"))
    jwt_issuer: str = Field("", validation_alias=_shared("JWT_ISSUER"))
    jwt_audience: str = Field("", validation_alias=_shared("JWT_AUDIENCE"))
    jwt_jwks_cache_seconds: int = Field(300, validation_alias=_shared("JWT_JWKS_CACHE_SECONDS"))

    activity_url: str = Field("http://127.0.0.1:8001", validation_alias=_shared("ACTIVITY_URL"))
    referral_url: str = Field("http://127.0.0.1:8002", validation_alias=_shared("REFERRAL_URL"))
    reward_url: str = Field("http://127.0.0.1:8003", validation_alias=_shared("REWARD_URL"))
    http_timeout_seconds: float = Field(5.0, validation_alias=_shared("HTTP_TIMEOUT_SECONDS"))

    # ``activity-platform dev`` sets ACTIVITY_PLATFORM_DEV=1: operator-set URLs may then be
    # plain http and local (see ``service_kit.outbound``).
    dev_mode: bool = Field(False, validation_alias=_shared(DEV_MODE_VARIABLE))
    # Host names and networks (CIDR) operator-set URLs may reach although they are not
    # public, comma-separated (e.g. a broker's systems on a private link).
    outbound_allowlist: str = Field("", validation_alias=_shared("OUTBOUND_ALLOWLIST"))
    # Writes (POST, PUT, PATCH, DELETE) one caller may make per window, by caller kind
    # (0 = unlimited: trusted back ends post events in bulk), and app logins (`app.login`
    # events) per app user; over the limit a request is a 429 with Retry-After.
    write_limit_user: int = Field(60, validation_alias=_shared("WRITE_LIMIT_USER"))
    write_limit_operator: int = Field(600, validation_alias=_shared("WRITE_LIMIT_OPERATOR"))
    write_limit_service: int = Field(0, validation_alias=_shared("WRITE_LIMIT_SERVICE"))
    login_limit: int = Field(10, validation_alias=_shared("LOGIN_LIMIT"))
    rate_limit_window_seconds: int = Field(60, validation_alias=_shared("RATE_LIMIT_WINDOW"))
    # Whether this deployment may hold sandbox tenants (their own clock an operator advances,
    # SPEC §6). Off by default and in production: no tenant can then be made a sandbox, and
    # no request or job even looks for a sandbox clock.
    sandbox_enabled: bool = Field(False, validation_alias=_shared("SANDBOX_ENABLED"))

    # How long an Idempotency-Key answers retries with its stored response; after that the
    # key may name a new request, and the worker's hourly ``idempotency.expire`` job deletes it.
    idempotency_key_retention_hours: int = Field(
        24, ge=1, validation_alias=_shared("IDEMPOTENCY_KEY_RETENTION_HOURS")
    )

    log_level: str = Field("INFO", validation_alias=_shared("LOG_LEVEL"))
    log_json: bool = Field(True, validation_alias=_shared("LOG_JSON"))
    # One line per request (method, path, status, duration, request id).
    access_log: bool = Field(True, validation_alias=_shared("ACCESS_LOG"))

    @field_validator("database_url", mode="after")
    @classmethod
    def _async_driver(cls, value: str) -> str:
        return normalize_database_url(value)

    # Outbox relay: woken by LISTEN/NOTIFY when a transaction with messages commits, else
    # polling; messages per pass and per job; the sweep re-sends messages whose job Redis
    # no longer knows, checking those sent at least ``grace`` seconds ago every ``sweep``.
    outbox_poll_seconds: float = 0.5
    outbox_batch_size: int = 1000
    outbox_max_per_job: int = 100
    outbox_sweep_seconds: float = 1.0
    outbox_grace_seconds: float = 2.0
