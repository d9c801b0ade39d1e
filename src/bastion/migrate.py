"""Schema migrations, run programmatically (``bastion migrate``, ``bastion serve``, tests).

Alembic is imported when a migration runs rather than with this module: every ``bastion``
command imports this module, and Alembic's import is about a third of a second of each start."""

from __future__ import annotations

from importlib import resources
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from alembic.config import Config


class MigrationStopped(Exception):
    """A migration met data it must not change on its own; nothing was changed, and the message
    says what to decide."""


def alembic_config(database_url: str) -> Config:
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(resources.files("bastion") / "migrations"))
    config.set_main_option("sqlalchemy.url", database_url.replace("%", "%%"))
    return config


def upgrade(database_url: str, revision: str = "head") -> None:
    from alembic import command

    command.upgrade(alembic_config(database_url), revision)


def downgrade(database_url: str, revision: str = "base") -> None:
    from alembic import command

    command.downgrade(alembic_config(database_url), revision)
