"""Refresh-token rotation and reuse detection, over in-memory storage (no I/O)."""

from __future__ import annotations

import asyncio
from dataclasses import replace

import pytest

from bastion.core.context import RequestContext
from bastion.core.secrets import new_token
from bastion.sessions.errors import InvalidRefreshToken, RefreshTokenReused
from bastion.sessions.model import Session
from bastion.sessions.service import IssuedTokens
from bastion.settings import Settings
from tests.unit.flows import World, world

CONTEXT = RequestContext(ip="198.51.100.30", user_agent="unit tests")
RETRY_SECONDS: int = Settings.model_fields["refresh_retry_seconds"].default


async def remembered(w: World) -> IssuedTokens:
    user = await w.user()
    return (await w.log_in(user.email, remember_me=True)).tokens


async def stored(w: World, issued: IssuedTokens) -> Session:
    async with w.store(read_only=True) as uow:
        session = await uow.sessions.get(issued.session.id)
    assert session is not None
    return session


async def test_a_refresh_token_is_traded_for_new_tokens_in_the_same_session() -> None:
    async with world() as w:
        issued = await remembered(w)
        assert issued.refresh_token is not None
        w.clock.advance(30)
        refreshed = await w.services.sessions.refresh(issued.refresh_token, CONTEXT)
        assert refreshed.session.id == issued.session.id
        assert refreshed.refresh_token not in (None, issued.refresh_token)
        assert refreshed.access_token != issued.access_token
        assert (await stored(w, issued)).last_seen_at == w.clock.now()
        again = await w.services.sessions.refresh(refreshed.refresh_token, CONTEXT)
        assert again.session.id == issued.session.id


async def test_a_spent_refresh_token_ends_the_session_and_warns_the_owner() -> None:
    async with world() as w:
        issued = await remembered(w)
        refreshed = await w.services.sessions.refresh(issued.refresh_token, CONTEXT)
        latest = await w.services.sessions.refresh(refreshed.refresh_token, CONTEXT)
        with pytest.raises(RefreshTokenReused):
            await w.services.sessions.refresh(issued.refresh_token, CONTEXT)
        session = await stored(w, issued)
        assert session.revoke_reason == "refresh_reuse"
        assert len(w.events("refresh_reuse_detected", session.user_id)) == 1
        owner = w.store.tables.users[session.user_id].email
        assert w.mail_to(owner) == ["refresh_token_reused"]
        with pytest.raises(InvalidRefreshToken):
            await w.services.sessions.refresh(latest.refresh_token, CONTEXT)


async def test_a_client_that_missed_the_answer_may_present_its_token_once_more_soon_after() -> None:
    async with world() as w:
        issued = await remembered(w)
        unanswered = await w.services.sessions.refresh(issued.refresh_token, CONTEXT)
        w.clock.advance(RETRY_SECONDS)
        retried = await w.services.sessions.refresh(issued.refresh_token, CONTEXT)
        assert retried.session.id == issued.session.id
        assert retried.refresh_token not in (issued.refresh_token, unanswered.refresh_token)
        assert (await w.services.sessions.refresh(retried.refresh_token, CONTEXT)).session
        assert (await stored(w, issued)).revoked_at is None
        assert w.events("refresh_reuse_detected", issued.session.user_id) == []


async def test_the_successor_a_retry_replaced_is_taken_for_a_thief() -> None:
    async with world() as w:
        issued = await remembered(w)
        replaced = await w.services.sessions.refresh(issued.refresh_token, CONTEXT)
        await w.services.sessions.refresh(issued.refresh_token, CONTEXT)
        with pytest.raises(RefreshTokenReused):
            await w.services.sessions.refresh(replaced.refresh_token, CONTEXT)
        assert (await stored(w, issued)).revoke_reason == "refresh_reuse"


@pytest.mark.parametrize(
    "case", ["after the retry window", "a second retry", "after its successor was used"]
)
async def test_a_spent_token_is_theft_outside_the_one_retry(case: str) -> None:
    async with world() as w:
        issued = await remembered(w)
        successor = await w.services.sessions.refresh(issued.refresh_token, CONTEXT)
        if case == "after the retry window":
            w.clock.advance(RETRY_SECONDS + 1)
        elif case == "a second retry":
            await w.services.sessions.refresh(issued.refresh_token, CONTEXT)
        else:
            await w.services.sessions.refresh(successor.refresh_token, CONTEXT)
        with pytest.raises(RefreshTokenReused):
            await w.services.sessions.refresh(issued.refresh_token, CONTEXT)
        assert (await stored(w, issued)).revoke_reason == "refresh_reuse"


async def test_three_refreshes_racing_with_one_token_end_the_session() -> None:
    async with world() as w:
        issued = await remembered(w)
        outcomes = await asyncio.gather(
            *(w.services.sessions.refresh(issued.refresh_token, CONTEXT) for _ in range(3)),
            return_exceptions=True,
        )
        # The first trades it, the second is taken for a retry, the third for a thief.
        assert sorted(type(o).__name__ for o in outcomes) == [
            "IssuedTokens",
            "IssuedTokens",
            "RefreshTokenReused",
        ]
        assert (await stored(w, issued)).revoked_at is not None


@pytest.mark.parametrize("token", [None, "", "unknown"])
async def test_a_missing_or_unknown_refresh_token_is_refused(token: str | None) -> None:
    async with world() as w:
        issued = await remembered(w)
        with pytest.raises(InvalidRefreshToken):
            await w.services.sessions.refresh(new_token() if token == "unknown" else token, CONTEXT)
        assert (await stored(w, issued)).revoked_at is None


async def test_a_refresh_token_ends_with_its_session() -> None:
    async with world(remember_me_ttl=3600) as w:
        issued = await remembered(w)
        w.clock.advance(3600)
        with pytest.raises(InvalidRefreshToken):
            await w.services.sessions.refresh(issued.refresh_token, CONTEXT)
        assert w.events("refresh") == []


async def test_a_disabled_user_cannot_refresh() -> None:
    async with world() as w:
        issued = await remembered(w)
        user = w.store.tables.users[issued.session.user_id]
        async with w.store() as uow:
            await uow.users.update(replace(user, is_active=False))
            await uow.commit()
        with pytest.raises(InvalidRefreshToken):
            await w.services.sessions.refresh(issued.refresh_token, CONTEXT)
