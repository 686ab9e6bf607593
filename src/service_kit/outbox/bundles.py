"""Bundled messages: one outbox row carrying the items of many messages of one job name,
for producers that write many at once (a batch of events), so the outbox, the relay and
the queue pay per bundle what they paid per message.

A consumer reads a bundle as its items (``message_job(..., unpack=items_of)``,
``chunk_job(..., unpack=items_of)``): its budget, chunks and ``pending`` count items, and a
lone message is a bundle of one. The relay weighs a bundle by its items, so a delivery
carries no more items than it carried messages before (``relay.plan_deliveries``): a
consumer without a time budget keeps the bound its deliveries had."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

from sqlalchemy import event
from sqlalchemy.orm import Session

from service_kit.correlation import META_KEY, stamp
from service_kit.outbox.models import OutboxMessageMixin

BUNDLE_ITEMS = "items"


def bundle(items: Sequence[dict[str, Any]], tenant_id: str) -> dict[str, Any]:
    """The payload of one message carrying ``items``, all of ``tenant_id`` (the outbox's
    per-tenant questions — a sandbox advance waiting for a tenant's work — read it)."""
    return {"tenant_id": tenant_id, BUNDLE_ITEMS: list(items)}


def items_of(payload: dict[str, Any]) -> list[dict[str, Any]]:
    """The items a message carries: a bundle's (each with the bundle's ``_meta``, so its
    lines carry the request that caused it), or the message itself."""
    items = payload.get(BUNDLE_ITEMS)
    if not isinstance(items, list):
        return [payload]
    meta = payload.get(META_KEY)
    if meta is None:
        return items
    return [item if META_KEY in item else {**item, META_KEY: meta} for item in items]


def weight(payload: Any) -> int:
    """How many items a message counts for in a delivery."""
    if isinstance(payload, dict):
        items = payload.get(BUNDLE_ITEMS)
        if isinstance(items, list):
            return max(1, len(items))
    return 1


# --------------------------------------------------------------------------- at flush

# Job names whose messages leave a unit of work bundled (``bundle_when_flushed``).
_BUNDLED_AT_FLUSH: set[str] = set()
# Items per bundle of a unit of work's messages (``bundle_when_flushed``, ``bundled``): a
# delivery of a hundred items is four bundles.
MAX_BUNDLED_ITEMS = 25


def bundled(payloads: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """The payloads of messages of one job name as the messages to write: bundles of up to
    ``MAX_BUNDLED_ITEMS`` per tenant, in their order; a lone one stays itself. For a
    producer that writes a unit of work's messages by one statement (as
    ``bundle_when_flushed`` does for those written one by one)."""
    by_tenant: dict[str, list[dict[str, Any]]] = {}
    for payload in payloads:
        by_tenant.setdefault(payload["tenant_id"], []).append(payload)
    messages: list[dict[str, Any]] = []
    for tenant_id, items in by_tenant.items():
        for start in range(0, len(items), MAX_BUNDLED_ITEMS):
            chunk = items[start : start + MAX_BUNDLED_ITEMS]
            messages.append(chunk[0] if len(chunk) == 1 else bundle(chunk, tenant_id))
    return messages


def bundle_when_flushed(*job_names: str) -> None:
    """The messages of ``job_names`` a unit of work writes leave bundled: at each flush,
    the new ones of one table, queue, job name and tenant become bundles of up to
    ``MAX_BUNDLED_ITEMS`` items (each keeping its own request stamp), so the
    outbox, the relay and the queue pay per bundle what they paid per message. For jobs
    whose consumers read a bundle as its items (``unpack=items_of``): a consumer must
    read bundles before its producers write them."""
    _BUNDLED_AT_FLUSH.update(job_names)


@event.listens_for(Session, "before_flush")
def _bundle_new_messages(session: Session, flush_context: Any, instances: Any) -> None:
    if not _BUNDLED_AT_FLUSH:
        return
    groups: dict[tuple[type, str, str, str], list[Any]] = {}
    for obj in session.new:  # in the order they were added
        if (
            isinstance(obj, OutboxMessageMixin)
            and obj.job_name in _BUNDLED_AT_FLUSH
            and isinstance(tenant_id := obj.payload.get("tenant_id"), str)
            and BUNDLE_ITEMS not in obj.payload
        ):
            groups.setdefault((type(obj), obj.queue, obj.job_name, tenant_id), []).append(obj)
    for (model, queue, job_name, tenant_id), messages in groups.items():
        if len(messages) < 2:
            continue
        for start in range(0, len(messages), MAX_BUNDLED_ITEMS):
            chunk = messages[start : start + MAX_BUNDLED_ITEMS]
            for message in chunk:
                session.expunge(message)
            message_id = uuid.uuid4()
            session.add(
                model(
                    id=message_id,
                    queue=queue,
                    job_name=job_name,
                    job_id=f"{chunk[0].job_id}+{len(chunk)}",
                    payload=stamp(bundle([m.payload for m in chunk], tenant_id)),
                    attempts=0,
                )
            )
