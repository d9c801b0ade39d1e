"""The admin API for service keys (the dependency that admits a service is in guards.py)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends, status
from pydantic import BaseModel, ConfigDict, Field

from bastion.admin.access import IntegrationsReader, IntegrationsWriter
from bastion.credentials.errors import (
    InvalidServiceKey,
    NoScopes,
    ScopeMissing,
    ServiceKeyNotFound,
)
from bastion.credentials.model import MAX_NAME_LENGTH, Scope, ServiceKey
from bastion.credentials.service import ServiceKeyService
from bastion.http.deps import ContextDep, provider
from bastion.http.errors import ProblemRows, ProblemType, raises

router = APIRouter(prefix="/api/v1/admin/service-keys", tags=["admin"])
PROBLEMS: ProblemRows = {
    ServiceKeyNotFound: ProblemType(404, "SERVICE_KEY_NOT_FOUND", "Service key not found"),
    InvalidServiceKey: ProblemType(401, "INVALID_SERVICE_KEY", "Invalid service key", bearer=True),
    ScopeMissing: ProblemType(403, "INSUFFICIENT_SCOPE", "Insufficient scope"),
    NoScopes: ProblemType(422, "VALIDATION_ERROR", "Validation error"),
}


ServiceKeysDep = Annotated[ServiceKeyService, Depends(provider(ServiceKeyService))]


class ServiceKeyCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=MAX_NAME_LENGTH)
    scopes: list[Scope] = Field(min_length=1, max_length=len(Scope))


class ServiceKeyView(BaseModel):
    id: uuid.UUID
    name: str
    scopes: list[Scope]
    created_at: datetime
    revoked_at: datetime | None


class CreatedServiceKey(ServiceKeyView):
    key: str = Field(description="The key itself (bsk_…): shown this once, stored only hashed")


class ServiceKeyList(BaseModel):
    items: list[ServiceKeyView]


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    summary="Create a service key (admin); the key is in this answer only",
)
@raises(NoScopes)
async def create_service_key(
    body: ServiceKeyCreate, admin: IntegrationsWriter, keys: ServiceKeysDep, context: ContextDep
) -> CreatedServiceKey:
    issued = await keys.create(body.name, body.scopes, context, admin.user_id)
    return CreatedServiceKey(**_view(issued.key).model_dump(), key=issued.secret)


@router.get("", summary="Service keys, without their secrets (admin)")
async def list_service_keys(_: IntegrationsReader, keys: ServiceKeysDep) -> ServiceKeyList:
    return ServiceKeyList(items=[_view(key) for key in await keys.list()])


@router.delete(
    "/{key_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    summary="Revoke a service key (admin); it stops working within a second",
)
@raises(ServiceKeyNotFound)
async def revoke_service_key(
    key_id: uuid.UUID, admin: IntegrationsWriter, keys: ServiceKeysDep, context: ContextDep
) -> None:
    await keys.revoke(key_id, context, admin.user_id)


def _view(key: ServiceKey) -> ServiceKeyView:
    return ServiceKeyView(
        id=key.id,
        name=key.name,
        scopes=sorted(key.scopes),
        created_at=key.created_at,
        revoked_at=key.revoked_at,
    )
