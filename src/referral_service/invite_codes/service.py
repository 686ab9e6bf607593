"""Invite codes (SPEC §2.1): one per user per app, created on first request, resolved for
binding and for other services."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from referral_service.invite_codes.attempts import CodeAttemptLimiter
from referral_service.invite_codes.codes import generate_code, looks_like_code, normalize_code
from referral_service.invite_codes.models import InviteCode
from referral_service.invite_codes.repository import InviteCodeRepository
from service_kit.auth import Principal
from service_kit.errors import NotFound, ProblemError, Unprocessable

MAX_ATTEMPTS = 10


async def get_or_create_code(
    session: AsyncSession, tenant_id: str, app_id: str, user_id: str
) -> InviteCode:
    repo = InviteCodeRepository.from_session(session)
    for _ in range(MAX_ATTEMPTS):
        existing = await repo.for_user(tenant_id, app_id, user_id)
        if existing is not None:
            return existing
        # A collision (code taken, or a concurrent first call for this user) inserts
        # nothing; the loop then finds the user's code or draws another.
        await repo.insert_if_free(tenant_id, app_id, user_id, generate_code())
    raise RuntimeError("could not allocate an invite code")  # 30^8 codes: practically never


async def resolve_code(
    session: AsyncSession, tenant_id: str, raw_code: str, app_id: str | None = None
) -> InviteCode:
    """The code's owner; 422 ``invalid_invite_code`` for what cannot be a code, 404
    ``invite_code_not_found`` for a well-formed code nobody in this tenant/app has."""
    code = normalize_code(raw_code)
    if not looks_like_code(code):
        raise Unprocessable(
            "An invite code is 6 to 8 letters and digits (no 0, 1, I, L, O or U).",
            code="invalid_invite_code",
        )
    found = await InviteCodeRepository.from_session(session).by_code(tenant_id, code, app_id)
    if found is None:
        raise NotFound("No user has this invite code.", code="invite_code_not_found")
    return found


async def resolve_code_throttled(
    session: AsyncSession,
    limiter: CodeAttemptLimiter,
    principal: Principal,
    raw_code: str,
    app_id: str | None = None,
) -> InviteCode:
    """``resolve_code`` for callers that could guess: wrong codes count against them."""
    await limiter.check(principal)
    try:
        return await resolve_code(session, principal.tenant_id, raw_code, app_id)
    except ProblemError as wrong:
        if wrong.code in {"invalid_invite_code", "invite_code_not_found"}:
            await limiter.record_failure(principal)
        raise
