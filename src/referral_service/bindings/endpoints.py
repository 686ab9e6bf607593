from __future__ import annotations

import json
from datetime import datetime, timedelta
from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query, Request, Response, status
from sqlalchemy.ext.asyncio import AsyncSession

from contracts.payloads import Node
from referral_service.bindings import service
from referral_service.bindings.completions import ActivityCompletions
from referral_service.bindings.schemas import (
    BindingChange,
    BindingCreate,
    BindingRead,
    Channel,
    EffectiveInvitersList,
    EffectiveInvitersQuery,
    InviteeBindings,
    InviterStats,
    MyInvitee,
    SelfBindRequest,
    UserBindingRead,
)
from referral_service.invite_codes.endpoints import CODE_PROBLEMS, LimiterDep
from referral_service.invite_codes.service import resolve_code_throttled
from referral_service.tenant_settings.service import registration_grace
from service_kit.auth import ACTIVITY_READ, ACTIVITY_WRITE, Authenticator, CallerKind, Principal
from service_kit.db import SessionDep
from service_kit.deps import ClockDep
from service_kit.errors import PROBLEM_RESPONSES, Unprocessable, problems
from service_kit.idempotency import IdempotencyDep
from service_kit.pagination import Page, PageParamsDep
from service_kit.routing import ServiceRoute

router = APIRouter(route_class=ServiceRoute, tags=["bindings"], responses=PROBLEM_RESPONSES)

AppUser = Annotated[Principal, Depends(Authenticator(kinds={CallerKind.user}))]
BindingReader = Annotated[
    Principal,
    Depends(
        Authenticator(kinds={CallerKind.operator, CallerKind.service}, permissions=ACTIVITY_READ)
    ),
]
OperatorReader = Annotated[
    Principal, Depends(Authenticator(kinds={CallerKind.operator}, permissions=ACTIVITY_READ))
]
BindingWriter = Annotated[
    Principal,
    Depends(
        Authenticator(kinds={CallerKind.operator, CallerKind.service}, permissions=ACTIVITY_WRITE)
    ),
]
OperatorWriter = Annotated[
    Principal, Depends(Authenticator(kinds={CallerKind.operator}, permissions=ACTIVITY_WRITE))
]
UserIdPath = Annotated[str, Path(min_length=1, max_length=128, examples=["u-2002"])]


def _completions(request: Request) -> ActivityCompletions:
    return ActivityCompletions(request.app.state.http, request.app.state.settings.activity_url)


CompletionsDep = Annotated[ActivityCompletions, Depends(_completions)]

# What binding or changing an inviter may be refused for.
ALREADY_BOUND = {"already_bound": "the invitee already has an inviter at this node"}
BIND_CONFLICTS = {
    "node_completed": "the invitee completed the node: its inviter is frozen",
    "binding_cycle": "the inviter is (effectively) invited by the invitee",
    "concurrent_change": "a concurrent change touched the same users; retry",
}
SELF_INVITATION = {"self_invitation": "a user cannot invite themselves"}
NOT_CHANGEABLE = {"node_not_changeable": "the registration inviter is never changed or removed"}
COMPLETION_UNKNOWN = {
    503: {"completion_unknown": "the activity service cannot say whether the node is completed"}
}


async def _grace(request: Request, session: AsyncSession, tenant_id: str) -> timedelta:
    default = request.app.state.settings.registration_bind_grace_hours
    return await registration_grace(session, tenant_id, default)


@router.post(
    "/v1/me/binding",
    status_code=status.HTTP_201_CREATED,
    summary="Bind me to an inviter",
    responses=problems(
        {
            **CODE_PROBLEMS,
            409: {**ALREADY_BOUND, **BIND_CONFLICTS},
            422: {**CODE_PROBLEMS[422], **SELF_INVITATION},
            **COMPLETION_UNKNOWN,
        }
    ),
)
async def bind_me(
    body: SelfBindRequest,
    request: Request,
    principal: AppUser,
    idempotency: IdempotencyDep,
    session: SessionDep,
    clock: ClockDep,
    limiter: LimiterDep,
) -> BindingRead:
    """Bind the calling user to the owner of ``invite_code`` (same app) at the registration
    node: once, and only until the tenant's grace after registration has passed.

    Errors: 422 `invalid_invite_code` / `self_invitation`, 404 `invite_code_not_found`,
    409 `already_bound` / `node_completed` / `binding_cycle`, 429 `too_many_attempts`."""
    owner = await resolve_code_throttled(
        session, limiter, principal, body.invite_code, principal.app_id
    )
    binding = await service.bind(
        session,
        tenant_id=principal.tenant_id,
        invitee_id=principal.sub,
        inviter_id=owner.user_id,
        node=Node.registration,
        channel=Channel.invite_code,
        actor=principal.actor,
        at=clock.now(),
        registration_grace=await _grace(request, session, principal.tenant_id),
        app_id=principal.app_id,
    )
    return BindingRead.model_validate(binding)


@router.get("/v1/me/invitees", summary="My invitees and their progress", responses=problems({}))
async def list_my_invitees(
    principal: AppUser, session: SessionDep, page: PageParamsDep
) -> Page[MyInvitee]:
    """Everyone bound to me as their inviter at any node, newest first, with the time
    each completed registration, account opening and deposit, and at which nodes I am
    the inviter that counts."""
    return await service.my_invitees(session, principal.tenant_id, principal.sub, page)


@router.post(
    "/v1/bindings",
    status_code=status.HTTP_201_CREATED,
    summary="Bind an invitee by hand",
    responses=problems(
        {
            409: {**ALREADY_BOUND, **BIND_CONFLICTS},
            422: {
                **SELF_INVITATION,
                "channel_not_allowed": "the channel is not the caller's (operators bind by "
                "`operator`)",
            },
            **COMPLETION_UNKNOWN,
        }
    ),
)
async def create_binding(
    body: BindingCreate,
    request: Request,
    principal: BindingWriter,
    idempotency: IdempotencyDep,
    session: SessionDep,
    clock: ClockDep,
    completions: CompletionsDep,
) -> BindingRead:
    """Bind the inviter of a node that has none yet and is not completed. Operators bind by
    channel `operator` (recorded with their id) — at the registration node also after the
    invite-code grace, for a user who has no registration inviter (never replacing one);
    services by `invite_code` or `share_link` (with the shared activity's `activity_code`).
    The account-opening and deposit nodes are frozen as soon as their event is stored: the
    activity service is asked, and if it cannot answer nothing is bound (503).

    Errors: 422 `self_invitation` / `channel_not_allowed`, 409 `already_bound` /
    `node_completed` / `binding_cycle`, 503 `completion_unknown`."""
    if principal.kind is CallerKind.operator:
        if body.channel not in (None, Channel.operator):
            raise Unprocessable("Operators bind by channel `operator`.", code="channel_not_allowed")
        channel, operator_id = Channel.operator, principal.sub
    else:
        if body.channel is Channel.operator:
            raise Unprocessable(
                "Channel `operator` is for operators' manual binds.", code="channel_not_allowed"
            )
        channel, operator_id = body.channel or Channel.share_link, None
    if body.activity_code is not None and channel is not Channel.share_link:
        raise Unprocessable(
            "`activity_code` names the activity of a share link: channel `share_link` only.",
            code="channel_not_allowed",
        )
    binding = await service.bind(
        session,
        tenant_id=principal.tenant_id,
        invitee_id=body.invitee_id,
        inviter_id=body.inviter_id,
        node=body.node,
        channel=channel,
        actor=principal.actor,
        at=clock.now(),
        registration_grace=await _grace(request, session, principal.tenant_id),
        operator_id=operator_id,
        activity_code=body.activity_code,
        completions=completions,
    )
    return BindingRead.model_validate(binding)


@router.get(
    "/v1/bindings",
    summary="Bindings per node, searchable by invitee or inviter",
    responses=problems({}),
)
async def list_bindings(
    principal: OperatorReader,
    session: SessionDep,
    page: PageParamsDep,
    node: Annotated[Node | None, Query(description="The tab: one node (all when omitted)")] = None,
    invitee_id: Annotated[str | None, Query(max_length=128, examples=["u-2002"])] = None,
    inviter_id: Annotated[str | None, Query(max_length=128, examples=["u-1001"])] = None,
) -> Page[BindingRead]:
    """Newest first, with each invitee's completion of the node."""
    return await service.list_bindings(
        session, principal.tenant_id, page, node=node, invitee_id=invitee_id, inviter_id=inviter_id
    )


@router.put(
    "/v1/bindings/{invitee_id}/{node}",
    summary="Bind or change a node's inviter",
    responses=problems(
        {
            409: BIND_CONFLICTS,
            422: {**SELF_INVITATION, **NOT_CHANGEABLE},
            **COMPLETION_UNKNOWN,
        }
    ),
)
async def change_binding(
    invitee_id: UserIdPath,
    node: Node,
    body: BindingChange,
    principal: OperatorWriter,
    session: SessionDep,
    clock: ClockDep,
    completions: CompletionsDep,
) -> BindingRead:
    """Set the account-opening or deposit inviter of an invitee who has not completed that
    node (binds it when unbound, else replaces it; the same inviter again changes nothing).
    The node is completed as soon as its event (`account.opened`, first deposit) is stored
    by the activity service, which is asked first: if it cannot answer, nothing changes
    (503). A change that would make anyone their own effective inviter (the node's own
    inviter, else the registration inviter) is refused. The registration inviter is never
    changed (422 `node_not_changeable`).

    Errors: 422 `node_not_changeable` / `self_invitation`, 409 `node_completed` /
    `binding_cycle` / `concurrent_change`, 503 `completion_unknown`."""
    binding, _ = await service.set_inviter(
        session,
        tenant_id=principal.tenant_id,
        invitee_id=invitee_id,
        inviter_id=body.inviter_id,
        node=node,
        actor=principal.actor,
        operator_id=principal.sub,
        at=clock.now(),
        completions=completions,
    )
    return BindingRead.model_validate(binding)


@router.delete(
    "/v1/bindings/{invitee_id}/{node}",
    status_code=status.HTTP_204_NO_CONTENT,
    summary="Remove a node's inviter",
    responses=problems(
        {
            404: {"binding_not_found": "the node has no inviter of its own"},
            409: BIND_CONFLICTS,
            422: NOT_CHANGEABLE,
            **COMPLETION_UNKNOWN,
        }
    ),
)
async def delete_binding(
    invitee_id: UserIdPath,
    node: Node,
    principal: OperatorWriter,
    session: SessionDep,
    clock: ClockDep,
    completions: CompletionsDep,
) -> None:
    """Remove the account-opening or deposit inviter of an invitee who has not completed
    that node (asked of the activity service, as for a change); the registration inviter
    applies there again. The removal is kept in the history (`unbound`, with the removed
    inviter as `previous_inviter_id`).

    Errors: 404 `binding_not_found`, 422 `node_not_changeable` (the registration inviter
    is never removed, as it is never changed), 409 `node_completed` / `binding_cycle` (the
    registration inviter would then make the invitee their own effective inviter), 503
    `completion_unknown`."""
    await service.unbind(
        session,
        tenant_id=principal.tenant_id,
        invitee_id=invitee_id,
        node=node,
        actor=principal.actor,
        at=clock.now(),
        completions=completions,
    )


@router.post(
    "/v1/bindings/effective-inviters",
    summary="The inviter that applies at each node, for many invitees",
    response_model=EffectiveInvitersList,
    responses=problems({}),
)
async def lookup_effective_inviters(
    body: EffectiveInvitersQuery,
    principal: BindingReader,
    idempotency: IdempotencyDep,
    session: SessionDep,
) -> Response:
    """A question, sent as a POST for its long list of up to 1,000 invitees; it changes
    nothing. Per invitee, the effective inviter of each node (the node's own, else the
    registration inviter), as `GET /v1/bindings/{invitee_id}` answers one at a time. The
    activity service uses it to dry-run referral activities."""
    items = await service.effective_inviters_of(session, principal.tenant_id, body.invitee_ids)
    # Encoded as is: the items are plain strings and nulls already shaped as the response
    # model, which would otherwise be validated and serialized again per invitee.
    return Response(json.dumps({"items": items}), media_type="application/json")


@router.get(
    "/v1/bindings/{invitee_id}",
    summary="All nodes of one invitee, with history",
    responses=problems({}),
)
async def get_invitee_bindings(
    invitee_id: UserIdPath,
    request: Request,
    principal: BindingReader,
    session: SessionDep,
    clock: ClockDep,
) -> InviteeBindings:
    """The three nodes with own binding, effective inviter (the node's own, else the
    registration inviter), completion and whether it is frozen, plus every change."""
    return await service.invitee_bindings(
        session,
        principal.tenant_id,
        invitee_id,
        clock.now(),
        await _grace(request, session, principal.tenant_id),
    )


@router.get(
    "/v1/users/{user_id}/bindings",
    summary="Bindings where a user is invitee or inviter",
    responses=problems({}),
)
async def get_user_bindings(
    user_id: UserIdPath, principal: OperatorReader, session: SessionDep, page: PageParamsDep
) -> Page[UserBindingRead]:
    """Answers "did this user's referral binding succeed?" (SPEC §5), newest first."""
    return await service.user_bindings(session, principal.tenant_id, user_id, page)


@router.get(
    "/v1/inviters/{inviter_id}/stats",
    summary="Invitee counts of an inviter per node",
    responses=problems(
        {
            422: {
                "invalid_window": "`from` is not before `until`",
                "naive_datetime": "a time without a time zone offset",
            }
        }
    ),
)
async def get_inviter_stats(
    inviter_id: UserIdPath,
    principal: BindingReader,
    session: SessionDep,
    since: Annotated[
        datetime | None,
        Query(alias="from", description="Window start, inclusive (bound, or completed time)"),
    ] = None,
    until: Annotated[datetime | None, Query(description="Window end, exclusive")] = None,
    completed_only: Annotated[
        bool, Query(description="Count only invitees who completed the node")
    ] = False,
) -> InviterStats:
    """Counts drive tiered rewards. The window applies to the bound time, or with
    `completed_only` to the time the invitee completed the node. Index-backed: the cost
    follows this inviter's invitees, not the size of the graph."""
    for moment in (since, until):
        if moment is not None and moment.tzinfo is None:
            raise Unprocessable("Times need a time zone offset.", code="naive_datetime")
    return await service.inviter_stats(
        session,
        principal.tenant_id,
        inviter_id,
        since=since,
        until=until,
        completed_only=completed_only,
    )
