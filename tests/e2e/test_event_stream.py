"""GET /api/v1/events from a real ``bastion serve`` on each database: what a service reads."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator

import httpx
import pytest

from tests.conftest import BACKENDS
from tests.event_stream import EventReader, Received, create_service_key
from tests.serving import ServedBastion, served_bastion, served_for_backend
from tests.support import STRONG_PASSWORD, bearer, random_email

DEADLINE_SECONDS = 1.0


@pytest.fixture(scope="module", params=BACKENDS)
def served(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServedBastion]:
    with served_for_backend(request, tmp_path_factory) as server:
        yield server


@pytest.fixture(scope="module")
def service_key(served: ServedBastion) -> str:
    return create_service_key(served.environment)


def log_in(server: ServedBastion, email: str) -> dict[str, str]:
    response = httpx.post(
        f"{server.base_url}/api/v1/auth/login", json={"email": email, "password": STRONG_PASSWORD}
    )
    assert response.status_code == 200, response.text
    body: dict[str, str] = response.json()
    return body


def log_out(server: ServedBastion, token: str) -> None:
    response = httpx.post(f"{server.base_url}/api/v1/auth/logout", headers=bearer(token))
    assert response.status_code == 204, response.text


def revoked(sid: str) -> object:
    return lambda event: event.type == "session.revoked" and event.data["sid"] == sid


def test_a_logout_reaches_an_open_stream_within_a_second_as_the_contract_says(
    served: ServedBastion, service_key: str
) -> None:
    email = random_email("stream")
    served.create_user(email, STRONG_PASSWORD)
    session = log_in(served, email)
    reader = EventReader(served.base_url, service_key)
    try:
        assert reader.status == 200 and reader.headers is not None
        assert reader.headers["content-type"].startswith("text/event-stream")
        started = time.monotonic()
        log_out(served, session["access_token"])
        event = reader.until(revoked(session["session_id"]), timeout=5)
        assert time.monotonic() - started < DEADLINE_SECONDS
        assert event.data["type"] == "session.revoked" and int(event.id) > 0
        assert set(event.data) == {"type", "occurred_at", "sid", "user_id"}
        uuid.UUID(event.data["user_id"])
    finally:
        reader.close()


def test_a_stream_resumes_after_its_last_event_id_and_starts_from_now_without_it(
    served: ServedBastion, service_key: str
) -> None:
    email = random_email("resume")
    served.create_user(email, STRONG_PASSWORD)
    first, second = log_in(served, email), log_in(served, email)
    reader = EventReader(served.base_url, service_key)
    try:
        log_out(served, first["access_token"])
        seen = reader.until(revoked(first["session_id"]))
    finally:
        reader.close()
    log_out(served, second["access_token"])  # while no stream is open
    resumed = EventReader(served.base_url, service_key, last_event_id=seen.id)
    fresh = EventReader(served.base_url, service_key)
    try:
        missed = resumed.until(revoked(second["session_id"]))
        assert int(missed.id) > int(seen.id)
        third = log_in(served, email)
        log_out(served, third["access_token"])
        # From now: the earlier logouts are not replayed, the new one comes first.
        assert (
            fresh.until(lambda e: e.type == "session.revoked").data["sid"] == (third["session_id"])
        )
    finally:
        resumed.close()
        fresh.close()


def test_a_password_change_tells_the_change_and_each_other_session_ended(
    served: ServedBastion, service_key: str
) -> None:
    email = random_email("change")
    served.create_user(email, STRONG_PASSWORD)
    current, other = log_in(served, email), log_in(served, email)
    reader = EventReader(served.base_url, service_key)
    try:
        changed = httpx.post(
            f"{served.base_url}/api/v1/auth/change-password",
            json={"current_password": STRONG_PASSWORD, "new_password": "Another-Horse-8"},
            headers=bearer(current["access_token"]),
        )
        assert changed.status_code in (200, 204), changed.text
        received: list[Received] = []
        while not {"password.changed", "session.revoked"} <= {e.type for e in received}:
            received.append(reader.next())
        kinds = {(e.type, e.data.get("sid")) for e in received}
        assert ("session.revoked", other["session_id"]) in kinds
        assert ("session.revoked", current["session_id"]) not in kinds
    finally:
        reader.close()


def test_without_a_valid_service_key_or_with_a_bad_position_there_is_no_stream(
    served: ServedBastion, service_key: str
) -> None:
    url = f"{served.base_url}/api/v1/events"
    email = random_email("nokey")
    served.create_user(email, STRONG_PASSWORD)
    token = log_in(served, email)["access_token"]
    for headers, status, code in [
        ({}, 401, "INVALID_SERVICE_KEY"),
        (bearer(token), 401, "INVALID_SERVICE_KEY"),
        (bearer("bsk_" + "A" * 43), 401, "INVALID_SERVICE_KEY"),
        ({**bearer(service_key), "Last-Event-ID": "nope"}, 400, "INVALID_EVENT_ID"),
        ({**bearer(service_key), "Last-Event-ID": "999999999"}, 410, "EVENT_ID_EXPIRED"),
    ]:
        response = httpx.get(url, headers=headers)
        assert response.status_code == status, response.text
        assert response.headers["content-type"] == "application/problem+json"
        assert response.json()["code"] == code


def test_two_processes_each_carry_every_event(
    postgresql_url: str, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """A revocation made on one instance reaches a stream of the other within a second."""
    logs = tmp_path_factory.mktemp("events-two-processes")
    settings = {"public_url": "http://auth.localhost"}
    with (
        served_bastion(postgresql_url, logs / "a.log", **settings) as a,
        served_bastion(postgresql_url, logs / "b.log", **settings) as b,
    ):
        key = create_service_key(a.environment, "cluster")
        email = random_email("cluster-events")
        a.create_user(email, STRONG_PASSWORD)
        reader = EventReader(b.base_url, key)
        try:
            for _ in range(3):
                session = log_in(a, email)
                started = time.monotonic()
                log_out(a, session["access_token"])
                reader.until(revoked(session["session_id"]), timeout=5)
                assert time.monotonic() - started < DEADLINE_SECONDS
        finally:
            reader.close()
