from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Response

from bastion.http.deps import provider
from bastion.http.errors import ProblemRows, ProblemType
from bastion.tokens.errors import AccessTokenExpired, InvalidToken
from bastion.tokens.service import TokenService

router = APIRouter(tags=["tokens"])
PROBLEMS: ProblemRows = {
    InvalidToken: ProblemType(401, "INVALID_TOKEN", "Invalid access token", bearer=True),
    AccessTokenExpired: ProblemType(401, "TOKEN_EXPIRED", "Access token expired", bearer=True),
}
TokensDep = Annotated[TokenService, Depends(provider(TokenService))]


@router.get("/.well-known/jwks.json", summary="Public keys that verify Bastion's access tokens")
async def jwks(tokens: TokensDep, response: Response) -> dict[str, Any]:
    response.headers["Cache-Control"] = "public, max-age=60"
    return await tokens.jwks()
