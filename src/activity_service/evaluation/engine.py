"""Pure decision rules: which rules of an activity a completed task satisfies (no I/O)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from activity_service.activities.rules import TaskType, earns_now

# Which action task an event completes.
EVENT_TASKS: dict[str, TaskType] = {
    "user.registered": TaskType.register,
    "account.opened": TaskType.open_account,
    "enterprise.certified": TaskType.enterprise_certification,
}


@dataclass(frozen=True)
class Earned:
    rule: dict[str, Any]
    task: TaskType
    achieved_at: datetime


def grant_key(
    activity_id: str, rule_id: str, user_id: str, counterpart: str | None, period: str = "once"
) -> str:
    """Deterministic: the same decision always yields the same key, so it is made once."""
    return f"{activity_id}:{rule_id}:{user_id}:{counterpart or '-'}:{period}"


def basic_rules_earned(
    *,
    state: str,
    starts_at: datetime | None,
    ends_at: datetime | None,
    config: dict[str, Any],
    event_type: str,
    occurred_at: datetime,
    event_payload: dict[str, Any],
) -> list[Earned]:
    """Rules of a real-time basic activity completed by one action event."""
    task = EVENT_TASKS.get(event_type)
    if task is None or config.get("timing", "real_time") != "real_time":
        return []
    if not earns_now(state, starts_at, ends_at, occurred_at):
        return []
    earned = []
    for rule in config.get("rules", []):
        if rule.get("task") != task.value:
            continue
        wanted = rule.get("enterprise_id")
        if wanted and event_payload.get("enterprise_id") != wanted:
            continue
        earned.append(Earned(rule=rule, task=task, achieved_at=occurred_at))
    return earned
