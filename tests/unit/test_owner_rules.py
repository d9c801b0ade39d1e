"""The rules of an owner's change of email and of what an owner sees of admins' actions."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest

from bastion.accounts.model import new_user
from bastion.audit.model import ACTOR, AuditEvent, EventType, as_seen_by_owner
from bastion.core.one_time_tokens import TokenExpired, TokenInvalid
from bastion.owners.model import EmailChange, ensure_confirmable

T0 = datetime(2030, 1, 1, tzinfo=UTC)


def change(**overrides: object) -> EmailChange:
    values: dict[str, object] = {
        "token_hash": "h",
        "user_id": uuid.uuid4(),
        "new_email": "new@example.com",
        "created_at": T0,
        "expires_at": T0 + timedelta(hours=1),
    }
    values.update(overrides)
    return EmailChange(**values)  # type: ignore[arg-type]


def test_a_change_link_is_usable_until_it_expires_and_only_once() -> None:
    pending = change()
    assert ensure_confirmable(pending, T0 + timedelta(minutes=59)) is pending
    with pytest.raises(TokenExpired):
        ensure_confirmable(pending, T0 + timedelta(hours=1))
    with pytest.raises(TokenInvalid):
        ensure_confirmable(change(used_at=T0), T0)
    with pytest.raises(TokenInvalid):
        ensure_confirmable(None, T0)


def test_a_new_email_is_verified_and_bumps_the_security_version() -> None:
    user = new_user("old@example.com", "hash", T0)
    moved = user.with_email("NEW@example.com", T0 + timedelta(seconds=1))
    assert moved.email == "new@example.com" and moved.is_verified
    assert moved.security_version == user.security_version + 1
    assert moved.updated_at == T0 + timedelta(seconds=1)
    assert user.with_email("old@example.com", T0) is user


def test_an_owner_sees_what_an_admin_did_but_not_which_admin() -> None:
    admin_id = str(uuid.uuid4())
    done = AuditEvent(EventType.ROLE_CHANGED, T0, details={ACTOR: admin_id, "new_role": "guest"})
    seen = as_seen_by_owner(done)
    assert seen.details == {"new_role": "guest"} and seen.type is EventType.ROLE_CHANGED
    plain = AuditEvent(EventType.LOGIN_SUCCEEDED, T0)
    assert as_seen_by_owner(plain) is plain
