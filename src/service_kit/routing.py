"""The route class of every service router."""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, TypeVar

from fastapi import Request, Response
from fastapi.datastructures import DefaultPlaceholder
from fastapi.dependencies.models import Dependant
from fastapi.exceptions import ResponseValidationError
from fastapi.routing import APIRoute
from fastapi.telemetry import get_telemetry_data
from pydantic import BaseModel, ValidationError

from service_kit.auth import Authenticator, Principal
from service_kit.idempotency.dependency import HEADER, settle
from service_kit.ratelimit import RATE_LIMITED_RESPONSE, WRITE_METHODS, RateLimits

Endpoint = TypeVar("Endpoint", bound=Callable[..., Any])

_DIRECT = "__service_route_direct__"


def answered_directly(endpoint: Endpoint) -> Endpoint:
    """Marks an endpoint of the shape ``(body: Model, principal: <Authenticator>,
    request: Request)`` as one ``ServiceRoute`` may call itself with a well-formed JSON
    body, without FastAPI's per-request dependency solving, body decoding and response
    validation: on a hot path that machinery cost more than the endpoint's own work. What
    the route does not take on its own (another content type, a body the model refuses,
    dependency overrides, exported traces) goes the usual way, so every answer but the
    common one is FastAPI's own. Put it under the router's decorator."""
    setattr(endpoint, _DIRECT, True)
    return endpoint


def _authenticator(dependant: Dependant) -> Authenticator | None:
    """The first ``Authenticator`` among the route's dependencies, nested ones included."""
    for dependency in dependant.dependencies:
        if isinstance(dependency.call, Authenticator):
            return dependency.call
        found = _authenticator(dependency)
        if found is not None:
            return found
    return None


def _is_json(content_type: str | None) -> bool:
    if content_type is None:
        return False
    media_type = content_type.partition(";")[0].strip().lower()
    return media_type == "application/json"


class DirectCall:
    """How ``ServiceRoute`` calls an ``answered_directly`` endpoint: the body decoded and
    validated by the model in one pass (pydantic reads the JSON itself), the caller the
    route has already authenticated, the answer serialized as FastAPI would (the route's
    response field and options, its status code, ``application/json``)."""

    def __init__(self, route: APIRoute) -> None:
        dependant = route.dependant
        simple = (
            inspect.iscoroutinefunction(route.endpoint)
            and not (
                dependant.path_params
                or dependant.query_params
                or dependant.header_params
                or dependant.cookie_params
            )
            and dependant.response_param_name is None
            and dependant.background_tasks_param_name is None
            and dependant.security_scopes_param_name is None
            and dependant.websocket_param_name is None
            and dependant.http_connection_param_name is None
            and len(dependant.body_params) == 1
            and len(dependant.dependencies) == 1
            and isinstance(dependant.dependencies[0].call, Authenticator)
            and isinstance(route.response_class, DefaultPlaceholder)
            and route.response_field is not None
        )
        body = dependant.body_params[0] if dependant.body_params else None
        model = body.field_info.annotation if body is not None else None
        if (
            not simple
            or body is None
            or getattr(body.field_info, "embed", False)
            or not (isinstance(model, type) and issubclass(model, BaseModel))
        ):
            raise TypeError(
                f"{route.path}: an endpoint answered directly takes one JSON body model, "
                "one Authenticator dependency and optionally the Request, and returns a "
                "response model"
            )
        self.call: Callable[..., Awaitable[Any]] = route.endpoint
        self.model: type[BaseModel] = model
        self.body_name = body.name
        self.principal_name = dependant.dependencies[0].name or "principal"
        self.request_name = dependant.request_param_name
        self.status_code = route.status_code or 200  # JSONResponse's, FastAPI's default
        assert route.response_field is not None
        self.response_field = route.response_field
        self.route = route

    async def __call__(self, request: Request, principal: Principal) -> Response | None:
        """The answer, or None when the request is to go FastAPI's way."""
        if (
            not _is_json(request.headers.get("content-type"))
            or request.app.dependency_overrides
            or get_telemetry_data() is not None
        ):
            return None
        raw = await request.body()  # kept on the request should FastAPI read it again
        try:
            body = self.model.model_validate_json(raw)
        except ValidationError:
            return None  # FastAPI's 422, with its own error locations
        values: dict[str, Any] = {self.body_name: body, self.principal_name: principal}
        if self.request_name is not None:
            values[self.request_name] = request
        result = await self.call(**values)
        value, errors = self.response_field.validate(result, {}, loc=("response",))
        if errors:
            raise ResponseValidationError(errors=errors, body=result)
        route = self.route
        content = self.response_field.serialize_json(
            value,
            include=route.response_model_include,
            exclude=route.response_model_exclude,
            by_alias=route.response_model_by_alias,
            exclude_unset=route.response_model_exclude_unset,
            exclude_defaults=route.response_model_exclude_defaults,
            exclude_none=route.response_model_exclude_none,
        )
        return Response(
            content=content, status_code=self.status_code, media_type="application/json"
        )


class ServiceRoute(APIRoute):
    """Around the endpoint, in this order:

    1. the caller is authenticated and authorized from the headers alone, before the body
       is read or parsed: without a valid token a malformed body is a 401, not a 422, and
       nobody unauthorized makes the service parse anything;
    2. a write counts towards the caller's rate limit (429 ``rate_limited`` past it);
    3. the endpoint runs (directly for an ``answered_directly`` one with a well-formed
       body), then its Idempotency-Key claim is settled in the same transaction (the
       handler returns inside the request's unit of work, which commits after this).

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
        self.direct = DirectCall(self) if getattr(endpoint, _DIRECT, False) else None

    def _writes(self) -> bool:
        return bool((self.methods or set()) & WRITE_METHODS)

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()
        authenticator = _authenticator(self.dependant)
        limited = self._writes()

        async def handle(request: Request) -> Response:
            response: Response | None = None
            if authenticator is not None:
                principal = await authenticator.authenticate(request)
                limits: RateLimits | None = getattr(request.app.state, "rate_limits", None)
                if limited and limits is not None:
                    await limits.write(principal)
                if self.direct is not None:
                    response = await self.direct(request, principal)
            if HEADER in request.headers:
                await request.body()  # kept on the request for the form parser and the claim
            if response is None:
                response = await handler(request)
            await settle(request, response)
            return response

        return handle
