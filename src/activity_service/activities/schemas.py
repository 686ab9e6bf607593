"""Activity configuration schemas: what operators send, and what is stored (SPEC §1.1–§1.9).

Input: ``ActivityCreate`` is a union discriminated on ``kind``; the kind-specific fields sit
at the top level of the body next to the common ones. Shape is checked by pydantic; the
business rules (tier ranges, thresholds, lock-up, helper count, window…) are checked by
``activities.validation`` so each failure has its own stable ``code``.

Storage: the common fields are columns of ``activities`` (name, window, attribute,
issuance_form, review_required, cost_type, remarks, segment_id, segment_refresh). The
kind-specific part is the JSONB column ``config``; read it with ``parse_config(kind, config)``.
Every rule, tier and helper reward has a stable ``id`` (generated when the operator sends
none: ``r1``, ``r2``… at creation, ``v<version>r<n>`` when added by a later edit), so grant
keys built from it never change meaning. Amounts are decimal strings, ids are strings.

``basic`` (attribute column: unlimited | new_user | old_user)::

    {"timing": "real_time" | "at_end",
     "rules": [{"id": "r1", "task": "net_deposit", "threshold": "10000", "currency": "HKD",
                "prize_id": "<uuid>", "enterprise_id": null,
                "lock_up": null | {"amount": "10000", "currency": "HKD", "days": 30,
                                   "issue_after_lock": true}}]}

    threshold/currency are set exactly for the amount tasks (``task_needs_threshold``);
    enterprise_id only for enterprise_certification (null = any enterprise).

``referral`` (attribute column: regular | marketing)::

    {"reward_type": "fixed" | "tiered",
     "rules": [{"id": "r1", "task": "open_account", "threshold": null, "currency": null,
                "prize_id": "<uuid>" | null,        # fixed: inviter's prize per invitee
                "invitee_prize_id": "<uuid>" | null, # optional prize for the invitee
                "enterprise_id": null,               # enterprise_certification: named one
                "tiers": [                           # tiered only ([] for fixed)
                   {"id": "t1", "min_invites": 1, "max_invites": 5,
                    "prize_id": "<uuid>",            # per qualifying invitee in this range
                    "bonus_prize_id": null | "<uuid>"},  # once, on reaching min_invites
                   {"id": "t2", "min_invites": 6, "max_invites": null, ...}]}],
     "prize_limits": [{"prize_id": "<uuid>", "max_per_user": 3}]}

    Tier ranges are inclusive, start at 1, are contiguous, and only the last may be open
    (max_invites null). A tier's grant rule id is "<rule id>:<tier id>".

``team`` (attribute column: the form, always "assist")::

    {"form": "assist", "helpers_needed": 2..10,
     "initiation_limit": null | K,   # null = unlimited (may start again after success)
     "assist_limit": null | K,       # null = unlimited assists per helper
     "initiator_prize_id": "<uuid>", # grant rule id "initiator"
     "helper_rewards": [{"id": "h1", "segment_id": null | "<uuid>", "prize_id": "<uuid>"}]}

    helper_rewards are tried in order: a helper earns the first entry whose segment they are
    in (null = all users), using the activity's segment_refresh.

``non_standard``: ``{}`` — only the common columns matter.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from decimal import Decimal
from typing import Annotated, Any, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, TypeAdapter

from activity_service.activities.rules import (
    ActivityKind,
    ActivityStatus,
    BasicAttribute,
    CostType,
    GenerationTiming,
    Operation,
    ReferralAttribute,
    RewardType,
    SegmentRefresh,
    TaskType,
    TeamForm,
)
from contracts.payloads import IssuanceForm, LockUp
from service_kit.money import Amount, Currency

# An activity's attribute, by kind: basic, referral, team (SPEC §1.6, §1.7).
ActivityAttribute = BasicAttribute | ReferralAttribute | TeamForm

RuleId = Annotated[
    str,
    Field(
        max_length=32,
        pattern=r"^[A-Za-z0-9_-]+$",
        description="Stable id; generated when omitted. Keep it when editing a rule.",
        examples=["r1"],
    ),
]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


# --------------------------------------------------------------------------- common


class LocalizedName(_Strict):
    """The name in three languages; give at least one, missing ones fall back to another."""

    zh_hans: str | None = Field(None, alias="zh-Hans", max_length=100, examples=["新用户注册礼"])
    zh_hant: str | None = Field(None, alias="zh-Hant", max_length=100, examples=["新用戶註冊禮"])
    en: str | None = Field(None, max_length=100, examples=["New user sign-up gift"])


class CommonFields(_Strict):
    name: LocalizedName
    segment_id: uuid.UUID | None = Field(
        None, description="Target segment: only its members take part (team: as initiator)."
    )
    segment_refresh: SegmentRefresh | None = Field(
        None,
        description="Segment refresh delay, required with segment_id: `5m` (snapshot every "
        "5 minutes) or `1d` (daily snapshot at the tenant's midnight).",
        examples=["5m"],
    )
    remarks: str | None = Field(None, max_length=2000, description="Operator memo, never shown")
    review_required: bool = Field(
        False, description="Review mode: manual issuances under this activity need approval."
    )
    cost_type: CostType | None = Field(None, description="Where the cost is booked")
    issuance_form: IssuanceForm = Field(
        IssuanceForm.automatic,
        description="automatic: reward records are submitted at once; manual: they wait in "
        "Pending for an operator.",
    )


class StandardWindow(BaseModel):
    starts_at: AwareDatetime = Field(
        description="Window start (inclusive)", examples=["2026-12-01T00:00:00+08:00"]
    )
    ends_at: AwareDatetime = Field(
        description="Window end (exclusive), after starts_at",
        examples=["2027-01-01T00:00:00+08:00"],
    )


class BudgetIn(_Strict):
    """A total budget for the activity's rewards (SPEC §6 "Budgets"): each grant takes its
    prize's cost, converted at the grant's time; a grant that no longer fits is refused
    (`budget_exhausted`), and a cancelled reward gives its cost back."""

    amount: Amount = Field(examples=["50000"], description="Greater than zero")
    currency: Currency | None = Field(
        None, description="The tenant's base currency (the default); any other is refused"
    )


class PrizeTotalIn(_Strict):
    """A total quantity of one prize over the whole activity, all users together."""

    prize_id: uuid.UUID = Field(description="A prize awarded by this activity's rules")
    total_quantity: int = Field(examples=[500], json_schema_extra={"minimum": 1})


class BudgetFields(BaseModel):
    """Budgets of the standard kinds; enforced by the database like the per-user caps."""

    budget: BudgetIn | None = Field(
        None,
        description="Total budget in the tenant's base currency; every prize the rules award "
        "then needs a cost (`cost_amount`, or a cash prize's amount)",
    )
    prize_totals: list[PrizeTotalIn] = Field(
        default_factory=list,
        max_length=50,
        description="Total quantity per prize over the activity (`quantity_exhausted` after)",
    )


# --------------------------------------------------------------------------- basic


class LockUpIn(_Strict):
    """Lock-up of SPEC §3.3: the user keeps `amount` locked for `days` after the reward."""

    amount: Amount | None = Field(None, description="Required", examples=["10000"])
    currency: Currency | None = Field(None, description="Required")
    days: int | None = Field(
        None, description="Lock period in days (1–3650); required", examples=[30]
    )
    issue_after_lock: bool = Field(
        True, description="Issue only after the lock-up ends (record waits in Locked)"
    )


class BasicRuleIn(_Strict):
    """One reward rule (tier) of a basic activity."""

    id: RuleId | None = None
    task: TaskType = Field(examples=["net_deposit"])
    threshold: Amount | None = Field(
        None, description="Amount tasks only (net_*, *_reached, first_*): metric ≥ threshold"
    )
    currency: Currency | None = Field(None, description="Currency of the threshold")
    prize_id: uuid.UUID = Field(description="A prize of reward_service")
    lock_up: LockUpIn | None = Field(None, description="Optional lock-up (SPEC §3.3)")
    enterprise_id: str | None = Field(
        None,
        max_length=128,
        description="enterprise_certification only: a named enterprise (null = any)",
    )


BASIC_EXAMPLE: dict[str, Any] = {
    "kind": "basic",
    "name": {"zh-Hans": "入金有礼", "zh-Hant": "入金有禮", "en": "Deposit bonus"},
    "starts_at": "2026-12-01T00:00:00+08:00",
    "ends_at": "2027-01-01T00:00:00+08:00",
    "segment_id": None,
    "attribute": "new_user",
    "timing": "real_time",
    "issuance_form": "automatic",
    "rules": [
        {"task": "open_account", "prize_id": "4c1c6a8e-0f55-4d0a-9f53-0d5d3b1f9a01"},
        {
            "task": "net_deposit",
            "threshold": "10000",
            "currency": "HKD",
            "prize_id": "4c1c6a8e-0f55-4d0a-9f53-0d5d3b1f9a02",
            "lock_up": {"amount": "10000", "currency": "HKD", "days": 30},
        },
    ],
    "remarks": "December campaign",
}


class BasicActivityCreate(CommonFields, StandardWindow, BudgetFields):
    """A user earns rewards by completing tasks themselves (SPEC §1.5, §1.6)."""

    model_config = ConfigDict(json_schema_extra={"examples": [BASIC_EXAMPLE]})

    kind: Literal["basic"] = Field(description="Discriminator")
    attribute: BasicAttribute = BasicAttribute.unlimited
    timing: GenerationTiming = Field(
        GenerationTiming.real_time, description="Reward generation timing (SPEC §1.5)"
    )
    rules: list[BasicRuleIn] = Field(
        description="At least one; several rules on one amount task are tiers", max_length=50
    )


# --------------------------------------------------------------------------- referral


class ReferralTierIn(_Strict):
    """An invite-count range [min_invites, max_invites] of a tiered referral rule."""

    id: RuleId | None = None
    min_invites: int = Field(
        description="First invite count of the range (inclusive); the first range starts at 1",
        examples=[1],
        json_schema_extra={"minimum": 1},
    )
    max_invites: int | None = Field(
        None,
        description="Last invite count (inclusive); null = open-ended, last range only",
        examples=[5],
    )
    prize_id: uuid.UUID = Field(description="Inviter's prize for each qualifying invitee")
    bonus_prize_id: uuid.UUID | None = Field(
        None, description="Optional one-off bonus when the inviter reaches this range"
    )


class ReferralRuleIn(_Strict):
    id: RuleId | None = None
    task: TaskType = Field(description="What the invitee must complete", examples=["register"])
    threshold: Amount | None = Field(None, description="Amount tasks only")
    currency: Currency | None = Field(None, description="Currency of the threshold")
    prize_id: uuid.UUID | None = Field(
        None, description="fixed: inviter's prize per qualifying invitee (required); tiered: omit"
    )
    invitee_prize_id: uuid.UUID | None = Field(
        None, description="Optional prize for the invitee who completes the task"
    )
    enterprise_id: str | None = Field(
        None,
        max_length=128,
        description="enterprise_certification only: the invitee must certify this named "
        "enterprise (null = any)",
    )
    tiers: list[ReferralTierIn] = Field(
        default_factory=list, max_length=20, description="tiered only: contiguous ranges"
    )


class PrizeLimitIn(_Strict):
    """Prize settings: how many times one user may receive this prize in this activity."""

    prize_id: uuid.UUID = Field(description="A prize awarded by this activity's rules")
    max_per_user: int = Field(examples=[3], json_schema_extra={"minimum": 1})


REFERRAL_EXAMPLE: dict[str, Any] = {
    "kind": "referral",
    "name": {"zh-Hans": "邀请好友开户", "zh-Hant": "邀請好友開戶", "en": "Invite friends"},
    "starts_at": "2026-12-01T00:00:00+08:00",
    "ends_at": "2027-01-01T00:00:00+08:00",
    "segment_id": "b6f1f6d2-7a52-4c07-8f1e-3d5c7a9e2b10",
    "segment_refresh": "5m",
    "attribute": "regular",
    "reward_type": "tiered",
    "rules": [
        {
            "task": "open_account",
            "invitee_prize_id": "4c1c6a8e-0f55-4d0a-9f53-0d5d3b1f9a03",
            "tiers": [
                {
                    "min_invites": 1,
                    "max_invites": 5,
                    "prize_id": "4c1c6a8e-0f55-4d0a-9f53-0d5d3b1f9a01",
                },
                {
                    "min_invites": 6,
                    "max_invites": None,
                    "prize_id": "4c1c6a8e-0f55-4d0a-9f53-0d5d3b1f9a02",
                    "bonus_prize_id": "4c1c6a8e-0f55-4d0a-9f53-0d5d3b1f9a04",
                },
            ],
        }
    ],
    "prize_limits": [{"prize_id": "4c1c6a8e-0f55-4d0a-9f53-0d5d3b1f9a01", "max_per_user": 5}],
}


class ReferralActivityCreate(CommonFields, StandardWindow, BudgetFields):
    """An inviter earns rewards when invitees complete a task (SPEC §1.7)."""

    model_config = ConfigDict(json_schema_extra={"examples": [REFERRAL_EXAMPLE]})

    kind: Literal["referral"] = Field(description="Discriminator")
    attribute: ReferralAttribute = ReferralAttribute.regular
    reward_type: RewardType = Field(description="fixed or tiered")
    rules: list[ReferralRuleIn] = Field(
        max_length=20, description="At least one: the task invitees complete and its rewards"
    )
    prize_limits: list[PrizeLimitIn] = Field(
        default_factory=list,
        max_length=50,
        description="Prize settings: per-user caps on prizes the rules award",
    )


# --------------------------------------------------------------------------- team


class HelperRewardIn(_Strict):
    id: RuleId | None = None
    segment_id: uuid.UUID | None = Field(
        None,
        description="Helpers in this segment get the prize; null = all users. Read with the "
        "activity's segment_refresh, which is then required.",
    )
    prize_id: uuid.UUID = Field(description="The helper's prize")


TEAM_EXAMPLE: dict[str, Any] = {
    "kind": "team",
    "name": {"zh-Hans": "助力得奖", "en": "Help me win"},
    "starts_at": "2026-12-01T00:00:00+08:00",
    "ends_at": "2026-12-15T00:00:00+08:00",
    "form": "assist",
    "helpers_needed": 3,
    "initiation_limit": 2,
    "assist_limit": None,
    "helper_rewards": [{"segment_id": None, "prize_id": "4c1c6a8e-0f55-4d0a-9f53-0d5d3b1f9a05"}],
    "initiator_prize_id": "4c1c6a8e-0f55-4d0a-9f53-0d5d3b1f9a06",
    "issuance_form": "automatic",
}


class TeamActivityCreate(CommonFields, StandardWindow, BudgetFields):
    """ "Assist to win": an initiator collects N helpers to unlock a prize (SPEC §1.8)."""

    model_config = ConfigDict(json_schema_extra={"examples": [TEAM_EXAMPLE]})

    kind: Literal["team"] = Field(description="Discriminator")
    form: TeamForm = Field(
        TeamForm.assist,
        description="Only `assist` is online; basic_team and team_split are rejected "
        "(`team_form_not_available`).",
    )
    helpers_needed: int = Field(
        description="Helpers needed for success, 2–10",
        examples=[3],
        json_schema_extra={"minimum": 2, "maximum": 10},
    )
    initiation_limit: int | None = Field(
        None,
        description="At most this many teams per initiator in the window; null = unlimited",
        json_schema_extra={"minimum": 1},
    )
    assist_limit: int | None = Field(
        None,
        description="At most this many assists per helper in the window; null = unlimited",
        json_schema_extra={"minimum": 1},
    )
    helper_rewards: list[HelperRewardIn] = Field(
        default_factory=list,
        max_length=20,
        description="Helper rewards per segment, first match wins; segment null = all users",
    )
    initiator_prize_id: uuid.UUID = Field(description="Initiator's prize when the team fills")


# --------------------------------------------------------------------------- non-standard

NON_STANDARD_EXAMPLE: dict[str, Any] = {
    "kind": "non_standard",
    "name": {"zh-Hans": "大客户回馈", "en": "VIP appreciation"},
    "cost_type": "daily_operations",
    "review_required": True,
    "remarks": "Offline event, rewards issued by hand",
}


class NonStandardActivityCreate(CommonFields):
    """No rules: exists to get an activity code for manual issuance (SPEC §3.4)."""

    model_config = ConfigDict(json_schema_extra={"examples": [NON_STANDARD_EXAMPLE]})

    kind: Literal["non_standard"] = Field(description="Discriminator")
    starts_at: AwareDatetime | None = Field(None, description="Optional window start")
    ends_at: AwareDatetime | None = Field(None, description="Optional window end")


ActivityCreate = Annotated[
    ReferralActivityCreate | BasicActivityCreate | TeamActivityCreate | NonStandardActivityCreate,
    Field(discriminator="kind"),
]
ActivityCreateModel = (
    ReferralActivityCreate | BasicActivityCreate | TeamActivityCreate | NonStandardActivityCreate
)
ACTIVITY_CREATE_ADAPTER: TypeAdapter[ActivityCreateModel] = TypeAdapter(ActivityCreate)

KIND_FIELDS: dict[str, tuple[str, ...]] = {
    "basic": ("attribute", "timing", "rules", "budget", "prize_totals"),
    "referral": ("attribute", "reward_type", "rules", "prize_limits", "budget", "prize_totals"),
    "team": (
        "form",
        "helpers_needed",
        "initiation_limit",
        "assist_limit",
        "helper_rewards",
        "initiator_prize_id",
        "budget",
        "prize_totals",
    ),
    "non_standard": (),
}
"""Top-level body fields that belong to one kind (the rest are common)."""


# --------------------------------------------------------------------------- edit


class ActivityPatch(_Strict):
    """Fields to change; absent fields keep their value, ``null`` clears a nullable one.

    Lists (rules, tiers, prize_limits, helper_rewards) are replaced as a whole. Changing the
    kind (drafts only) or the reward type requires sending the new rule list in the same
    request. On a running activity the kind, reward type, team form and task types are
    frozen. `activity_code` and `business_code` are immutable.
    """

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {"name": {"en": "Deposit bonus (extended)"}, "ends_at": "2027-01-15T00:00:00Z"},
                {"review_required": False},
            ]
        },
    )

    kind: ActivityKind | None = Field(None, description="Drafts only; send the new kind's fields")
    name: LocalizedName | None = Field(None, description="Replaces the whole name")
    starts_at: AwareDatetime | None = Field(None, description="Window start")
    ends_at: AwareDatetime | None = Field(
        None, description="Window end; a running activity's may not move into the past"
    )
    segment_id: uuid.UUID | None = Field(None, description="Target segment; null removes it")
    segment_refresh: SegmentRefresh | None = Field(None, description="5m or 1d")
    remarks: str | None = Field(None, max_length=2000, description="Operator memo")
    review_required: bool | None = Field(None, description="Switch the review mode")
    cost_type: CostType | None = Field(None, description="Cost type")
    issuance_form: IssuanceForm | None = Field(None, description="automatic or manual")
    attribute: str | None = Field(
        None, description="basic: unlimited|new_user|old_user; referral: regular|marketing"
    )
    timing: GenerationTiming | None = Field(None, description="basic: generation timing")
    reward_type: RewardType | None = Field(
        None, description="referral: fixed or tiered (drafts only; send `rules` with it)"
    )
    rules: list[dict[str, Any]] | None = Field(
        None, description="The kind's rule list (BasicRuleIn or ReferralRuleIn items)"
    )
    prize_limits: list[PrizeLimitIn] | None = Field(None, description="referral: prize settings")
    budget: BudgetIn | None = Field(None, description="Total budget; null removes it")
    prize_totals: list[PrizeTotalIn] | None = Field(
        None, description="Total quantity per prize over the activity"
    )
    form: TeamForm | None = Field(None, description="team: only assist")
    helpers_needed: int | None = Field(None, description="team: 2–10")
    initiation_limit: int | None = Field(None, description="team: null = unlimited")
    assist_limit: int | None = Field(None, description="team: null = unlimited")
    helper_rewards: list[HelperRewardIn] | None = Field(
        None, description="team: helper rewards per segment"
    )
    initiator_prize_id: uuid.UUID | None = Field(None, description="team: initiator's prize")
    activity_code: str | None = Field(None, description="Immutable: sending it is an error")
    business_code: str | None = Field(None, description="Immutable: sending it is an error")


# --------------------------------------------------------------------------- stored config


class _Stored(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


class Budget(_Stored):
    """A stored budget: amount in ``currency``, the tenant's base currency when saved."""

    amount: Amount
    currency: str


class PrizeTotal(_Stored):
    prize_id: uuid.UUID
    total_quantity: int


class PrizeCost(_Stored):
    """A prize's cost as reward_service gave it when the activity was last saved: what a
    grant takes from the budget (converted at the grant's time)."""

    amount: Amount
    currency: str


class _Budgeted(_Stored):
    """What the standard kinds store of their budgets (see ``BudgetFields``)."""

    budget: Budget | None = None
    prize_totals: list[PrizeTotal] = Field(default_factory=list)
    prize_costs: dict[str, PrizeCost] = Field(
        default_factory=dict, description="Prize id → cost, kept when a budget is set"
    )


class BasicRule(_Stored):
    """A stored basic rule; ``id`` is the grant rule id."""

    id: str
    task: TaskType
    threshold: Amount | None = None
    currency: str | None = None
    prize_id: uuid.UUID
    lock_up: LockUp | None = None
    enterprise_id: str | None = None


class BasicConfig(_Budgeted):
    """Stored config of a basic activity."""

    timing: GenerationTiming = GenerationTiming.real_time
    rules: list[BasicRule]


class ReferralTier(_Stored):
    """A stored invite-count range; its grant rule id is ``<rule id>:<tier id>``."""

    id: str
    min_invites: int
    max_invites: int | None = None
    prize_id: uuid.UUID
    bonus_prize_id: uuid.UUID | None = None


class ReferralRule(_Stored):
    """A stored referral rule (fixed: prize_id; tiered: tiers)."""

    id: str
    task: TaskType
    threshold: Amount | None = None
    currency: str | None = None
    prize_id: uuid.UUID | None = None
    invitee_prize_id: uuid.UUID | None = None
    enterprise_id: str | None = None
    tiers: list[ReferralTier] = Field(default_factory=list)


class PrizeLimit(_Stored):
    """Per-user cap on one prize in this activity."""

    prize_id: uuid.UUID = Field(description="A prize awarded by this activity's rules")
    max_per_user: int


class ReferralConfig(_Budgeted):
    """Stored config of a referral activity."""

    reward_type: RewardType
    rules: list[ReferralRule]
    prize_limits: list[PrizeLimit] = Field(default_factory=list)


class HelperReward(_Stored):
    """A stored helper reward; segment null = all users."""

    id: str
    segment_id: uuid.UUID | None = None
    prize_id: uuid.UUID


class TeamConfig(_Budgeted):
    """Stored config of an assist-to-win team activity; initiator grant rule id is
    ``initiator``."""

    form: Literal["assist"] = "assist"
    helpers_needed: int
    initiation_limit: int | None = None
    assist_limit: int | None = None
    initiator_prize_id: uuid.UUID
    helper_rewards: list[HelperReward] = Field(default_factory=list)


class NonStandardConfig(_Stored):
    pass


StoredConfig = BasicConfig | ReferralConfig | TeamConfig | NonStandardConfig

CONFIG_MODELS: dict[str, type[_Stored]] = {
    "basic": BasicConfig,
    "referral": ReferralConfig,
    "team": TeamConfig,
    "non_standard": NonStandardConfig,
}


def parse_config(kind: str, config: dict[str, Any]) -> Any:
    """The typed view of a stored ``activities.config`` for its kind."""
    return CONFIG_MODELS[kind].model_validate(config)


# --------------------------------------------------------------------------- read


class ActivityRead(BaseModel):
    id: uuid.UUID = Field(description="Activity id")
    seq: int | None = Field(None, description="Sequence number in the tenant (list 序号)")
    activity_code: str = Field(examples=["ACT-7K2M9QXD"], description="Immutable, unique")
    business_code: str = Field(examples=["BIZ-4Z8R2N6W"], description="Reward business code")
    kind: ActivityKind
    name: dict[str, Any] = Field(examples=[{"zh-Hans": "注册礼", "en": "Sign-up gift"}])
    status: ActivityStatus = Field(description="draft, running, ended (from the clock), closed")
    allowed_operations: list[Operation] = Field(
        default_factory=list, description="What this status allows (SPEC §1.3)"
    )
    starts_at: datetime | None = Field(description="Window start (null: non-standard, none)")
    ends_at: datetime | None = Field(description="Window end, exclusive")
    attribute: ActivityAttribute | None = Field(
        description="basic: unlimited|new_user|old_user; referral: regular|marketing; team: assist"
    )
    issuance_form: IssuanceForm = Field(description="automatic or manual")
    review_required: bool = Field(description="Review mode")
    cost_type: CostType | None = Field(description="marketing_promotion, daily_operations, rebate")
    remarks: str | None = Field(description="Operator memo")
    segment_id: uuid.UUID | None = Field(None, description="Target segment")
    segment_refresh: SegmentRefresh | None = Field(None, description="5m or 1d")
    config: BasicConfig | ReferralConfig | TeamConfig | dict[str, Any] = Field(
        description="Kind-specific configuration as stored: BasicConfig, ReferralConfig, "
        "TeamConfig, or {} for non_standard. Every rule, tier and helper reward carries its "
        "stable `id`; send them back unchanged when editing.",
    )
    version: int = Field(description="Also the ETag; send it back in If-Match to edit")
    submitter: str = Field(description="Who created it", examples=["operator:ops-1"])
    published_at: datetime | None = Field(description="When it was published")
    closed_at: datetime | None = Field(None, description="When it was closed")
    created_at: datetime = Field(description="Created")
    updated_at: datetime = Field(description="Last changed (equals created_at until edited)")


class MyActivity(BaseModel):
    """A running activity as an app user sees it (no operator fields)."""

    id: uuid.UUID = Field(description="Activity id")
    activity_code: str = Field(examples=["ACT-7K2M9QXD"], description="Activity code")
    kind: ActivityKind
    name: str = Field(description="In the Accept-Language language, with fallback")
    language: Literal["zh-Hans", "zh-Hant", "en"] = Field(
        examples=["zh-Hant"],
        description="The language `name` is actually in: the wanted one, or the fallback "
        "(zh-Hans ↔ zh-Hant, then en; en → zh-Hant → zh-Hans) when it has no such name",
    )
    attribute: ActivityAttribute | None = Field(description="As in the operator view")
    starts_at: datetime | None = Field(description="Window start")
    ends_at: datetime | None = Field(description="Window end, exclusive")
    started: bool = Field(description="False while published but before starts_at")


def decimal_str(value: Decimal | None) -> str | None:
    return None if value is None else format(value, "f")
