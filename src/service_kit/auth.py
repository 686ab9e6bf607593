"""Bearer JWT authentication: caller kinds, permissions and tenant scoping (SPEC §4).

Claims: ``sub``, ``tenant_id``, ``kind`` (user / operator / service), ``app_id`` (users),
``permissions`` (operators). Routes declare who may call them with an ``Authenticator``
wrapped in an ``Annotated`` alias, e.g.::

    ActivityWrite = Annotated[Principal, Depends(Authenticator(
        kinds={CallerKind.operator}, permissions={Permission.activity_center_full}))]
"""

from __future__ import annotations

import functools
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from enum import StrEnum

import jwt
from fastapi import Request, Security
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from service_kit.errors import Forbidden, Unauthenticated


class CallerKind(StrEnum):
    user = "user"
    operator = "operator"
    service = "service"


class Permission(StrEnum):
    activity_center_full = "ActivityCenterFull"
    activity_center_read = "ActivityCenterRead"
    rights_system_full = "RightsSystemFull"
    rights_system_read = "RightsSystemRead"


ACTIVITY_READ = {Permission.activity_center_full, Permission.activity_center_read}
ACTIVITY_WRITE = {Permission.activity_center_full}
RIGHTS_READ = {Permission.rights_system_full, Permission.rights_system_read}
RIGHTS_WRITE = {Permission.rights_system_full}


@dataclass(frozen=True)
class Principal:
    sub: str
    tenant_id: str
    kind: CallerKind
    app_id: str | None = None
    permissions: frozenset[str] = field(default_factory=frozenset)

    @property
    def actor(self) -> str:
        """How this caller is named in histories and audit rows."""
        return f"{self.kind.value}:{self.sub}"


def encode_token(
    secret: str,
    *,
    sub: str,
    tenant_id: str,
    kind: CallerKind | str,
    app_id: str | None = None,
    permissions: Iterable[str] = (),
    ttl_seconds: int = 12 * 3600,
    algorithm: str = "HS256",
) -> str:
    now = int(time.time())
    claims: dict[str, object] = {
        "sub": sub,
        "tenant_id": tenant_id,
        "kind": str(CallerKind(kind)),
        "iat": now,
        "exp": now + ttl_seconds,
    }
    if app_id is not None:
        claims["app_id"] = app_id
    perms = sorted(set(permissions))
    if perms:
        claims["permissions"] = perms
    return jwt.encode(claims, secret, algorithm=algorithm)


def decode_token(secret: str, token: str, algorithm: str = "HS256") -> Principal:
    try:
        principal, expires_at = _verified(secret, token, algorithm)
    except jwt.PyJWTError as exc:
        raise Unauthenticated("The bearer token is invalid.", code="invalid_token") from exc
    if expires_at <= time.time():
        raise Unauthenticated("The bearer token has expired.", code="token_expired")
    return principal


@functools.lru_cache(maxsize=4096)
def _verified(secret: str, token: str, algorithm: str) -> tuple[Principal, float]:
    """The caller a token names and when it expires, its signature checked once: a back end
    sends the same token with thousands of events, and the claims of a signed token cannot
    change. Expiry is checked on every use by ``decode_token``; invalid tokens raise and are
    not kept."""
    claims = jwt.decode(
        token,
        secret,
        algorithms=[algorithm],
        options={"require": ["sub", "exp"], "verify_exp": False},
    )
    try:
        kind = CallerKind(str(claims.get("kind")))
    except ValueError as exc:
        raise jwt.InvalidTokenError("unknown caller kind") from exc
    tenant_id = claims.get("tenant_id")
    if not isinstance(tenant_id, str) or not tenant_id:
        raise jwt.InvalidTokenError("no tenant")
    app_id = claims.get("app_id")
    if kind is CallerKind.user and not app_id:
        raise jwt.InvalidTokenError("a user token must name its app")
    principal = Principal(
        sub=str(claims["sub"]),
        tenant_id=tenant_id,
        kind=kind,
        app_id=app_id,
        permissions=frozenset(claims.get("permissions") or ()),
    )
    return principal, float(claims["exp"])


_bearer = HTTPBearer(auto_error=False, description="JWT minted by `activity-platform token`")


class Authenticator:
    """Dependency: the caller must be one of ``kinds``; operators need one of ``permissions``."""

    def __init__(
        self,
        kinds: Iterable[CallerKind],
        permissions: Iterable[str] | None = None,
    ) -> None:
        self.kinds = frozenset(kinds)
        self.permissions = frozenset(permissions or ())

    async def __call__(
        self,
        request: Request,
        # Declared, not called: the OpenAPI documents then name the bearer scheme on every
        # operation that needs it, so generated clients and Swagger UI send the token.
        credentials: HTTPAuthorizationCredentials | None = Security(_bearer),
    ) -> Principal:
        return self.authenticate(request)

    def authenticate(self, request: Request) -> Principal:
        """The caller of ``request``, or 401 / 403. Reads only the headers, so a route can
        ask before the body is read (``service_kit.routing.ServiceRoute``)."""
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise Unauthenticated("Send `Authorization: Bearer <token>`.")
        settings = request.app.state.settings
        principal = decode_token(settings.jwt_secret, token.strip(), settings.jwt_algorithm)
        if principal.kind not in self.kinds:
            allowed = ", ".join(sorted(k.value for k in self.kinds))
            raise Forbidden(f"This operation is for callers of kind: {allowed}.")
        if (
            principal.kind is CallerKind.operator
            and self.permissions
            and not (principal.permissions & self.permissions)
        ):
            needed = " or ".join(sorted(self.permissions))
            raise Forbidden(f"This operation needs the permission {needed}.")
        # For what runs after the caller is known (Idempotency-Key claims).
        request.state.principal = principal
        return principal
