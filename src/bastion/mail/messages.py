"""The emails Bastion sends. Every link is built from PUBLIC_URL, never from a request.

Each is written in the language of the request that caused it (``core.i18n``); the brand's
layout is added when it is sent (``layout.py``).
"""

from __future__ import annotations

from dataclasses import dataclass
from html import escape
from urllib.parse import urlencode

from bastion.core.i18n import active_locale, gettext_noop, ngettext
from bastion.core.i18n import gettext as _
from bastion.mail.model import ACCOUNT_DELETED, EmailMessage


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
        _("Confirm your email address"),
        [
            _("Welcome! Please confirm your email address to activate your account."),
            _("This link expires in %(duration)s.") % {"duration": _hours(ttl_hours)},
        ],
        (links.page("/verify-email", token), _("Confirm my email")),
    )


def already_registered(recipient: str, links: Links) -> EmailMessage:
    return _compose(
        recipient,
        "already_registered",
        _("Someone tried to sign up with your email"),
        [
            _("Someone tried to create an account with this email address, which already has one."),
            _(
                "If it was you, you can sign in or reset your password. Otherwise ignore this "
                "email."
            ),
        ],
        (links.page("/forgot-password"), _("Reset my password")),
    )


def reset_password(recipient: str, links: Links, token: str, ttl_hours: float) -> EmailMessage:
    return _compose(
        recipient,
        "reset_password",
        _("Reset your password"),
        [
            _("Someone asked to reset the password of this account."),
            _("This link expires in %(duration)s. If it was not you, ignore this email.")
            % {"duration": _hours(ttl_hours)},
        ],
        (links.page("/reset-password", token), _("Choose a new password")),
    )


def password_changed(recipient: str) -> EmailMessage:
    return _compose(
        recipient,
        "password_changed",
        _("Your password was changed"),
        [
            _("The password of your account was just changed and other sessions were signed out."),
            _("If this was not you, reset your password at once and contact support."),
        ],
    )


def refresh_token_reused(recipient: str) -> EmailMessage:
    return _compose(
        recipient,
        "refresh_token_reused",
        _("A sign-in of yours was ended for your safety"),
        [
            _(
                "A session token of your account was presented twice, which is a sign it was "
                "stolen."
            ),
            _("We signed that session out. If you did not expect this, change your password."),
        ],
    )


def account_protection_engaged(recipient: str, links: Links) -> EmailMessage:
    return _compose(
        recipient,
        "account_protection",
        _("Unusual sign-in attempts on your account"),
        [
            _(
                "There were many failed attempts to sign in to your account, so we paused "
                "sign-ins from new devices for a while. Devices you used before can still sign "
                "in."
            ),
            _("If this was not you, consider resetting your password."),
        ],
        (links.page("/forgot-password"), _("Reset my password")),
    )


# How the mfa service names a factor in these emails; each is translated where it is shown.
FACTOR_NAMES = (
    gettext_noop("an authenticator app"),
    gettext_noop("a passkey"),
    gettext_noop("a security key"),
)


def _factor_name(factor: str) -> str:
    return _(factor) if factor in FACTOR_NAMES else factor


def factor_added(recipient: str, factor: str) -> EmailMessage:
    name = _factor_name(factor)
    return _compose(
        recipient,
        "mfa_factor_added",
        _("A second factor was added to your account"),
        [
            _("%(factor)s was just added to your account as a second factor.")
            % {"factor": name[:1].upper() + name[1:]},
            _("If this was not you, sign in, remove it and change your password at once."),
        ],
    )


def factor_removed(recipient: str, factor: str, *, by_admin: bool = False) -> EmailMessage:
    name = _factor_name(factor)
    removed = (
        _("An administrator removed %(factor)s from your account's second factors.")
        if by_admin
        else _("Someone removed %(factor)s from your account's second factors.")
    )
    return _compose(
        recipient,
        "mfa_factor_removed",
        _("A second factor was removed from your account"),
        [
            removed % {"factor": name},
            _("If you did not expect this, change your password and contact support."),
        ],
    )


def recovery_codes_regenerated(recipient: str) -> EmailMessage:
    return _compose(
        recipient,
        "recovery_codes_regenerated",
        _("New recovery codes for your account"),
        [
            _(
                "A new set of recovery codes was created for your account; the previous codes "
                "no longer work."
            ),
            _("If this was not you, change your password and contact support."),
        ],
    )


def recovery_code_used(recipient: str, remaining: int, low: int) -> EmailMessage:
    paragraphs = [
        ngettext(
            "A recovery code was used to sign in to your account. You have %(num)d recovery "
            "code left.",
            "A recovery code was used to sign in to your account. You have %(num)d recovery "
            "codes left.",
            remaining,
        )
        % {"num": remaining}
    ]
    if remaining <= low:
        paragraphs.append(
            _(
                "You are running out of recovery codes: sign in and create a new set soon, or "
                "you may lose access to your account if you lose your other factors."
            )
        )
    paragraphs.append(_("If this was not you, change your password at once."))
    return _compose(recipient, "recovery_code_used", _("A recovery code was used"), paragraphs)


def mfa_locked(recipient: str, links: Links) -> EmailMessage:
    return _compose(
        recipient,
        "mfa_locked",
        _("Repeated failed sign-in codes on your account"),
        [
            _(
                "Someone who knows your password failed the second sign-in step of your "
                "account many times, so we paused that step for a while."
            ),
            _("If this was not you, your password is known to someone else: reset it now."),
        ],
        (links.page("/forgot-password"), _("Reset my password")),
    )


def confirm_new_email(recipient: str, links: Links, token: str, ttl_hours: float) -> EmailMessage:
    return _compose(
        recipient,
        "confirm_new_email",
        _("Confirm your new email address"),
        [
            _(
                "Someone asked to use this address for their account. Confirm it to make the "
                "change."
            ),
            _("This link expires in %(duration)s. If it was not you, ignore this email.")
            % {"duration": _hours(ttl_hours)},
        ],
        (links.page("/confirm-email", token), _("Confirm my new email")),
    )


def email_change_requested(recipient: str) -> EmailMessage:
    return _compose(
        recipient,
        "email_change_requested",
        _("A change of your email address was asked for"),
        [
            _(
                "Someone signed in to your account asked to change its email address. The "
                "change happens only once the new address is confirmed."
            ),
            _("If this was not you, change your password at once and contact support."),
        ],
    )


def webhook_disabled(recipient: str, url: str) -> EmailMessage:
    return _compose(
        recipient,
        "webhook_disabled",
        _("A webhook was disabled"),
        [
            _("Every delivery to the webhook at %(url)s failed for 24 hours, so it was disabled.")
            % {"url": url},
            _("Fix the endpoint, then enable the webhook again in the admin API and redeliver."),
        ],
    )


def email_change_to_taken_address(recipient: str) -> EmailMessage:
    return _compose(
        recipient,
        "email_change_taken",
        _("Someone tried to use your email address"),
        [
            _(
                "Someone asked to move another account to this email address, which already "
                "has an account. Nothing was changed."
            ),
            _("If this was not you, you can ignore this email."),
        ],
    )


def email_replaced(recipient: str) -> EmailMessage:
    return _compose(
        recipient,
        "email_replaced",
        _("Your account's email address was changed"),
        [
            _(
                "Your account now uses a new email address, and this one no longer signs in. "
                "Every session of the account was signed out."
            ),
            _("If this was not you, contact support at once."),
        ],
    )


def account_deleted(recipient: str) -> EmailMessage:
    return _compose(
        recipient,
        ACCOUNT_DELETED,
        _("Your account was deleted"),
        [
            _("Your account and its data were deleted, as asked. This is the last email we send."),
            _("If this was not you, contact support."),
        ],
    )


def invitation(recipient: str, links: Links, token: str, ttl_hours: float) -> EmailMessage:
    return _compose(
        recipient,
        "invitation",
        _("You are invited to create your account"),
        [
            _("An administrator created an account for you. Choose a password to start using it."),
            _("This link expires in %(duration)s.") % {"duration": _hours(ttl_hours)},
        ],
        (links.page("/accept-invite", token), _("Choose my password")),
    )


def _compose(
    recipient: str,
    kind: str,
    subject: str,
    paragraphs: list[str],
    action: tuple[str, str] | None = None,
) -> EmailMessage:
    text = "\n\n".join(paragraphs)
    html = "".join(f"<p>{escape(p)}</p>" for p in paragraphs)
    url, label = action if action is not None else (None, None)
    if url is not None:
        text += f"\n\n{label}: {url}"
    return EmailMessage(
        recipient=recipient,
        subject=subject,
        text=text,
        html=html,
        kind=kind,
        action_url=url,
        action_label=label,
        locale=active_locale(),
    )


def _hours(hours: float) -> str:
    if hours >= 24 and hours % 24 == 0:
        days = int(hours // 24)
        return ngettext("%(num)d day", "%(num)d days", days) % {"num": days}
    if hours >= 1 and hours == int(hours):
        return ngettext("%(num)d hour", "%(num)d hours", int(hours)) % {"num": int(hours)}
    minutes = round(hours * 60)
    return ngettext("%(num)d minute", "%(num)d minutes", minutes) % {"num": minutes}
