"""Asks activity_service which activities use a prize (HTTP: a question), before the prize
is deleted: rules live in the activities' configurations, not here."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable

from service_kit.errors import UpstreamUnavailable
from service_kit.http import ServiceClient

# The codes of (up to a page of) activities whose rules or limits name the prize.
RuleUsage = Callable[[uuid.UUID], Awaitable[list[str]]]

SHOWN = 10


def rule_usage(http: ServiceClient, activity_url: str, tenant_id: str) -> RuleUsage:
    async def activities_using(prize_id: uuid.UUID) -> list[str]:
        unknown = UpstreamUnavailable(
            "Whether an activity's rules use this prize cannot be known now (the activity "
            "service did not answer); nothing was deleted, try again.",
            code="prize_usage_unknown",
        )
        try:
            response = await http.get(
                activity_url,
                "/v1/activities",
                tenant_id=tenant_id,
                params={"prize_id": str(prize_id), "limit": SHOWN},
            )
        except UpstreamUnavailable as exc:
            raise unknown from exc
        if response.status_code != 200:
            raise unknown
        return [str(item["activity_code"]) for item in response.json().get("items", [])]

    return activities_using
