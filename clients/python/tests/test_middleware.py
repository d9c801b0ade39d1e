"""The plain ASGI middleware, around a Starlette app."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route, WebSocketRoute
from starlette.types import Message
from starlette.websockets import WebSocket

from asgi_server import serving
from bastion_verifier import BearerAuthMiddleware, Verifier
from clock import Clock
from fake_bastion import REVOCATION_SECONDS, FakeBastion


async def whoami(request: Request) -> JSONResponse:
    return JSONResponse({"sub": request.state.claims.sub, "role": request.state.claims.role})


async def echo(websocket: WebSocket) -> None:
    await websocket.accept()
    await websocket.send_text(websocket.state.claims.sub)
    await websocket.close()


def protected_app(verifier: Verifier, **requirement: Any) -> Starlette:
    return Starlette(
        routes=[Route("/whoami", whoami), WebSocketRoute("/echo", echo)],
        middleware=[Middleware(BearerAuthMiddleware, verifier=verifier, **requirement)],
    )


@pytest.fixture
async def verifier(fake: FakeBastion, clock: Clock) -> AsyncIterator[Verifier]:
    verifier = Verifier(issuer=fake.issuer, audience=fake.audience, clock=clock)
    try:
        yield verifier
    finally:
        await verifier.stop()


async def call(app: Starlette, path: str, token: str | None = None) -> httpx.Response:
    headers = {} if token is None else {"Authorization": f"Bearer {token}"}
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://service") as client:
        return await client.get(path, headers=headers)


async def test_only_requests_with_a_valid_token_reach_the_app(
    fake: FakeBastion, verifier: Verifier
) -> None:
    app = protected_app(verifier)
    issued = fake.log_in()
    response = await call(app, "/whoami", issued.token)
    assert response.json() == {"sub": issued.sub, "role": "user"}
    missing = await call(app, "/whoami")
    assert missing.status_code == 401
    assert missing.headers["content-type"] == "application/problem+json"
    assert missing.headers["www-authenticate"] == "Bearer"
    assert int(missing.headers["content-length"]) == len(missing.content)
    forged = await call(app, "/whoami", fake.log_in(iss="https://evil.example.com").token)
    assert forged.json()["code"] == "INVALID_TOKEN"
    assert forged.headers["www-authenticate"].startswith('Bearer error="invalid_token"')


async def test_requirements_apply_to_the_whole_app(fake: FakeBastion, verifier: Verifier) -> None:
    app = protected_app(verifier, role="admin", aal="aal2")
    refused = await call(app, "/whoami", fake.log_in(role="user", aal="aal2").token)
    assert (refused.status_code, refused.json()["code"]) == (403, "FORBIDDEN")
    weak = await call(app, "/whoami", fake.log_in(role="admin").token)
    assert weak.status_code == 401
    assert 'error="insufficient_user_authentication"' in weak.headers["www-authenticate"]
    assert (await call(app, "/whoami", fake.log_in(role="admin", aal="aal2").token)).is_success


async def websocket_handshake(app: Starlette, token: str | None) -> list[Message]:
    """What the app sends back to a WebSocket handshake on /echo."""
    headers = [] if token is None else [(b"authorization", f"Bearer {token}".encode())]
    scope = {"type": "websocket", "path": "/echo", "headers": headers, "query_string": b""}
    incoming: list[Message] = [
        {"type": "websocket.connect"},
        {"type": "websocket.disconnect", "code": 1000},
    ]
    sent: list[Message] = []

    async def receive() -> Message:
        return incoming.pop(0)

    async def send(message: Message) -> None:
        sent.append(message)

    await app(scope, receive, send)
    return sent


async def test_a_websocket_without_a_valid_token_is_closed_at_the_handshake(
    fake: FakeBastion, verifier: Verifier
) -> None:
    app = protected_app(verifier)
    assert await websocket_handshake(app, None) == [{"type": "websocket.close", "code": 1008}]
    issued = fake.log_in()
    sent = await websocket_handshake(app, issued.token)
    assert [message["type"] for message in sent] == [
        "websocket.accept",
        "websocket.send",
        "websocket.close",
    ]
    assert sent[1]["text"] == issued.sub


async def test_the_middleware_starts_and_stops_the_verifier_with_the_app(
    fake: FakeBastion, clock: Clock
) -> None:
    verifier = Verifier(
        issuer=fake.issuer,
        audience=fake.audience,
        revocation="events",
        service_key=fake.service_key,
        clock=clock,
    )
    issued = fake.log_in()
    async with serving(protected_app(verifier)) as client:
        await fake.wait_for_streams(1)
        headers = {"Authorization": f"Bearer {issued.token}"}
        assert (await client.get("/whoami", headers=headers)).is_success
        fake.log_out(issued)
        deadline = time.monotonic() + REVOCATION_SECONDS
        while (await client.get("/whoami", headers=headers)).is_success:
            assert time.monotonic() < deadline
    await fake.wait_for_streams(0)
