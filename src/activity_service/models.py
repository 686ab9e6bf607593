"""Every table of the activity database, imported for alembic's metadata."""

from activity_service.activities.models import Activity
from activity_service.audit.models import ActivityAudit
from activity_service.db import Base, OutboxMessage
from activity_service.evaluation.models import Grant
from activity_service.events.models import Event
from activity_service.segments.models import Segment, SegmentMember

__all__ = [
    "Activity",
    "ActivityAudit",
    "Base",
    "Event",
    "Grant",
    "OutboxMessage",
    "Segment",
    "SegmentMember",
]
