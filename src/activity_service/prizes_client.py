"""Asks reward_service whether prizes exist (HTTP: a question, not a fact)."""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from typing import Any

from service_kit.errors import Unprocessable, UpstreamUnavailable
from service_kit.http import ServiceClient


class PrizeChecker:
    def __init__(self, http: ServiceClient, reward_url: str) -> None:
        self.http = http
        self.reward_url = reward_url

    async def require_all(
        self, tenant_id: str, prize_ids: Iterable[uuid.UUID]
    ) -> dict[uuid.UUID, dict[str, Any]]:
        """Every prize as reward_service shows it (type, cost…), or 422 for a missing one."""
        found: dict[uuid.UUID, dict[str, Any]] = {}
        for prize_id in dict.fromkeys(prize_ids):
            response = await self.http.get(
                self.reward_url, f"/v1/prizes/{prize_id}", tenant_id=tenant_id
            )
            if response.status_code == 404:
                raise Unprocessable(
                    f"Prize {prize_id} does not exist in this tenant.",
                    code="prize_not_found",
                    prize_id=str(prize_id),
                )
            if response.status_code != 200:
                raise UpstreamUnavailable(
                    f"reward_service answered {response.status_code} for prize {prize_id}."
                )
            found[prize_id] = response.json()
        return found
