"""Automatic signing-key rotation over in-memory storage with a frozen clock."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from functools import partial

from bastion.adapters.memory.limiter import MemoryLimiter
from bastion.background.errors import LeaseHeld
from bastion.bootstrap import Services, build
from bastion.tokens.model import AccessClaims, Rotation
from tests.support import kid_of
from tests.unit.flows import World, world

DAY = 86400
MAX_AGE = timedelta(days=90)


async def a_token(w: World, services: Services | None = None) -> str:
    services = services or w.services
    user = await w.user()
    now = w.clock.now()
    claims = AccessClaims(
        user.id, user.email, "user", user.id, now, now + timedelta(days=1), "jti-" + user.email
    )
    return await services.tokens.issue(claims)


def another_instance(w: World) -> Services:
    """A second instance over the same storage, as another process would be."""
    return build(w.services.settings, uow=w.store, clock=w.clock, limiter=MemoryLimiter())


async def test_the_signer_is_replaced_once_older_than_the_limit_and_its_tokens_stay_valid() -> None:
    async with world() as w:
        await w.services.tokens.ensure_key()
        w.clock.advance(90 * DAY)
        old_token = await a_token(w)
        kept = await w.services.tokens.rotate_if_older_than(MAX_AGE)
        assert not kept.rotated and kept.signer.kid == kid_of(old_token)
        w.clock.advance(1)
        rotation = await w.services.tokens.rotate_if_older_than(MAX_AGE)
        assert rotation.rotated and rotation.replaced == kept.signer
        assert kid_of(await a_token(w)) == rotation.signer.kid
        assert (await w.services.tokens.verify(old_token))["sub"]
        [event] = w.events("signing_key_rotated")
        assert event.details == {
            "kid": rotation.signer.kid,
            "replaced_kid": kept.signer.kid,
            "reason": "age",
        }


async def test_after_another_instance_rotated_there_is_nothing_left_to_do() -> None:
    async with world() as w:
        await w.services.tokens.ensure_key()
        other = another_instance(w)
        await other.tokens.ensure_key()  # it holds the old key in its cache
        w.clock.advance(91 * DAY)
        rotation = await w.services.tokens.rotate_if_older_than(MAX_AGE)
        again = await other.tokens.rotate_if_older_than(MAX_AGE)
        assert rotation.rotated and not again.rotated
        assert again.signer == rotation.signer


async def test_two_instances_rotating_at_once_under_the_lease_rotate_once() -> None:
    async with world() as w:
        await w.services.tokens.ensure_key()
        instances = [w.services, another_instance(w), another_instance(w)]
        w.clock.advance(91 * DAY)
        outcomes = await asyncio.gather(
            *(
                instance.rotation_lease.run(partial(instance.tokens.rotate_if_older_than, MAX_AGE))
                for instance in instances
            ),
            return_exceptions=True,
        )
        assert all(isinstance(outcome, Rotation | LeaseHeld) for outcome in outcomes)
        assert sum(isinstance(o, Rotation) and o.rotated for o in outcomes) == 1
        assert len(w.store.tables.signing_keys) == 2
        assert len(w.events("signing_key_rotated")) == 1
