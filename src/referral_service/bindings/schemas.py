from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field

from contracts.payloads import Node


class Channel(StrEnum):
    invite_code = "invite_code"
    share_link = "share_link"
    operator = "operator"


class BindingRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    invitee_id: str = Field(examples=["u-2002"])
    inviter_id: str = Field(examples=["u-1001"])
    node: Node
    channel: Channel
    operator_id: str | None
    bound_at: datetime


class BindingHistoryRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    node: Node
    action: str = Field(examples=["bound"])
    previous_inviter_id: str | None
    inviter_id: str
    channel: Channel
    actor: str
    at: datetime


class NodeState(BaseModel):
    node: Node
    binding: BindingRead | None = Field(description="Bound at this node itself, if any")
    effective_inviter_id: str | None = Field(
        description="The inviter that applies: this node's, else the registration inviter"
    )
    completed_at: datetime | None = Field(description="Set once the invitee completed the node")


class InviteeBindings(BaseModel):
    invitee_id: str
    nodes: list[NodeState]
    history: list[BindingHistoryRead]


class SelfBindRequest(BaseModel):
    invite_code: str = Field(min_length=4, max_length=20, examples=["K7M2XQ9D"])
