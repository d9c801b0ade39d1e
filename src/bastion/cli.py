"""The ``bastion`` command line."""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable, Coroutine
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Annotated, Any, TypeVar

import structlog
import typer

from bastion import __version__
from bastion.accounts.model import Role, User
from bastion.adapters.metrics import MULTIPROCESS_DIR_ENV
from bastion.adapters.sql import bulk
from bastion.admin.model import UserChanges
from bastion.background.errors import LeaseHeld
from bastion.bootstrap import Services, build
from bastion.core.context import RequestContext
from bastion.core.email_address import InvalidEmailAddress, normalize_email
from bastion.core.errors import BastionError, StorageUnavailable
from bastion.credentials.model import MAX_NAME_LENGTH, Scope
from bastion.logging import configure_logging
from bastion.migrate import MigrationStopped, upgrade
from bastion.settings import MAX_DAYS, Settings, SettingsError, load_settings, resolve_secret_key
from bastion.tokens.model import KeyState, KeyStatus

log = structlog.get_logger("bastion.cli")
app = typer.Typer(help="Bastion: self-hosted authentication.", no_args_is_help=True)
keys_app = typer.Typer(help="Manage the keys that sign access tokens.", no_args_is_help=True)
app.add_typer(keys_app, name="keys")
users_app = typer.Typer(help="Find and manage users, as the admin API does.", no_args_is_help=True)
app.add_typer(users_app, name="users")
service_keys_app = typer.Typer(
    help="Manage the keys other services use to read Bastion (the event stream).",
    no_args_is_help=True,
)
app.add_typer(service_keys_app, name="service-keys")
T = TypeVar("T")
HASH_THREADS_ENV = "BASTION_HASH_THREADS"
ROTATION_LEASE_WAIT_SECONDS = 5.0


def _print_version(value: bool) -> None:
    if value:
        typer.echo(f"bastion {__version__}")
        raise typer.Exit()


@app.callback()
def main(
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_print_version, is_eager=True, help="Print the version and exit."
        ),
    ] = False,
) -> None:
    """Bastion: self-hosted authentication."""


def _settings() -> Settings:
    try:
        return load_settings()
    except SettingsError as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(code=2) from None


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8000,
    workers: Annotated[int, typer.Option(min=1, help="Worker processes.")] = 1,
) -> None:
    """Apply pending migrations (unless BASTION_AUTO_MIGRATE=false) and serve the API."""
    from granian.constants import Interfaces, Loops
    from granian.server import Server

    settings = _settings()
    # Created here, once, so that every worker reads the same development secret.
    resolve_secret_key(settings)
    if settings.auto_migrate:
        _migrate(settings)
    if workers > 1 and not settings.redis_url:
        typer.echo(
            "Warning: BASTION_REDIS_URL is not set, so rate limits and lockouts are kept per "
            f"worker process: each of the {workers} workers counts on its own.",
            err=True,
        )
    # Workers share the cores: more hashing threads than cores only adds context switches
    # and cache misses to every Argon2 computation.
    os.environ.setdefault(HASH_THREADS_ENV, str(max(1, (os.cpu_count() or 1) // workers)))
    metrics_dir = _share_metrics_between_workers()
    typer.echo(f"Bastion listening on http://{host}:{port} (docs at /docs)", err=True)
    typer.echo(f"Workers pool their metrics in {os.environ[MULTIPROCESS_DIR_ENV]}", err=True)
    try:
        # On SIGTERM, granian stops accepting, lets in-flight requests finish (for up to
        # workers_kill_timeout seconds) and then runs each worker's lifespan shutdown.
        Server(
            "bastion.app:app_from_environment",
            address=host,
            port=port,
            interface=Interfaces.ASGI,
            # libuv's event loop: each database and Redis round trip costs less CPU than on
            # asyncio's own loop (login and refresh ~10 % less in-process).
            loop=Loops.uvloop,
            workers=workers,
            factory=True,
            log_access=False,
            respawn_failed_workers=True,
            workers_kill_timeout=30,
        ).serve()
    finally:
        if metrics_dir is not None:
            shutil.rmtree(metrics_dir, ignore_errors=True)


def _share_metrics_between_workers() -> str | None:
    """Point prometheus_client's multiprocess mode at a fresh directory, unless the operator
    chose one; returns the directory to remove on exit.

    Set before the workers start, so that every worker writes its values there and a scrape,
    whichever worker answers it, reports the sum. Stale files would add a previous run's counts.
    """
    if os.environ.get(MULTIPROCESS_DIR_ENV):
        return None
    path = tempfile.mkdtemp(prefix="bastion-metrics-")
    os.environ[MULTIPROCESS_DIR_ENV] = path
    return path


@app.command()
def migrate() -> None:
    """Apply pending database migrations."""
    _migrate(_settings())
    typer.echo("Database is at the latest schema.")


def _migrate(settings: Settings) -> None:
    try:
        upgrade(settings.database_url)
    except MigrationStopped as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(code=1) from None


@app.command("create-user")
def create_user(
    email: Annotated[str, typer.Option(help="The user's email address.")],
    role: Annotated[Role, typer.Option(help="The user's role.")] = Role.USER,
    password_stdin: Annotated[
        bool, typer.Option("--password-stdin", help="Read the password from standard input.")
    ] = False,
) -> None:
    """Create a verified user (the way to bootstrap the first admin)."""
    if password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        password = typer.prompt("Password", hide_input=True, confirmation_prompt=True)
    settings = _settings()
    user = _run(settings, lambda services: services.accounts.create_user(email, password, role))
    typer.echo(f"Created {user.role.value} {user.email} ({user.id}).")


@app.command("seed-users")
def seed_users(
    count: Annotated[int, typer.Option(min=1, max=10_000_000, help="How many users.")],
    email_format: Annotated[
        str,
        typer.Option(
            help="Their addresses, in canonical form (lower case); {n} is replaced by each "
            "user's number."
        ),
    ] = "seed-{n}@example.org",
    start: Annotated[int, typer.Option(min=0, help="The first user's number.")] = 0,
    role: Annotated[Role, typer.Option(help="Their role.")] = Role.USER,
    password_stdin: Annotated[
        bool, typer.Option("--password-stdin", help="Read the password from standard input.")
    ] = False,
) -> None:
    """Create many verified users sharing one password, fast (COPY on PostgreSQL): for load
    tests and drills. Never use it for real accounts."""
    if "{n}" not in email_format:
        typer.echo("Error: --email-format must contain {n}.", err=True)
        raise typer.Exit(code=2)
    _ensure_canonical(email_format, (start, start + count - 1))
    if password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        password = typer.prompt("Password", hide_input=True, confirmation_prompt=True)
    settings = _settings()
    emails = (email_format.replace("{n}", str(n)) for n in range(start, start + count))
    started = time.monotonic()

    async def seed(services: Services) -> int:
        password_hash = await services.accounts.seeding_hash(password, email_format)
        return await bulk.seed_users(
            services.engine, emails, password_hash, role, services.clock.now()
        )

    seeded = _run(settings, seed)
    typer.echo(f"Seeded {seeded} verified users in {time.monotonic() - started:.1f} s.")


def _ensure_canonical(email_format: str, numbers: tuple[int, ...]) -> None:
    """Seeded addresses are stored as written, so they must be canonical already: parsing each
    of a million would take minutes. Numbers are ASCII digits, so the first and last tell."""
    for n in numbers:
        address = email_format.replace("{n}", str(n))
        try:
            canonical = normalize_email(address)
        except InvalidEmailAddress as exc:
            typer.echo(f"Error: --email-format gives {address!r}: {exc}", err=True)
            raise typer.Exit(code=2) from None
        if canonical != address:
            typer.echo(
                f"Error: --email-format gives {address!r}, whose canonical form is "
                f"{canonical!r}: write the format that way.",
                err=True,
            )
            raise typer.Exit(code=2)


@keys_app.command("list")
def keys_list() -> None:
    """List signing keys and their status."""
    settings = _settings()
    for status in _run(settings, _key_statuses):
        if status.state is KeyState.REVOKED:
            state = f"revoked {status.published_until:%Y-%m-%d %H:%M:%S} UTC"
        elif status.verifies_until is None:
            state = "signing"
        else:
            state = f"verifies tokens until {status.verifies_until:%Y-%m-%d %H:%M:%S} UTC"
        typer.echo(
            f"{status.key.kid}  created {status.key.created_at:%Y-%m-%d %H:%M:%S} UTC  {state}"
        )


@keys_app.command("rotate")
def keys_rotate(
    if_older_than: Annotated[
        str | None,
        typer.Option(
            "--if-older-than",
            metavar="DAYS",
            help="Rotate only if the signing key is older than DAYS whole days (at least 1).",
        ),
    ] = None,
) -> None:
    """Create a new signing key. Tokens signed by older keys stay valid until they expire."""
    max_age = None if if_older_than is None else timedelta(days=_whole_days(if_older_than))
    settings = _settings()
    if max_age is None:
        key = _run(settings, lambda services: _rotating(services, services.tokens.rotate))
        typer.echo(f"New signing key {key.kid}. Running instances switch to it within seconds.")
        return
    rotation = _run(
        settings,
        lambda services: _rotating(
            services, partial(services.tokens.rotate_if_older_than, max_age)
        ),
    )
    now = datetime.now(UTC)
    if rotation.replaced is None:
        typer.echo(
            f"Signing key {rotation.signer.kid} is {_days(now - rotation.signer.created_at)} "
            f"old, not older than {_days(max_age)}: not rotated."
        )
        return
    typer.echo(
        f"New signing key {rotation.signer.kid} replaces {rotation.replaced.kid}, which was "
        f"{_days(now - rotation.replaced.created_at)} old. Running instances switch to it "
        "within seconds; tokens it signed stay valid until they expire."
    )


@keys_app.command("revoke")
def keys_revoke(
    kid: Annotated[str, typer.Argument(help="The kid of the key to withdraw.")],
) -> None:
    """Withdraw a key at once (a leak): it leaves the JWKS and every token it signed is refused
    within a second. If it signs, a new key becomes the signer first."""
    settings = _settings()
    replacement = _run(
        settings, lambda services: _rotating(services, partial(services.tokens.revoke, kid))
    )
    if replacement is not None:
        typer.echo(f"New signing key {replacement.kid} signs from now on.")
    typer.echo(
        f"Revoked signing key {kid}: every running instance refuses its tokens within a second."
    )


# -- Users: the admin API's use cases, for an operator at the command line --------------------

OPERATOR = RequestContext(user_agent="bastion-cli")
EmailArgument = Annotated[str, typer.Argument(help="The user's email address.")]


def _describe(user: User) -> str:
    state = "active" if user.is_active else "disabled"
    verified = "verified" if user.is_verified else "unverified"
    return f"{user.email}  {user.role.value}  {state}  {verified}  {user.id}"


def _on_user(email: str, act: Callable[[Services, User], Awaitable[T]]) -> tuple[User, T]:
    """Find the user by address, then ``act``; an unknown address ends the command with a
    one-line error (exit code 1)."""

    async def run(services: Services) -> tuple[User, T]:
        user = await services.admin.find_by_email(email)
        return user, await act(services, user)

    return _run(_settings(), run)


@users_app.command("list")
def users_list(
    email: Annotated[str | None, typer.Option(help="Only addresses containing this.")] = None,
    role: Annotated[str | None, typer.Option(help="Only users of this role.")] = None,
) -> None:
    """List users, in id order."""
    wanted = None if role is None else _role(role)

    async def every(services: Services) -> list[User]:
        found: list[User] = []
        cursor = None
        while True:
            page = await services.admin.list_users(
                email_contains=email, role=wanted, cursor=cursor, limit=200
            )
            found += page.items
            cursor = page.next_cursor
            if cursor is None:
                return found

    users = _run(_settings(), every)
    for user in users:
        typer.echo(_describe(user))
    typer.echo(f"{len(users)} users.", err=True)


@users_app.command("show")
def users_show(email: EmailArgument) -> None:
    """Show one user."""

    async def nothing(services: Services, user: User) -> None:
        return None

    user, _ = _on_user(email, nothing)
    typer.echo(_describe(user))
    typer.echo(f"created {user.created_at:%Y-%m-%d %H:%M:%S} UTC")


def _set(email: str, changes: UserChanges) -> User:
    async def change(services: Services, user: User) -> User:
        return await services.admin.update_user(None, user.id, changes, OPERATOR)

    return _on_user(email, change)[1]


@users_app.command("disable")
def users_disable(email: EmailArgument) -> None:
    """Disable a user: they cannot sign in, and every session of theirs ends."""
    user = _set(email, UserChanges(is_active=False))
    typer.echo(f"Disabled {user.email}; every session of theirs ended.")


@users_app.command("enable")
def users_enable(email: EmailArgument) -> None:
    """Enable a disabled user again."""
    user = _set(email, UserChanges(is_active=True))
    typer.echo(f"Enabled {user.email}.")


@users_app.command("set-role")
def users_set_role(
    email: EmailArgument,
    role: Annotated[str, typer.Argument(help="admin, manager, user or guest.")],
) -> None:
    """Change a user's role; their sessions end, so no token claims the old role."""
    user = _set(email, UserChanges(role=_role(role)))
    typer.echo(f"{user.email} is now {user.role.value}.")


@users_app.command("reset-mfa")
def users_reset_mfa(email: EmailArgument) -> None:
    """Remove every second factor and recovery code of a user (a lost phone)."""

    async def reset(services: Services, user: User) -> int:
        return await services.mfa.reset_by_admin(None, user, OPERATOR)

    user, removed = _on_user(email, reset)
    told = "; they were told by email" if removed else ""
    typer.echo(f"Removed {removed} second factors of {user.email}{told}.")


@users_app.command("delete")
def users_delete(
    email: EmailArgument,
    yes: Annotated[bool, typer.Option("--yes", help="Do not ask for confirmation.")] = False,
) -> None:
    """Delete a user and erase their address from the audit trail."""
    if not yes and not typer.confirm(f"Delete {email} and everything about them?"):
        typer.echo("Nothing deleted.", err=True)
        raise typer.Exit(code=1)

    async def delete(services: Services, user: User) -> None:
        await services.admin.delete_user(None, user.id, OPERATOR)

    user, _ = _on_user(email, delete)
    typer.echo(f"Deleted {user.email}.")


def _role(value: str) -> Role:
    """``value`` as a role, or a one-line error and exit code 2."""
    try:
        return Role(value.strip().lower())
    except ValueError:
        roles = ", ".join(role.value for role in Role)
        typer.echo(f"Error: {value!r} is not a role; use one of {roles}.", err=True)
        raise typer.Exit(code=2) from None


@service_keys_app.command("create")
def service_keys_create(
    name: Annotated[str, typer.Argument(help="What the key is for, e.g. the service's name.")],
    scope: Annotated[
        list[Scope], typer.Option("--scope", help="A scope the key grants (repeatable).")
    ],
) -> None:
    """Create a service key. The key is printed once, alone on the last line: store it now."""
    if not 1 <= len(name) <= MAX_NAME_LENGTH:
        typer.echo(f"Error: NAME must be 1 to {MAX_NAME_LENGTH} characters.", err=True)
        raise typer.Exit(code=2)
    settings = _settings()
    issued = _run(settings, lambda services: services.service_keys.create(name, scope))
    scopes = " ".join(sorted(issued.key.scopes))
    typer.echo(f"Created service key {issued.key.id} ({name}, {scopes}). The key, shown once:")
    typer.echo(issued.secret)


@service_keys_app.command("list")
def service_keys_list() -> None:
    """List service keys (never their secrets)."""
    settings = _settings()
    for key in _run(settings, lambda services: services.service_keys.list()):
        state = (
            "active" if key.revoked_at is None else f"revoked {key.revoked_at:%Y-%m-%d %H:%M:%S}"
        )
        typer.echo(f"{key.id}  {key.name}  {' '.join(sorted(key.scopes))}  {state}")


@service_keys_app.command("revoke")
def service_keys_revoke(
    key_id: Annotated[str, typer.Argument(metavar="ID", help="The key's id.")],
) -> None:
    """Revoke a service key: it stops working within a second on every instance."""
    try:
        parsed = uuid.UUID(key_id)
    except ValueError:
        typer.echo(f"Error: {key_id!r} is not a service key id.", err=True)
        raise typer.Exit(code=2) from None
    settings = _settings()
    _run(settings, lambda services: services.service_keys.revoke(parsed))
    typer.echo(f"Revoked service key {parsed}.")


@app.command()
def purge() -> None:
    """Delete now what the retention settings no longer keep.

    Old audit events, ended sessions, expired links, delivered and failed emails: what every
    instance also deletes each BASTION_MAINTENANCE_INTERVAL_SECONDS.
    """
    settings = _settings()
    report = _run(settings, lambda services: services.purge_lease.run(services.retention.purge))
    if not report.total:
        typer.echo("Nothing to purge.")
        return
    counts = " ".join(f"{kind.value}={count}" for kind, count in report.deleted.items())
    typer.echo(f"Purged {report.total} rows: {counts}.")


def _whole_days(value: str) -> int:
    """``value`` as whole days from 1 to MAX_DAYS, or a one-line error and exit code 2."""
    if re.fullmatch(r"[0-9]{1,6}", value) and 1 <= int(value) <= MAX_DAYS:
        return int(value)
    typer.echo(
        f"Error: --if-older-than takes a whole number of days from 1 to {MAX_DAYS}, not {value!r}.",
        err=True,
    )
    raise typer.Exit(code=2)


def _days(age: timedelta) -> str:
    return "1 day" if age.days == 1 else f"{age.days} days"


async def _rotating(services: Services, rotate: Callable[[], Coroutine[Any, Any, T]]) -> T:
    """``rotate`` under the rotation lease, waiting a few seconds for a background check that
    holds it (it takes milliseconds)."""
    deadline = time.monotonic() + ROTATION_LEASE_WAIT_SECONDS
    while True:
        try:
            return await services.rotation_lease.run(rotate)
        except LeaseHeld:
            if time.monotonic() >= deadline:
                raise
            await asyncio.sleep(0.2)


async def _key_statuses(services: Services) -> list[KeyStatus]:
    await services.tokens.ensure_key()
    return await services.tokens.statuses()


def _run(settings: Settings, action: Callable[[Services], Awaitable[T]]) -> T:
    # What the services log goes to standard error, as the server's does: standard output
    # carries only the command's own answer.
    configure_logging(json=settings.json_logs, level=settings.log_level)

    async def main() -> T:
        services = build(settings)
        try:
            return await action(services)
        finally:
            services.hasher.close()
            await services.engine.dispose()

    try:
        return asyncio.run(main())
    except BastionError as exc:
        if isinstance(exc, StorageUnavailable) and exc.__cause__ is not None:
            # The operator needs the database's own words (refused, locked, timed out) to act;
            # engines hide bound values, so the message carries no secret.
            cause = exc.__cause__
            log.error("cli.database_unavailable", cause=f"{type(cause).__name__}: {cause}"[:500])
        typer.echo(f"Error: {exc.detail}", err=True)
        raise typer.Exit(code=1) from None
