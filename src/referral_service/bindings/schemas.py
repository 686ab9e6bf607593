from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from contracts.payloads import Node

USER_ID_PATTERN = r"^\S(.*\S)?$"


class Channel(StrEnum):
    invite_code = "invite_code"
    share_link = "share_link"
    operator = "operator"


class BindingRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    invitee_id: str = Field(examples=["u-2002"])
    inviter_id: str = Field(examples=["u-1001"])
    node: Node = Field(description="registration, account_opening or deposit")
    channel: Channel = Field(description="How the binding was made")
    operator_id: str | None = Field(
        description="The operator who bound or last changed it by hand", examples=["ops-1"]
    )
    app_id: str | None = Field(
        None, description="App of the invite code used", examples=["broker-app"]
    )
    activity_code: str | None = Field(
        None,
        description="Channel `share_link`: the activity whose share link the invitee came through",
        examples=["A20261123001"],
    )
    bound_at: datetime = Field(description="When the current inviter was bound")
    completed_at: datetime | None = Field(
        None, description="When the invitee completed this node (then the binding is frozen)"
    )


class BindingRole(StrEnum):
    invitee = "invitee"
    inviter = "inviter"


class UserBindingRead(BindingRead):
    role: BindingRole = Field(description="The user's side of this binding")


class BindingHistoryRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    node: Node
    action: Literal["bound", "rebound", "unbound"] = Field(
        description="bound | rebound | unbound", examples=["bound"]
    )
    previous_inviter_id: str | None = Field(examples=[None])
    inviter_id: str | None = Field(
        description="The inviter after the change (none after an unbinding)", examples=["u-1001"]
    )
    channel: Channel
    activity_code: str | None = Field(None, description="Share link of this activity")
    actor: str = Field(description="Who made the change", examples=["operator:ops-1"])
    at: datetime = Field(description="When the change was made")


class NodeState(BaseModel):
    node: Node
    binding: BindingRead | None = Field(description="Bound at this node itself, if any")
    effective_inviter_id: str | None = Field(
        description="The inviter that applies: this node's, else the registration inviter",
        examples=["u-1001"],
    )
    completed_at: datetime | None = Field(description="Set once the invitee completed the node")
    frozen: bool = Field(
        False, description="The inviter of this node can no longer be bound or changed"
    )


class InviteeBindings(BaseModel):
    invitee_id: str = Field(examples=["u-2002"])
    nodes: list[NodeState] = Field(description="Always the three nodes, in order")
    history: list[BindingHistoryRead] = Field(description="Every change, oldest first")


class SelfBindRequest(BaseModel):
    invite_code: str = Field(
        min_length=4, max_length=20, examples=["K7M2XQ9D"], description="Case and dashes forgiven"
    )


class BindingCreate(BaseModel):
    invitee_id: str = Field(
        min_length=1,
        max_length=128,
        pattern=USER_ID_PATTERN,
        description="The invited user (customer number)",
        examples=["u-2002"],
    )
    inviter_id: str = Field(
        min_length=1,
        max_length=128,
        pattern=USER_ID_PATTERN,
        description="The user who invited them",
        examples=["u-1001"],
    )
    node: Node = Field(examples=["registration"])
    channel: Channel | None = Field(
        None,
        description="Operators always bind by `operator` (the default for them); services "
        "state `invite_code` or `share_link` (default `share_link`)",
    )
    activity_code: str | None = Field(
        None,
        min_length=1,
        max_length=32,
        description="Channel `share_link`: the activity whose share link was used",
        examples=["A20261123001"],
    )


class BindingChange(BaseModel):
    inviter_id: str = Field(
        min_length=1,
        max_length=128,
        pattern=USER_ID_PATTERN,
        description="The new inviter of the node",
        examples=["u-3003"],
    )


class NodeCounts(BaseModel):
    node: Node
    invitee_count: int = Field(description="Invitees bound to the inviter at this node")
    effective_invitee_count: int = Field(
        description="Invitees for whom the inviter applies at this node: bound at it, or bound "
        "at registration where the node has no inviter of its own"
    )


class InviterStats(BaseModel):
    inviter_id: str = Field(examples=["u-1001"])
    since: datetime | None = Field(None, alias="from", description="Window start (inclusive)")
    until: datetime | None = Field(None, description="Window end (exclusive)")
    completed_only: bool = Field(description="Only invitees who completed the node")
    nodes: list[NodeCounts] = Field(description="Always the three nodes, in order")

    model_config = ConfigDict(populate_by_name=True, serialize_by_alias=True)


class NodeProgress(BaseModel):
    node: Node
    completed_at: datetime | None = Field(description="When the invitee completed the node")
    mine: bool = Field(
        description="The caller is the invitee's effective inviter at this node (its own "
        "inviter, else the registration inviter): rewards for this node are the caller's"
    )


class MyInvitee(BaseModel):
    invitee_id: str = Field(examples=["u-2002"])
    bound_at: datetime = Field(description="When the invitee was first bound to the caller")
    channel: Channel = Field(description="How that first binding was made")
    nodes: list[NodeProgress] = Field(description="Always the three nodes, in order")


class EffectiveInvitersQuery(BaseModel):
    invitee_ids: list[Annotated[str, StringConstraints(min_length=1, max_length=128)]] = Field(
        min_length=1,
        max_length=1000,
        description="Up to 1,000 invitees (each 1–128 characters)",
        examples=[["u-2002", "u-2003"]],
    )


class EffectiveInviters(BaseModel):
    invitee_id: str = Field(examples=["u-2002"])
    registration: str | None = Field(description="The registration inviter", examples=["u-1001"])
    account_opening: str | None = Field(
        description="The node's own inviter, else the registration inviter", examples=["u-1001"]
    )
    deposit: str | None = Field(
        description="The node's own inviter, else the registration inviter", examples=["u-1001"]
    )


class EffectiveInvitersList(BaseModel):
    items: list[EffectiveInviters] = Field(description="One per invitee asked, in that order")
