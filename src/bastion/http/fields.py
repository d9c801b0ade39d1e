"""Request fields shared by the routes of several features."""

from __future__ import annotations

from typing import Annotated

from pydantic import AfterValidator, StringConstraints, WithJsonSchema

from bastion.core.email_address import MAX_EMAIL_INPUT_LENGTH, normalize_email

# Validated and normalized at the edge: a route receives the canonical address, and an
# address that has none is a 422 before any use case, or any limit keyed on it, sees it.
EmailAddress = Annotated[
    str,
    StringConstraints(max_length=MAX_EMAIL_INPUT_LENGTH),
    AfterValidator(normalize_email),
    WithJsonSchema({"type": "string", "format": "email", "maxLength": MAX_EMAIL_INPUT_LENGTH}),
]
