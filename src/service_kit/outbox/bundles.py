"""Bundled messages: one outbox row carrying the items of many messages of one job name,
for producers that write many at once (a batch of events), so the outbox, the relay and
the queue pay per bundle what they paid per message.

A consumer reads a bundle as its items (``message_job(..., unpack=items_of)``,
``chunk_job(..., unpack=items_of)``): its budget, chunks and ``pending`` count items, and a
lone message is a bundle of one. The relay weighs a bundle by its items, so a delivery
carries no more items than it carried messages before (``relay.plan_deliveries``): a
consumer without a time budget keeps the bound its deliveries had."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from service_kit.correlation import META_KEY

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
