"""The caller's own security trail: where and when their account was used."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel, Field

from bastion.audit.service import AuditService
from bastion.core.pagination import MAX_ROW_ID
from bastion.guards import PerUserLimit
from bastion.http.deps import CurrentPrincipal, provider

router = APIRouter(prefix="/api/v1/auth", tags=["audit"])
AuditDep = Annotated[AuditService, Depends(provider(AuditService))]


class SecurityEvent(BaseModel):
    id: int
    type: str = Field(examples=["login_succeeded"])
    occurred_at: datetime
    ip: str | None
    user_agent: str | None
    details: dict[str, Any]


class SecurityEventPage(BaseModel):
    items: list[SecurityEvent]
    next_cursor: int | None = Field(
        description="Pass as `before` to get the next page; null on the last page"
    )


@router.get(
    "/me/security-events",
    dependencies=[PerUserLimit],
    summary="The caller's security events (sign-ins, failures, changes), newest first",
)
async def security_events(
    principal: CurrentPrincipal,
    audit: AuditDep,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    before: Annotated[
        int | None, Query(ge=1, le=MAX_ROW_ID, description="`next_cursor` of the previous page")
    ] = None,
) -> SecurityEventPage:
    page = await audit.security_events(principal.user_id, limit=limit, before=before)
    return SecurityEventPage(
        items=[
            SecurityEvent(
                id=item.id or 0,
                type=item.type.value,
                occurred_at=item.occurred_at,
                ip=item.ip,
                user_agent=item.user_agent,
                details=item.details,
            )
            for item in page.items
        ],
        next_cursor=page.next_cursor,
    )
