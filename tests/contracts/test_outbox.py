"""Outbox: the same behaviour everywhere, sealed payloads included."""

from __future__ import annotations

from bastion.mail.model import EmailMessage
from bastion.storage import UnitOfWorkFactory
from tests.contracts.rows import later
from tests.support import random_email


def a_message(recipient: str | None = None) -> EmailMessage:
    return EmailMessage(
        recipient=recipient or random_email("outbox"),
        subject="Confirm your email address",
        text="Follow https://bastion.test/verify-email?token=abc",
        html="<p>Ünïcode &amp; <a href='#'>links</a></p>",
        kind="verify_email",
    )


async def queued(uow: UnitOfWorkFactory, *messages: EmailMessage, at: float = 0) -> None:
    """Queue each message in a unit of work of its own: messages queued together have no order
    among themselves (PostgreSQL inserts them in one statement)."""
    for message in messages:
        async with uow() as work:
            await work.outbox.add(message, later(at))
            await work.commit()


async def claim(uow: UnitOfWorkFactory, at: float, limit: int = 10) -> list[EmailMessage]:
    async with uow(single_statement=True) as work:
        claimed = await work.outbox.claim_due(later(at), limit, later(at + 120))
        await work.commit()
    return [queued.message for queued in claimed]


async def test_a_queued_message_is_claimed_once_due_as_it_was_written(
    uow: UnitOfWorkFactory,
) -> None:
    message = a_message()
    await queued(uow, message, at=10)
    assert await claim(uow, at=9) == []
    async with uow() as work:
        [claimed] = await work.outbox.claim_due(later(10), 10, later(130))
        await work.commit()
    assert (claimed.message, claimed.attempts) == (message, 1)


async def test_messages_are_claimed_in_the_order_queued_up_to_the_limit(
    uow: UnitOfWorkFactory,
) -> None:
    messages = [a_message() for _ in range(3)]
    await queued(uow, *messages)
    assert await claim(uow, at=0, limit=2) == messages[:2]
    assert await claim(uow, at=0, limit=2) == messages[2:]


async def test_messages_queued_together_are_claimed_together(uow: UnitOfWorkFactory) -> None:
    messages = [a_message() for _ in range(3)]
    async with uow() as work:
        for message in messages:
            await work.outbox.add(message, later(0))
        await work.commit()
    claimed = await claim(uow, at=0)
    assert sorted(m.recipient for m in claimed) == sorted(m.recipient for m in messages)


async def test_a_claimed_message_is_claimed_again_only_when_its_lease_lapses(
    uow: UnitOfWorkFactory,
) -> None:
    message = a_message()
    await queued(uow, message)
    assert await claim(uow, at=0) == [message]
    assert await claim(uow, at=120) == []
    async with uow() as work:
        [again] = await work.outbox.claim_due(later(121), 10, later(241))
        await work.commit()
    assert (again.message, again.attempts) == (message, 2)


async def test_a_released_message_is_claimed_again_at_once_with_its_attempt_given_back(
    uow: UnitOfWorkFactory,
) -> None:
    message = a_message()
    await queued(uow, message)
    async with uow() as work:
        [claimed] = await work.outbox.claim_due(later(0), 10, later(120))
        await work.outbox.release([claimed.id])
        await work.commit()
    async with uow() as work:
        [again] = await work.outbox.claim_due(later(1), 10, later(121))
        await work.commit()
    assert (again.message, again.attempts) == (message, 1)


async def test_releasing_a_sent_message_leaves_it_sent(uow: UnitOfWorkFactory) -> None:
    await queued(uow, a_message())
    async with uow() as work:
        claimed = await work.outbox.claim_due(later(0), 10, later(120))
        ids = [queued.id for queued in claimed]
        await work.outbox.mark_sent(ids, later(1))
        await work.outbox.release(ids)
        await work.commit()
    assert await claim(uow, at=2) == []
    async with uow(read_only=True) as work:
        assert await work.outbox.backlog() == 0


async def test_a_sent_message_leaves_the_backlog_for_good(uow: UnitOfWorkFactory) -> None:
    sent, waiting = a_message(), a_message()
    await queued(uow, sent, waiting)
    async with uow() as work:
        claimed = await work.outbox.claim_due(later(0), 1, later(120))
        await work.outbox.mark_sent([queued.id for queued in claimed], later(1))
        await work.commit()
    assert [queued.message for queued in claimed] == [sent]
    async with uow(read_only=True) as work:
        assert await work.outbox.backlog() == 1
    assert await claim(uow, at=500) == [waiting]


async def test_a_retried_message_waits_for_its_next_attempt(uow: UnitOfWorkFactory) -> None:
    message = a_message()
    await queued(uow, message)
    async with uow() as work:
        [claimed] = await work.outbox.claim_due(later(0), 10, later(120))
        await work.outbox.mark_retry(claimed.id, later(60), "SMTPServerDisconnected: gone")
        await work.commit()
    assert await claim(uow, at=59) == []
    async with uow(read_only=True) as work:
        assert await work.outbox.backlog() == 1
    assert await claim(uow, at=60) == [message]


async def test_a_failed_message_is_never_claimed_again(uow: UnitOfWorkFactory) -> None:
    await queued(uow, a_message())
    async with uow() as work:
        [claimed] = await work.outbox.claim_due(later(0), 10, later(120))
        await work.outbox.mark_failed(claimed.id, later(1), "SMTPRecipientsRefused: no")
        await work.commit()
    assert await claim(uow, at=10_000) == []
    async with uow(read_only=True) as work:
        assert await work.outbox.backlog() == 0


async def test_forgetting_a_recipient_drops_only_their_mail(uow: UnitOfWorkFactory) -> None:
    forgotten, kept = random_email("forgotten"), a_message()
    await queued(uow, a_message(forgotten), kept, a_message(forgotten))
    async with uow() as work:
        await work.outbox.forget_recipient(forgotten)
        await work.commit()
    async with uow(read_only=True) as work:
        assert await work.outbox.backlog() == 1
    assert await claim(uow, at=0) == [kept]
