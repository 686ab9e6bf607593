"""Every table of the activity database, imported for alembic's metadata."""

from activity_service.activities.models import Activity
from activity_service.audit.models import ActivityAudit
from activity_service.db import Base, IdempotencyKey, OutboxMessage
from activity_service.evaluation.models import (
    DailyRun,
    EvaluationOutcome,
    Grant,
    PrizeCapCounter,
    ReferralCounter,
    ReferralQualification,
    RegularParticipation,
)
from activity_service.events.models import Event, EventKey
from activity_service.progress.models import Device
from activity_service.segments.models import Segment, SegmentMember
from activity_service.teams.models import Team, TeamAssist, TeamLimitCounter
from activity_service.tenants.models import FxRate, TenantSettings

__all__ = [
    "Activity",
    "ActivityAudit",
    "Base",
    "DailyRun",
    "Device",
    "EvaluationOutcome",
    "Event",
    "EventKey",
    "FxRate",
    "Grant",
    "IdempotencyKey",
    "OutboxMessage",
    "PrizeCapCounter",
    "ReferralCounter",
    "ReferralQualification",
    "RegularParticipation",
    "Segment",
    "SegmentMember",
    "Team",
    "TeamAssist",
    "TeamLimitCounter",
    "TenantSettings",
]
