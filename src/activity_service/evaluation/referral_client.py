"""Asks referral_service who an invitee's effective inviter is (HTTP: a question)."""

from __future__ import annotations

from contracts.payloads import Node
from service_kit.errors import UpstreamUnavailable
from service_kit.http import ServiceClient


class ReferralUnavailable(Exception):
    """referral_service could not answer now: transient, the job is retried later."""


class ReferralLookup:
    """Effective inviters per node, cached for the duration of one job."""

    def __init__(self, http: ServiceClient, referral_url: str) -> None:
        self.http = http
        self.referral_url = referral_url
        self._cache: dict[tuple[str, str], dict[str, str | None]] = {}

    async def _nodes(self, tenant_id: str, invitee_id: str) -> dict[str, str | None]:
        cached = self._cache.get((tenant_id, invitee_id))
        if cached is not None:
            return cached
        try:
            response = await self.http.get(
                self.referral_url, f"/v1/bindings/{invitee_id}", tenant_id=tenant_id
            )
        except UpstreamUnavailable as exc:
            raise ReferralUnavailable(str(exc)) from exc
        if response.status_code == 404:
            nodes: dict[str, str | None] = {}
        elif response.status_code == 200:
            nodes = {
                item["node"]: item.get("effective_inviter_id")
                for item in response.json().get("nodes", [])
            }
        else:
            raise ReferralUnavailable(
                f"referral_service answered {response.status_code} for {invitee_id}"
            )
        self._cache[(tenant_id, invitee_id)] = nodes
        return nodes

    async def effective_inviter(self, tenant_id: str, invitee_id: str, node: Node) -> str | None:
        """The node's inviter, else the registration inviter (SPEC §1.7)."""
        nodes = await self._nodes(tenant_id, invitee_id)
        return nodes.get(node.value) or nodes.get(Node.registration.value)
