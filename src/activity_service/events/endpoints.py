from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, status

from activity_service.events import service
from activity_service.events.schemas import EventAck, EventIn
from service_kit.auth import Authenticator, CallerKind, Principal
from service_kit.db import SessionDep
from service_kit.errors import PROBLEM_RESPONSES

router = APIRouter(prefix="/v1/events", tags=["events"], responses=PROBLEM_RESPONSES)

EventPoster = Annotated[
    Principal, Depends(Authenticator(kinds={CallerKind.service, CallerKind.user}))
]


@router.post("", status_code=status.HTTP_202_ACCEPTED, summary="Post a business event")
async def post_event(body: EventIn, principal: EventPoster, session: SessionDep) -> EventAck:
    """Stored once per ``event_id``; a replay is acknowledged as ``duplicate`` and changes
    nothing. Evaluation happens in jobs, after the acknowledgement."""
    return await service.ingest(session, principal, body)
