"""The security version: what bumps it, and what does not."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest

from bastion.accounts.model import Role, User, new_user
from bastion.core.context import SecurityStamp

NOW = datetime(2030, 1, 1, tzinfo=UTC)
LATER = NOW + timedelta(minutes=5)


def a_user() -> User:
    return new_user("someone@example.com", "$argon2id$old", NOW, role=Role.ADMIN, verified=True)


CHANGES: dict[str, Callable[[User], User]] = {
    "new password": lambda user: user.with_password("$argon2id$new", LATER),
    "demotion": lambda user: user.with_role(Role.USER, LATER),
    "deactivation": lambda user: user.with_active(False, LATER),
    "verification withdrawn": lambda user: user.with_verified(False, LATER),
    "another change (a second factor)": lambda user: user.security_changed(LATER),
}
NO_CHANGES: dict[str, Callable[[User], User]] = {
    "same password hash": lambda user: user.with_password(user.password_hash, LATER),
    "same role": lambda user: user.with_role(user.role, LATER),
    "still active": lambda user: user.with_active(True, LATER),
    "still verified": lambda user: user.with_verified(True, LATER),
}


@pytest.mark.parametrize("change", CHANGES.values(), ids=CHANGES.keys())
def test_every_change_to_what_a_login_decides_on_gives_the_account_a_new_stamp(
    change: Callable[[User], User],
) -> None:
    user = a_user()
    changed = change(user)
    assert changed.security_stamp != user.security_stamp
    assert changed.security_stamp.user_id == user.id
    assert changed.updated_at == LATER


@pytest.mark.parametrize("change", NO_CHANGES.values(), ids=NO_CHANGES.keys())
def test_setting_a_field_to_the_value_it_has_changes_nothing(
    change: Callable[[User], User],
) -> None:
    user = a_user()
    assert change(user) == user


def test_a_new_account_is_stamped_with_its_id_and_the_first_version() -> None:
    user = a_user()
    assert user.security_stamp == SecurityStamp(user.id, 1)
