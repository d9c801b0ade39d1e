"""Two `bastion serve` processes over one database: a second step, a challenge or a passkey
log-in started on one instance is finished on the other (mfa_tokens and challenges live in the
database, not in a process)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import ExitStack
from typing import Any

import httpx
import pyotp
import pytest

from bench.webauthn_authenticator import SoftwareAuthenticator
from tests.conftest import BACKENDS
from tests.serving import ServedBastion, served_bastion
from tests.support import STRONG_PASSWORD, bearer, random_email

# Both instances serve one public URL (the one a browser sees), so one RP ID and origin.
PUBLIC_URL = "http://localhost:8443"
Pair = tuple[ServedBastion, ServedBastion]


@pytest.fixture(scope="module", params=BACKENDS)
def pair(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Pair]:
    database_url: str = request.getfixturevalue(f"{request.param}_url")
    logs = tmp_path_factory.mktemp(f"two-{request.param}")
    with ExitStack() as stack:
        first, second = (
            stack.enter_context(
                served_bastion(database_url, logs / f"{n}.log", public_url=PUBLIC_URL)
            )
            for n in ("a", "b")
        )
        yield first, second


def post(
    server: ServedBastion, path: str, body: dict[str, Any], token: str | None = None
) -> httpx.Response:
    headers = bearer(token) if token else {}
    return httpx.post(f"{server.base_url}{path}", json=body, headers=headers, timeout=30)


def signed_in(server: ServedBastion, email: str) -> str:
    response = post(server, "/api/v1/auth/login", {"email": email, "password": STRONG_PASSWORD})
    assert response.status_code == 200, response.text
    token: str = response.json()["access_token"]
    return token


def test_a_second_step_started_on_one_instance_finishes_on_the_other(pair: Pair) -> None:
    a, b = pair
    email = random_email("two")
    a.create_user(email, STRONG_PASSWORD)
    access = signed_in(a, email)
    started = post(a, "/api/v1/auth/mfa/totp", {}, access)
    assert started.status_code == 201, started.text
    totp = pyotp.TOTP(started.json()["secret"])
    confirmed = post(
        b,
        f"/api/v1/auth/mfa/totp/{started.json()['factor_id']}/confirm",
        {"code": totp.now()},
        access,
    )
    assert confirmed.status_code == 200, confirmed.text
    first = post(a, "/api/v1/auth/login", {"email": email, "password": STRONG_PASSWORD})
    assert first.status_code == 403 and first.json()["code"] == "MFA_REQUIRED"
    # The next step's code: the one confirming the factor is spent (one step of drift is allowed).
    code = totp.at(time.time() + 30)
    passed = post(
        b, "/api/v1/auth/login/mfa", {"mfa_token": first.json()["mfa_token"], "code": code}
    )
    assert passed.status_code == 200, passed.text
    verified = httpx.get(
        f"{a.base_url}/api/v1/auth/verify-token", headers=bearer(passed.json()["access_token"])
    )
    assert verified.json()["aal"] == "aal2"
    again = post(
        a, "/api/v1/auth/login/mfa", {"mfa_token": first.json()["mfa_token"], "code": code}
    )
    assert again.json()["code"] == "MFA_TOKEN_INVALID"


def test_webauthn_challenges_cross_instances_for_registration_and_passkey_login(
    pair: Pair,
) -> None:
    a, b = pair
    email = random_email("two-keys")
    a.create_user(email, STRONG_PASSWORD)
    access = signed_in(b, email)
    key = SoftwareAuthenticator()
    options = post(a, "/api/v1/auth/mfa/webauthn/options", {"passkey": True}, access)
    registered = post(
        b,
        "/api/v1/auth/mfa/webauthn",
        {"credential": key.create(options.json(), PUBLIC_URL)},
        access,
    )
    assert registered.status_code == 201, registered.text
    request_options = post(b, "/api/v1/auth/passkey/options", {})
    logged_in = post(
        a, "/api/v1/auth/passkey/login", {"credential": key.get(request_options.json(), PUBLIC_URL)}
    )
    assert logged_in.status_code == 200, logged_in.text
    first = post(b, "/api/v1/auth/login", {"email": email, "password": STRONG_PASSWORD})
    token = first.json()["mfa_token"]
    second_options = post(a, "/api/v1/auth/login/mfa/webauthn-options", {"mfa_token": token})
    passed = post(
        b,
        "/api/v1/auth/login/mfa",
        {"mfa_token": token, "credential": key.get(second_options.json(), PUBLIC_URL)},
    )
    assert passed.status_code == 200, passed.text
