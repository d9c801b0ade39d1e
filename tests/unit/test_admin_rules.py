"""The pure rules behind the admin API: permissions, changes, paging, erasure."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from bastion.accounts.model import Role, new_user
from bastion.admin.model import (
    Permission,
    UserChanges,
    allows,
    apply_changes,
    parse_event_cursor,
    parse_user_cursor,
    removes_an_admin,
)
from bastion.audit.model import ERASED, scrub
from bastion.core.pagination import page_of

NOW = datetime(2026, 1, 1, tzinfo=UTC)


@pytest.mark.parametrize(
    ("role", "granted"),
    [
        ("admin", set(Permission)),
        ("manager", {Permission.READ_USERS, Permission.READ_AUDIT}),
        ("user", set()),
        ("guest", set()),
        ("superuser", set()),
        ("", set()),
    ],
)
def test_each_role_is_granted_exactly_its_permissions(role: str, granted: set[Permission]) -> None:
    assert {permission for permission in Permission if allows(role, permission)} == granted


def test_changes_apply_only_the_given_fields_and_touch_updated_at_and_the_version_on_change() -> (
    None
):
    user = new_user("a@example.com", "hash", NOW)
    later = NOW + timedelta(hours=1)
    assert apply_changes(user, UserChanges(), later) == user
    assert apply_changes(user, UserChanges(is_active=True), later) == user
    changed = apply_changes(user, UserChanges(role=Role.MANAGER), later)
    assert (changed.role, changed.is_active, changed.updated_at) == (Role.MANAGER, True, later)
    assert changed.security_version > user.security_version


@pytest.mark.parametrize(
    ("changes", "removes"),
    [
        (UserChanges(role=Role.MANAGER), True),
        (UserChanges(is_active=False), True),
        (UserChanges(is_verified=False), False),
        (UserChanges(role=Role.ADMIN), False),
    ],
)
def test_demoting_or_disabling_an_active_admin_removes_an_admin(
    changes: UserChanges, removes: bool
) -> None:
    admin = new_user("root@example.com", "hash", NOW, role=Role.ADMIN)
    assert removes_an_admin(admin, apply_changes(admin, changes, NOW)) is removes
    disabled = apply_changes(admin, UserChanges(is_active=False), NOW)
    assert not removes_an_admin(disabled, apply_changes(disabled, changes, NOW))


def test_a_page_has_a_cursor_only_when_more_items_exist() -> None:
    assert page_of([1, 2], 2, str).next_cursor is None
    page = page_of([1, 2, 3], 2, str)
    assert page.items == [1, 2] and page.next_cursor == "2"


@pytest.mark.parametrize("cursor", ["", "nope", "12", "-1"])
def test_a_user_cursor_must_be_a_user_id(cursor: str) -> None:
    with pytest.raises(ValueError):
        parse_user_cursor(cursor)


@pytest.mark.parametrize("cursor", ["", "x", "0", "-5"])
def test_an_event_cursor_must_be_a_positive_event_id(cursor: str) -> None:
    with pytest.raises(ValueError):
        parse_event_cursor(cursor)


def test_scrub_replaces_an_address_at_any_depth_whatever_its_case() -> None:
    details = {
        "email": "Ann@Example.com",
        "note": "ann@example.com asked twice",
        "nested": {"to": ["ann@example.com", "bob@example.com"], "count": 2},
        "flag": True,
    }
    assert scrub(details, "ann@example.com") == {
        "email": ERASED,
        "note": f"{ERASED} asked twice",
        "nested": {"to": [ERASED, "bob@example.com"], "count": 2},
        "flag": True,
    }
