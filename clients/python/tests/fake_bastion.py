"""A small real HTTP server that speaks Bastion's side of the verifier's contract.

It publishes a JWKS, answers verify-token, and serves the Server-Sent Events stream
``GET /api/v1/events`` exactly as the contract says: ``id:``/``event:``/``data:`` events, resume
from ``Last-Event-ID``, start from now without it, 410 for a position older than the retention,
service keys as bearer tokens. It stands in for the stream until Bastion serves it; the tests
use it through the same actions (log in, log out, change a password …) a real Bastion offers.
"""

from __future__ import annotations

import asyncio
import json
import secrets
import socket
import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from jwt.algorithms import OKPAlgorithm

AUDIENCE = "bastion"
TOKEN_TTL = 600
HEARTBEAT_SECONDS = 0.2
# How long a test gives the stream to tell a verifier of a logout. It takes milliseconds (the
# bench's revocation propagation p99 was 5 ms); the margin is for a CPU-starved CI machine, on
# which one second was once not enough.
REVOCATION_SECONDS = 5.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass(frozen=True)
class Issued:
    """An access token and what it was issued for."""

    token: str
    sub: str
    sid: str
    kid: str


@dataclass(frozen=True)
class Event:
    id: int
    type: str
    data: str


@dataclass
class StreamRequest:
    authorization: str | None
    last_event_id: str | None


@dataclass
class _State:
    condition: threading.Condition = field(default_factory=threading.Condition)
    events: list[Event] = field(default_factory=list)
    retained_from: int = 1  # events with smaller ids are older than the retention
    generation: int = 0  # bumped to end every open stream
    stopping: bool = False
    stream_requests: list[StreamRequest] = field(default_factory=list)
    open_streams: int = 0
    live_sessions: dict[str, bool] = field(default_factory=dict)
    jwks_requests: int = 0
    verify_token_requests: int = 0


class FakeBastion:
    def __init__(self) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.issuer = self.url
        self.audience = AUDIENCE
        self.service_key = f"bsk_{secrets.token_urlsafe(24)}"
        self.jwks_cache_control = "public, max-age=60"
        self.state = _State()
        self._keys: list[tuple[str, Ed25519PrivateKey]] = []
        self.rotate_key()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # The server.

    def start(self) -> None:
        self.state.stopping = False
        server = ThreadingHTTPServer(("127.0.0.1", self.port), _Handler)
        server.fake = self  # type: ignore[attr-defined]
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        with self.state.condition:
            self.state.stopping = True
            self.state.condition.notify_all()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._server = self._thread = None

    def restart(self, while_down: float = 0.3) -> None:
        """Stop, stay down a moment (clients see connections refused), start again."""
        self.stop()
        time.sleep(while_down)
        self.start()

    # Keys and tokens.

    def rotate_key(self) -> str:
        kid = uuid.uuid4().hex
        self._keys.append((kid, Ed25519PrivateKey.generate()))
        return kid

    def jwks(self) -> dict[str, Any]:
        keys = []
        for kid, private in self._keys:
            jwk = json.loads(OKPAlgorithm.to_jwk(private.public_key()))
            keys.append({**jwk, "kid": kid, "use": "sig", "alg": "EdDSA"})
        return {"keys": keys}

    def sign(self, payload: dict[str, Any], **headers: Any) -> str:
        """``payload`` signed by the current key, with ``headers`` added to the JWS header."""
        kid, private = self._keys[-1]
        return jwt.encode(payload, private, algorithm="EdDSA", headers={"kid": kid, **headers})

    def claims(self, **overrides: Any) -> dict[str, Any]:
        now = int(time.time())
        claims: dict[str, Any] = {
            "iss": self.issuer,
            "aud": self.audience,
            "sub": str(uuid.uuid4()),
            "email": f"user-{uuid.uuid4().hex[:12]}@example.com",
            "role": "user",
            "sid": str(uuid.uuid4()),
            "iat": now,
            "exp": now + TOKEN_TTL,
            "jti": secrets.token_urlsafe(16),
        }
        claims.update(overrides)
        return {name: value for name, value in claims.items() if value is not None}

    def log_in(self, **claims: Any) -> Issued:
        """A new live session and its access token (``claims`` override the defaults)."""
        issued = self._issue(**claims)
        with self.state.condition:
            self.state.live_sessions[issued.sid] = True
        return issued

    def refresh(self, issued: Issued) -> Issued:
        """A new access token for the same session and user."""
        return self._issue(sub=issued.sub, sid=issued.sid)

    def _issue(self, **claims: Any) -> Issued:
        payload = self.claims(**claims)
        return Issued(self.sign(payload), payload["sub"], payload["sid"], self._keys[-1][0])

    # What happens in Bastion, as events.

    def log_out(self, issued: Issued) -> None:
        with self.state.condition:
            self.state.live_sessions[issued.sid] = False
        self.publish("session.revoked", sid=issued.sid, user_id=issued.sub)

    def change_password(self, user_id: str) -> None:
        self.publish("password.changed", user_id=user_id)

    def revoke_key(self, kid: str) -> None:
        self.publish("signing_key.revoked", kid=kid)

    def publish(self, event_type: str, **fields: Any) -> int:
        state = self.state
        with state.condition:
            event_id = (state.events[-1].id if state.events else 0) + 1
            occurred_at = datetime.now(UTC).isoformat()
            data = json.dumps({"type": event_type, "occurred_at": occurred_at, **fields})
            state.events.append(Event(event_id, event_type, data))
            state.condition.notify_all()
        return event_id

    def forget_events(self) -> None:
        """The retention passes over every event so far: resuming from any of them is a 410."""
        with self.state.condition:
            self.state.retained_from = (self.state.events[-1].id if self.state.events else 0) + 2

    def drop_streams(self) -> None:
        """End every open stream, as a proxy or a network failure would."""
        with self.state.condition:
            self.state.generation += 1
            self.state.condition.notify_all()

    async def wait_for_streams(self, count: int, timeout: float = 5.0) -> None:
        """Until exactly ``count`` streams are open (the event loop goes on meanwhile)."""
        deadline = time.monotonic() + timeout
        while self.state.open_streams != count:
            assert time.monotonic() < deadline, f"{count} open stream(s) expected"
            await asyncio.sleep(0.01)


class _Handler(BaseHTTPRequestHandler):
    server: ThreadingHTTPServer

    @property
    def fake(self) -> FakeBastion:
        fake: FakeBastion = self.server.fake  # type: ignore[attr-defined]
        return fake

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        return None

    def do_GET(self) -> None:  # noqa: N802
        if self.path == "/.well-known/jwks.json":
            with self.fake.state.condition:
                self.fake.state.jwks_requests += 1
            self._json(200, self.fake.jwks(), {"Cache-Control": self.fake.jwks_cache_control})
        elif self.path == "/api/v1/auth/verify-token":
            self._verify_token()
        elif self.path == "/api/v1/events":
            self._events()
        else:
            self._json(404, {"code": "NOT_FOUND"})

    def _json(self, status: int, body: Any, headers: dict[str, str] | None = None) -> None:
        raw = json.dumps(body).encode()
        self.send_response(status)
        content_type = "application/json" if status < 400 else "application/problem+json"
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(raw)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(raw)

    def _verify_token(self) -> None:
        state = self.fake.state
        with state.condition:
            state.verify_token_requests += 1
        token = self.headers.get("Authorization", "").removeprefix("Bearer ")
        jwks = jwt.PyJWKSet.from_dict(self.fake.jwks())
        try:
            kid = jwt.get_unverified_header(token)["kid"]
            claims = jwt.decode(
                token, jwks[kid].key, algorithms=["EdDSA"], audience=self.fake.audience
            )
        except (jwt.PyJWTError, KeyError):
            self._json(401, {"code": "INVALID_TOKEN"})
            return
        with state.condition:
            live = state.live_sessions.get(claims["sid"], False)
        if not live:
            self._json(401, {"code": "SESSION_REVOKED"})
            return
        fields = ("sub", "email", "role", "sid", "exp")
        self._json(200, {name: claims[name] for name in fields})

    def _events(self) -> None:
        state = self.fake.state
        authorization = self.headers.get("Authorization")
        last_event_id = self.headers.get("Last-Event-ID")
        with state.condition:
            state.stream_requests.append(StreamRequest(authorization, last_event_id))
            newest = state.events[-1].id if state.events else 0
            generation = state.generation
        if authorization != f"Bearer {self.fake.service_key}":
            self._json(401, {"code": "INVALID_TOKEN"})
            return
        if last_event_id is None:
            cursor = newest  # from now
        elif (
            not last_event_id.isdigit()
            or int(last_event_id) > newest
            or int(last_event_id) < state.retained_from - 1
        ):
            self._json(410, {"code": "EVENT_ID_EXPIRED"})
            return
        else:
            cursor = int(last_event_id)
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        self.wfile.write(b": connected\n\n")
        self.wfile.flush()
        with state.condition:
            state.open_streams += 1
            state.condition.notify_all()
        try:
            self._stream(cursor, generation)
        except OSError:
            pass  # the client went away
        finally:
            with state.condition:
                state.open_streams -= 1
                state.condition.notify_all()

    def _stream(self, cursor: int, generation: int) -> None:
        state = self.fake.state
        while True:
            with state.condition:
                if not state.events or state.events[-1].id <= cursor:
                    state.condition.wait(timeout=HEARTBEAT_SECONDS)
                if state.stopping or state.generation != generation:
                    return
                batch = [event for event in state.events if event.id > cursor]
            if not batch:
                # A comment line: keeps proxies from closing the connection, and shows us
                # whether the client is still there.
                self.wfile.write(b": keepalive\n\n")
            for event in batch:
                self.wfile.write(
                    f"id: {event.id}\nevent: {event.type}\ndata: {event.data}\n\n".encode()
                )
                cursor = event.id
            self.wfile.flush()
