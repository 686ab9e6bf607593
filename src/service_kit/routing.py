"""The route class of every service router."""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any

from fastapi import Request, Response
from fastapi.routing import APIRoute

from service_kit.idempotency.dependency import settle


class ServiceRoute(APIRoute):
    """Runs the endpoint, then settles its Idempotency-Key claim in the same transaction: the
    handler returns inside the request's unit of work, which commits only after this."""

    settles_idempotency = True

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def handle(request: Request) -> Response:
            response = await handler(request)
            await settle(request, response)
            return response

        return handle
