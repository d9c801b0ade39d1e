"""ASGI middleware: request ids and logs, bodies read whole and screened, security headers."""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Sequence

import structlog
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from bastion.core.i18n import SOURCE_LOCALE, negotiate, use_locale
from bastion.http.body import (
    BodyIncomplete,
    BodyTimedOut,
    BodyTooLarge,
    declared_length,
    read_body,
    replaying,
)
from bastion.http.client_ip import Network, client_ip
from bastion.http.errors import http_problem, unexpected_error, validation_problem
from bastion.http.unstorable import unstorable_locations

log = structlog.get_logger("bastion.access")
# Called once per request with (method, route template, status, seconds): the metrics.
RequestObserver = Callable[[str, str, int, float], None]
# Whether an exception means the database cannot be reached (503) rather than a bug (500).
UnavailableClassifier = Callable[[BaseException], bool]
# The request state key of the RateLimit-* headers the rate-limit dependencies set; copied onto
# the response, error responses included.
RATE_LIMIT_HEADERS = "rate_limit_headers"
BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})
# Added to every response that does not set them itself.
SECURITY_HEADERS = (
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"x-frame-options", b"DENY"),
)
HSTS = (b"strict-transport-security", b"max-age=63072000; includeSubDomains")
HTML_CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; "
    "img-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
)
# The connection cannot carry another request after these: its body was cut short or skipped.
CLOSE = {"Connection": "close"}
UNSTORABLE_MESSAGE = "must not contain NUL or unpaired surrogate characters"


class RequestMiddleware:
    """The outermost layer of the app.

    It resolves the client IP once, chooses the request's language (what it renders or mails
    speaks it), gives every request an id (echoed as X-Request-ID), reads the body whole before
    the app runs (within the size limit and the read timeout; JSON only on the API), refuses
    text no database can store, answers HEAD as GET without the body, adds security headers,
    turns any unhandled exception into a problem document, and logs one line per request. The
    logged path is the route template, so tokens in paths or query strings never reach a log.
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        max_body_bytes: int,
        body_read_timeout: float,
        trusted_proxies: Sequence[Network],
        hsts: bool,
        is_unavailable: UnavailableClassifier,
        default_locale: str = SOURCE_LOCALE,
        on_request: RequestObserver | None = None,
    ) -> None:
        self.app = app
        self.default_locale = default_locale
        self.max_body_bytes = max_body_bytes
        self.body_read_timeout = body_read_timeout
        self.trusted_proxies = tuple(trusted_proxies)
        self.hsts = hsts
        self.is_unavailable = is_unavailable
        self.on_request = on_request

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        headers = dict(scope["headers"])
        request_id = _safe_request_id(headers.get(b"x-request-id")) or _new_request_id()
        peer = scope["client"][0] if scope.get("client") else None
        forwarded = headers.get(b"x-forwarded-for", b"").decode("latin-1") or None
        scope.setdefault("state", {})
        scope["state"]["client_ip"] = client_ip(peer, forwarded, self.trusted_proxies)
        scope["state"]["request_id"] = request_id
        # The language of whatever this request renders or mails (pages, emails).
        languages = headers.get(b"accept-language")
        accept_language = languages.decode("latin-1") if languages else None
        use_locale(negotiate(accept_language, self.default_locale))
        method = scope["method"]
        status = 500
        response_started = False

        async def send_with_headers(message: Message) -> None:
            nonlocal status, response_started
            if message["type"] == "http.response.start":
                response_started = True
                status = message["status"]
                message["headers"] = self._security_headers(scope, message["headers"], request_id)
            elif method == "HEAD" and message.get("body"):
                message = {**message, "body": b""}
            await send(message)

        try:
            await self._serve(scope, headers, receive, send_with_headers)
        except Exception as exc:
            if response_started:
                raise
            await unexpected_error(exc, self.is_unavailable)(scope, receive, send_with_headers)
        finally:
            route = getattr(scope.get("route"), "path", None) or "<unmatched>"
            duration = time.perf_counter() - started
            log.info(
                "request",
                method=method,
                route=route,
                status=status,
                duration_ms=round(duration * 1000, 2),
                request_id=request_id,
                ip=scope["state"]["client_ip"],
            )
            if self.on_request is not None:
                self.on_request(method, route, status, duration)

    async def _serve(
        self, scope: Scope, headers: dict[bytes, bytes], receive: Receive, send: Send
    ) -> None:
        try:
            length = declared_length(headers)
        except ValueError:
            await http_problem(400, "Invalid Content-Length.", headers=CLOSE)(scope, receive, send)
            return
        content_type = headers.get(b"content-type", b"").split(b";")[0].strip().lower()
        has_body = bool(length) or b"transfer-encoding" in headers
        body = None
        if has_body:
            try:
                body = await read_body(
                    receive,
                    limit=self.max_body_bytes,
                    timeout=self.body_read_timeout,
                    declared=length,
                )
            except BodyTooLarge:
                detail = f"The request body must be at most {self.max_body_bytes} bytes."
                await http_problem(413, detail, headers=CLOSE)(scope, receive, send)
                return
            except BodyTimedOut:
                detail = f"The request body did not arrive within {self.body_read_timeout:g} s."
                await http_problem(408, detail, headers=CLOSE)(scope, receive, send)
                return
            except BodyIncomplete:
                detail = "The connection closed before the whole body arrived."
                await http_problem(400, detail, headers=CLOSE)(scope, receive, send)
                return
            receive = replaying(body, receive)
        # Refused once read: a body left unread would make the server reset the connection.
        if (
            has_body
            and scope["method"] in BODY_METHODS
            and scope["path"].startswith("/api/")
            and content_type != b"application/json"
        ):
            detail = "Send the request body as application/json."
            await http_problem(415, detail)(scope, receive, send)
            return
        locations = unstorable_locations(scope["path"], scope["query_string"], content_type, body)
        if locations:
            fields = [
                {"loc": loc, "msg": UNSTORABLE_MESSAGE, "type": "string_unstorable"}
                for loc in locations
            ]
            await validation_problem(fields)(scope, receive, send)
            return
        if scope["method"] == "HEAD":
            # Answered as the GET it asks about; the body is dropped on the way out.
            scope["method"] = "GET"
        await self.app(scope, receive, send)

    def _security_headers(
        self, scope: Scope, raw: list[tuple[bytes, bytes]], request_id: str
    ) -> list[tuple[bytes, bytes]]:
        present = {name.lower(): value for name, value in raw}
        added = [(b"x-request-id", request_id.encode()), *SECURITY_HEADERS]
        # Set by the rate-limit dependencies; added here so error responses carry them too.
        rate_limit = scope["state"].get(RATE_LIMIT_HEADERS)
        if rate_limit:
            added.extend(
                (name.lower().encode(), value.encode()) for name, value in rate_limit.items()
            )
        if self.hsts:
            added.append(HSTS)
        if scope["path"].startswith("/api/"):
            added.append((b"cache-control", b"no-store"))
        if present.get(b"content-type", b"").startswith(b"text/html"):
            added.append((b"content-security-policy", HTML_CSP.encode()))
        return [*raw, *(header for header in added if header[0] not in present)]


def _new_request_id() -> str:
    # Correlates log lines, nothing more: it needs to be unique, not unpredictable, and
    # uuid4 would cost a system call on every request.
    return f"{random.getrandbits(128):032x}"


def _safe_request_id(raw: bytes | None) -> str | None:
    if not raw or len(raw) > 128:
        return None
    value = raw.decode("latin-1")
    return value if all(c.isalnum() or c in "-_.:" for c in value) else None
