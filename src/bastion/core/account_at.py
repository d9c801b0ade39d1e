"""The account at an address, as a condition that storage checks in the statement that writes.

Forgot-password and resend answer alike whether or not an address has an account, and must cost
alike too. A use case that looked the account up first would then write for an account and
return early for an unknown address: two paths, two timings. Instead it writes *for the account
at the address*: the same statements either way, in which the database itself finds the account
or finds none, and writes the rows that need one only when it is there.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class AccountAt:
    """The account whose canonical address is ``email``, if there is one; with
    ``awaiting_verification``, only while it is active and not yet verified."""

    email: str
    awaiting_verification: bool = False
