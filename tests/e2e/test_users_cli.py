"""`bastion users …` and `bastion --version`, as an operator runs them."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from bastion import __version__
from tests.e2e.test_cli import bastion
from tests.support import STRONG_PASSWORD, random_email


@pytest.fixture
def environment(tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("BASTION_")}
    env.update(
        BASTION_DATABASE_URL=f"sqlite+aiosqlite:///{tmp_path / 'users-cli.db'}",
        BASTION_SECRET_KEY_FILE=str(tmp_path / "secret"),
        BASTION_ARGON2_TIME_COST="1",
        BASTION_ARGON2_MEMORY_COST="1024",
    )
    return env


@pytest.fixture
def migrated(environment: dict[str, str]) -> dict[str, str]:
    assert bastion(environment, "migrate").returncode == 0
    return environment


def create(env: dict[str, str], email: str, role: str = "user") -> None:
    result = bastion(
        env,
        "create-user",
        "--email",
        email,
        "--role",
        role,
        "--password-stdin",
        stdin=f"{STRONG_PASSWORD}\n",
    )
    assert result.returncode == 0, result.stderr


def test_version_prints_the_version(environment: dict[str, str]) -> None:
    result = bastion(environment, "--version")
    assert result.returncode == 0 and result.stdout.strip() == f"bastion {__version__}"


def test_users_are_listed_shown_disabled_enabled_and_given_a_role(
    migrated: dict[str, str],
) -> None:
    admin, email = random_email("cli-admin"), random_email("cli-user")
    create(migrated, admin, "admin")
    create(migrated, email)
    listed = bastion(migrated, "users", "list")
    assert listed.returncode == 0, listed.stderr
    assert email in listed.stdout and admin in listed.stdout
    only_admins = bastion(migrated, "users", "list", "--role", "admin")
    assert admin in only_admins.stdout and email not in only_admins.stdout

    shown = bastion(migrated, "users", "show", email.upper())
    assert shown.returncode == 0 and f"{email}  user  active  verified" in shown.stdout
    disabled = bastion(migrated, "users", "disable", email)
    assert disabled.returncode == 0 and "Disabled" in disabled.stdout
    assert "disabled" in bastion(migrated, "users", "show", email).stdout
    assert bastion(migrated, "users", "enable", email).returncode == 0
    assert "  active" in bastion(migrated, "users", "show", email).stdout
    promoted = bastion(migrated, "users", "set-role", email, "manager")
    assert promoted.returncode == 0 and f"{email} is now manager" in promoted.stdout
    reset = bastion(migrated, "users", "reset-mfa", email)
    assert reset.returncode == 0 and "Removed 0 second factors" in reset.stdout


def test_an_unknown_user_or_role_is_one_line_and_a_failure(migrated: dict[str, str]) -> None:
    email = random_email("cli-known")
    create(migrated, email)
    for args in (
        ("users", "show", "nobody@example.com"),
        ("users", "disable", "nobody@example.com"),
        ("users", "delete", "nobody@example.com", "--yes"),
        ("users", "set-role", email, "root"),
        ("users", "list", "--role", "root"),
    ):
        result = bastion(migrated, *args)
        assert result.returncode != 0, args
        assert len(result.stderr.strip().splitlines()) == 1, result.stderr
        assert "Error:" in result.stderr and "Usage" not in result.stderr


def test_delete_asks_first_unless_told_yes(migrated: dict[str, str]) -> None:
    email = random_email("cli-delete")
    create(migrated, email)
    kept = bastion(migrated, "users", "delete", email, stdin="n\n")
    assert kept.returncode != 0
    assert bastion(migrated, "users", "show", email).returncode == 0
    deleted = bastion(migrated, "users", "delete", email, stdin="y\n")
    assert deleted.returncode == 0 and f"Deleted {email}" in deleted.stdout
    assert bastion(migrated, "users", "show", email).returncode == 1
    other = random_email("cli-delete-yes")
    create(migrated, other)
    assert bastion(migrated, "users", "delete", other, "--yes").returncode == 0


def test_the_last_admin_is_not_deleted_from_the_command_line(migrated: dict[str, str]) -> None:
    admin = random_email("cli-last-admin")
    create(migrated, admin, "admin")
    refused = bastion(migrated, "users", "delete", admin, "--yes")
    assert refused.returncode == 1
    assert refused.stderr.strip().startswith("Error:") and len(refused.stderr.splitlines()) == 1
