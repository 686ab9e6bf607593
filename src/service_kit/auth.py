"""Bearer JWT authentication: caller kinds, permissions and tenant scoping (SPEC §4).

Claims: ``sub``, ``tenant_id``, ``kind`` (user / operator / service), ``app_id`` (users),
``permissions`` (operators). Routes declare who may call them with an ``Authenticator``
wrapped in an ``Annotated`` alias, e.g.::

    ActivityWrite = Annotated[Principal, Depends(Authenticator(
        kinds={CallerKind.operator}, permissions={Permission.activity_center_full}))]
"""

from __future__ import annotations

import asyncio
import functools
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

import jwt
from fastapi import Request, Security
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from service_kit.config import ServiceSettings
from service_kit.errors import Forbidden, Unauthenticated, UpstreamUnavailable


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
    issuer: str = "",
    audience: str = "",
) -> str:
    now = int(time.time())
    claims: dict[str, object] = {
        "sub": sub,
        "tenant_id": tenant_id,
        "kind": str(CallerKind(kind)),
        "iat": now,
        "exp": now + ttl_seconds,
    }
    if issuer:
        claims["iss"] = issuer
    if audience:
        claims["aud"] = audience
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
def _verified(
    secret: str, token: str, algorithm: str, issuer: str = "", audience: str = ""
) -> tuple[Principal, float]:
    """The caller a token names and when it expires, its signature checked once: a back end
    sends the same token with thousands of events, and the claims of a signed token cannot
    change. Expiry is checked on every use by ``decode_token``; invalid tokens raise and are
    not kept."""
    claims = jwt.decode(
        token,
        secret,
        algorithms=[algorithm],
        # Audience checked below, against the deployment's (PyJWT refuses any ``aud``
        # when not told which one to expect).
        options={"require": ["sub", "exp"], "verify_exp": False, "verify_aud": False},
    )
    _check_issuer_audience(claims, issuer, audience)
    return _principal(claims), float(claims["exp"])


def _check_issuer_audience(claims: dict[str, Any], issuer: str, audience: str) -> None:
    """``iss`` must equal ``issuer`` and ``aud`` (a string or a list) name ``audience``,
    when the deployment configures them."""
    if issuer and claims.get("iss") != issuer:
        raise jwt.InvalidIssuerError("wrong issuer")
    if audience:
        aud = claims.get("aud")
        named = [aud] if isinstance(aud, str) else aud if isinstance(aud, list) else []
        if audience not in named:
            raise jwt.InvalidAudienceError("wrong audience")


def _principal(claims: dict[str, Any]) -> Principal:
    """The caller the platform's claims name (``tenant_id``, ``kind``, ``app_id``,
    ``permissions``), whoever issued the token."""
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
    return Principal(
        sub=str(claims["sub"]),
        tenant_id=tenant_id,
        kind=kind,
        app_id=app_id,
        permissions=frozenset(claims.get("permissions") or ()),
    )


class TokenVerifier:
    """Verifies bearer tokens as the deployment configures (``JWT_*`` settings).

    - HS256 (or another ``HS`` algorithm) with ``JWT_SECRET``: development, and the
      short-lived service tokens the services mint for each other (``service_kit.http``).
    - RS256 / ES256 from an identity provider: ``JWT_JWKS_URL`` names its key set; the key
      is chosen by the token's ``kid`` among the algorithms of ``JWT_ALGORITHMS``.
      PyJWT's ``PyJWKClient`` caches the set and fetches it again for an unknown ``kid``
      (key rotation); the fetch is blocking, so it runs in a thread.

    ``JWT_ISSUER`` and ``JWT_AUDIENCE``, when set, are required of every token.
    """

    def __init__(self, settings: ServiceSettings) -> None:
        self.secret = settings.jwt_secret
        self.hmac_algorithm = settings.jwt_algorithm
        self.issuer = settings.jwt_issuer
        self.audience = settings.jwt_audience
        self.public_algorithms = [
            a.strip() for a in settings.jwt_algorithms.split(",") if a.strip()
        ]
        self.jwks = (
            jwt.PyJWKClient(
                settings.jwt_jwks_url,
                cache_keys=True,
                lifespan=settings.jwt_jwks_cache_seconds,
                timeout=5,
            )
            if settings.jwt_jwks_url
            else None
        )

    async def verify(self, token: str) -> Principal:
        algorithm = self.hmac_algorithm
        if self.jwks is not None:  # which key verifies it: the token's header says
            try:
                algorithm = str(jwt.get_unverified_header(token).get("alg", ""))
            except jwt.PyJWTError as exc:
                raise Unauthenticated("The bearer token is invalid.", code="invalid_token") from exc
        if self.jwks is None or algorithm.upper().startswith("HS"):
            try:
                principal, expires_at = _verified(
                    self.secret, token, self.hmac_algorithm, self.issuer, self.audience
                )
            except jwt.PyJWTError as exc:
                raise Unauthenticated("The bearer token is invalid.", code="invalid_token") from exc
        else:
            principal, expires_at = await self._from_key_set(token, algorithm)
        if expires_at <= time.time():
            raise Unauthenticated("The bearer token has expired.", code="token_expired")
        return principal

    async def _from_key_set(self, token: str, algorithm: str) -> tuple[Principal, float]:
        assert self.jwks is not None
        if algorithm not in self.public_algorithms:
            raise Unauthenticated("The bearer token is invalid.", code="invalid_token")
        try:
            key = await asyncio.to_thread(self.jwks.get_signing_key_from_jwt, token)
        except jwt.PyJWKClientConnectionError as exc:
            raise UpstreamUnavailable("The identity provider's keys cannot be read.") from exc
        except jwt.PyJWTError as exc:  # no key with that kid, a malformed key set
            raise Unauthenticated("The bearer token is invalid.", code="invalid_token") from exc
        try:
            claims = jwt.decode(
                token,
                key.key,
                algorithms=[algorithm],
                options={"require": ["sub", "exp"], "verify_exp": False, "verify_aud": False},
            )
            _check_issuer_audience(claims, self.issuer, self.audience)
            return _principal(claims), float(claims["exp"])
        except jwt.PyJWTError as exc:
            raise Unauthenticated("The bearer token is invalid.", code="invalid_token") from exc


bearer = HTTPBearer(auto_error=False, description="JWT minted by `activity-platform token`")


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
        credentials: HTTPAuthorizationCredentials | None = Security(bearer),
    ) -> Principal:
        return await self.authenticate(request)

    async def authenticate(self, request: Request) -> Principal:
        """The caller of ``request``, or 401 / 403. Reads only the headers, so a route can
        ask before the body is read (``service_kit.routing.ServiceRoute``)."""
        # Verified once per request: the route asks before the body is read, the endpoint's
        # dependency asks again.
        principal: Principal | None = getattr(request.state, "principal", None)
        if principal is None:
            principal = await self._verify(request)
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

    @staticmethod
    async def _verify(request: Request) -> Principal:
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise Unauthenticated("Send `Authorization: Bearer <token>`.")
        verifier = getattr(request.app.state, "tokens", None)
        if verifier is None:  # an app not built by ``create_service_app``
            verifier = request.app.state.tokens = TokenVerifier(request.app.state.settings)
        return await verifier.verify(token.strip())
