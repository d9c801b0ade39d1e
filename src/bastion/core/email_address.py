"""The one form an email address is stored, looked up and rate-limited under.

Two addresses that differ only in case, in width (``ａlice`` and ``alice``) or in another
compatibility variant of a character are one account. Every path that takes an address from
outside — sign-up, log-in, reset, resend, the per-address limits, the admin search, the
``create-user`` command — passes it through ``normalize_email`` and nothing else.
"""

from __future__ import annotations

import re
import unicodedata

from email_validator import SPECIAL_USE_DOMAIN_NAMES, EmailNotValidError, validate_email

from bastion.core.errors import BastionError

# RFC 5321's limit, which the validator applies to the address in UTF-8 bytes. Longer input,
# surrounding blanks included, is refused before any parsing: the limit is one number, in
# characters here, that the documented schema can state (``maxLength``) and the edge enforce.
MAX_EMAIL_LENGTH = 254
# Domains reserved for special use (RFC 6761: .test, .local, .onion, …) receive no email: the
# validator refuses an address in any of them or their subdomains.
SPECIAL_USE_DOMAINS: tuple[str, ...] = tuple(SPECIAL_USE_DOMAIN_NAMES)
# Casefolding turns the dotted capital İ into i + COMBINING DOT ABOVE; on i or j, which carry a
# dot already, the combining dot adds nothing a reader can see.
_DOT_ABOVE_ON_DOTTED_LETTER = re.compile("(?<=[ij])\u0307")


class InvalidEmailAddress(BastionError, ValueError):
    """The text is not an email address Bastion accepts."""

    detail = "value is not a valid email address"


def normalize_email(address: str) -> str:
    """``address`` in its canonical form, or InvalidEmailAddress.

    - The domain in its IDNA form, as DNS compares it (``ÉXAMPLE.com`` and ``éxample.com`` are
      one domain, ``xn--xample-9ua.com`` is written ``éxample.com``); full-width letters map to
      ASCII. A domain is not casefolded further: ``straße.de`` and ``strasse.de`` are two
      domains with two owners.
    - The part before the @ folded by ``fold``.
    - No display name: ``Alice <alice@example.com>`` is refused, not trimmed.
    - At most ``MAX_EMAIL_LENGTH`` characters as given, and UTF-8 bytes once parsed; no domain
      of ``SPECIAL_USE_DOMAINS``.

    The result is itself a valid address and its own canonical form.
    """
    if len(address) > MAX_EMAIL_LENGTH:
        raise InvalidEmailAddress("value is not a valid email address: it is too long")
    try:
        parsed = validate_email(address.strip(), check_deliverability=False)
        local_part = fold(parsed.local_part)
        if local_part == parsed.local_part:
            return str(parsed.normalized)
        # Folding can turn a character into punctuation (a full-width ＠ or ．): the folded
        # address must be valid in its own right.
        folded = validate_email(f"{local_part}@{parsed.domain}", check_deliverability=False)
    except EmailNotValidError as exc:
        raise InvalidEmailAddress(f"value is not a valid email address: {exc}") from None
    return str(folded.normalized)


def fold(text: str) -> str:
    """NFKC and full casefolding, so that look-alike spellings compare equal; also the form an
    admin's search text takes before it is matched against stored addresses."""
    folded = unicodedata.normalize("NFKC", unicodedata.normalize("NFKC", text).casefold())
    return unicodedata.normalize("NFC", _DOT_ABOVE_ON_DOTTED_LETTER.sub("", folded))
