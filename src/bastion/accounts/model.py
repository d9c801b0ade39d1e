"""Users and the rules about them."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, replace
from datetime import datetime
from enum import StrEnum

from bastion.core.context import SecurityStamp
from bastion.core.email_address import normalize_email

FIRST_SECURITY_VERSION = 1


class Role(StrEnum):
    ADMIN = "admin"
    MANAGER = "manager"
    USER = "user"
    GUEST = "guest"


@dataclass(frozen=True, slots=True)
class User:
    """An account.

    ``security_version`` counts the changes to what a log-in decides on and what its tokens
    claim: the password, the role, whether the account is active and verified. Each such change
    goes through one of the ``with_*`` methods below, the one place that bumps it (a future
    change of email or of the second factors bumps it the same way, or through
    ``security_changed``). A session is only started while the version is still the one its
    credential check saw (``security_stamp``).
    """

    id: uuid.UUID
    email: str
    password_hash: str
    role: Role
    is_verified: bool
    is_active: bool
    created_at: datetime
    updated_at: datetime
    security_version: int

    @property
    def security_stamp(self) -> SecurityStamp:
        return SecurityStamp(self.id, self.security_version)

    def with_password(self, password_hash: str, now: datetime) -> User:
        """A new password (a reset or a change). Upgrading the hash of the same password is not
        a change of state: the log-in's rehash writes only the hash, and bumps nothing."""
        if password_hash == self.password_hash:
            return self
        return replace(self, password_hash=password_hash).security_changed(now)

    def with_role(self, role: Role, now: datetime) -> User:
        if role is self.role:
            return self
        return replace(self, role=role).security_changed(now)

    def with_active(self, is_active: bool, now: datetime) -> User:
        if is_active == self.is_active:
            return self
        return replace(self, is_active=is_active).security_changed(now)

    def with_verified(self, is_verified: bool, now: datetime) -> User:
        if is_verified == self.is_verified:
            return self
        return replace(self, is_verified=is_verified).security_changed(now)

    def with_email(self, email: str, now: datetime) -> User:
        """A confirmed new address: the owner proved it is theirs, so it stays verified."""
        email = normalize_email(email)
        if email == self.email:
            return self
        return replace(self, email=email, is_verified=True).security_changed(now)

    def security_changed(self, now: datetime) -> User:
        """The account after a change to its security state: every credential check that saw
        the state before it no longer opens a session."""
        return replace(self, security_version=self.security_version + 1, updated_at=now)


def new_user(
    email: str, password_hash: str, now: datetime, *, role: Role = Role.USER, verified: bool = False
) -> User:
    return User(
        id=uuid.uuid4(),
        email=normalize_email(email),
        password_hash=password_hash,
        role=role,
        is_verified=verified,
        is_active=True,
        created_at=now,
        updated_at=now,
        security_version=FIRST_SECURITY_VERSION,
    )
