"""Payloads crossing service boundaries (jobs and service-to-service HTTP)."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from service_kit.money import Amount, Currency
from service_kit.outbox.bundles import BUNDLE_ITEMS, items_of


class Contract(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)
    version: int = 1


class Node(StrEnum):
    """The three referral nodes of SPEC §2.2."""

    registration = "registration"
    account_opening = "account_opening"
    deposit = "deposit"


class IssuanceForm(StrEnum):
    automatic = "automatic"
    manual = "manual"


class LockUp(BaseModel):
    """Lock-up terms of SPEC §3.3, carried from the rule into the grant."""

    amount: Amount
    currency: Currency
    days: int = Field(ge=1, le=3650)
    issue_after_lock: bool = True


class UserRegistered(Contract):
    """activity → referral: the user registered (completes the registration node) and,
    when they came through an invite code, binds them to its owner."""

    tenant_id: str
    app_id: str
    user_id: str
    invite_code: str | None = None
    registered_at: datetime
    event_id: str
    # "share_link" when the code came in an activity's share link (then its activity code).
    channel: str | None = None
    activity_code: str | None = None


class UserProfileFact(Contract):
    """activity → reward: what a business event says about the user that operators look
    rewards up by or see in the winners list — the phone number (any event may carry it)
    and the certified enterprise (``enterprise.certified``). The newest fact wins."""

    tenant_id: str
    user_id: str
    event_id: str
    occurred_at: datetime
    phone: str | None = None
    enterprise_id: str | None = None
    enterprise_name: str | None = None


class NodeCompleted(Contract):
    """activity → referral: the invitee completed a node; its inviter is now frozen."""

    tenant_id: str
    user_id: str
    node: Node
    completed_at: datetime
    event_id: str


# The event types whose first stored event completes each node: the activity service
# answers from its event log, the referral service freezes the node's inviter on it.
NODE_EVENT_TYPES: dict[Node, tuple[str, ...]] = {
    Node.registration: ("user.registered",),
    Node.account_opening: ("account.opened",),
    Node.deposit: ("cash.deposited", "stock.transferred_in"),
}


class NodeCompletionFact(BaseModel):
    node: Node
    completed_at: datetime = Field(description="When the first completing event occurred")
    event_id: str = Field(examples=["evt-20261123-0001"])


class NodeCompletions(BaseModel):
    """activity → referral over HTTP: the nodes a user completed according to the events
    stored (acknowledged) so far, whether or not a job has processed them yet."""

    user_id: str = Field(examples=["u-2002"])
    nodes: list[NodeCompletionFact] = Field(description="Completed nodes only, in node order")


class ReferralRole(StrEnum):
    """Which side of a referral a reward is for: the inviter's rewards are what the app
    shows as "earned by inviting"."""

    inviter = "inviter"
    invitee = "invitee"


class Grant(Contract):
    """activity → reward: a decision that a user earned a prize. ``grant_key`` is
    deterministic (activity, rule/tier, user, counterpart, period), so a redelivered event
    or job can never create a second reward record."""

    tenant_id: str
    grant_key: str = Field(max_length=200)
    activity_code: str
    activity_name: str | None = None
    # The name in each language the activity has (zh-Hans, zh-Hant, en), so the user's
    # reward views follow their language; ``activity_name`` stays for older consumers.
    activity_names: dict[str, str] | None = None
    rule_id: str
    user_id: str
    app_id: str | None = None
    counterpart_id: str | None = None
    task: str
    achieved_at: datetime
    prize_id: str
    issuance_form: IssuanceForm
    lock_up: LockUp | None = None
    enterprise_name: str | None = None
    referral_role: ReferralRole | None = None


# activity → reward: the grants of one activity decided by a daily-run chunk, in one
# ``reward.create_from_grant`` message instead of one message each (a message row, its
# index entries and a kilobyte of JSON per grant were most of a big run's writes). The
# message is ``{"tenant_id", "columns", "templates", "grants", …}``: each row of
# ``grants`` holds the ``columns`` of one grant (``rule`` is an index into ``templates``),
# and each template holds the ``Grant`` fields its rule's grants share. A message without
# ``grants`` is one grant (the real-time path, and messages queued before bundles).
GRANT_BUNDLE_ROWS = "grants"
GRANT_BUNDLE_RULE = "rule"
GRANT_BUNDLE_COLUMNS = (
    "grant_key",
    "user_id",
    "app_id",
    GRANT_BUNDLE_RULE,
    "task",
    "achieved_at",
    "enterprise_name",
)


def grants_of_message(payload: dict[str, Any]) -> list[dict[str, Any]]:
    """The ``Grant`` payloads a ``reward.create_from_grant`` message carries: itself, the
    items of a bundle of whole grants (an evaluation's: ``service_kit.outbox.bundles``), or
    each row of a daily run's bundle on its rule's template (with the bundle's tenant and
    ``_meta``, so each grant keeps the request that caused it)."""
    if isinstance(payload.get(BUNDLE_ITEMS), list):
        return items_of(payload)
    rows = payload.get(GRANT_BUNDLE_ROWS)
    if not isinstance(rows, list):
        return [payload]
    shared = {k: v for k, v in payload.items() if k not in _BUNDLE_ONLY}
    columns, templates = payload["columns"], payload["templates"]
    grants = []
    for row in rows:
        values = dict(zip(columns, row, strict=True))
        grant = {**templates[values.pop(GRANT_BUNDLE_RULE)], **shared, **values}
        grants.append(grant)
    return grants


_BUNDLE_ONLY = frozenset({GRANT_BUNDLE_ROWS, "columns", "templates"})


class RecordStatusChanged(Contract):
    """reward → activity: a reward record moved, so the grant ledger can follow."""

    tenant_id: str
    grant_key: str
    record_id: str
    record_number: str
    from_status: str | None
    to_status: str
    at: datetime
    # The record's version after the move: the ledger keeps the newest status it has seen.
    record_version: int | None = None


class PrizeSummary(BaseModel):
    """reward → activity over HTTP: what activity configuration needs to know of a prize."""

    id: str
    type: str
    name: str
    cost_amount: Decimal | None = None
    cost_currency: str | None = None


class BindingChanged(Contract):
    """referral → activity: an invitee's inviter at a node was bound, changed or removed."""

    tenant_id: str
    invitee_id: str
    node: Node
    inviter_id: str | None = Field(description="None once unbound")
    previous_inviter_id: str | None = None
    channel: str
    action: str = Field(description="bound | rebound | unbound")
    at: datetime


class LockCheckAnswer(BaseModel):
    """activity → reward over HTTP (``GET /v1/positions/{user_id}/lock-check``): did the user
    keep at least the locked amount in the currency during the whole lock period (SPEC §3.3)?"""

    held: bool
    min_position: Decimal | None = Field(
        None, description="Lowest position in the currency during the period, when known"
    )
    reason: str | None = Field(None, description="Why the condition was not held, if it was not")


# The most lock-ups one ``POST /v1/positions/lock-checks`` answers.
MAX_LOCK_CHECKS = 500


class LockCheckQuery(BaseModel):
    """One lock-up to check (the batch form of ``GET …/lock-check``)."""

    model_config = ConfigDict(populate_by_name=True, frozen=True)

    user_id: str = Field(min_length=1, max_length=128)
    currency: str = Field(pattern=r"^[A-Z]{3}$", examples=["HKD"])
    amount: Amount = Field(description="Locked amount")
    since: datetime = Field(alias="from", description="Lock start (reward arrival), with offset")
    until: datetime = Field(description="Lock expiry, with offset")


class LockCheckBatch(BaseModel):
    """reward → activity over HTTP (``POST /v1/positions/lock-checks``): the lock-ups of one
    tenant falling due together, answered in one round trip."""

    checks: list[LockCheckQuery] = Field(min_length=1, max_length=MAX_LOCK_CHECKS)


class LockCheckAnswers(BaseModel):
    """The verdicts of a ``LockCheckBatch``, in the order of its checks."""

    answers: list[LockCheckAnswer]


class SandboxClockSync(Contract):
    """The activity service (owner of sandbox clocks) to reward/referral: a sandbox tenant's
    time is now ``now``; ``create`` on the tenant's first sync (refused if the service
    already holds the tenant's data: production data never becomes a sandbox's); ``settle``
    asks reward_service to do what is due by ``now`` (lock-ups, re-drives) before answering."""

    now: datetime
    create: bool = False
    settle: bool = False


class SandboxClockState(BaseModel):
    """The answer: the service's copy of the clock, how much of the tenant's work it still
    owes (queued messages and jobs), the next time something falls due there, and (after a
    ``settle``) how many records the settling moved or re-drove."""

    tenant_id: str
    now: datetime
    owed: int = 0
    next_due: datetime | None = None
    settled: int = 0
