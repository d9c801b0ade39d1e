"""Users and the rules about them."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from bastion.core.email_address import normalize_email


class Role(StrEnum):
    ADMIN = "admin"
    MANAGER = "manager"
    USER = "user"
    GUEST = "guest"


@dataclass(frozen=True, slots=True)
class User:
    id: uuid.UUID
    email: str
    password_hash: str
    role: Role
    is_verified: bool
    is_active: bool
    created_at: datetime
    updated_at: datetime


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
    )
