"""UserRepository: the same behaviour on SQLite, PostgreSQL and in memory."""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import replace

import pytest

from bastion.accounts.errors import EmailTaken
from bastion.accounts.model import Role
from bastion.core.email_address import fold
from bastion.mfa.model import ChallengePurpose, new_challenge, new_mfa_token, new_totp_factor
from bastion.storage import UnitOfWorkFactory
from tests.contracts.rows import (
    NOW,
    a_credential,
    a_token,
    a_user,
    later,
    stored,
    stored_session,
    stored_user,
)


async def test_an_added_user_is_found_by_id_and_by_email(uow: UnitOfWorkFactory) -> None:
    user = await stored_user(uow)
    async with uow(read_only=True) as work:
        assert await work.users.get(user.id) == user
        assert await work.users.get_by_email(user.email) == user


async def test_an_unknown_user_is_none(uow: UnitOfWorkFactory) -> None:
    async with uow(read_only=True) as work:
        assert await work.users.get(uuid.uuid4()) is None
        assert await work.users.get_by_email("nobody@example.com") is None


async def test_an_added_user_is_seen_by_the_same_unit_of_work(uow: UnitOfWorkFactory) -> None:
    user = a_user()
    async with uow() as work:
        await work.users.add(user)
        assert await work.users.get_by_email(user.email) == user


async def test_an_update_replaces_every_field_but_the_id(uow: UnitOfWorkFactory) -> None:
    user = await stored_user(uow)
    changed = replace(
        user,
        password_hash="$argon2id$another",
        role=Role.MANAGER,
        is_verified=True,
        is_active=False,
        updated_at=later(60),
        security_version=user.security_version + 5,
    )
    async with uow() as work:
        await work.users.update(changed)
        await work.commit()
    async with uow(read_only=True) as work:
        assert await work.users.get(user.id) == changed


async def test_a_second_account_with_an_email_is_refused_and_nothing_of_it_is_kept(
    uow: UnitOfWorkFactory,
) -> None:
    first = await stored_user(uow)
    second = a_user(email=first.email)
    with pytest.raises(EmailTaken):
        async with uow() as work:
            await work.users.add(second)
            await work.commit()
    async with uow(read_only=True) as work:
        assert await work.users.get(second.id) is None
        assert await work.users.get_by_email(first.email) == first


async def test_deleting_a_user_takes_their_sessions_and_tokens_along(
    uow: UnitOfWorkFactory,
) -> None:
    user, other = await stored_user(uow), await stored_user(uow)
    session, kept_session = await stored_session(uow, user), await stored_session(uow, other)
    token, kept_token = a_token(user.id), a_token(other.id)
    async with uow() as work:
        await work.sessions.add_refresh_token("a" * 64, session.id, later(1))
        await work.verification_tokens.add(token)
        await work.reset_tokens.add(a_token(user.id))
        await work.verification_tokens.add(kept_token)
        await work.commit()

    async with uow() as work:
        await work.users.delete(user.id)
        await work.commit()

    async with uow(read_only=True) as work:
        assert await work.users.get(user.id) is None
        assert await work.sessions.get(session.id) is None
        assert await work.sessions.refresh_token_session("a" * 64) is None
        assert await work.verification_tokens.get(token.token_hash) is None
        assert await work.sessions.get(kept_session.id) == kept_session
        assert await work.verification_tokens.get(kept_token.token_hash) == kept_token


async def test_deleting_a_user_takes_their_second_factors_along(uow: UnitOfWorkFactory) -> None:
    user, other = await stored_user(uow), await stored_user(uow)
    totp, credential = new_totp_factor(user.id, "Phone", b"s", NOW), a_credential(user.id)
    kept = a_credential(other.id)
    challenge = new_challenge(b"challenge", ChallengePurpose.SECOND_STEP, user.id, NOW)
    token = new_mfa_token("b" * 64, user.id, False, "state", NOW, 300)
    async with uow() as work:
        await work.mfa_factors.add_totp(totp)
        await work.mfa_factors.add_webauthn(credential)
        await work.mfa_factors.add_webauthn(kept)
        await work.recovery_codes.replace(user.id, ["c" * 64], NOW)
        await work.recovery_codes.replace(other.id, ["c" * 64], NOW)
        await work.webauthn_challenges.add(challenge)
        await work.mfa_tokens.add(token)
        await work.commit()

    async with uow() as work:
        await work.users.delete(user.id)
        await work.commit()

    async with uow() as work:
        assert await work.mfa_factors.of_user(user.id) == []
        assert await work.mfa_factors.credential(credential.credential_id) is None
        assert await work.recovery_codes.remaining(user.id) == 0
        assert await work.mfa_tokens.get(token.token_hash) is None
        challenges = work.webauthn_challenges
        assert await challenges.spend(challenge.challenge_hash, challenge.purpose, NOW) is None
        assert await work.mfa_factors.of_user(other.id) == [kept]
        assert await work.recovery_codes.remaining(other.id) == 1


async def test_search_pages_through_users_in_id_order(uow: UnitOfWorkFactory) -> None:
    users = [a_user() for _ in range(5)]
    await stored(uow, *users)
    ordered = sorted(users, key=lambda user: user.id)
    async with uow(read_only=True) as work:
        first = await work.users.search(email_contains=None, role=None, after=None, limit=3)
        rest = await work.users.search(email_contains=None, role=None, after=first[-1].id, limit=3)
    assert first + rest == ordered


async def test_search_filters_by_part_of_the_email_and_by_role(uow: UnitOfWorkFactory) -> None:
    admin = a_user(role=Role.ADMIN, email="root_admin@example.com")
    user = a_user(email="rootxadmin@example.com")
    await stored(uow, admin, user, a_user(email="someone@example.com"))
    async with uow(read_only=True) as work:
        by_email = await work.users.search(email_contains="root", role=None, after=None, limit=9)
        by_role = await work.users.search(email_contains=None, role=Role.ADMIN, after=None, limit=9)
        underscore = await work.users.search(email_contains="t_a", role=None, after=None, limit=9)
    assert sorted(u.email for u in by_email) == ["root_admin@example.com", "rootxadmin@example.com"]
    assert by_role == [admin]
    assert underscore == [admin]  # "_" is a character here, not a wildcard


async def test_search_matches_the_text_as_given_with_no_case_mapping_of_its_own(
    uow: UnitOfWorkFactory,
) -> None:
    """The caller folds the text as addresses are folded; folding maps the Cherokee small
    letters to capitals, which a lower-casing search would then miss."""
    user = a_user(email=f"\uab70\uab71{uuid.uuid4().hex[:8]}@example.com")
    await stored(uow, user, a_user())
    async with uow(read_only=True) as work:
        found = await work.users.search(
            email_contains=fold("\uab70\uab71"), role=None, after=None, limit=9
        )
    assert found == [user]


async def test_only_active_admins_count_as_admins(uow: UnitOfWorkFactory) -> None:
    disabled = replace(a_user(role=Role.ADMIN), is_active=False)
    await stored(uow, a_user(role=Role.ADMIN), a_user(role=Role.ADMIN), disabled, a_user())
    async with uow() as work:
        assert await work.users.count_active_admins() == 2


async def test_a_hash_upgrade_writes_only_the_hash_and_only_over_the_hash_it_verified(
    uow: UnitOfWorkFactory,
) -> None:
    user = await stored_user(uow, role=Role.ADMIN)
    demoted = user.with_role(Role.USER, later(5))
    async with uow() as work:
        await work.users.update(demoted)
        await work.commit()

    async with uow(single_statement=True) as work:
        upgraded = await work.users.upgrade_password_hash(
            user.id, user.password_hash, "$argon2id$upgraded"
        )
        await work.commit()
    async with uow(single_statement=True) as work:
        upgraded_again = await work.users.upgrade_password_hash(
            user.id, user.password_hash, "$argon2id$from-a-stale-read"
        )
        await work.commit()

    assert upgraded and not upgraded_again
    async with uow(read_only=True) as work:
        assert await work.users.get(user.id) == replace(demoted, password_hash="$argon2id$upgraded")


async def test_a_user_read_for_update_is_changed_by_nobody_else_until_the_reader_ends(
    uow: UnitOfWorkFactory,
) -> None:
    user = await stored_user(uow, role=Role.ADMIN)

    async def demote() -> None:
        async with uow() as work:
            current = await work.users.get_for_update(user.id)
            assert current is not None
            await work.users.update(current.with_role(Role.USER, later(2)))
            await work.commit()

    async with uow() as work:
        current = await work.users.get_for_update(user.id)
        assert current == user
        demoting = asyncio.create_task(demote())
        await asyncio.sleep(0.2)
        assert not demoting.done()
        await work.users.update(current.with_active(False, later(1)))
        await work.commit()
    await demoting

    async with uow(read_only=True) as work:
        stored_now = await work.users.get(user.id)
    assert stored_now is not None
    assert (stored_now.role, stored_now.is_active) == (Role.USER, False)
    assert stored_now.security_version == user.security_version + 2
