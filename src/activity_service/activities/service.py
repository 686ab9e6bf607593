"""Activity configuration and lifecycle (SPEC §1.1–§1.3): create, edit with optimistic
concurrency, publish, close, lists; every change audited in its own transaction."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from pydantic import ValidationError
from sqlalchemy.ext.asyncio import AsyncSession

from activity_service.activities import validation
from activity_service.activities.models import Activity
from activity_service.activities.repository import ActivityFilters, ActivityRepository
from activity_service.activities.rules import (
    ALLOWED_OPERATIONS,
    FORBIDDEN_CODES,
    ActivityStatus,
    Operation,
    allowed,
    new_code,
    status_of,
)
from activity_service.activities.schemas import (
    ACTIVITY_CREATE_ADAPTER,
    KIND_FIELDS,
    ActivityCreateModel,
    ActivityPatch,
    ActivityRead,
    MyActivity,
)
from activity_service.audit import service as audit
from activity_service.prizes_client import PrizeChecker
from activity_service.segments import service as segments
from service_kit import preconditions
from service_kit.auth import Principal
from service_kit.errors import Conflict, NotFound, Unprocessable
from service_kit.i18n import localized_with_language
from service_kit.pagination import PageParams

COMMON_FIELDS = (
    "name",
    "starts_at",
    "ends_at",
    "segment_id",
    "segment_refresh",
    "remarks",
    "review_required",
    "cost_type",
    "issuance_form",
)


def to_read(activity: Activity, now: datetime) -> ActivityRead:
    status = status_of(activity.state, activity.ends_at, now)
    return ActivityRead(
        id=activity.id,
        seq=activity.seq,
        activity_code=activity.activity_code,
        business_code=activity.business_code,
        kind=activity.kind,
        name=activity.name,
        status=status,
        allowed_operations=sorted(op.value for op in ALLOWED_OPERATIONS[status]),
        starts_at=activity.starts_at,
        ends_at=activity.ends_at,
        attribute=activity.attribute,
        issuance_form=activity.issuance_form,
        review_required=activity.review_required,
        cost_type=activity.cost_type,
        remarks=activity.remarks,
        segment_id=activity.segment_id,
        segment_refresh=activity.segment_refresh,
        config=activity.config,
        version=activity.version,
        submitter=activity.submitter,
        published_at=activity.published_at,
        closed_at=activity.closed_at,
        created_at=activity.created_at,
        updated_at=activity.updated_at,
    )


def etag(activity: Activity) -> str:
    return preconditions.etag(activity.version)


def parse_if_match(header: str | None, *, required: bool) -> int | None:
    return preconditions.parse_if_match(header, required=required, what="activity")


def _columns(activity: Activity) -> dict[str, Any]:
    return {
        "kind": activity.kind,
        "name": activity.name,
        "starts_at": activity.starts_at,
        "ends_at": activity.ends_at,
        "segment_id": activity.segment_id,
        "segment_refresh": activity.segment_refresh,
        "remarks": activity.remarks,
        "review_required": activity.review_required,
        "cost_type": activity.cost_type,
        "issuance_form": activity.issuance_form,
        "attribute": activity.attribute,
    }


def _audit_view(columns: dict[str, Any], config: dict[str, Any]) -> dict[str, Any]:
    """The JSON document audit diffs compare: columns plus the kind's config fields."""
    view: dict[str, Any] = {}
    # Prize costs are looked up, not edited: they are not part of what an operator changed.
    kept = {k: v for k, v in config.items() if k != "prize_costs"}
    for key, value in {**columns, **kept}.items():
        if isinstance(value, datetime):
            value = value.isoformat()
        elif isinstance(value, uuid.UUID):
            value = str(value)
        view[key] = value
    return view


async def _unique_codes(repo: ActivityRepository, tenant_id: str) -> tuple[str, str]:
    for _ in range(10):
        activity_code, business_code = new_code("ACT-"), new_code("BIZ-")
        if not await repo.code_taken(tenant_id, activity_code, business_code):
            return activity_code, business_code
    raise RuntimeError("could not allocate activity codes")


async def _check_references(
    session: AsyncSession, tenant_id: str, body: ActivityCreateModel, prizes: PrizeChecker
) -> dict[uuid.UUID, dict[str, Any]]:
    """Segments (local) and prizes (reward_service over HTTP) must exist in the tenant."""
    referenced = validation.segment_ids(body)
    missing = set(await segments.missing_segments(session, tenant_id, [s for s, _ in referenced]))
    for segment_id, loc in referenced:
        if segment_id in missing:
            raise validation.ConfigError(
                "segment_not_found", f"No segment {segment_id} in this tenant.", loc
            )
    return await prizes.require_all(tenant_id, validation.prize_ids(body))


async def _budget_currency(session: AsyncSession, tenant_id: str, config: dict[str, Any]) -> None:
    """A budget is kept in the tenant's base currency: fill it in, refuse any other."""
    budget = config.get("budget")
    if budget is None:
        return
    from activity_service.tenants.service import tenant_context

    base = (await tenant_context(session, tenant_id)).base_currency
    if budget.get("currency") not in (None, base):
        raise validation.ConfigError(
            "budget_currency_not_base",
            f"A budget is in the tenant's base currency, {base}.",
            ["budget", "currency"],
        )
    budget["currency"] = base


def _prize_costs(
    body: ActivityCreateModel, config: dict[str, Any], found: dict[uuid.UUID, dict[str, Any]]
) -> None:
    """Keep the cost of every prize the rules award when there is a budget: what each grant
    takes from it. A prize without a cost cannot be budgeted."""
    config.pop("prize_costs", None)
    if config.get("budget") is None:
        return
    costs: dict[str, dict[str, str]] = {}
    for prize_id in validation.awarded_prize_ids(body):
        prize = found.get(prize_id) or {}
        amount, currency = prize.get("cost_amount"), prize.get("cost_currency")
        if amount is None or not currency:
            raise validation.ConfigError(
                "prize_cost_missing",
                f"Prize {prize_id} has no cost, so a budget cannot count it; give the prize "
                "a cost_amount or remove the budget.",
                ["budget"],
            )
        costs[str(prize_id)] = {"amount": str(amount), "currency": str(currency)}
    config["prize_costs"] = costs


async def create_activity(
    session: AsyncSession,
    principal: Principal,
    body: ActivityCreateModel,
    prizes: PrizeChecker,
    now: datetime | None = None,
) -> Activity:
    """Create a draft (a retry with the same Idempotency-Key is answered before this runs)."""
    repo = ActivityRepository.from_session(session)
    validation.check(body)
    columns, config = validation.storage_of(body, version=1)
    await _budget_currency(session, principal.tenant_id, config)
    found = await _check_references(session, principal.tenant_id, body, prizes)
    _prize_costs(body, config, found)
    activity_code, business_code = await _unique_codes(repo, principal.tenant_id)
    activity = Activity(
        id=uuid.uuid4(),
        tenant_id=principal.tenant_id,
        seq=await repo.next_seq(principal.tenant_id),
        activity_code=activity_code,
        business_code=business_code,
        state="draft",
        config=config,
        version=1,
        submitter=principal.actor,
        **columns,
    )
    repo.add(activity)
    await session.flush()
    await session.refresh(activity)
    audit.record(
        session,
        tenant_id=principal.tenant_id,
        activity_id=activity.id,
        actor=principal.actor,
        action="created",
        version=1,
        before=None,
        after=_audit_view(columns, config),
        at=now or activity.created_at,
    )
    return activity


async def get_activity(session: AsyncSession, tenant_id: str, activity_id: uuid.UUID) -> Activity:
    activity = await ActivityRepository.from_session(session).get(tenant_id, activity_id)
    if activity is None:
        raise NotFound(f"No activity {activity_id} in this tenant.", code="activity_not_found")
    return activity


_PAST = {
    Operation.view: "viewed",
    Operation.edit: "edited",
    Operation.close: "closed",
    Operation.publish: "published",
    Operation.delete: "deleted",
}


def _require(activity: Activity, operation: Operation, now: datetime) -> ActivityStatus:
    status = status_of(activity.state, activity.ends_at, now)
    if not allowed(status, operation):
        raise Conflict(
            f"A {status.value} activity cannot be {_PAST[operation]}; allowed: "
            f"{', '.join(sorted(o.value for o in ALLOWED_OPERATIONS[status]))}.",
            code=FORBIDDEN_CODES[operation],
            status_now=status.value,
        )
    return status


def _check_version(activity: Activity, expected: int | None) -> None:
    if expected is not None:
        preconditions.check_version(activity.version, expected, "activity")


def merged_body(activity: Activity, patch: ActivityPatch, running: bool) -> ActivityCreateModel:
    """The activity as it would be after ``patch``, validated like a creation."""
    data = patch.model_dump(mode="json", by_alias=True, exclude_unset=True)
    for immutable in ("activity_code", "business_code"):
        if immutable in data:
            raise Unprocessable(
                f"{immutable} is generated and can never be changed.",
                code="code_immutable",
                errors=[{"loc": ["body", immutable], "msg": "immutable", "type": "code_immutable"}],
            )
    current = validation.document_of(_columns(activity), activity.config)
    kind = data.get("kind") or activity.kind
    if kind != activity.kind:
        if running:
            raise Conflict(
                "A published activity's kind cannot change.",
                code="kind_frozen",
            )
        # A new kind starts from the common fields only: the old kind's rules never leak.
        base = {k: current[k] for k in COMMON_FIELDS if k in current}
    else:
        base = current
    if (
        kind == "referral"
        and activity.kind == "referral"
        and "reward_type" in data
        and data["reward_type"] != activity.config.get("reward_type")
    ):
        if running:
            raise Conflict(
                "A published activity's reward type cannot change.", code="reward_type_frozen"
            )
        if "rules" not in data:
            raise Unprocessable(
                "Changing the reward type replaces the rule list: send the new `rules` in the "
                "same request.",
                code="rules_required_on_reward_type_change",
                errors=[
                    {
                        "loc": ["body", "rules"],
                        "msg": "required with a new reward_type",
                        "type": "rules_required_on_reward_type_change",
                    }
                ],
            )
    merged = {**base, **data, "kind": kind}
    # Only the fields of the target kind may remain (e.g. `timing` after a kind change).
    allowed_fields = {"kind", *COMMON_FIELDS, *KIND_FIELDS[kind]}
    stray = sorted(set(data) - allowed_fields)
    if stray:
        raise Unprocessable(
            f"{', '.join(stray)} do not apply to a {kind} activity.",
            code="field_not_applicable",
            errors=[
                {"loc": ["body", f], "msg": "not applicable", "type": "field_not_applicable"}
                for f in stray
            ],
        )
    merged = {k: v for k, v in merged.items() if k in allowed_fields}
    try:
        return ACTIVITY_CREATE_ADAPTER.validate_python(merged)
    except ValidationError as exc:
        errors = [
            {
                "loc": ["body", *[p for p in e["loc"] if p != kind]],
                "msg": e["msg"],
                "type": e["type"],
            }
            for e in exc.errors()
        ]
        first = errors[0]
        raise Unprocessable(
            f"{'.'.join(str(p) for p in first['loc'])}: {first['msg']}", errors=errors
        ) from exc


def _check_frozen(activity: Activity, config: dict[str, Any]) -> None:
    """What a published activity may not change (SPEC §1.3)."""
    old = activity.config
    if activity.kind == "referral" and config.get("reward_type") != old.get("reward_type"):
        raise Conflict(
            "A published activity's reward type cannot change.", code="reward_type_frozen"
        )
    if activity.kind == "team" and config.get("form") != old.get("form"):
        raise Conflict("A published team activity's form cannot change.", code="team_form_frozen")
    before = validation.task_types(activity.kind, old)
    after = validation.task_types(activity.kind, config)
    if before != after:
        raise Conflict(
            "A published activity's task types cannot change "
            f"(published with {sorted(before)}, the edit has {sorted(after)}).",
            code="task_types_frozen",
        )


async def update_activity(
    session: AsyncSession,
    principal: Principal,
    activity_id: uuid.UUID,
    patch: ActivityPatch,
    if_match: int | None,
    prizes: PrizeChecker,
    now: datetime,
) -> Activity:
    if if_match is None:
        raise preconditions.PreconditionRequired(
            "Send If-Match with the ETag of the activity you edited (GET returns it)."
        )
    activity = await get_activity(session, principal.tenant_id, activity_id)
    _check_version(activity, if_match)
    status = _require(activity, Operation.edit, now)
    running = status is ActivityStatus.running
    body = merged_body(activity, patch, running)
    validation.check(body)
    next_version = activity.version + 1
    columns, config = validation.storage_of(body, version=next_version)
    await _budget_currency(session, principal.tenant_id, config)
    if running:
        _check_frozen(activity, config)
        if body.ends_at is not None and body.ends_at <= now:
            raise Unprocessable(
                "A running activity's ends_at cannot move into the past; close it instead.",
                code="ends_at_in_past",
                errors=[
                    {"loc": ["body", "ends_at"], "msg": "in the past", "type": "ends_at_in_past"}
                ],
            )
    before = _audit_view(_columns(activity), activity.config)
    after = _audit_view(columns, config)
    if before == after:
        return activity
    found = await _check_references(session, principal.tenant_id, body, prizes)
    _prize_costs(body, config, found)
    updated = await ActivityRepository.from_session(session).update_if_version(
        activity.id, activity.version, {**columns, "config": config}
    )
    if updated is None:
        raise preconditions.VersionMismatch(
            "Another change was saved meanwhile; reload the activity and retry.",
        )
    audit.record(
        session,
        tenant_id=principal.tenant_id,
        activity_id=activity.id,
        actor=principal.actor,
        action="updated",
        version=updated.version,
        before=before,
        after=after,
        at=now,
    )
    return updated


async def _transition(
    session: AsyncSession,
    principal: Principal,
    activity: Activity,
    values: dict[str, Any],
    action: str,
    now: datetime,
) -> Activity:
    before = {"state": activity.state}
    updated = await ActivityRepository.from_session(session).update_if_version(
        activity.id, activity.version, values
    )
    if updated is None:
        raise Conflict("The activity changed meanwhile; reload and retry.", code="version_conflict")
    audit.record(
        session,
        tenant_id=principal.tenant_id,
        activity_id=activity.id,
        actor=principal.actor,
        action=action,
        version=updated.version,
        before=before,
        after={"state": updated.state},
        at=now,
    )
    return updated


async def publish(
    session: AsyncSession,
    principal: Principal,
    activity_id: uuid.UUID,
    now: datetime,
    prizes: PrizeChecker | None = None,
    if_match: int | None = None,
) -> Activity:
    activity = await get_activity(session, principal.tenant_id, activity_id)
    _check_version(activity, if_match)
    _require(activity, Operation.publish, now)
    if activity.ends_at is not None and activity.ends_at <= now:
        raise Conflict(
            "The activity's window has already ended; move ends_at before publishing.",
            code="window_ended",
        )
    if prizes is not None:
        # Prizes may have changed since the draft was saved: check them again at go-live.
        try:
            body = ACTIVITY_CREATE_ADAPTER.validate_python(
                validation.document_of(_columns(activity), activity.config)
            )
        except ValidationError as exc:
            raise Conflict(
                "The stored configuration no longer validates; edit the draft first.",
                code="activity_config_invalid",
            ) from exc
        found = await _check_references(session, principal.tenant_id, body, prizes)
        values: dict[str, Any] = {"state": "published", "published_at": now}
        if (activity.config or {}).get("budget") is not None:
            # The budget counts the prizes' costs as they are at go-live.
            config = dict(activity.config)
            _prize_costs(body, config, found)
            values["config"] = config
        return await _transition(session, principal, activity, values, "published", now)
    return await _transition(
        session, principal, activity, {"state": "published", "published_at": now}, "published", now
    )


async def close(
    session: AsyncSession,
    principal: Principal,
    activity_id: uuid.UUID,
    now: datetime,
    if_match: int | None = None,
) -> Activity:
    activity = await get_activity(session, principal.tenant_id, activity_id)
    _check_version(activity, if_match)
    _require(activity, Operation.close, now)
    return await _transition(
        session, principal, activity, {"state": "closed", "closed_at": now}, "closed", now
    )


async def delete_draft(
    session: AsyncSession,
    principal: Principal,
    activity_id: uuid.UUID,
    now: datetime,
    if_match: int | None = None,
) -> None:
    """Delete a draft (never published, so nothing refers to it). Its audit trail is kept,
    ending with the deletion."""
    activity = await get_activity(session, principal.tenant_id, activity_id)
    _check_version(activity, if_match)
    _require(activity, Operation.delete, now)
    deleted = await ActivityRepository.from_session(session).delete_draft_if_version(
        activity.id, activity.version
    )
    if not deleted:
        raise Conflict("The activity changed meanwhile; reload and retry.", code="version_conflict")
    audit.record(
        session,
        tenant_id=principal.tenant_id,
        activity_id=activity.id,
        actor=principal.actor,
        action="deleted",
        version=activity.version + 1,
        before={"state": activity.state},
        after={"state": "deleted"},
        at=now,
    )


async def list_activities(
    session: AsyncSession,
    tenant_id: str,
    filters: ActivityFilters,
    page: PageParams,
    now: datetime,
) -> tuple[list[ActivityRead], str | None]:
    if (
        filters.window_from is not None
        and filters.window_to is not None
        and filters.window_to <= filters.window_from
    ):
        raise Unprocessable("window_to must be after window_from.", code="window_invalid")
    rows, cursor = await ActivityRepository.from_session(session).list(
        tenant_id, page, filters=filters, now=now
    )
    return [to_read(a, now) for a in rows], cursor


async def my_activities(
    session: AsyncSession,
    principal: Principal,
    language: str,
    page: PageParams,
    now: datetime,
) -> tuple[list[MyActivity], str | None]:
    """Running standard activities the user may take part in: an activity with a target
    segment is listed only to its members (as of its refresh delay), except team
    activities, where the segment restricts initiators but anyone may help."""
    rows, cursor = await ActivityRepository.from_session(session).running_for_users(
        principal.tenant_id, page, now
    )
    zone = await segments.tenant_zone(session, principal.tenant_id)
    items = []
    for activity in rows:
        if (
            activity.segment_id is not None
            and activity.kind != "team"
            and not await segments.is_member(
                session,
                principal.tenant_id,
                activity.segment_id,
                principal.sub,
                activity.segment_refresh or "5m",
                now,
                zone,
            )
        ):
            continue
        name, served = localized_with_language(activity.name, language)
        items.append(
            MyActivity(
                id=activity.id,
                activity_code=activity.activity_code,
                kind=activity.kind,
                name=name,
                language=served or language,
                attribute=activity.attribute,
                starts_at=activity.starts_at,
                ends_at=activity.ends_at,
                started=activity.starts_at is None or activity.starts_at <= now,
            )
        )
    return items, cursor
