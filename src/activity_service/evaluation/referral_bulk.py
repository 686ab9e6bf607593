"""Asks referral_service for the effective inviters of many invitees at once (HTTP: a
question), as the dry-run of a referral activity needs them for thousands of invitees."""

from __future__ import annotations

import asyncio

from service_kit.errors import UpstreamUnavailable
from service_kit.http import ServiceClient

BATCH = 1000  # invitees per question (the endpoint's limit)
PARALLEL = 4


class InviterDirectory:
    """Effective inviter per node for many invitees: invitee → node → inviter (or None)."""

    def __init__(self, http: ServiceClient, referral_url: str) -> None:
        self.http = http
        self.referral_url = referral_url

    async def effective_inviters(
        self, tenant_id: str, invitee_ids: list[str]
    ) -> dict[str, dict[str, str | None]]:
        gate = asyncio.Semaphore(PARALLEL)

        async def one(batch: list[str]) -> dict[str, dict[str, str | None]]:
            async with gate:
                response = await self.http.ask(
                    self.referral_url,
                    "/v1/bindings/effective-inviters",
                    tenant_id=tenant_id,
                    json={"invitee_ids": batch},
                )
            if response.status_code != 200:
                raise UpstreamUnavailable(
                    f"referral_service answered {response.status_code} for effective inviters."
                )
            # Each item is already node → inviter (and its invitee_id, never a node's name).
            return {item["invitee_id"]: item for item in response.json()["items"]}

        asked = list(dict.fromkeys(invitee_ids))
        found: dict[str, dict[str, str | None]] = {}
        for part in await asyncio.gather(
            *(one(asked[i : i + BATCH]) for i in range(0, len(asked), BATCH))
        ):
            found.update(part)
        return found
