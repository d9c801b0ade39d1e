"""revocation="check": Bastion's verify-token is asked, and its answer kept for a second."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from bastion_verifier import InvalidToken, IssuerUnavailable, TokenRevoked, Verifier
from clock import Clock, FrozenClock
from fake_bastion import FakeBastion


@pytest.fixture
def clock() -> Clock:
    # The answer is kept for a second of this clock alone; with real time, a CPU stall of a tenth
    # of a second between two checks once ended it early.
    return FrozenClock()


@pytest.fixture
async def checking(fake: FakeBastion, clock: Clock) -> AsyncIterator[Verifier]:
    verifier = Verifier(issuer=fake.issuer, audience=fake.audience, revocation="check", clock=clock)
    async with verifier:
        yield verifier


async def test_bastions_answer_is_reused_for_at_most_a_second(
    fake: FakeBastion, checking: Verifier, clock: Clock
) -> None:
    issued = fake.log_in()
    for _ in range(3):
        await checking.verify_async(issued.token)
        checking.verify(issued.token)
    assert fake.state.verify_token_requests == 1
    fake.log_out(issued)
    clock.advance(0.9)
    await checking.verify_async(issued.token)
    clock.advance(0.1)
    with pytest.raises(TokenRevoked):
        await checking.verify_async(issued.token)
    with pytest.raises(TokenRevoked):
        checking.verify(issued.token)
    assert fake.state.verify_token_requests == 2


async def test_forged_tokens_never_reach_bastion(fake: FakeBastion, checking: Verifier) -> None:
    with pytest.raises(InvalidToken):
        await checking.verify_async(fake.sign(fake.claims(aud="elsewhere")))
    assert fake.state.verify_token_requests == 0


async def test_an_unreachable_bastion_refuses_with_503_rather_than_trusting_blindly(
    fake: FakeBastion, checking: Verifier, clock: Clock
) -> None:
    issued = fake.log_in()
    await checking.verify_async(issued.token)
    fake.stop()
    clock.advance(1)
    with pytest.raises(IssuerUnavailable):
        await checking.verify_async(issued.token)
    with pytest.raises(IssuerUnavailable):
        checking.verify(issued.token)
    fake.start()
    await checking.verify_async(issued.token)
