"""The route class of every service router."""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any

from fastapi import Request, Response
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute

from service_kit.auth import Authenticator
from service_kit.idempotency.dependency import HEADER, settle
from service_kit.ratelimit import RATE_LIMITED_RESPONSE, WRITE_METHODS, RateLimits


def _authenticator(dependant: Dependant) -> Authenticator | None:
    """The first ``Authenticator`` among the route's dependencies, nested ones included."""
    for dependency in dependant.dependencies:
        if isinstance(dependency.call, Authenticator):
            return dependency.call
        found = _authenticator(dependency)
        if found is not None:
            return found
    return None


class ServiceRoute(APIRoute):
    """Around the endpoint, in this order:

    1. the caller is authenticated and authorized from the headers alone, before the body
       is read or parsed: without a valid token a malformed body is a 401, not a 422, and
       nobody unauthorized makes the service parse anything;
    2. a write counts towards the caller's rate limit (429 ``rate_limited`` past it);
    3. the endpoint runs, then its Idempotency-Key claim is settled in the same transaction
       (the handler returns inside the request's unit of work, which commits after this).

    A request with an Idempotency-Key has its body read first, once: the claim fingerprints
    the raw bytes, and a form parsed before the dependencies run (``File``/``Form``
    parameters) would otherwise have consumed them.
    """

    settles_idempotency = True

    def __init__(self, path: str, endpoint: Callable[..., Any], **kwargs: Any) -> None:
        super().__init__(path, endpoint, **kwargs)
        if self._writes():
            # Documented where it can happen: every write may meet the caller's rate limit.
            self.responses = {**RATE_LIMITED_RESPONSE, **self.responses}

    def _writes(self) -> bool:
        return bool((self.methods or set()) & WRITE_METHODS)

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()
        authenticator = _authenticator(self.dependant)
        limited = self._writes()

        async def handle(request: Request) -> Response:
            if authenticator is not None:
                principal = await authenticator.authenticate(request)
                limits: RateLimits | None = getattr(request.app.state, "rate_limits", None)
                if limited and limits is not None:
                    await limits.write(principal)
            if HEADER in request.headers:
                await request.body()  # kept on the request for the form parser and the claim
            response = await handler(request)
            await settle(request, response)
            return response

        return handle
