"""Hostile input: page sizes and cursors of any size or shape, and text no database can store,
are refused by name before they reach SQL, on every database alike."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bastion.accounts.model import Role
from bastion.core.email_address import MAX_EMAIL_LENGTH
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

    async def post_json_text(self, path: str, text: str) -> httpx.Response:
        """POST a JSON document written by hand, so that it may hold any escape."""
        return await self.client.post(
            path,
            content=text.encode(),
            headers={**self.headers, "content-type": "application/json"},
        )


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


@pytest.mark.parametrize("value", ["%00", "a%00b", "%00%00"])
async def test_a_nul_in_a_query_parameter_is_refused_naming_it(admin: Admin, value: str) -> None:
    response = await admin.client.get(f"{USERS}?email={value}", headers=admin.headers)
    assert_names_parameter(response, "email")


@pytest.mark.parametrize(
    ("path", "document", "field"),
    [
        (
            "/api/v1/auth/register",
            {"email": "a@example.com", "password": "Nul-\u0000-Pass-1"},
            "password",
        ),
        (
            "/api/v1/auth/login",
            {"email": "a@example.com", "password": "Lone-\ud800-Pass-1"},
            "password",
        ),
        (
            "/api/v1/auth/login",
            {"email": "a@example.com", "password": "Low-\udfff-Pass-1"},
            "password",
        ),
        ("/api/v1/auth/forgot-password", {"email": "a\u0000@example.com"}, "email"),
        (
            "/api/v1/auth/reset-password",
            {"token": "t\u0000", "new_password": "Correct-Horse-8"},
            "token",
        ),
    ],
)
async def test_a_nul_or_lone_surrogate_in_a_body_field_is_refused_naming_it(
    admin: Admin, path: str, document: dict[str, str], field: str
) -> None:
    # ensure_ascii writes NUL and lone surrogates as the escapes a hostile client would send.
    response = await admin.post_json_text(path, json.dumps(document))
    assert_problem(response, 422, "VALIDATION_ERROR")
    assert [error["loc"] for error in response.json()["errors"]] == [["body", field]]


async def test_a_nul_deep_in_a_body_is_refused_without_echoing_the_key(admin: Admin) -> None:
    response = await admin.post_json_text(
        "/api/v1/auth/register", '{"email": "a@example.com", "x": [{"\\u0000": 1}, "\\u0000"]}'
    )
    assert_problem(response, 422, "VALIDATION_ERROR")
    assert sorted(error["loc"] for error in response.json()["errors"]) == [
        ["body", "x", "0"],
        ["body", "x", "1"],
    ]


async def test_an_escaped_backslash_before_u0000_is_ordinary_text(admin: Admin) -> None:
    response = await admin.post_json_text(
        "/api/v1/auth/login", '{"email": "a@example.com", "password": "back\\\\u0000slash"}'
    )
    assert_problem(response, 401, "INVALID_CREDENTIALS")


async def test_a_nul_in_a_path_is_refused(admin: Admin) -> None:
    response = await admin.client.post("/api/v1/auth/verify-email/abc%00def")
    assert_problem(response, 422, "VALIDATION_ERROR")
    assert response.json()["errors"][0]["loc"] == ["path"]


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(value=st.text(max_size=40), nul_at=st.none() | st.integers(min_value=0, max_value=40))
async def test_any_email_search_is_answered_and_one_holding_a_nul_is_refused_by_name(
    admin: Admin, value: str, nul_at: int | None
) -> None:
    if nul_at is not None:
        value = value[:nul_at] + "\x00" + value[nul_at:]
    response = await admin.get(USERS, email=value)
    if "\x00" in value or len(value) > MAX_EMAIL_LENGTH:
        assert_names_parameter(response, "email")
    else:
        assert response.status_code == 200, response.text


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    password=st.text(alphabet=st.characters(codec=None), max_size=30),
    unstorable=st.sampled_from(["\x00", "\ud800", "\udbff", "\udc00", "\udfff"]),
    at=st.integers(min_value=0, max_value=30),
)
async def test_any_password_holding_unstorable_text_is_refused_by_name(
    admin: Admin, password: str, unstorable: str, at: int
) -> None:
    document = {"email": "a@example.com", "password": password[:at] + unstorable + password[at:]}
    response = await admin.post_json_text("/api/v1/auth/login", json.dumps(document))
    assert_problem(response, 422, "VALIDATION_ERROR")
    assert [error["loc"] for error in response.json()["errors"]] == [["body", "password"]]
