from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Response

from bastion.http.deps import ServicesDep

router = APIRouter(tags=["tokens"])


@router.get("/.well-known/jwks.json", summary="Public keys that verify Bastion's access tokens")
async def jwks(services: ServicesDep, response: Response) -> dict[str, Any]:
    response.headers["Cache-Control"] = "public, max-age=60"
    return await services.tokens.jwks()
