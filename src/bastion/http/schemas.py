"""Request and response bodies, and their fields, that several features' routes share."""

from __future__ import annotations

from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints, WithJsonSchema

from bastion.core.email_address import MAX_EMAIL_INPUT_LENGTH, normalize_email

ACCEPTED = "If this address can receive email, a message is on its way."

# Validated and normalized at the edge: a route receives the canonical address, and an
# address that has none is a 422 before any use case, or any limit keyed on it, sees it.
EmailAddress = Annotated[
    str,
    StringConstraints(max_length=MAX_EMAIL_INPUT_LENGTH),
    AfterValidator(normalize_email),
    WithJsonSchema({"type": "string", "format": "email", "maxLength": MAX_EMAIL_INPUT_LENGTH}),
]


class StrictModel(BaseModel):
    model_config = ConfigDict(extra="forbid")


class EmailRequest(StrictModel):
    email: EmailAddress = Field(examples=["alice@example.com"])


class Accepted(BaseModel):
    status: str = Field(default="accepted", examples=["accepted"])
    detail: str = Field(default=ACCEPTED)
