"""``Depends(verifier.require(…))``: a FastAPI dependency that gives the endpoint the claims."""

from __future__ import annotations

from typing import TYPE_CHECKING

from fastapi.security import HTTPBearer
from starlette.requests import Request

from bastion_verifier.claims import Claims, Requirement

if TYPE_CHECKING:
    from bastion_verifier.verifier import Verifier


class Requires(HTTPBearer):
    """Claims of a valid token that meets a requirement, else a refusal as a problem.

    An ``HTTPBearer`` so that the OpenAPI schema (and the docs' Authorize button) shows the
    endpoint's bearer scheme, at the cost of no extra dependency per request.
    """

    def __init__(self, verifier: Verifier, requirement: Requirement) -> None:
        super().__init__(
            bearerFormat="JWT",
            scheme_name="BastionAccessToken",
            description="An access token from Bastion's log-in or refresh.",
            auto_error=False,
        )
        self.verifier = verifier
        self.requirement = requirement

    async def __call__(self, request: Request) -> Claims:  # type: ignore[override]
        return await self.verifier.authenticate(
            request.headers.get("authorization"), self.requirement
        )
