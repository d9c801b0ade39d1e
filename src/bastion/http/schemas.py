"""Request and response bodies that several features' routes share."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, EmailStr, Field

ACCEPTED = "If this address can receive email, a message is on its way."


class StrictModel(BaseModel):
    model_config = ConfigDict(extra="forbid")


class EmailRequest(StrictModel):
    email: EmailStr = Field(examples=["alice@example.com"])


class Accepted(BaseModel):
    status: str = Field(default="accepted", examples=["accepted"])
    detail: str = Field(default=ACCEPTED)
