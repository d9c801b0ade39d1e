"""examples/task-service beside a real ``bastion serve``: set up as its README says, it serves a
user's tasks, refuses a logged-out token within a second, and logs the deletion of a user that
Bastion's webhook tells it of."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.event_stream import create_service_key
from tests.serving import ServedBastion, served_bastion
from tests.support import (
    STRONG_PASSWORD,
    bearer,
    free_port,
    migrated_sqlite_database,
    random_email,
)

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "task-service"
GRANIAN = str(Path(sys.executable).with_name("granian"))


@dataclass(frozen=True)
class TaskService:
    url: str
    log: Path


@pytest.fixture(scope="module")
def bastion(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServedBastion]:
    """On a SQLite database of its own, as a team trying the example would start it: not on the
    run's shared one, whose other tests' leftovers (mail, webhooks, events) it would work on."""
    folder = tmp_path_factory.mktemp("task-service")
    database_url = migrated_sqlite_database(folder)
    with served_bastion(
        database_url, folder / "bastion.log", webhook_allow_private="true"
    ) as server:
        yield server


@pytest.fixture(scope="module")
def admin_token(bastion: ServedBastion) -> str:
    email = random_email("tasks-admin")
    bastion.create_user(email, STRONG_PASSWORD, "admin")
    return bastion.access_token(email, STRONG_PASSWORD)


@pytest.fixture(scope="module")
def tasks(
    bastion: ServedBastion, admin_token: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[TaskService]:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    hook = httpx.post(
        f"{bastion.base_url}/api/v1/admin/webhooks",
        json={"url": f"{url}/webhooks/bastion", "event_types": ["user.deleted"]},
        headers=bearer(admin_token),
    )
    assert hook.status_code == 201, hook.text
    environment = {
        key: value for key, value in bastion.environment.items() if not key.startswith("BASTION_")
    }
    environment.update(
        BASTION_ISSUER=bastion.base_url,
        BASTION_SERVICE_KEY=create_service_key(bastion.environment, "tasks"),
        TASKS_WEBHOOK_SECRET=hook.json()["secret"],
    )
    log = tmp_path_factory.mktemp("task-service") / "tasks.log"
    with log.open("wb") as output:
        process = subprocess.Popen(
            [
                GRANIAN,
                "--interface",
                "asgi",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "main:app",
            ],
            cwd=EXAMPLE,
            env=environment,
            stdout=output,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + 30
        while True:
            assert process.poll() is None, log.read_text()
            try:
                if httpx.get(f"{url}/public/tasks").status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.1)
        yield TaskService(url, log)
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def test_a_user_keeps_tasks_and_a_logout_is_refused_within_a_second(
    bastion: ServedBastion, tasks: TaskService
) -> None:
    email = random_email("tasks-user")
    bastion.create_user(email, STRONG_PASSWORD)
    assert httpx.get(f"{tasks.url}/tasks").status_code == 401
    time.sleep(1.1)  # a token from the stream's first second on is vouched for by it alone
    token = bastion.access_token(email, STRONG_PASSWORD)
    added = httpx.post(f"{tasks.url}/tasks", json={"title": "Ship"}, headers=bearer(token))
    assert added.status_code == 201, added.text
    assert httpx.get(f"{tasks.url}/tasks", headers=bearer(token)).json() == {"tasks": ["Ship"]}

    logout = httpx.post(f"{bastion.base_url}/api/v1/auth/logout", headers=bearer(token))
    assert logout.status_code == 204
    started = time.monotonic()
    while (response := httpx.get(f"{tasks.url}/tasks", headers=bearer(token))).status_code == 200:
        assert time.monotonic() - started < 1.0, "the logged-out token was still accepted"
        time.sleep(0.02)
    assert response.status_code == 401
    assert response.json()["code"] == "TOKEN_REVOKED"


def test_a_deleted_user_is_logged_by_the_webhook_receiver(
    bastion: ServedBastion, tasks: TaskService, admin_token: str
) -> None:
    email = random_email("tasks-leaver")
    bastion.create_user(email, STRONG_PASSWORD)
    token = bastion.access_token(email, STRONG_PASSWORD)
    me = httpx.get(f"{bastion.base_url}/api/v1/auth/me", headers=bearer(token)).json()
    deleted = httpx.delete(
        f"{bastion.base_url}/api/v1/admin/users/{me['id']}", headers=bearer(admin_token)
    )
    assert deleted.status_code == 204
    deadline = time.monotonic() + 10
    while f"user deleted: {me['id']}" not in tasks.log.read_text():
        assert time.monotonic() < deadline, tasks.log.read_text()
        time.sleep(0.1)
