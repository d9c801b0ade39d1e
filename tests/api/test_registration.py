from __future__ import annotations

import asyncio

import httpx
import pytest
from sqlalchemy import func, select

from bastion.adapters.sql import tables
from bastion.bootstrap import Services
from tests.support import (
    STRONG_PASSWORD,
    SmtpServer,
    make_settings,
    random_email,
    register,
    running_app,
)


async def users_named(services: Services, email: str) -> int:
    async with services.engine.connect() as connection:
        query = select(func.count()).where(tables.users.c.email == email.lower())
        return int((await connection.execute(query)).scalar_one())


async def test_registration_answers_the_same_whether_or_not_the_email_is_taken(
    client: httpx.AsyncClient, smtp: SmtpServer
) -> None:
    email = random_email("taken")
    first = await register(client, email, STRONG_PASSWORD)
    second = await register(client, email, "Another-Pass-9")
    assert first.status_code == second.status_code == 202
    assert first.json() == second.json()
    await smtp.mailbox.wait_for(email, "confirm your email")
    await smtp.mailbox.wait_for(email, "someone tried to sign up")


async def test_emails_are_one_account_whatever_their_case(
    app: tuple[httpx.AsyncClient, Services], smtp: SmtpServer
) -> None:
    client, services = app
    email = random_email("Case")
    await register(client, email.upper(), STRONG_PASSWORD)
    await register(client, email.lower(), STRONG_PASSWORD)
    assert await users_named(services, email) == 1
    await smtp.mailbox.wait_for(email, "someone tried to sign up")


async def test_racing_duplicate_registrations_create_one_user(
    database_url: str, smtp: SmtpServer
) -> None:
    # More racers than the default registrations per IP and hour.
    settings = make_settings(database_url, smtp.url, register_per_hour=8)
    async with running_app(settings) as (client, services):
        email = random_email("race")
        responses = await asyncio.gather(
            *(register(client, email, STRONG_PASSWORD) for _ in range(8))
        )
        assert {r.status_code for r in responses} == {202}
        assert await users_named(services, email) == 1


@pytest.mark.parametrize("bad_email", ["not-an-email", "a@", "@example.com", "a b@example.com", ""])
async def test_an_invalid_email_is_a_validation_error(
    client: httpx.AsyncClient, bad_email: str
) -> None:
    response = await register(client, bad_email, STRONG_PASSWORD)
    assert response.status_code == 422
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["code"] == "VALIDATION_ERROR"


@pytest.mark.parametrize(
    ("password", "named"),
    [
        ("short1A", "at least 8 characters"),
        ("alllowercase1", "uppercase"),
        ("NoDigitsAtAll", "digit"),
        ("Password1", "too common"),
    ],
)
async def test_a_weak_password_is_refused_naming_the_rule(
    client: httpx.AsyncClient, smtp: SmtpServer, password: str, named: str
) -> None:
    email = random_email("weak")
    response = await register(client, email, password)
    assert response.status_code == 422
    body = response.json()
    assert body["code"] == "WEAK_PASSWORD"
    assert named in body["detail"]
    assert password not in response.text
    assert await smtp.mailbox.settled(email, quiet=0.2) == []


async def test_a_password_over_256_characters_is_refused_as_the_schema_says(
    client: httpx.AsyncClient,
) -> None:
    password = "A1" + "b" * 300
    response = await register(client, random_email("long"), password)
    assert response.status_code == 422
    assert response.json()["code"] == "VALIDATION_ERROR"
    assert response.json()["errors"][0]["loc"] == ["body", "password"]
    assert "at most 256 characters" in response.json()["detail"]
    assert password not in response.text


async def test_a_password_containing_the_email_name_is_refused(client: httpx.AsyncClient) -> None:
    response = await register(client, "jonathan.q@example.com", "Jonathan.Q-2024")
    assert response.status_code == 422
    assert "email" in response.json()["detail"]
