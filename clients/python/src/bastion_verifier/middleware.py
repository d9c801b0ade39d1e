"""A plain ASGI middleware: only requests with a valid token get through to the app."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Collection, MutableMapping
from typing import TYPE_CHECKING, Any

from bastion_verifier.claims import Requirement
from bastion_verifier.errors import VerifierError
from bastion_verifier.problems import problem_for

if TYPE_CHECKING:
    from bastion_verifier.verifier import Verifier

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]
CLAIMS_STATE_KEY = "claims"
# Policy violation: how a WebSocket handshake is refused.
WEBSOCKET_POLICY_VIOLATION = 1008


class BearerAuthMiddleware:
    """Wraps an ASGI app (a Starlette app, a mounted sub-app …) so that every HTTP request and
    WebSocket needs a valid Bastion token meeting ``role``/``aal``/``max_age``.

    Refusals are answered as RFC 9457 problems; the claims of an admitted request are in
    ``scope["state"]["claims"]`` (``request.state.claims`` in Starlette). It also starts and stops
    the verifier with the app's lifespan.
    """

    def __init__(
        self,
        app: ASGIApp,
        verifier: Verifier,
        role: str | Collection[str] | None = None,
        aal: str | None = None,
        max_age: int | None = None,
    ) -> None:
        self.app = app
        self.verifier = verifier
        self.requirement = Requirement.of(role, aal, max_age)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(scope, receive, send)
            return
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        try:
            claims = await self.verifier.authenticate(_authorization(scope), self.requirement)
        except VerifierError as error:
            await _refuse(scope, receive, send, error)
            return
        scope.setdefault("state", {})[CLAIMS_STATE_KEY] = claims
        await self.app(scope, receive, send)

    async def _lifespan(self, scope: Scope, receive: Receive, send: Send) -> None:
        async def receive_starting_verifier() -> Message:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await self.verifier.start()
            return message

        async def send_stopping_verifier(message: Message) -> None:
            if message["type"] in ("lifespan.shutdown.complete", "lifespan.shutdown.failed"):
                await self.verifier.stop()
            await send(message)

        await self.app(scope, receive_starting_verifier, send_stopping_verifier)


def _authorization(scope: Scope) -> str | None:
    for name, value in scope["headers"]:
        if name == b"authorization":
            return bytes(value).decode("latin-1")
    return None


async def _refuse(scope: Scope, receive: Receive, send: Send, error: VerifierError) -> None:
    if scope["type"] == "websocket":
        await receive()  # the handshake's websocket.connect
        await send({"type": "websocket.close", "code": WEBSOCKET_POLICY_VIOLATION})
        return
    problem = problem_for(error)
    await send(
        {
            "type": "http.response.start",
            "status": problem.status,
            "headers": [
                (name.lower().encode("latin-1"), value.encode("latin-1"))
                for name, value in problem.headers.items()
            ]
            + [(b"content-length", str(len(problem.body)).encode())],
        }
    )
    await send({"type": "http.response.body", "body": problem.body})
