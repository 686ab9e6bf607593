"""Request-scoped dependencies shared by every service."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request, Security
from fastapi.security import HTTPAuthorizationCredentials

from service_kit.auth import bearer, decode_token
from service_kit.clock import Clock
from service_kit.db import SessionDep
from service_kit.errors import ProblemError
from service_kit.http import ServiceClient


async def _clock(
    request: Request,
    session: SessionDep,
    credentials: HTTPAuthorizationCredentials | None = Security(bearer),
) -> Clock:
    """The caller's tenant's clock: a sandbox tenant's own, else the system clock, read in
    the request's unit of work. A missing or bad token gets the system clock here; the
    route's authenticator refuses it anyway."""
    clocks = getattr(request.app.state, "clocks", None)
    if clocks is None or not clocks.enabled or credentials is None:
        return request.app.state.clock  # type: ignore[no-any-return]
    settings = request.app.state.settings
    try:
        principal = decode_token(
            settings.jwt_secret, credentials.credentials, settings.jwt_algorithm
        )
    except ProblemError:
        return request.app.state.clock  # type: ignore[no-any-return]
    return await clocks.for_tenant(principal.tenant_id, session)  # type: ignore[no-any-return]


def _http(request: Request) -> ServiceClient:
    return request.app.state.http


ClockDep = Annotated[Clock, Depends(_clock)]
HttpDep = Annotated[ServiceClient, Depends(_http)]
