"""``GET /api/v1/events``: the event stream, for services whose key grants events:read."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated

from fastapi import APIRouter, Depends, Header, Request
from fastapi.responses import StreamingResponse

from bastion.credentials.errors import InvalidServiceKey, ScopeMissing
from bastion.credentials.model import Scope, ServiceKey
from bastion.credentials.service import ServiceKeyService
from bastion.events.errors import InvalidPosition, PositionExpired
from bastion.events.model import parse_position
from bastion.events.service import EventFeed
from bastion.http.deps import provided, provider
from bastion.http.errors import ProblemRows, ProblemType, raises

router = APIRouter(prefix="/api/v1", tags=["events"])
PROBLEMS: ProblemRows = {
    PositionExpired: ProblemType(410, "EVENT_ID_EXPIRED", "Event id expired"),
    InvalidPosition: ProblemType(400, "INVALID_EVENT_ID", "Invalid event id"),
}


def requiring_scope(scope: Scope) -> Callable[[Request], Awaitable[ServiceKey]]:
    """A dependency admitting a service whose key (``Authorization: Bearer bsk_…``) grants
    ``scope``. A user's access token is not a service key and is refused."""

    @raises(InvalidServiceKey, ScopeMissing)
    async def service(request: Request) -> ServiceKey:
        scheme, _, secret = request.headers.get("authorization", "").partition(" ")
        presented = secret.strip() if scheme.lower() == "bearer" else None
        return await provided(request, ServiceKeyService).authenticate(presented, scope)

    return service


EventsReader = Annotated[ServiceKey, Depends(requiring_scope(Scope.EVENTS_READ))]
FeedDep = Annotated[EventFeed, Depends(provider(EventFeed))]
STREAM_HEADERS = {"Cache-Control": "no-store", "X-Accel-Buffering": "no"}


@router.get(
    "/events",
    summary="Server-Sent Events of what happened (service key with events:read)",
    response_class=StreamingResponse,
    responses={200: {"content": {"text/event-stream": {}}}},
)
@raises(PositionExpired, InvalidPosition)
async def events(
    _: EventsReader,
    feed: FeedDep,
    last_event_id: Annotated[str | None, Header(max_length=32)] = None,
) -> StreamingResponse:
    try:
        position = parse_position(last_event_id)
    except ValueError:
        raise InvalidPosition() from None
    cursor = await feed.open(position)
    return StreamingResponse(
        feed.stream(cursor), media_type="text/event-stream", headers=STREAM_HEADERS
    )
