"""Hostile query parameters: page sizes and cursors of any size or shape never reach SQL."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bastion.accounts.model import Role
from tests.support import (
    STRONG_PASSWORD,
    SmtpServer,
    assert_problem,
    bearer,
    login,
    make_settings,
    random_email,
    running_app,
)

SECURITY_EVENTS = "/api/v1/auth/me/security-events"
USERS = "/api/v1/admin/users"
AUDIT_EVENTS = "/api/v1/admin/audit-events"
# Every integer and cursor query parameter of the API.
PAGING_PARAMETERS = [
    (SECURITY_EVENTS, "limit"),
    (SECURITY_EVENTS, "before"),
    (USERS, "limit"),
    (USERS, "cursor"),
    (AUDIT_EVENTS, "limit"),
    (AUDIT_EVENTS, "cursor"),
]
BEYOND_64_BITS = ["9223372036854775808", "1" * 20, "9" * 64]
LARGEST_ROW_ID = "9223372036854775807"


@dataclass(frozen=True)
class Admin:
    client: httpx.AsyncClient
    headers: dict[str, str]

    async def get(self, path: str, **params: str) -> httpx.Response:
        return await self.client.get(path, params=params, headers=self.headers)


@pytest.fixture
async def admin(database_url: str, smtp: SmtpServer) -> AsyncIterator[Admin]:
    """An admin's client; limits raised so that many examples fit in one test."""
    settings = make_settings(
        database_url, smtp.url, user_rate_limit_per_minute=100_000, rate_limit_per_minute=100_000
    )
    async with running_app(settings) as (client, services):
        email = random_email("admin")
        await services.accounts.create_user(email, STRONG_PASSWORD, Role.ADMIN)
        response = await login(client, email)
        assert response.status_code == 200, response.text
        yield Admin(client, bearer(response.json()["access_token"]))


def assert_names_parameter(response: httpx.Response, name: str) -> None:
    assert_problem(response, 422, "VALIDATION_ERROR")
    assert ["query", name] in [error["loc"] for error in response.json()["errors"]]


@pytest.mark.parametrize("value", BEYOND_64_BITS)
async def test_a_security_events_cursor_beyond_64_bits_is_refused_naming_before(
    admin: Admin, value: str
) -> None:
    assert_names_parameter(await admin.get(SECURITY_EVENTS, before=value), "before")


@pytest.mark.parametrize("value", [*BEYOND_64_BITS, "+5", " 5", "1_000", "٣"])
async def test_an_audit_cursor_that_is_no_row_id_is_an_invalid_cursor(
    admin: Admin, value: str
) -> None:
    assert_problem(await admin.get(AUDIT_EVENTS, cursor=value), 400, "INVALID_CURSOR")


@pytest.mark.parametrize("path", [SECURITY_EVENTS, USERS, AUDIT_EVENTS])
@pytest.mark.parametrize("value", BEYOND_64_BITS)
async def test_a_page_size_beyond_64_bits_is_refused_naming_limit(
    admin: Admin, path: str, value: str
) -> None:
    assert_names_parameter(await admin.get(path, limit=value), "limit")


async def test_the_largest_64_bit_cursor_is_a_valid_cursor(admin: Admin) -> None:
    assert (await admin.get(SECURITY_EVENTS, before=LARGEST_ROW_ID)).status_code == 200
    assert (await admin.get(AUDIT_EVENTS, cursor=LARGEST_ROW_ID)).status_code == 200


parameter_values = st.one_of(
    st.integers().map(str),
    st.from_regex(r"\A-?[0-9]{15,80}\Z"),
    st.text(max_size=80),
)


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(parameter=st.sampled_from(PAGING_PARAMETERS), value=parameter_values)
async def test_any_paging_parameter_is_answered_or_refused_by_name_never_with_a_crash(
    admin: Admin, parameter: tuple[str, str], value: str
) -> None:
    path, name = parameter
    response = await admin.get(path, **{name: value})
    if response.status_code == 422:
        assert_names_parameter(response, name)
    elif response.status_code == 400:
        assert_problem(response, 400, "INVALID_CURSOR")
        assert name == "cursor"
    else:
        assert response.status_code == 200, response.text
