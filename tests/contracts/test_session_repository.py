"""SessionRepository, refresh tokens included: the same behaviour everywhere.

``resume`` and ``rotate_refresh_token`` take one statement on PostgreSQL and several on SQLite;
these tests hold both to the same outcome.
"""

from __future__ import annotations

import uuid
from dataclasses import replace

from bastion.storage import UnitOfWorkFactory
from tests.contracts.rows import a_session, later, stored_session, stored_user

SPENT, SUCCESSOR, NEXT = "1" * 64, "2" * 64, "3" * 64


async def test_an_added_session_is_found_by_its_id(uow: UnitOfWorkFactory) -> None:
    user = await stored_user(uow)
    session = await stored_session(uow, user)
    async with uow(read_only=True) as work:
        assert await work.sessions.get(session.id) == session
        assert await work.sessions.get(uuid.uuid4()) is None


async def test_get_many_returns_the_sessions_that_exist(uow: UnitOfWorkFactory) -> None:
    user = await stored_user(uow)
    first, second = await stored_session(uow, user), await stored_session(uow, user)
    async with uow(read_only=True) as work:
        found = await work.sessions.get_many([first.id, uuid.uuid4(), second.id])
        assert await work.sessions.get_many([]) == []
    assert sorted(found, key=lambda s: s.id) == sorted([first, second], key=lambda s: s.id)


async def test_the_active_sessions_are_the_live_ones_newest_first(uow: UnitOfWorkFactory) -> None:
    user, other = await stored_user(uow), await stored_user(uow)
    older = await stored_session(uow, user, created=0)
    newer = await stored_session(uow, user, created=10)
    await stored_session(uow, user, created=-7200)  # expired
    revoked = await stored_session(uow, user, created=20)
    await stored_session(uow, other)
    async with uow() as work:
        await work.sessions.revoke(user.id, later(30), "logout", only=revoked.id)
        await work.commit()
    async with uow(read_only=True) as work:
        assert await work.sessions.list_active(user.id, later(60)) == [newer, older]


async def test_touching_a_session_records_its_use(uow: UnitOfWorkFactory) -> None:
    user = await stored_user(uow)
    session = await stored_session(uow, user)
    async with uow() as work:
        touched = await work.sessions.touch(session.id, later(90))
        assert await work.sessions.touch(uuid.uuid4(), later(90)) is None
        await work.commit()
    assert touched == replace(session, last_seen_at=later(90))
    async with uow(read_only=True) as work:
        assert await work.sessions.get(session.id) == touched


async def test_resuming_a_session_records_its_use_and_returns_its_user(
    uow: UnitOfWorkFactory,
) -> None:
    user = await stored_user(uow)
    session = await stored_session(uow, user)
    async with uow() as work:
        resumed = await work.sessions.resume(session.id, later(120))
        assert await work.sessions.resume(uuid.uuid4(), later(120)) is None
        await work.commit()
    assert resumed == (replace(session, last_seen_at=later(120)), user)
    async with uow(read_only=True) as work:
        assert await work.sessions.get(session.id) == resumed[0]


async def test_revoking_ends_every_live_session_of_the_user_once(uow: UnitOfWorkFactory) -> None:
    user, other = await stored_user(uow), await stored_user(uow)
    first, second = await stored_session(uow, user), await stored_session(uow, user)
    bystander = await stored_session(uow, other)
    async with uow() as work:
        revoked = await work.sessions.revoke(user.id, later(5), "all_revoked")
        again = await work.sessions.revoke(user.id, later(6), "all_revoked")
        await work.commit()
    assert sorted(revoked) == sorted([first.id, second.id])
    assert again == []
    async with uow(read_only=True) as work:
        assert await work.sessions.get(first.id) == replace(
            first, revoked_at=later(5), revoke_reason="all_revoked"
        )
        assert await work.sessions.get(bystander.id) == bystander


async def test_revoking_can_end_only_one_session_or_all_but_one(uow: UnitOfWorkFactory) -> None:
    user = await stored_user(uow)
    first, second, third = [await stored_session(uow, user) for _ in range(3)]
    async with uow() as work:
        only = await work.sessions.revoke(user.id, later(5), "logout", only=first.id)
        not_theirs = await work.sessions.revoke(uuid.uuid4(), later(5), "logout", only=second.id)
        all_but = await work.sessions.revoke(user.id, later(6), "password_changed", keep=third.id)
        await work.commit()
    assert (only, not_theirs, all_but) == ([first.id], [], [second.id])
    async with uow(read_only=True) as work:
        assert await work.sessions.list_active(user.id, later(7)) == [third]


async def test_a_refresh_token_rotates_once_into_its_successor(uow: UnitOfWorkFactory) -> None:
    user = await stored_user(uow)
    session = await stored_session(uow, user)
    async with uow() as work:
        await work.sessions.add_refresh_token(SPENT, session.id, later(0))
        await work.commit()
    async with uow() as work:
        assert await work.sessions.rotate_refresh_token(SPENT, SUCCESSOR, later(1)) == session.id
        await work.commit()
    async with uow() as work:
        assert await work.sessions.rotate_refresh_token(SPENT, NEXT, later(2)) is None
        assert await work.sessions.rotate_refresh_token(SUCCESSOR, NEXT, later(2)) == session.id
        await work.commit()
    async with uow(read_only=True) as work:
        for token_hash in (SPENT, SUCCESSOR, NEXT):
            assert await work.sessions.refresh_token_session(token_hash) == session.id


async def test_a_refused_rotation_stores_no_successor(uow: UnitOfWorkFactory) -> None:
    user = await stored_user(uow)
    session = await stored_session(uow, user)
    async with uow() as work:
        await work.sessions.add_refresh_token(SPENT, session.id, later(0))
        await work.sessions.rotate_refresh_token(SPENT, SUCCESSOR, later(1))
        await work.commit()
    async with uow() as work:
        assert await work.sessions.rotate_refresh_token(SPENT, NEXT, later(2)) is None
        assert await work.sessions.rotate_refresh_token("9" * 64, NEXT, later(2)) is None
        await work.commit()
    async with uow(read_only=True) as work:
        assert await work.sessions.refresh_token_session(NEXT) is None
        assert await work.sessions.refresh_token_session("9" * 64) is None


async def test_an_uncommitted_rotation_leaves_the_token_spendable(uow: UnitOfWorkFactory) -> None:
    user = await stored_user(uow)
    session = a_session(user.id)
    async with uow() as work:
        await work.sessions.add(session)
        await work.sessions.add_refresh_token(SPENT, session.id, later(0))
        await work.commit()
    async with uow() as work:
        assert await work.sessions.rotate_refresh_token(SPENT, SUCCESSOR, later(1)) == session.id
    async with uow() as work:
        assert await work.sessions.refresh_token_session(SUCCESSOR) is None
        assert await work.sessions.rotate_refresh_token(SPENT, NEXT, later(2)) == session.id


async def test_a_browser_token_finds_its_session_and_user_whatever_their_state(
    uow: UnitOfWorkFactory,
) -> None:
    user = await stored_user(uow)
    session = await stored_session(uow, user)
    async with uow() as work:
        await work.sessions.add_browser_token(SPENT, session.id, later(0))
        await work.commit()
    async with uow(read_only=True) as work:
        assert await work.sessions.browser_session(SPENT) == (session, user)
        assert await work.sessions.browser_session(SUCCESSOR) is None
    async with uow() as work:
        await work.sessions.revoke(user.id, later(5), "logout", only=session.id)
        await work.commit()
    async with uow(read_only=True) as work:
        found = await work.sessions.browser_session(SPENT)
    assert found is not None and found[0].revoked_at == later(5), "the caller judges liveness"


async def test_an_uncommitted_browser_token_is_not_stored(uow: UnitOfWorkFactory) -> None:
    user = await stored_user(uow)
    session = await stored_session(uow, user)
    async with uow() as work:
        await work.sessions.add_browser_token(NEXT, session.id, later(0))
    async with uow(read_only=True) as work:
        assert await work.sessions.browser_session(NEXT) is None


async def test_a_spent_token_is_retried_once_in_its_window_while_its_successor_is_unused(
    uow: UnitOfWorkFactory,
) -> None:
    user = await stored_user(uow)
    session = await stored_session(uow, user)
    retried, again = "4" * 64, "5" * 64
    async with uow() as work:
        await work.sessions.add_refresh_token(SPENT, session.id, later(0))
        await work.sessions.rotate_refresh_token(SPENT, SUCCESSOR, later(10))
        await work.commit()
    async with uow() as work:
        # Spent before the window opened: no retry, and nothing changed.
        assert await work.sessions.retry_rotation(SPENT, NEXT, later(30), later(11)) is None
        assert await work.sessions.retry_rotation(SUCCESSOR, NEXT, later(30), later(0)) is None
        assert await work.sessions.retry_rotation("9" * 64, NEXT, later(30), later(0)) is None
        assert await work.sessions.retry_rotation(SPENT, retried, later(12), later(10)) == (
            session.id
        )
        await work.commit()
    async with uow() as work:
        assert await work.sessions.retry_rotation(SPENT, again, later(13), later(0)) is None
        # The successor the retry replaced is spent for good: not tradable, not retriable.
        assert await work.sessions.rotate_refresh_token(SUCCESSOR, again, later(13)) is None
        assert await work.sessions.retry_rotation(SUCCESSOR, again, later(13), later(0)) is None
        assert await work.sessions.rotate_refresh_token(retried, NEXT, later(13)) == session.id
        await work.commit()
    async with uow(read_only=True) as work:
        assert await work.sessions.refresh_token_session(again) is None
        assert await work.sessions.refresh_token_session(NEXT) == session.id


async def test_a_spent_token_whose_successor_was_used_is_not_retried(
    uow: UnitOfWorkFactory,
) -> None:
    user = await stored_user(uow)
    session = await stored_session(uow, user)
    async with uow() as work:
        await work.sessions.add_refresh_token(SPENT, session.id, later(0))
        await work.sessions.rotate_refresh_token(SPENT, SUCCESSOR, later(1))
        await work.sessions.rotate_refresh_token(SUCCESSOR, NEXT, later(2))
        await work.commit()
    async with uow() as work:
        assert await work.sessions.retry_rotation(SPENT, "4" * 64, later(3), later(0)) is None
        await work.commit()
    async with uow(read_only=True) as work:
        assert await work.sessions.refresh_token_session("4" * 64) is None


async def test_a_session_keeps_its_assurance_and_a_new_proof_replaces_it(
    uow: UnitOfWorkFactory,
) -> None:
    user = await stored_user(uow)
    session = await stored_session(uow, user)
    assert (session.aal, session.amr, session.auth_time) == ("aal1", ("pwd",), session.created_at)
    async with uow() as work:
        proven = await work.sessions.set_assurance(
            session.id, "aal2", ("pwd", "otp", "mfa"), later(120)
        )
        assert await work.sessions.set_assurance(uuid.uuid4(), "aal2", ("hwk",), later(120)) is None
        await work.commit()
    assert proven == replace(session, aal="aal2", amr=("pwd", "otp", "mfa"), auth_time=later(120))
    async with uow(read_only=True) as work:
        assert await work.sessions.get(session.id) == proven


async def test_a_revoked_session_takes_no_new_proof(uow: UnitOfWorkFactory) -> None:
    user = await stored_user(uow)
    session = await stored_session(uow, user)
    async with uow() as work:
        await work.sessions.revoke(user.id, later(10), "logout", only=session.id)
        assert await work.sessions.set_assurance(session.id, "aal2", ("hwk",), later(20)) is None
        await work.commit()
