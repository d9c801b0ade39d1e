"""Wiring the verifier into a Starlette or FastAPI app: error rendering and lifespan."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import Response

from bastion_verifier.errors import VerifierError
from bastion_verifier.problems import problem_for

if TYPE_CHECKING:
    from starlette.applications import Starlette

    from bastion_verifier.verifier import Verifier


def install(verifier: Verifier, app: Starlette) -> None:
    app.add_exception_handler(VerifierError, render_problem)
    app_lifespan = app.router.lifespan_context

    @asynccontextmanager
    async def lifespan(app: Any) -> AsyncIterator[Any]:
        # The verifier runs around the app's own lifespan: started before the app's start-up
        # code, stopped after its shutdown code.
        async with verifier, app_lifespan(app) as state:
            yield state

    app.router.lifespan_context = lifespan


async def render_problem(request: Request, exc: Exception) -> Response:
    if not isinstance(exc, VerifierError):
        raise exc
    problem = problem_for(exc)
    return Response(problem.body, status_code=problem.status, headers=problem.headers)
