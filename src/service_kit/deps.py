"""Request-scoped dependencies shared by every service."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from service_kit.clock import Clock
from service_kit.http import ServiceClient


def _clock(request: Request) -> Clock:
    return request.app.state.clock


def _http(request: Request) -> ServiceClient:
    return request.app.state.http


ClockDep = Annotated[Clock, Depends(_clock)]
HttpDep = Annotated[ServiceClient, Depends(_http)]
