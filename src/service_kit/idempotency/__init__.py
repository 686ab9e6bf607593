"""Idempotency-Key on every creating POST: one stored response per tenant, caller and key.

A request carrying ``Idempotency-Key`` claims the key in its own transaction before the
endpoint acts (``IdempotencyDep``); the route (``service_kit.routing.ServiceRoute``) stores
the 2xx response in the same transaction, so the effect and the answer commit together or
not at all. A retry with the same key and the same request gets the stored response again;
the same key with another request is refused (422 ``idempotency_key_reused``). A concurrent
retry waits on the first request's uncommitted claim and then replays what it answered.
"""

from service_kit.idempotency.dependency import (
    HEADER,
    REPLAYED_HEADER,
    IdempotencyDep,
    IdempotentReplay,
    install_replay_handler,
)
from service_kit.idempotency.models import IdempotencyKeyMixin

__all__ = [
    "HEADER",
    "REPLAYED_HEADER",
    "IdempotencyDep",
    "IdempotencyKeyMixin",
    "IdempotentReplay",
    "install_replay_handler",
]
