"""Request and response bodies, and their fields, that several features' routes share."""

from __future__ import annotations

from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints, WithJsonSchema

from bastion.core.email_address import MAX_EMAIL_LENGTH, SPECIAL_USE_DOMAINS, normalize_email

ACCEPTED = "If this address can receive email, a message is on its way."


def _any_case(name: str) -> str:
    # JSON Schema patterns are ECMA-262 regular expressions: no (?i) flag.
    return "".join(f"[{c.lower()}{c.upper()}]" if c.isalpha() else c for c in name)


# An address ending in a special-use domain or one of its subdomains. `format: email` alone
# admits them; the validator refuses them, and the schema says so.
SPECIAL_USE_DOMAIN = "[@.](?:{})$".format("|".join(map(_any_case, SPECIAL_USE_DOMAINS)))
EMAIL_SCHEMA = {
    "type": "string",
    "format": "email",
    "maxLength": MAX_EMAIL_LENGTH,
    "not": {"pattern": SPECIAL_USE_DOMAIN},
    "description": (
        f"An email address of at most {MAX_EMAIL_LENGTH} bytes in UTF-8 (RFC 5321), in no "
        "domain reserved for special use (RFC 6761: .test, .local, .invalid, .onion, …). "
        "Case and width do not matter: it is stored and compared in one canonical form."
    ),
}

# Validated and normalized at the edge: a route receives the canonical address, and an
# address that has none is a 422 before any use case, or any limit keyed on it, sees it. The
# documented schema states the same limits as the validator, from the same constants.
EmailAddress = Annotated[
    str,
    StringConstraints(max_length=MAX_EMAIL_LENGTH),
    AfterValidator(normalize_email),
    WithJsonSchema(EMAIL_SCHEMA),
]


class StrictModel(BaseModel):
    model_config = ConfigDict(extra="forbid")


class EmailRequest(StrictModel):
    email: EmailAddress = Field(examples=["alice@example.com"])


class Accepted(BaseModel):
    status: str = Field(default="accepted", examples=["accepted"])
    detail: str = Field(default=ACCEPTED)
