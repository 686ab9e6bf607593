"""Business validation of an activity configuration and its storage form (no I/O).

Pydantic checks the shape; these rules give each configuration mistake its own ``code`` so an
operator console can point at the faulty field. Existence of prizes and segments needs I/O and
is checked by the service.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

from activity_service.activities.rules import (
    AVAILABLE_TEAM_FORMS,
    HELPERS_MAX,
    HELPERS_MIN,
    RewardType,
    TaskType,
    task_needs_threshold,
)
from activity_service.activities.schemas import (
    KIND_FIELDS,
    ActivityCreateModel,
    BasicActivityCreate,
    BudgetFields,
    LockUpIn,
    NonStandardActivityCreate,
    ReferralActivityCreate,
    ReferralRuleIn,
    TeamActivityCreate,
)
from service_kit.errors import Unprocessable


class ConfigError(Unprocessable):
    """A configuration rule broken; ``loc`` names the field like pydantic does."""

    def __init__(self, code: str, detail: str, loc: list[str | int]) -> None:
        super().__init__(
            detail, code=code, errors=[{"loc": ["body", *loc], "msg": detail, "type": code}]
        )
        self.loc = loc


def _threshold(task: TaskType, threshold: Any, currency: Any, loc: list[str | int]) -> None:
    if task_needs_threshold(task):
        if threshold is None:
            raise ConfigError(
                "threshold_required", f"Task {task.value} needs a threshold.", [*loc, "threshold"]
            )
        if currency is None:
            raise ConfigError(
                "currency_required",
                f"Task {task.value} needs the currency of its threshold.",
                [*loc, "currency"],
            )
    else:
        if threshold is not None:
            raise ConfigError(
                "threshold_not_applicable",
                f"Task {task.value} is completed by one action and takes no threshold.",
                [*loc, "threshold"],
            )
        if currency is not None:
            raise ConfigError(
                "threshold_not_applicable",
                f"Task {task.value} takes no threshold, so no currency either.",
                [*loc, "currency"],
            )


def _lock_up(lock_up: LockUpIn | None, loc: list[str | int]) -> None:
    if lock_up is None:
        return
    missing = [f for f in ("amount", "currency", "days") if getattr(lock_up, f) is None]
    if missing:
        raise ConfigError(
            "lock_up_incomplete",
            f"A lock-up needs amount, currency and days; missing: {', '.join(missing)}.",
            [*loc, "lock_up", missing[0]],
        )
    assert lock_up.days is not None
    if not 1 <= lock_up.days <= 3650:
        raise ConfigError(
            "lock_up_incomplete", "Lock-up days must be 1–3650.", [*loc, "lock_up", "days"]
        )


def _unique_ids(ids: list[str | None], loc: list[str | int]) -> None:
    seen: set[str] = set()
    for index, rule_id in enumerate(ids):
        if rule_id is None:
            continue
        if rule_id in seen:
            raise ConfigError(
                "duplicate_rule_id", f"Id {rule_id!r} is used twice.", [*loc, index, "id"]
            )
        seen.add(rule_id)


def check_tiers(rule: ReferralRuleIn, loc: list[str | int]) -> None:
    """Tier ranges: inclusive, from 1, contiguous, only the last one open-ended."""
    tiers = rule.tiers
    if not tiers:
        raise ConfigError(
            "tiers_required",
            "A tiered rule needs at least one invite-count range.",
            [*loc, "tiers"],
        )
    order = sorted(range(len(tiers)), key=lambda i: tiers[i].min_invites)
    expected_min = 1
    for position, index in enumerate(order):
        tier = tiers[index]
        tloc: list[str | int] = [*loc, "tiers", index]
        if tier.min_invites < 1:
            raise ConfigError(
                "tier_range_invalid", "min_invites must be at least 1.", [*tloc, "min_invites"]
            )
        if tier.max_invites is not None and tier.max_invites < tier.min_invites:
            raise ConfigError(
                "tier_range_invalid",
                f"Range {tier.min_invites}–{tier.max_invites} ends before it starts.",
                [*tloc, "max_invites"],
            )
        if tier.min_invites < expected_min:
            raise ConfigError(
                "tier_ranges_overlap",
                f"Range starting at {tier.min_invites} overlaps the previous range, which "
                f"covers up to {expected_min - 1}.",
                [*tloc, "min_invites"],
            )
        if tier.min_invites > expected_min:
            raise ConfigError(
                "tier_ranges_gap",
                f"Invite counts {expected_min}–{tier.min_invites - 1} fall in no range.",
                [*tloc, "min_invites"],
            )
        if tier.max_invites is None:
            if position != len(order) - 1:
                raise ConfigError(
                    "tier_ranges_overlap",
                    "Only the last range may be open-ended (max_invites null); this one "
                    "overlaps every later range.",
                    [*tloc, "max_invites"],
                )
            break
        expected_min = tier.max_invites + 1
    _unique_ids([t.id for t in tiers], [*loc, "tiers"])


def _enterprise(task: TaskType, enterprise_id: str | None, loc: list[str | int]) -> None:
    """Basic and referral rules alike may name the enterprise of a certification task."""
    if enterprise_id and task is not TaskType.enterprise_certification:
        raise ConfigError(
            "enterprise_id_not_applicable",
            "enterprise_id applies to the enterprise_certification task only.",
            [*loc, "enterprise_id"],
        )


def _check_referral(body: ReferralActivityCreate) -> None:
    if not body.rules:
        raise ConfigError("rules_required", "Give at least one reward rule.", ["rules"])
    for index, rule in enumerate(body.rules):
        loc: list[str | int] = ["rules", index]
        _threshold(rule.task, rule.threshold, rule.currency, loc)
        _enterprise(rule.task, rule.enterprise_id, loc)
        if body.reward_type is RewardType.fixed:
            if rule.prize_id is None:
                raise ConfigError(
                    "prize_required",
                    "A fixed reward rule needs the inviter's prize_id.",
                    [*loc, "prize_id"],
                )
            if rule.tiers:
                raise ConfigError(
                    "tiers_not_applicable",
                    "Invite-count ranges belong to tiered rewards only.",
                    [*loc, "tiers"],
                )
        else:
            if rule.prize_id is not None:
                raise ConfigError(
                    "prize_not_applicable",
                    "A tiered rule takes its prizes from its ranges; omit prize_id.",
                    [*loc, "prize_id"],
                )
            check_tiers(rule, loc)
    _unique_ids([r.id for r in body.rules], ["rules"])
    awarded = set(_rule_prize_ids(body))
    seen: set[uuid.UUID] = set()
    for index, limit in enumerate(body.prize_limits):
        loc = ["prize_limits", index]
        if limit.max_per_user < 1:
            raise ConfigError(
                "prize_limit_invalid", "max_per_user must be at least 1.", [*loc, "max_per_user"]
            )
        if limit.prize_id in seen:
            raise ConfigError(
                "duplicate_prize_limit",
                f"Prize {limit.prize_id} has two limits.",
                [*loc, "prize_id"],
            )
        seen.add(limit.prize_id)
        if limit.prize_id not in awarded:
            # A limit on a prize no rule awards limits nothing: surely a mistake.
            raise ConfigError(
                "prize_limit_unknown_prize",
                f"Prize {limit.prize_id} is not awarded by any rule of this activity.",
                [*loc, "prize_id"],
            )


def _check_basic(body: BasicActivityCreate) -> None:
    if not body.rules:
        raise ConfigError("rules_required", "Give at least one reward rule.", ["rules"])
    for index, rule in enumerate(body.rules):
        loc: list[str | int] = ["rules", index]
        _threshold(rule.task, rule.threshold, rule.currency, loc)
        _enterprise(rule.task, rule.enterprise_id, loc)
        _lock_up(rule.lock_up, loc)
    _unique_ids([r.id for r in body.rules], ["rules"])


def _check_team(body: TeamActivityCreate) -> None:
    if body.form not in AVAILABLE_TEAM_FORMS:
        raise ConfigError(
            "team_form_not_available",
            f"The team form {body.form.value} is not yet online; only assist is available.",
            ["form"],
        )
    if not HELPERS_MIN <= body.helpers_needed <= HELPERS_MAX:
        raise ConfigError(
            "helpers_needed_out_of_range",
            f"helpers_needed must be an integer from {HELPERS_MIN} to {HELPERS_MAX}.",
            ["helpers_needed"],
        )
    for field in ("initiation_limit", "assist_limit"):
        value = getattr(body, field)
        if value is not None and value < 1:
            raise ConfigError(
                "limit_out_of_range",
                f"{field} must be at least 1, or null for unlimited.",
                [field],
            )
    _unique_ids([h.id for h in body.helper_rewards], ["helper_rewards"])


def check(body: ActivityCreateModel) -> None:
    """Raise the first ``ConfigError`` of ``body``, checking fields in form order."""
    if not (body.name.zh_hans or body.name.zh_hant or body.name.en):
        raise ConfigError(
            "name_required", "Give the name in at least one of zh-Hans, zh-Hant, en.", ["name"]
        )
    if isinstance(body, NonStandardActivityCreate):
        if (body.starts_at is None) != (body.ends_at is None):
            raise ConfigError(
                "window_incomplete",
                "Give both starts_at and ends_at, or neither.",
                ["ends_at" if body.ends_at is None else "starts_at"],
            )
    if body.starts_at is not None and body.ends_at is not None and body.ends_at <= body.starts_at:
        raise ConfigError("window_invalid", "ends_at must be after starts_at.", ["ends_at"])
    helper_segments = isinstance(body, TeamActivityCreate) and any(
        h.segment_id is not None for h in body.helper_rewards
    )
    if (body.segment_id is not None or helper_segments) and body.segment_refresh is None:
        raise ConfigError(
            "segment_refresh_required",
            "A target segment (or a helper reward segment) needs a refresh delay: 5m or 1d.",
            ["segment_refresh"],
        )
    if isinstance(body, BasicActivityCreate):
        _check_basic(body)
    elif isinstance(body, ReferralActivityCreate):
        _check_referral(body)
    elif isinstance(body, TeamActivityCreate):
        _check_team(body)
    if isinstance(body, BudgetFields):
        _check_budget(body)


def _check_budget(body: ActivityCreateModel) -> None:
    """Totals of prizes the rules award, each once, at least 1 (the budget's amount is
    positive by its type)."""
    assert isinstance(body, BudgetFields)
    awarded = set(_rule_prize_ids(body))
    seen: set[uuid.UUID] = set()
    for index, total in enumerate(body.prize_totals):
        loc: list[str | int] = ["prize_totals", index]
        if total.total_quantity < 1:
            raise ConfigError(
                "prize_total_invalid",
                "total_quantity must be at least 1.",
                [*loc, "total_quantity"],
            )
        if total.prize_id in seen:
            raise ConfigError(
                "duplicate_prize_total",
                f"Prize {total.prize_id} has two total quantities.",
                [*loc, "prize_id"],
            )
        seen.add(total.prize_id)
        if total.prize_id not in awarded:
            raise ConfigError(
                "prize_total_unknown_prize",
                f"Prize {total.prize_id} is not awarded by any rule of this activity.",
                [*loc, "prize_id"],
            )


def awarded_prize_ids(body: ActivityCreateModel) -> list[uuid.UUID]:
    """The prizes the rules award (what a budget needs the cost of), without repeats."""
    return list(dict.fromkeys(_rule_prize_ids(body)))


def _rule_prize_ids(body: ActivityCreateModel) -> Iterator[uuid.UUID]:
    if isinstance(body, BasicActivityCreate):
        for rule in body.rules:
            yield rule.prize_id
    elif isinstance(body, ReferralActivityCreate):
        for r in body.rules:
            for prize in (r.prize_id, r.invitee_prize_id):
                if prize is not None:
                    yield prize
            for tier in r.tiers:
                yield tier.prize_id
                if tier.bonus_prize_id is not None:
                    yield tier.bonus_prize_id
    elif isinstance(body, TeamActivityCreate):
        yield body.initiator_prize_id
        for helper in body.helper_rewards:
            yield helper.prize_id


def prize_ids(body: ActivityCreateModel) -> list[uuid.UUID]:
    """Every prize the configuration references, in order, without repeats."""
    ids = list(_rule_prize_ids(body))
    if isinstance(body, ReferralActivityCreate):
        ids.extend(limit.prize_id for limit in body.prize_limits)
    if isinstance(body, BudgetFields):
        ids.extend(total.prize_id for total in body.prize_totals)
    return list(dict.fromkeys(ids))


def segment_ids(body: ActivityCreateModel) -> list[tuple[uuid.UUID, list[str | int]]]:
    """Every segment the configuration references, with where it is referenced."""
    found: list[tuple[uuid.UUID, list[str | int]]] = []
    if body.segment_id is not None:
        found.append((body.segment_id, ["segment_id"]))
    if isinstance(body, TeamActivityCreate):
        for index, helper in enumerate(body.helper_rewards):
            if helper.segment_id is not None:
                found.append((helper.segment_id, ["helper_rewards", index, "segment_id"]))
    return found


def task_types(kind: str, config: dict[str, Any]) -> set[str]:
    """Task types of a stored config (frozen once published)."""
    if kind in ("basic", "referral"):
        return {str(rule.get("task")) for rule in config.get("rules", [])}
    return set()


# --------------------------------------------------------------------------- storage


def _next_id(prefix: str, taken: set[str], start: int) -> Iterator[str]:
    number = start
    while True:
        candidate = f"{prefix}{number}"
        number += 1
        if candidate not in taken:
            taken.add(candidate)
            yield candidate


def _assign_ids(items: list[dict[str, Any]], prefix: str) -> None:
    """Fill missing ids. ``prefix`` carries the version, so an id added by an edit never
    reuses one a removed rule had (grant keys stay unambiguous)."""
    taken = {str(item["id"]) for item in items if item.get("id")}
    fresh = _next_id(prefix, taken, 1)
    for item in items:
        if not item.get("id"):
            item["id"] = next(fresh)


def storage_of(body: ActivityCreateModel, version: int) -> tuple[dict[str, Any], dict[str, Any]]:
    """(columns, config) to store for a validated body at ``version``."""
    data = body.model_dump(mode="json", by_alias=True)
    columns: dict[str, Any] = {
        "kind": body.kind,
        "name": body.name.model_dump(by_alias=True, exclude_none=True),
        "starts_at": body.starts_at,
        "ends_at": body.ends_at,
        "segment_id": body.segment_id,
        "segment_refresh": body.segment_refresh.value if body.segment_refresh else None,
        "remarks": body.remarks,
        "review_required": body.review_required,
        "cost_type": body.cost_type.value if body.cost_type else None,
        "issuance_form": body.issuance_form.value,
        "attribute": None,
    }
    config: dict[str, Any] = {}
    tag = "" if version == 1 else f"v{version}"
    if isinstance(body, BasicActivityCreate):
        columns["attribute"] = body.attribute.value
        rules = data["rules"]
        _assign_ids(rules, f"{tag}r")
        for rule in rules:
            lock = rule.get("lock_up")
            if lock is not None:
                rule["lock_up"] = {
                    "amount": lock["amount"],
                    "currency": lock["currency"],
                    "days": lock["days"],
                    "issue_after_lock": lock["issue_after_lock"],
                }
        config = {"timing": body.timing.value, "rules": rules}
    elif isinstance(body, ReferralActivityCreate):
        columns["attribute"] = body.attribute.value
        rules = data["rules"]
        _assign_ids(rules, f"{tag}r")
        for rule in rules:
            _assign_ids(rule["tiers"], f"{tag}t")
        config = {
            "reward_type": body.reward_type.value,
            "rules": rules,
            "prize_limits": data["prize_limits"],
        }
    elif isinstance(body, TeamActivityCreate):
        columns["attribute"] = body.form.value
        helpers = data["helper_rewards"]
        _assign_ids(helpers, f"{tag}h")
        config = {
            "form": body.form.value,
            "helpers_needed": body.helpers_needed,
            "initiation_limit": body.initiation_limit,
            "assist_limit": body.assist_limit,
            "initiator_prize_id": data["initiator_prize_id"],
            "helper_rewards": helpers,
        }
    if isinstance(body, BudgetFields):
        # The budget's currency (the tenant's base) and the prizes' costs are filled in by
        # the service, which asks for them.
        if data["budget"] is not None:
            config["budget"] = data["budget"]
        if data["prize_totals"]:
            config["prize_totals"] = data["prize_totals"]
    return columns, config


def document_of(columns: dict[str, Any], config: dict[str, Any]) -> dict[str, Any]:
    """The create-shaped body of a stored activity: what an edit is merged into."""
    kind = columns["kind"]
    doc: dict[str, Any] = {
        "kind": kind,
        "name": columns["name"],
        "starts_at": columns["starts_at"],
        "ends_at": columns["ends_at"],
        "segment_id": columns["segment_id"],
        "segment_refresh": columns["segment_refresh"],
        "remarks": columns["remarks"],
        "review_required": columns["review_required"],
        "cost_type": columns["cost_type"],
        "issuance_form": columns["issuance_form"],
    }
    if kind == "basic":
        doc["attribute"] = columns["attribute"]
    elif kind == "referral":
        doc["attribute"] = columns["attribute"]
    for field in KIND_FIELDS[kind]:
        if field in config:
            doc[field] = config[field]
    if kind == "team":
        doc["form"] = config.get("form", "assist")
    return doc
