"""The ``Idempotency-Key`` dependency, the replay of a stored response and the settling of a
claim once the endpoint has answered."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Header, Request, Response

from service_kit.auth import Principal
from service_kit.db import SessionDep
from service_kit.errors import Conflict, Unprocessable
from service_kit.idempotency.fingerprint import fingerprint
from service_kit.idempotency.repository import IdempotencyRepository

HEADER = "Idempotency-Key"
REPLAYED_HEADER = "Idempotent-Replayed"
# Response headers kept with the body: what a client may read from a creating answer.
KEPT_HEADERS = ("content-type", "location", "etag", "content-location")
_CLAIM = "idempotency_claim"


class IdempotentReplay(Exception):  # noqa: N818 - not an error: the stored answer
    """Raised by the dependency when the key already answered this request; rendered as the
    stored response (the transaction, which wrote nothing, rolls back)."""

    def __init__(self, status_code: int, headers: dict[str, str], body: bytes) -> None:
        super().__init__("replay")
        self.status_code, self.headers, self.body = status_code, headers, body

    def response(self) -> Response:
        return Response(
            self.body,
            status_code=self.status_code,
            headers={**self.headers, REPLAYED_HEADER: "true"},
        )


@dataclass(frozen=True)
class _Claim:
    repo: IdempotencyRepository
    key: str


async def _claim(
    request: Request,
    session: SessionDep,
    idempotency_key: Annotated[
        str | None,
        Header(
            alias=HEADER,
            min_length=1,
            max_length=128,
            description="Optional. A retry with the same key and the same request gets the "
            "first response again (header `Idempotent-Replayed: true`) and acts only once; "
            "the same key with another request is a 422 `idempotency_key_reused`. Keys are "
            "per caller and kept 24 hours.",
        ),
    ] = None,
) -> None:
    if idempotency_key is None:
        return
    principal: Principal | None = getattr(request.state, "principal", None)
    if principal is None or not getattr(request.scope.get("route"), "settles_idempotency", False):
        # A wiring mistake, caught by the route tests: the dependency must follow the caller
        # and the route must store the answer, or a key would be claimed for ever.
        raise RuntimeError(f"{request.url.path}: {HEADER} needs a ServiceRoute after the caller")
    body = await request.body()
    print_ = fingerprint(
        request.method,
        request.url.path,
        request.query_params.multi_items(),
        request.headers.get("content-type", ""),
        body,
    )
    repo = IdempotencyRepository(
        session,
        request.app.state.idempotency_model,
        principal.tenant_id,
        principal.actor,
        keep=timedelta(hours=request.app.state.settings.idempotency_key_retention_hours),
    )
    if await repo.claim(idempotency_key, print_):
        setattr(request.state, _CLAIM, _Claim(repo, idempotency_key))
        return
    earlier = await repo.get(idempotency_key)
    if earlier is None or earlier.status_code is None or earlier.body is None:
        # Not expected: a claim commits only together with its response.
        raise Conflict("The Idempotency-Key is in use; retry.", code="idempotency_key_busy")
    if earlier.fingerprint != print_:
        raise Unprocessable(
            "This Idempotency-Key was used for another request; use a new key.",
            code="idempotency_key_reused",
        )
    raise IdempotentReplay(earlier.status_code, dict(earlier.headers or {}), earlier.body)


# Declare after the caller's Authenticator (it needs the tenant and the caller).
IdempotencyDep = Annotated[None, Depends(_claim)]


async def settle(request: Request, response: Response) -> None:
    """In the request's transaction, after the endpoint answered: a 2xx is stored with the
    key; any other answer frees the key (an error raised instead rolls the claim back)."""
    claim: _Claim | None = getattr(request.state, _CLAIM, None)
    if claim is None:
        return
    body: Any = getattr(response, "body", None)
    if 200 <= response.status_code < 300 and isinstance(body, bytes):
        headers = {k: v for k, v in response.headers.items() if k in KEPT_HEADERS}
        await claim.repo.store(claim.key, response.status_code, headers, body)
    else:
        await claim.repo.release(claim.key)


def install_replay_handler(app: FastAPI) -> None:
    @app.exception_handler(IdempotentReplay)
    async def _replay(_: Request, exc: IdempotentReplay) -> Response:
        return exc.response()
