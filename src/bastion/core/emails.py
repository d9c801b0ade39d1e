"""Email addresses as Bastion stores, looks up and counts them."""

from __future__ import annotations


def normalize_email(email: str) -> str:
    """The canonical form under which an address is stored and looked up.

    Addresses are compared case-insensitively: Alice@Example.com and alice@example.com are one
    account.
    """
    return email.strip().lower()
