"""Requests for the endpoints a service answers most, dispatched straight to their route.

FastAPI 0.165 keeps every included router live: a request walks the application's routers
(each ``include_router`` one more level, matched twice) and its framework layers (server
errors, telemetry, an application-wide body limit) before its route sees it. On ``POST
/v1/events`` that walk cost about as much CPU as storing the event. The routes marked
``answered_directly`` (``service_kit.routing``) are few, fixed paths without parameters, so
the application's outermost layer can look them up in a dictionary and call the route under
the same middleware and exception handlers the router would have reached it through:

    the application's own middleware (request id, access log, metrics)
      -> its exception handlers (problems, 503 with ``Retry-After``)
        -> FastAPI's per-request exit stack
          -> the route itself (its body limit, authentication, rate limit, endpoint)

Everything else, and these paths whenever the shortcut could differ from the router —
dependency overrides (tests), exported traces, a mounted application (``root_path``) — goes
the full way. The answers are the same either way: ``tests/service/test_direct_dispatch.py``
compares them.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

from fastapi._body_limit import wrap_app_with_body_limit
from fastapi.middleware.asyncexitstack import AsyncExitStackMiddleware
from fastapi.telemetry import get_telemetry_data
from starlette.middleware.exceptions import ExceptionMiddleware
from starlette.types import ASGIApp, Receive, Scope, Send

from service_kit.routing import ServiceRoute

if TYPE_CHECKING:
    from fastapi import FastAPI


def directly_answered(routes: Iterable[object]) -> list[ServiceRoute]:
    """The routes among ``routes`` that answer directly."""
    return [r for r in routes if isinstance(r, ServiceRoute) and r.direct is not None]


class DirectDispatch:
    """The outermost layer of a service's application (inside the server)."""

    def __init__(self, app: FastAPI, routed: ASGIApp, routes: Iterable[ServiceRoute]) -> None:
        self.app = app
        self.routed = routed
        self.lanes: dict[tuple[str, str], tuple[ServiceRoute, ASGIApp]] = {}
        for route in routes:
            lane = self._lane(route)
            for method in route.methods or ():
                self.lanes[(method, route.path)] = (route, lane)

    def _lane(self, route: ServiceRoute) -> ASGIApp:
        """The route under the layers FastAPI's own stack puts between the server and the
        router (``FastAPI.build_middleware_stack``), less those that do nothing here."""
        app = self.app
        # A route without a limit of its own has the application's.
        lane: ASGIApp = (
            route.app
            if route.max_body_size is not None
            else wrap_app_with_body_limit(route.app, app.max_body_size)
        )
        lane = AsyncExitStackMiddleware(lane)
        # 500s are the request context middleware's (it answers the problem): only the
        # handlers of ``ExceptionMiddleware`` belong here, as in FastAPI's stack.
        handlers = {k: v for k, v in app.exception_handlers.items() if k not in (500, Exception)}
        lane = ExceptionMiddleware(lane, handlers=handlers, debug=app.debug)
        for middleware in reversed(app.user_middleware):
            lane = middleware.cls(lane, *middleware.args, **middleware.kwargs)
        return lane

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and not scope.get("root_path"):
            found = self.lanes.get((scope["method"], scope["path"]))
            if (
                found is not None
                and not self.app.dependency_overrides
                and get_telemetry_data() is None
            ):
                route, lane = found
                # What the router sets on the way (``Router.app``, ``Route.matches``).
                scope.setdefault("router", self.app.router)
                scope["endpoint"] = route.endpoint
                scope["path_params"] = {}
                scope["route"] = route
                await lane(scope, receive, send)
                return
        await self.routed(scope, receive, send)
