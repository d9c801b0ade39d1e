"""Two server processes sharing one Redis enforce one lockout."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.serving import ServedBastion, create_user, served_bastion
from tests.support import STRONG_PASSWORD, random_email


@pytest.fixture
def settings(redis_url: str, redis_key_prefix: str) -> dict[str, str]:
    return {
        "redis_url": redis_url,
        "redis_key_prefix": f"{redis_key_prefix}{secrets.token_hex(4)}:",
    }


@pytest.fixture
def two_servers(
    postgresql_url: str, settings: dict[str, str], tmp_path: Path
) -> Iterator[list[ServedBastion]]:
    with (
        served_bastion(postgresql_url, tmp_path / "a.log", **settings) as a,
        served_bastion(postgresql_url, tmp_path / "b.log", **settings) as b,
    ):
        yield [a, b]


def test_five_failures_spread_over_two_processes_block_the_ip_on_both(
    two_servers: list[ServedBastion],
) -> None:
    email = random_email("two-processes")
    create_user(two_servers[0].environment, email, STRONG_PASSWORD)
    urls = [server.base_url for server in two_servers]

    def login(url: str, password: str) -> httpx.Response:
        return httpx.post(
            f"{url}/api/v1/auth/login", json={"email": email, "password": password}, timeout=10
        )

    failures = [login(urls[n % 2], "Wrong-Password-1") for n in range(5)]
    assert [r.status_code for r in failures] == [401] * 5
    for url in urls:
        blocked = login(url, STRONG_PASSWORD)
        assert blocked.status_code == 429, url
        assert blocked.json()["code"] == "TOO_MANY_ATTEMPTS"
        assert 1700 < int(blocked.headers["Retry-After"]) <= 1800
        ready = httpx.get(f"{url}/readyz", timeout=5).json()
        assert ready["redis"] == "ok"
