"""The FastAPI application: routes, middleware, error handlers and the service lifecycle."""

from __future__ import annotations

import gc
import signal
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from types import FrameType
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from starlette.middleware.cors import CORSMiddleware

from bastion import __version__, guards
from bastion.accounts import routes as accounts_routes
from bastion.accounts.service import AccountService
from bastion.adapters.sql.unit_of_work import is_unavailable
from bastion.admin import routes as admin_routes
from bastion.admin.service import AdminService
from bastion.apidocs import routes as apidocs_routes
from bastion.audit import routes as audit_routes
from bastion.audit.service import AuditService
from bastion.bootstrap import Services, build
from bastion.credentials import routes as service_keys_routes
from bastion.credentials.service import ServiceKeyService
from bastion.events import routes as events_routes
from bastion.events.service import EventFeed
from bastion.http.client_ip import parse_networks
from bastion.http.deps import (
    current_principal,
    install_authenticator,
    install_recency_check,
    provide,
    recent_principal,
)
from bastion.http.errors import CORE_PROBLEMS, ProblemTable, install_error_handlers
from bastion.http.middleware import RequestMiddleware
from bastion.http.openapi import complete_openapi
from bastion.logging import configure_logging
from bastion.login import routes as login_routes
from bastion.login.service import LoginFlow
from bastion.mfa import routes as mfa_routes
from bastion.mfa.service import MfaService
from bastion.operations import routes as operations_routes
from bastion.operations.service import Operations
from bastion.owners import routes as owners_routes
from bastion.owners.service import OwnerService
from bastion.pages import routes as pages_routes
from bastion.pages.views import Pages
from bastion.passwords import routes as passwords_routes
from bastion.passwords.service import PasswordService
from bastion.ratelimit.service import RateLimits
from bastion.sessions import routes as sessions_routes
from bastion.sessions.authentication import Authenticator
from bastion.sessions.service import SessionService
from bastion.settings import Settings, load_settings
from bastion.tokens import routes as tokens_routes
from bastion.tokens.service import TokenService
from bastion.webhooks import routes as webhooks_routes
from bastion.webhooks.service import WebhookService

# What browser code on an allowed origin may read: how long to wait, and how much is left.
CORS_EXPOSED_HEADERS = [
    "Retry-After",
    "RateLimit-Limit",
    "RateLimit-Remaining",
    "RateLimit-Reset",
    "X-Request-ID",
]


def create_app(
    settings: Settings | None = None,
    services: Services | None = None,
    *,
    end_streams_on_signal: bool = False,
) -> FastAPI:
    """The app. ``end_streams_on_signal``: a server worker's, whose open event streams must end
    when it is told to stop (the server waits for open responses before it stops)."""
    settings = settings or load_settings()
    services = services or build(settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await services.start()
        if end_streams_on_signal:
            end_streams_on_termination(services.events)
        # Everything built so far lives as long as the process. Frozen, the garbage collector
        # stops walking it: a full collection took 50 ms, and it stalled every request in
        # flight on the worker (the benchmark's refresh p95).
        gc.collect()
        gc.freeze()
        try:
            yield
        finally:
            await services.stop()

    app = FastAPI(
        title="Bastion",
        version=__version__,
        description="Self-hosted authentication: sign-up, login, sessions and signed tokens.",
        lifespan=lifespan,
        # Starlette would redirect /path/ to /path, building the Location from the request's
        # Host header: a redirect to any host the caller names. A trailing slash is a 404.
        redirect_slashes=False,
        # /docs is served from Bastion's own copy of Swagger UI (apidocs/routes.py); FastAPI's pages
        # load it from a CDN, which the pages' Content-Security-Policy rightly blocks.
        docs_url=None,
        redoc_url=None,
        swagger_ui_oauth2_redirect_url=None,
        # Bastion exports Prometheus metrics, not OpenTelemetry: skip the per-request check.
        telemetry={"tracing": False, "metrics": False, "logs": False, "operation_spans": False},
    )
    problems = problem_table()
    install_error_handlers(app, problems)
    provide(app, ProblemTable, problems)
    provide_services(app, services)
    install_authenticator(app, sessions_routes.authenticate)
    install_recency_check(app, mfa_routes.ensure_recent)
    for router in (
        login_routes.router,  # first: login, refresh and verify-token are the busiest
        sessions_routes.router,
        accounts_routes.router,
        owners_routes.router,
        passwords_routes.router,
        tokens_routes.router,
        pages_routes.router,
        mfa_routes.router,
        audit_routes.router,
        admin_routes.router,
        service_keys_routes.router,
        events_routes.router,
        webhooks_routes.router,
        operations_routes.router,
        apidocs_routes.router,
    ):
        # Added as the app's own routes, not with include_router: FastAPI matches an included
        # router's routes in several passes, which cost verify-token a quarter of its time.
        # Each router has applied its prefix and tags to its routes already.
        app.router.routes.extend(router.routes)
    if settings.allowed_origins:
        # Inside RequestMiddleware, so preflight answers get the security headers too.
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.allowed_origins,
            allow_credentials=True,
            allow_methods=["GET", "POST", "PATCH", "PUT", "DELETE"],
            allow_headers=["Authorization", "Content-Type", "X-Request-ID"],
            expose_headers=CORS_EXPOSED_HEADERS,
            max_age=600,
        )
    app.add_middleware(
        RequestMiddleware,
        max_body_bytes=settings.max_body_bytes,
        body_read_timeout=settings.body_read_timeout,
        trusted_proxies=parse_networks(settings.trusted_proxies),
        hsts=settings.public_url.startswith("https://"),
        is_unavailable=is_unavailable,
        default_locale=settings.default_locale,
        on_request=services.metrics.observe_request,
    )

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            routes = [*app.routes, sessions_routes.VERIFY_TOKEN_DOCS]
            # Each route's error codes, from the same table the handlers answer with.
            problems.document(
                routes,
                {
                    current_principal: sessions_routes.authenticate,
                    recent_principal: mfa_routes.ensure_recent,
                },
            )
            app.openapi_schema = complete_openapi(
                get_openapi(
                    title=app.title,
                    version=app.version,
                    description=app.description,
                    routes=routes,
                )
            )
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
    return app


def problem_table() -> ProblemTable:
    """The one table of every package's problem rows; a class given two rows stops the start-up."""
    return ProblemTable(
        CORE_PROBLEMS,
        guards.PROBLEMS,
        login_routes.PROBLEMS,
        sessions_routes.PROBLEMS,
        accounts_routes.PROBLEMS,
        owners_routes.PROBLEMS,
        passwords_routes.PROBLEMS,
        pages_routes.PROBLEMS,
        tokens_routes.PROBLEMS,
        admin_routes.PROBLEMS,
        mfa_routes.PROBLEMS,
        service_keys_routes.PROBLEMS,
        events_routes.PROBLEMS,
        webhooks_routes.PROBLEMS,
    )


def provide_services(app: FastAPI, services: Services) -> None:
    """Hand each route the one service it asks for (the routes' ``...Dep`` aliases)."""
    provide(app, Settings, services.settings)
    provide(app, RateLimits, services.limits)
    provide(app, Authenticator, services.authenticator)
    provide(app, LoginFlow, services.login)
    provide(app, SessionService, services.sessions)
    provide(app, AccountService, services.accounts)
    provide(app, PasswordService, services.passwords)
    provide(app, TokenService, services.tokens)
    provide(app, AuditService, services.audit)
    provide(app, AdminService, services.admin)
    provide(app, Operations, services.operations)
    provide(app, Pages, services.pages)
    provide(app, MfaService, services.mfa)
    provide(app, OwnerService, services.owners)
    provide(app, ServiceKeyService, services.service_keys)
    provide(app, EventFeed, services.events)
    provide(app, WebhookService, services.webhooks)


def app_from_environment() -> FastAPI:
    """The factory the server workers call: settings come from the environment."""
    settings = load_settings()
    configure_logging(json=settings.json_logs, level=settings.log_level)
    return create_app(settings, end_streams_on_signal=True)


def end_streams_on_termination(feed: EventFeed) -> None:
    """On SIGTERM or SIGINT, end the event streams, then let the server's own handling go on.

    The server's handler was added to the event loop before the lifespan started; Python's
    handler, set here, runs beside it (the loop still learns of the signal through its wake-up
    file descriptor), so both run.
    """
    for signum in (signal.SIGTERM, signal.SIGINT):
        previous = signal.getsignal(signum)

        def handler(number: int, frame: FrameType | None, previous: Any = previous) -> None:
            feed.close_streams()
            if callable(previous):
                previous(number, frame)

        signal.signal(signum, handler)
