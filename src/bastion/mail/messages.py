"""The emails Bastion sends. Every link is built from PUBLIC_URL, never from a request."""

from __future__ import annotations

from dataclasses import dataclass
from html import escape
from urllib.parse import urlencode

from bastion.mail.model import EmailMessage


@dataclass(frozen=True, slots=True)
class Links:
    public_url: str

    def page(self, path: str, token: str | None = None) -> str:
        query = f"?{urlencode({'token': token})}" if token else ""
        return f"{self.public_url}{path}{query}"


def verify_email(recipient: str, links: Links, token: str, ttl_hours: float) -> EmailMessage:
    return _compose(
        recipient,
        "verify_email",
        "Confirm your email address",
        [
            "Welcome! Please confirm your email address to activate your account.",
            f"This link expires in {_hours(ttl_hours)}.",
        ],
        (links.page("/verify-email", token), "Confirm my email"),
    )


def already_registered(recipient: str, links: Links) -> EmailMessage:
    return _compose(
        recipient,
        "already_registered",
        "Someone tried to sign up with your email",
        [
            "Someone tried to create an account with this email address, which already has one.",
            "If it was you, you can sign in or reset your password. Otherwise ignore this email.",
        ],
        (links.page("/reset-password"), "Reset my password"),
    )


def reset_password(recipient: str, links: Links, token: str, ttl_hours: float) -> EmailMessage:
    return _compose(
        recipient,
        "reset_password",
        "Reset your password",
        [
            "Someone asked to reset the password of this account.",
            f"This link expires in {_hours(ttl_hours)}. If it was not you, ignore this email.",
        ],
        (links.page("/reset-password", token), "Choose a new password"),
    )


def password_changed(recipient: str) -> EmailMessage:
    return _compose(
        recipient,
        "password_changed",
        "Your password was changed",
        [
            "The password of your account was just changed and other sessions were signed out.",
            "If this was not you, reset your password at once and contact support.",
        ],
    )


def refresh_token_reused(recipient: str) -> EmailMessage:
    return _compose(
        recipient,
        "refresh_token_reused",
        "A sign-in of yours was ended for your safety",
        [
            "A session token of your account was presented twice, which is a sign it was stolen.",
            "We signed that session out. If you did not expect this, change your password.",
        ],
    )


def account_protection_engaged(recipient: str, links: Links) -> EmailMessage:
    return _compose(
        recipient,
        "account_protection",
        "Unusual sign-in attempts on your account",
        [
            "There were many failed attempts to sign in to your account, so we paused sign-ins "
            "from new devices for a while. Devices you used before can still sign in.",
            "If this was not you, consider resetting your password.",
        ],
        (links.page("/reset-password"), "Reset my password"),
    )


def factor_added(recipient: str, factor: str) -> EmailMessage:
    return _compose(
        recipient,
        "mfa_factor_added",
        "A second factor was added to your account",
        [
            f"{factor.capitalize()} was just added to your account as a second factor.",
            "If this was not you, sign in, remove it and change your password at once.",
        ],
    )


def factor_removed(recipient: str, factor: str, *, by_admin: bool = False) -> EmailMessage:
    who = "An administrator removed" if by_admin else "Someone removed"
    return _compose(
        recipient,
        "mfa_factor_removed",
        "A second factor was removed from your account",
        [
            f"{who} {factor} from your account's second factors.",
            "If you did not expect this, change your password and contact support.",
        ],
    )


def recovery_codes_regenerated(recipient: str) -> EmailMessage:
    return _compose(
        recipient,
        "recovery_codes_regenerated",
        "New recovery codes for your account",
        [
            "A new set of recovery codes was created for your account; the previous codes no "
            "longer work.",
            "If this was not you, change your password and contact support.",
        ],
    )


def recovery_code_used(recipient: str, remaining: int, low: int) -> EmailMessage:
    left = f"{remaining} recovery code{'s' if remaining != 1 else ''} left"
    paragraphs = [f"A recovery code was used to sign in to your account. You have {left}."]
    if remaining <= low:
        paragraphs.append(
            "You are running out of recovery codes: sign in and create a new set soon, or you "
            "may lose access to your account if you lose your other factors."
        )
    paragraphs.append("If this was not you, change your password at once.")
    return _compose(recipient, "recovery_code_used", "A recovery code was used", paragraphs)


def mfa_locked(recipient: str, links: Links) -> EmailMessage:
    return _compose(
        recipient,
        "mfa_locked",
        "Repeated failed sign-in codes on your account",
        [
            "Someone who knows your password failed the second sign-in step of your account "
            "many times, so we paused that step for a while.",
            "If this was not you, your password is known to someone else: reset it now.",
        ],
        (links.page("/reset-password"), "Reset my password"),
    )


def _compose(
    recipient: str,
    kind: str,
    subject: str,
    paragraphs: list[str],
    action: tuple[str, str] | None = None,
) -> EmailMessage:
    text = "\n\n".join(paragraphs)
    html_body = "".join(f"<p>{escape(p)}</p>" for p in paragraphs)
    if action is not None:
        url, label = action
        text += f"\n\n{label}: {url}"
        html_body += f'<p><a href="{escape(url)}">{escape(label)}</a></p>'
    html = f"<!doctype html><html><body>{html_body}</body></html>"
    return EmailMessage(recipient=recipient, subject=subject, text=text, html=html, kind=kind)


def _hours(hours: float) -> str:
    if hours >= 24 and hours % 24 == 0:
        days = int(hours // 24)
        return f"{days} day{'s' if days != 1 else ''}"
    if hours >= 1:
        return f"{hours:g} hour{'s' if hours != 1 else ''}"
    return f"{round(hours * 60)} minutes"
