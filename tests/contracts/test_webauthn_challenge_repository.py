"""WebAuthnChallengeRepository: a challenge is answered once, for its purpose, while it lives,
by whichever instance receives the answer."""

from __future__ import annotations

import uuid

from bastion.mfa.model import ChallengePurpose, new_challenge
from bastion.storage import UnitOfWorkFactory
from tests.contracts.races import committed, in_parallel
from tests.contracts.rows import NOW, stored_user


async def test_a_webauthn_challenge_is_spent_once_for_its_purpose_while_it_lives(
    uow: UnitOfWorkFactory,
) -> None:
    user = await stored_user(uow)
    challenge = new_challenge(
        uuid.uuid4().bytes, ChallengePurpose.REGISTRATION, user.id, NOW, passkey=True
    )
    await committed(uow, lambda work: work.webauthn_challenges.add(challenge))
    key = challenge.challenge_hash

    wrong_purpose = ChallengePurpose.SECOND_STEP
    assert (
        await committed(uow, lambda work: work.webauthn_challenges.spend(key, wrong_purpose, NOW))
        is None
    )
    results = await in_parallel(
        uow, lambda work: work.webauthn_challenges.spend(key, challenge.purpose, NOW)
    )
    assert [result for result in results if result is not None] == [challenge]


async def test_an_expired_challenge_cannot_be_spent_and_is_forgotten_by_the_next_one(
    uow: UnitOfWorkFactory,
) -> None:
    old = new_challenge(uuid.uuid4().bytes, ChallengePurpose.PASSKEY_LOGIN, None, NOW)
    await committed(uow, lambda work: work.webauthn_challenges.add(old))
    expired = old.expires_at

    assert (
        await committed(
            uow,
            lambda work: work.webauthn_challenges.spend(old.challenge_hash, old.purpose, expired),
        )
        is None
    )
    fresh = new_challenge(uuid.uuid4().bytes, ChallengePurpose.PASSKEY_LOGIN, None, expired)
    await committed(uow, lambda work: work.webauthn_challenges.add(fresh))
    # Forgotten: even a clock turned back no longer finds it.
    assert (
        await committed(
            uow, lambda work: work.webauthn_challenges.spend(old.challenge_hash, old.purpose, NOW)
        )
        is None
    )
    spent = await committed(
        uow,
        lambda work: work.webauthn_challenges.spend(fresh.challenge_hash, fresh.purpose, expired),
    )
    assert spent == fresh


async def test_a_challenge_is_spent_by_a_single_statement_unit_of_work(
    uow: UnitOfWorkFactory,
) -> None:
    challenge = new_challenge(uuid.uuid4().bytes, ChallengePurpose.PASSKEY_LOGIN, None, NOW)
    await committed(uow, lambda work: work.webauthn_challenges.add(challenge))
    async with uow(single_statement=True) as work:
        spent = await work.webauthn_challenges.spend(
            challenge.challenge_hash, challenge.purpose, NOW
        )
        await work.commit()
    assert spent == challenge
