"""Asks reward_service how an activity's rewards stand (HTTP: a question, not a fact)."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from activity_service.stats.aggregation import IssuedCostRow
from service_kit.errors import UpstreamUnavailable
from service_kit.http import ServiceClient

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RewardAnswer:
    counts: dict[str, Any]
    costs: list[IssuedCostRow]
    users: int
    issued_users: int


class RewardStatsClient:
    def __init__(self, http: ServiceClient, reward_url: str) -> None:
        self.http = http
        self.reward_url = reward_url

    async def fetch(self, tenant_id: str, activity_code: str) -> RewardAnswer | None:
        """Counts per status and costs of the records under ``activity_code``; None when
        reward_service cannot answer, so the caller can fall back to its own ledger."""
        params = {"activity_code": activity_code}
        try:
            counts = await self.http.get(
                self.reward_url, "/v1/reward-records/stats", tenant_id=tenant_id, params=params
            )
            costs = await self.http.get(
                self.reward_url, "/v1/reward-records/costs", tenant_id=tenant_id, params=params
            )
        except UpstreamUnavailable as exc:
            log.warning("reward_service unreachable for stats of %s: %s", activity_code, exc)
            return None
        if counts.status_code != 200 or costs.status_code != 200:
            log.warning(
                "reward_service answered %s/%s for stats of %s",
                counts.status_code,
                costs.status_code,
                activity_code,
            )
            return None
        try:
            body = costs.json()
            return RewardAnswer(
                counts=dict(counts.json()),
                costs=[
                    IssuedCostRow(
                        prize_type=str(row["prize_type"]),
                        currency=row.get("currency"),
                        records=int(row["records"]),
                        amount=None if row.get("amount") is None else Decimal(str(row["amount"])),
                    )
                    for row in body["issued"]
                ],
                users=int(body["users"]),
                issued_users=int(body["issued_users"]),
            )
        except (ValueError, KeyError, TypeError) as exc:
            log.warning("reward_service sent unreadable stats for %s: %s", activity_code, exc)
            return None
