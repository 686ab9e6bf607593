"""Team requests and views (SPEC §1.8)."""

from __future__ import annotations

import uuid
from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

from activity_service.teams.rules import TeamStatus


class TeamStart(BaseModel):
    model_config = ConfigDict(extra="forbid")

    nickname: str | None = Field(
        None,
        min_length=1,
        max_length=64,
        description="The initiator's nickname for the team name; when omitted, the nickname "
        "of the user's `user.registered` event, else the user id",
        examples=["Ada"],
    )


class TeamMember(BaseModel):
    helper_id: str = Field(description="The helper's user id", examples=["u-42"])
    assisted_at: datetime = Field(description="When they helped")


class TeamSummary(BaseModel):
    id: uuid.UUID = Field(description="Team id")
    number: str = Field(description="Team number", examples=["T-7K2M9QXD"])
    activity_id: uuid.UUID = Field(description="The team activity")
    status: TeamStatus = Field(
        description="forming, succeeded, or failed (still forming when the activity ended or "
        "was closed; derived from the clock)"
    )
    name: str = Field(
        description='"<initiator nickname>\'s team" in the Accept-Language language',
        examples=["Ada's team"],
    )
    initiator_id: str = Field(description="The initiator's user id", examples=["u-1"])
    helpers: int = Field(description="n: helpers so far (the initiator not counted)")
    helpers_needed: int = Field(description="m: helpers needed for success")
    size: str = Field(description="n/m", examples=["2/3"])
    created_at: datetime = Field(description="When the team was started")
    completed_at: datetime | None = Field(
        description="When the last needed helper joined (succeeded teams only)"
    )


class TeamRead(TeamSummary):
    members: list[TeamMember] = Field(description="Helpers in the order they joined")


class TeamStats(BaseModel):
    forming: int = Field(description="Teams still collecting helpers while the activity runs")
    succeeded: int = Field(description="Teams that reached the helpers needed")
    failed: int = Field(description="Teams still short of helpers when the activity ended")
    all: int = Field(description="Every team started in the activity")


class TeamPage(BaseModel):
    items: list[TeamSummary]
    next_cursor: str | None = Field(
        None, description="Pass as `cursor` to get the next page; null on the last page."
    )
    stats: TeamStats = Field(
        description="Counts over the whole activity (operator) or the caller's own teams "
        "(app user), whatever the status filter"
    )


class AssistRead(BaseModel):
    team: TeamRead = Field(description="The team after this assist")
    helper_id: str = Field(description="The helper (the caller)")
    assisted_at: datetime = Field(description="When the assist was recorded")
    helper_prize_id: uuid.UUID | None = Field(
        description="The prize this assist earned the helper (first helper reward whose "
        "segment they are in), or null"
    )
    team_succeeded: bool = Field(description="The team has reached the helpers needed")
