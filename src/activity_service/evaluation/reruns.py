"""An operator's re-run of a past day (production tenants too): after late or corrected
events, the day's daily run decides again from its first user.

Nothing is granted twice: every grant has its deterministic key (a tier reached stays one
grant, a cap slot is taken only with a new grant), so a re-run only adds what the day's
events now earn and did not earn before; running it again adds nothing. The answer lists
the grants the re-run made.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime

from activity_service.evaluation.daily_run import run_daily
from activity_service.evaluation.engine import run_day
from activity_service.evaluation.models import Grant
from activity_service.evaluation.referral_client import ReferralLookup
from activity_service.evaluation.repository import EvaluationRepository
from activity_service.tenants.service import tenant_context
from service_kit.clock import Clock
from service_kit.db import Database
from service_kit.errors import Conflict

# Grants listed in the answer; more are counted, not listed.
LISTED_GRANTS = 1000


@dataclass
class Rerun:
    day: date
    started_at: datetime
    finished_at: datetime
    grants_made: int
    grants: list[Grant]


async def rerun_day(
    db: Database, tenant_id: str, day: date, clock: Clock, referral: ReferralLookup
) -> Rerun:
    """Decide ``day`` again for the tenant; only a day whose run is already due (a past
    day of the tenant's clock, in its time zone) may be re-run."""
    now = clock.now()
    async with db.session() as session:
        tenant = await tenant_context(session, tenant_id)
        due = run_day(now, tenant.zone, tenant.daily_run_at)
        if day > due:
            raise Conflict(
                f"The run of {day.isoformat()} is not due yet; the last day that can be run "
                f"is {due.isoformat()}.",
                code="day_not_over",
            )
        repo = EvaluationRepository.from_session(session)
        since = await repo.database_now()
        await repo.reopen_run(tenant_id, day, now)
    result = await run_daily(db, tenant_id, day, clock, referral)
    while not result.done:  # resumes from the progress each call saved
        result = await run_daily(db, tenant_id, day, clock, referral)
    async with db.session() as session:
        # Grants made by transactions begun after the re-run started: the re-run's, and
        # any real-time grant of the tenant committed meanwhile (keys keep both single).
        made = await EvaluationRepository.from_session(session).grants_since(
            tenant_id, since, LISTED_GRANTS + 1
        )
    return Rerun(day, now, clock.now(), len(made), made[:LISTED_GRANTS])
