"""Two real `bastion serve` processes over one PostgreSQL database, as in a scaled deployment."""

from __future__ import annotations

import asyncio
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import pytest

from tests.serving import BASTION, create_user, served_bastion
from tests.support import (
    REFRESH_COOKIE,
    STRONG_PASSWORD,
    bearer,
    kid_of,
    random_email,
    refresh_token_in,
)

# Both processes sit behind one public address, so they issue and accept the same tokens.
PUBLIC_URL = "http://auth.localhost"
REVOCATION_DEADLINE_SECONDS = 1.0


@dataclass(frozen=True)
class Deployment:
    environment: dict[str, str]
    a: str
    b: str

    def create_user(self, email: str) -> None:
        create_user(self.environment, email, STRONG_PASSWORD)


@pytest.fixture(scope="module")
def deployment(
    postgresql_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Deployment]:
    logs = tmp_path_factory.mktemp("two-processes")
    # Every test of the module shares the two processes and comes from one address: the
    # per-address limits, tested elsewhere, would answer 429 to the later tests.
    settings = {
        "public_url": PUBLIC_URL,
        "cookie_secure": "false",
        "rate_limit_per_minute": "100000",
        "user_rate_limit_per_minute": "100000",
    }
    with (
        served_bastion(postgresql_url, logs / "a.log", **settings) as a,
        served_bastion(postgresql_url, logs / "b.log", **settings) as b,
    ):
        yield Deployment(a.environment, a.base_url, b.base_url)


def _login(base: str, email: str, *, remember_me: bool = False) -> httpx.Response:
    response = httpx.post(
        f"{base}/api/v1/auth/login",
        json={"email": email, "password": STRONG_PASSWORD, "remember_me": remember_me},
    )
    assert response.status_code == 200, response.text
    return response


def test_a_logout_on_one_process_is_seen_by_the_other_within_a_second(
    deployment: Deployment,
) -> None:
    email = random_email("cluster")
    deployment.create_user(email)
    access = _login(deployment.a, email).json()["access_token"]
    verify_on_b = f"{deployment.b}/api/v1/auth/verify-token"
    # B now holds the session as live in its cache.
    assert httpx.get(verify_on_b, headers=bearer(access)).status_code == 200

    logout = httpx.post(f"{deployment.a}/api/v1/auth/logout", headers=bearer(access))
    assert logout.status_code == 204

    deadline = time.monotonic() + REVOCATION_DEADLINE_SECONDS
    seen = httpx.get(verify_on_b, headers=bearer(access))
    while seen.status_code == 200 and time.monotonic() < deadline:
        time.sleep(0.02)
        seen = httpx.get(verify_on_b, headers=bearer(access))
    assert seen.status_code == 401, "process B still accepted the token a second after logout"
    assert seen.json()["code"] == "SESSION_REVOKED"


async def test_one_refresh_token_raced_across_both_processes_is_spent_once(
    deployment: Deployment,
) -> None:
    email = random_email("cluster-race")
    deployment.create_user(email)
    token = refresh_token_in(_login(deployment.a, email, remember_me=True))

    async with httpx.AsyncClient() as client:
        responses = await asyncio.gather(
            *(
                client.post(
                    f"{base}/api/v1/auth/refresh", headers={"Cookie": f"{REFRESH_COOKIE}={token}"}
                )
                for base in [deployment.a, deployment.b] * 10
            )
        )

    # One trades it; one more may be taken for a client retrying an answer it missed; the
    # others present a spent token, so the session ends and no token of it refreshes again.
    winners = [r for r in responses if r.status_code == 200]
    assert 1 <= len(winners) <= 2, [(r.status_code, r.text[:120]) for r in responses]
    assert sum(r.status_code == 401 for r in responses) == 20 - len(winners), [
        (r.status_code, r.text[:120]) for r in responses
    ]
    for winner in winners:
        again = httpx.post(
            f"{deployment.a}/api/v1/auth/refresh",
            headers={"Cookie": f"{REFRESH_COOKIE}={refresh_token_in(winner)}"},
        )
        assert again.status_code == 401


def _refused_within_a_second(url: str, access: str) -> httpx.Response:
    """The answer of ``url`` to ``access`` once it stops being 200, or after the deadline."""
    deadline = time.monotonic() + REVOCATION_DEADLINE_SECONDS
    seen = httpx.get(url, headers=bearer(access))
    while seen.status_code == 200 and time.monotonic() < deadline:
        time.sleep(0.02)
        seen = httpx.get(url, headers=bearer(access))
    return seen


def test_an_admins_revocation_on_one_process_is_seen_by_the_other_within_a_second(
    deployment: Deployment,
) -> None:
    admin_email, email = random_email("cluster-admin"), random_email("cluster-target")
    create_user(deployment.environment, admin_email, STRONG_PASSWORD, "admin")
    deployment.create_user(email)
    admin = _login(deployment.a, admin_email).json()["access_token"]
    access = _login(deployment.a, email).json()["access_token"]
    verify_on_b = f"{deployment.b}/api/v1/auth/verify-token"
    assert httpx.get(verify_on_b, headers=bearer(access)).status_code == 200
    user_id = httpx.get(f"{deployment.a}/api/v1/auth/me", headers=bearer(access)).json()["id"]

    ended = httpx.delete(
        f"{deployment.a}/api/v1/admin/users/{user_id}/sessions", headers=bearer(admin)
    )
    assert ended.status_code == 204, ended.text

    seen = _refused_within_a_second(verify_on_b, access)
    assert seen.status_code == 401, "process B still accepted the token a second after"
    assert seen.json()["code"] == "SESSION_REVOKED"


def test_a_revoked_signing_key_is_refused_by_both_processes_within_a_second(
    deployment: Deployment,
) -> None:
    email = random_email("cluster-keys")
    deployment.create_user(email)
    access = _login(deployment.a, email).json()["access_token"]
    kid = kid_of(access)
    for base in (deployment.a, deployment.b):
        assert httpx.get(f"{base}/api/v1/auth/me", headers=bearer(access)).status_code == 200

    result = subprocess.run(
        [BASTION, "keys", "revoke", kid],
        env=deployment.environment,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert "New signing key" in result.stdout, "the revoked key was the signer"

    for base in (deployment.a, deployment.b):
        for path in ("/api/v1/auth/verify-token", "/api/v1/auth/me"):
            seen = _refused_within_a_second(f"{base}{path}", access)
            assert seen.status_code == 401, f"{base}{path} still accepted the revoked key's token"
            assert seen.json()["code"] == "INVALID_TOKEN"
        jwks = httpx.get(f"{base}/.well-known/jwks.json").json()
        assert kid not in {key["kid"] for key in jwks["keys"]}
    fresh = _login(deployment.b, email).json()["access_token"]
    assert kid_of(fresh) != kid
    assert httpx.get(f"{deployment.a}/api/v1/auth/me", headers=bearer(fresh)).status_code == 200
