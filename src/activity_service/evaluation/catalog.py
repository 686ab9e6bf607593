"""Each tenant's published activities, indexed by the event types that can complete one of
their real-time tasks, and kept in the worker's memory between deliveries.

An event then costs a look-up of its type, not a pass over every campaign of the tenant:
a deposit in a tenant with a thousand registration campaigns evaluates none of them. The
catalog is reloaded when the tenant's ``activity_catalog_versions`` counter (moved by a
database trigger on every change to its activities) differs from the one it was built at;
each delivery reads that counter once per tenant, before reading any activity, so a
catalog is never newer than the counter it is filed under."""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession

from activity_service.activities.models import Activity
from activity_service.activities.rules import TaskType
from activity_service.evaluation.engine import REAL_TIME_TRIGGERS, is_real_time_task
from activity_service.evaluation.repository import EvaluationRepository

# Tenants whose catalogs one worker process keeps; the least recently used goes first.
MAX_TENANTS = 1024


def _tasks(activity: Activity) -> list[TaskType]:
    return [TaskType(rule["task"]) for rule in (activity.config or {}).get("rules", [])]


@dataclass(frozen=True)
class Catalog:
    """Published basic and referral activities, earliest published first (where only one
    activity may reward, the older campaign wins)."""

    version: int
    activities: tuple[Activity, ...]
    by_event_type: dict[str, tuple[Activity, ...]]
    # Referral activities with a real-time task: decided again when a binding changes.
    referral_real_time: tuple[Activity, ...]

    @classmethod
    def build(cls, version: int, activities: list[Activity]) -> Catalog:
        by_event_type: dict[str, list[Activity]] = {}
        for activity in activities:
            triggers: set[str] = set()
            for task in _tasks(activity):
                triggers |= REAL_TIME_TRIGGERS.get(task, frozenset())
            for event_type in sorted(triggers):
                by_event_type.setdefault(event_type, []).append(activity)
        return cls(
            version=version,
            activities=tuple(activities),
            by_event_type={k: tuple(v) for k, v in by_event_type.items()},
            referral_real_time=tuple(
                a
                for a in activities
                if a.kind == "referral" and any(is_real_time_task(t) for t in _tasks(a))
            ),
        )

    def triggered_by(self, event_type: str) -> tuple[Activity, ...]:
        return self.by_event_type.get(event_type, ())


def _detached_copy(activity: Activity) -> Activity:
    """A copy that belongs to no session, so the catalog can outlive the delivery that
    read it without taking instances out of that session."""
    columns = Activity.__table__.columns
    return Activity(**{c.key: getattr(activity, c.key) for c in columns})


class CatalogCache:
    """The catalogs of one process, per database and tenant; they are only read."""

    def __init__(self, max_tenants: int = MAX_TENANTS) -> None:
        self._catalogs: OrderedDict[tuple[str, str], Catalog] = OrderedDict()
        self._max_tenants = max_tenants

    async def get(self, session: AsyncSession, tenant_id: str) -> Catalog:
        key = (session.get_bind().engine.url.render_as_string(hide_password=True), tenant_id)
        repo = EvaluationRepository.from_session(session)
        version = await repo.catalog_version(tenant_id)  # before the activities: see above
        catalog = self._catalogs.get(key)
        if catalog is None or catalog.version != version:
            activities = await repo.published(tenant_id, ("basic", "referral"))
            catalog = Catalog.build(version, [_detached_copy(a) for a in activities])
            self._catalogs[key] = catalog
        self._catalogs.move_to_end(key)
        while len(self._catalogs) > self._max_tenants:
            self._catalogs.popitem(last=False)
        return catalog


CATALOGS = CatalogCache()
