"""The transactional outbox: facts and commands for other services are written in the same
transaction as the change that caused them; a relay in each worker delivers them as arq jobs
and keeps each message owed until its job has *finished*.

A message's life: unsent → sent (enqueued in a delivery: one arq job carrying the payloads
of up to ``max_per_job`` messages of one job name) → delivered (arq holds the job's result).
The sweep (``confirm_deliveries``) looks in Redis for every sent, undelivered message: a
result means delivered; a job that is queued or running means wait; nothing at all (Redis
lost its data, or the job's key expired) means the message goes back to unsent and is sent
again. A failed result (a poison message, or transient errors past arq's tries) also sends it
again, up to ``MAX_ATTEMPTS`` sends, after which it is kept as a dead letter with its error.
Consumers are idempotent by unique keys, so a second run of a message is harmless.

Guarantee: PostgreSQL is the source of truth until a message's effect is durable. Whatever
Redis loses, every owed message is enqueued again within ``grace + sweep interval``
(seconds) of Redis and a worker being back.
"""

from service_kit.outbox.loop import OutboxNotifier, Wakeup, relay_forever
from service_kit.outbox.models import OutboxMessageMixin
from service_kit.outbox.relay import (
    MAX_QUEUED_JOBS,
    RelayPass,
    plan_deliveries,
    relay_once,
    relay_pass,
)
from service_kit.outbox.repository import OutboxRepository
from service_kit.outbox.sweep import (
    MAX_ATTEMPTS,
    SweepReport,
    confirm_deliveries,
    count_backlog,
    delete_old_delivered,
)

__all__ = [
    "MAX_ATTEMPTS",
    "MAX_QUEUED_JOBS",
    "OutboxMessageMixin",
    "OutboxNotifier",
    "OutboxRepository",
    "RelayPass",
    "SweepReport",
    "Wakeup",
    "confirm_deliveries",
    "count_backlog",
    "delete_old_delivered",
    "plan_deliveries",
    "relay_forever",
    "relay_once",
    "relay_pass",
]
