"""Asks activity_service whether a user completed a node (HTTP: a question).

A node freezes the moment its completing event is acknowledged (SPEC §2.2), which is before
any job has told this service about it: so before changing the inviter of a node, the
referral service asks the event log itself. If that cannot be known, nothing is changed."""

from __future__ import annotations

from datetime import datetime
from typing import Protocol
from urllib.parse import quote

from contracts.payloads import Node, NodeCompletions
from service_kit.errors import UpstreamUnavailable
from service_kit.http import ServiceClient


class CompletionSource(Protocol):
    async def completed_at(self, tenant_id: str, user_id: str, node: Node) -> datetime | None:
        """When the user completed ``node`` by the events stored so far, or None."""
        ...


class ActivityCompletions:
    """The activity service's `GET /v1/users/{user_id}/node-completions`."""

    def __init__(self, http: ServiceClient, activity_url: str) -> None:
        self.http = http
        self.activity_url = activity_url

    async def completed_at(self, tenant_id: str, user_id: str, node: Node) -> datetime | None:
        unknown = (
            f"Whether {user_id} completed the {node.value} node cannot be known now (the "
            "activity service did not answer); nothing was changed, try again."
        )
        try:
            response = await self.http.get(
                self.activity_url,
                f"/v1/users/{quote(user_id, safe='')}/node-completions",
                tenant_id=tenant_id,
            )
        except UpstreamUnavailable as exc:
            raise UpstreamUnavailable(unknown, code="completion_unknown") from exc
        if response.status_code != 200:
            raise UpstreamUnavailable(unknown, code="completion_unknown")
        facts = NodeCompletions.model_validate(response.json())
        return next((f.completed_at for f in facts.nodes if f.node is node), None)
