from __future__ import annotations

from datetime import UTC, datetime, timedelta

from bastion.mail.messages import Links, factor_removed, recovery_code_used, verify_email
from bastion.mail.model import MAX_BACKOFF_SECONDS, CircuitBreaker, retry_at

T0 = datetime(2030, 1, 1, tzinfo=UTC)


def test_retries_back_off_exponentially() -> None:
    delays = [(retry_at(T0, attempts, jitter=1.0) - T0).total_seconds() for attempts in (1, 2, 3)]
    assert delays == [5, 10, 20]


def test_backoff_is_capped() -> None:
    assert retry_at(T0, 50, jitter=1.0) - T0 == timedelta(seconds=MAX_BACKOFF_SECONDS)


def test_jitter_spreads_retries_between_half_and_full_delay() -> None:
    assert retry_at(T0, 3, jitter=0.0) - T0 == timedelta(seconds=10)


def test_the_breaker_opens_after_consecutive_failures_and_closes_after_its_pause() -> None:
    breaker = CircuitBreaker(threshold=3, pause=timedelta(seconds=60))
    for _ in range(3):
        assert breaker.allows(T0)
        breaker.record_failure(T0)
    assert not breaker.allows(T0 + timedelta(seconds=59))
    assert breaker.allows(T0 + timedelta(seconds=60))


def test_a_success_resets_the_breaker() -> None:
    breaker = CircuitBreaker(threshold=2)
    breaker.record_failure(T0)
    breaker.record_success()
    breaker.record_failure(T0)
    assert breaker.allows(T0)


def test_email_links_are_built_from_the_public_url() -> None:
    message = verify_email("a@example.com", Links("https://auth.example.com"), "tok-1", 24)
    assert "https://auth.example.com/verify-email?token=tok-1" in message.text
    assert message.action_url == "https://auth.example.com/verify-email?token=tok-1"
    assert "1 day" in message.text


def test_a_removed_factor_email_says_whether_an_administrator_removed_it() -> None:
    by_owner = factor_removed("a@example.com", "a passkey")
    by_admin = factor_removed("a@example.com", "a passkey", by_admin=True)
    assert "Someone removed a passkey" in by_owner.text
    assert "An administrator removed a passkey" in by_admin.text
    assert by_owner.kind == by_admin.kind == "mfa_factor_removed"


def test_the_recovery_code_email_counts_the_codes_left_and_warns_when_few_remain() -> None:
    plenty = recovery_code_used("a@example.com", 4, low=3)
    few = recovery_code_used("a@example.com", 1, low=3)
    assert "4 recovery codes left" in plenty.text and "running out" not in plenty.text
    assert "1 recovery code left" in few.text and "running out" in few.text
