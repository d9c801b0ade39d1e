from __future__ import annotations

import uuid
from datetime import datetime
from typing import Protocol

from bastion.accounts.model import Role, User
from bastion.core.account_at import AccountAt
from bastion.core.one_time_tokens import OneTimeToken


class UserRepository(Protocol):
    async def add(self, user: User) -> None:
        """Insert the user with the unit of work's commit, which raises ``EmailTaken`` (and
        writes nothing) if another account has the email."""
        ...

    async def get(self, user_id: uuid.UUID) -> User | None: ...

    async def get_for_update(self, user_id: uuid.UUID) -> User | None:
        """The user, whom no other unit of work may change (nor start a session for) until
        this one ends: a use case that reads a user to write it back reads it so, and loses no
        concurrent change."""
        ...

    async def get_by_email(self, email: str) -> User | None: ...

    async def update(self, user: User) -> None: ...

    async def upgrade_password_hash(
        self, user_id: uuid.UUID, verified_hash: str, upgraded_hash: str
    ) -> bool:
        """Replace the password hash, and nothing else, if it is still ``verified_hash``;
        whether it was replaced."""
        ...

    async def delete(self, user_id: uuid.UUID) -> None: ...

    async def search(
        self, *, email_contains: str | None, role: Role | None, after: uuid.UUID | None, limit: int
    ) -> list[User]:
        """Users ordered by id, starting after the cursor ``after``; ``email_contains`` is
        matched as given against the canonical addresses (the caller folds it first)."""
        ...

    async def count_active_admins(self) -> int: ...


class OneTimeTokenRepository(Protocol):
    async def add(self, token: OneTimeToken) -> None: ...

    async def add_for(
        self, account: AccountAt, token_hash: str, created_at: datetime, expires_at: datetime
    ) -> None:
        """Store a token for ``account`` if there is such an account, and nothing otherwise;
        the same statements either way."""
        ...

    async def get(self, token_hash: str) -> OneTimeToken | None: ...

    async def spend(self, token_hash: str, now: datetime) -> bool:
        """Mark the token used; False if someone else spent it first."""
        ...

    async def spend_all_for_user(self, user_id: uuid.UUID, now: datetime) -> None: ...
