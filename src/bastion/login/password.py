"""The password step: whether the credentials open the account."""

from __future__ import annotations

from dataclasses import replace

from bastion.accounts.model import User
from bastion.audit.model import LoginFailure
from bastion.core.email_address import normalize_email
from bastion.login.model import Refusal, refusal_for
from bastion.passwords.ports import PasswordHasher
from bastion.storage import UnitOfWorkFactory


class PasswordCheck:
    """Unknown emails cost a full hash's time, like wrong passwords, so neither shows which
    addresses have accounts."""

    def __init__(self, uow: UnitOfWorkFactory, hasher: PasswordHasher) -> None:
        self._uow = uow
        self._hasher = hasher

    async def check(self, email: str, password: str) -> User | Refusal:
        """The account these credentials open, as the check saw it (its ``security_stamp`` is
        what a session may start from), or why they do not open it."""
        async with self._uow(read_only=True) as uow:
            user = await uow.users.get_by_email(normalize_email(email))
        if user is None:
            await self._hasher.verify_dummy(password)
            return Refusal(LoginFailure.UNKNOWN_EMAIL)
        verification = await self._hasher.verify(user.password_hash, password)
        if not verification.valid:
            return Refusal(LoginFailure.WRONG_PASSWORD, user.id)
        refusal = refusal_for(user)
        if refusal is not None:
            return refusal
        if verification.needs_rehash:
            user = await self._rehash(user, password)
        return user

    async def recheck(self, seen: User, password: str) -> User | Refusal:
        """The same question against the account as it stands now, for a password accepted
        against ``seen``, an earlier state of it (a change slipped in before the session
        started). The password is verified again only if its hash changed."""
        async with self._uow(read_only=True) as uow:
            user = await uow.users.get(seen.id)
        if user is None:
            return Refusal(LoginFailure.UNKNOWN_EMAIL)
        if user.password_hash != seen.password_hash:
            if not (await self._hasher.verify(user.password_hash, password)).valid:
                return Refusal(LoginFailure.WRONG_PASSWORD, user.id)
        return refusal_for(user) or user

    async def _rehash(self, user: User, password: str) -> User:
        """Upgrade a bcrypt or outdated Argon2 hash now that we know the password: the one
        place a log-in writes to the user. Only the hash is written, and only if it is still
        the one just verified: whatever else changed meanwhile stays as it was changed."""
        upgraded = await self._hasher.hash(password)
        async with self._uow(single_statement=True) as uow:
            replaced = await uow.users.upgrade_password_hash(user.id, user.password_hash, upgraded)
            await uow.commit()
        return replace(user, password_hash=upgraded) if replaced else user
