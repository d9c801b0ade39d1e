"""Schema migrations, run programmatically (``bastion migrate``, ``bastion serve``, tests)."""

from __future__ import annotations

from importlib import resources

from alembic import command
from alembic.config import Config


class MigrationStopped(Exception):
    """A migration met data it must not change on its own; nothing was changed, and the message
    says what to decide."""


def alembic_config(database_url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(resources.files("bastion") / "migrations"))
    config.set_main_option("sqlalchemy.url", database_url.replace("%", "%%"))
    return config


def upgrade(database_url: str, revision: str = "head") -> None:
    command.upgrade(alembic_config(database_url), revision)


def downgrade(database_url: str, revision: str = "base") -> None:
    command.downgrade(alembic_config(database_url), revision)
