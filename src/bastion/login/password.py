"""The password step: whether the credentials open the account."""

from __future__ import annotations

from dataclasses import replace

from bastion.accounts.model import User
from bastion.audit.model import LoginFailure
from bastion.core.clock import Clock
from bastion.core.email_address import normalize_email
from bastion.login.model import Refusal
from bastion.passwords.ports import PasswordHasher
from bastion.storage import UnitOfWorkFactory


class PasswordCheck:
    """Unknown emails cost a full hash's time, like wrong passwords, so neither shows which
    addresses have accounts."""

    def __init__(self, uow: UnitOfWorkFactory, hasher: PasswordHasher, clock: Clock) -> None:
        self._uow = uow
        self._hasher = hasher
        self._clock = clock

    async def check(self, email: str, password: str) -> User | Refusal:
        """The account these credentials open, or why they do not."""
        async with self._uow(read_only=True) as uow:
            user = await uow.users.get_by_email(normalize_email(email))
        if user is None:
            await self._hasher.verify_dummy(password)
            return Refusal(LoginFailure.UNKNOWN_EMAIL)
        verification = await self._hasher.verify(user.password_hash, password)
        if not verification.valid:
            return Refusal(LoginFailure.WRONG_PASSWORD, user.id)
        if not user.is_verified:
            return Refusal(LoginFailure.UNVERIFIED, user.id)
        if not user.is_active:
            return Refusal(LoginFailure.DISABLED, user.id)
        if verification.needs_rehash:
            user = await self._rehash(user, password)
        return user

    async def _rehash(self, user: User, password: str) -> User:
        """Upgrade a bcrypt or outdated Argon2 hash now that we know the password: the one
        place a log-in writes to the user."""
        updated = replace(
            user, password_hash=await self._hasher.hash(password), updated_at=self._clock.now()
        )
        async with self._uow() as uow:
            await uow.users.update(updated)
            await uow.commit()
        return updated
