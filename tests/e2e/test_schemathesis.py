"""Schemathesis against a real `bastion serve`: every check and every phase (stateful too),
anonymous (on SQLite) and as an admin (on PostgreSQL). The OpenAPI document must tell the truth.

The run is reproducible (a fixed seed per run); `tests/e2e/schemathesis.toml` lists what no
schema can say, operation by operation.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.serving import ServedBastion, served_for_backend
from tests.support import STRONG_PASSWORD, bearer, random_email

ST = str(Path(sys.executable).with_name("st"))
CONFIG = Path(__file__).with_name("schemathesis.toml")
REPOSITORY = Path(__file__).parents[2]
# The limits are far above what a run sends: it tests every answer of the API, which a 429 would
# hide (the limits are tested in tests/api/test_rate_limits.py and test_login_protection.py).
UNLIMITED = {
    name: "100000000"
    for name in (
        "rate_limit_per_minute",
        "user_rate_limit_per_minute",
        "register_per_hour",
        "forgot_password_per_hour",
        "verification_resend_per_hour",
        "login_max_failures",
        "account_max_failures",
    )
}
ADMIN_AUTH = """
[auth.dynamic.openapi.bearerAuth]
path = "/api/v1/auth/login"
payload = { email = "${FUZZ_ADMIN_EMAIL}", password = "${FUZZ_ADMIN_PASSWORD}" }
extract_selector = "/access_token"
"""
# A run takes about a minute on a quiet machine, and up to four times that beside the heaviest
# of the rest of the suite (the benchmark's smoke run loads both cores).
RUN_SECONDS = 420
pytestmark = pytest.mark.timeout(RUN_SECONDS + 60)


@pytest.fixture
def fuzzed(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServedBastion]:
    """`bastion serve` over the database the test names. Each database meets one of the two
    runs: a run is the suite's costliest test, and four of them (each run on each database) cost
    the suite more than a minute of its two cores."""
    with served_for_backend(request, tmp_path_factory, **UNLIMITED) as server:
        yield server


def schemathesis(
    server: ServedBastion, tmp_path: Path, seed: int, *, config: str, env: dict[str, str]
) -> None:
    """Run `st run` with every check and phase against ``server``; fail with its report."""
    config_file = tmp_path / "schemathesis.toml"
    config_file.write_text(config)
    result = subprocess.run(
        [
            ST,
            "--config-file",
            str(config_file),
            "--no-color",
            "run",
            f"{server.base_url}/openapi.json",
            "--checks",
            "all",
            "--phases",
            "examples,coverage,fuzzing,stateful",
            # One worker: workers are threads under one GIL, so a second adds no speed here, and
            # on CPython 3.11 two threads building ASTs at once (Hypothesis parses source to
            # describe its filters) can fail with "AST constructor recursion depth mismatch".
            "--workers",
            "1",
            "--seed",
            str(seed),
        ],
        env={**os.environ, **env},
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=RUN_SECONDS,
    )
    report = result.stdout + result.stderr
    assert result.returncode == 0, report
    for phase in ("Examples", "Coverage", "Fuzzing", "Stateful"):
        assert f"✅ {phase}" in report, report


@pytest.mark.parametrize("fuzzed", ["sqlite"], indirect=True)
def test_schemathesis_finds_nothing_anonymously(fuzzed: ServedBastion, tmp_path: Path) -> None:
    schemathesis(fuzzed, tmp_path, seed=11, config=CONFIG.read_text(), env={})


@pytest.mark.parametrize("fuzzed", ["postgresql"], indirect=True)
def test_schemathesis_finds_nothing_as_an_admin(fuzzed: ServedBastion, tmp_path: Path) -> None:
    email = random_email("fuzz-admin")
    fuzzed.create_user(email, STRONG_PASSWORD, role="admin")
    token = fuzzed.access_token(email, STRONG_PASSWORD)
    admin_id = httpx.get(f"{fuzzed.base_url}/api/v1/auth/me", headers=bearer(token)).json()["id"]
    schemathesis(
        fuzzed,
        tmp_path,
        seed=12,
        config=CONFIG.read_text() + ADMIN_AUTH,
        env={
            "FUZZ_ADMIN_EMAIL": email,
            "FUZZ_ADMIN_PASSWORD": STRONG_PASSWORD,
            "FUZZ_ADMIN_ID": admin_id,
            "SCHEMATHESIS_HOOKS": "tests.e2e.schemathesis_hooks",
            "PYTHONPATH": str(REPOSITORY),
        },
    )
