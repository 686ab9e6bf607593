from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field


class AuditChange(BaseModel):
    before: Any = Field(None, description="Value before the change (null when created)")
    after: Any = Field(None, description="Value after the change")


class AuditEntryRead(BaseModel):
    id: uuid.UUID
    activity_id: uuid.UUID
    actor: str = Field(examples=["operator:ops-1"], description="kind:subject of the caller")
    action: str = Field(examples=["updated"], description="created, updated, published, closed")
    version: int = Field(description="The activity's version after the change")
    changes: dict[str, AuditChange] = Field(
        description="Changed fields with before/after values",
        examples=[{"ends_at": {"before": "2027-01-01T00:00:00Z", "after": "2027-01-15T00:00:00Z"}}],
    )
    at: datetime = Field(description="When the change was made")
