"""Webhooks over HTTP: the admin API, the SSRF guard, and deliveries to a real local receiver
that is down, fails, then recovers (nothing is lost, the webhook-id stays the same, and the
Standard Webhooks signature verifies with the standardwebhooks package)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta
from typing import Any

import httpx
import pytest
from standardwebhooks import Webhook as Verifier

from bastion.accounts.model import Role
from bastion.bootstrap import Services
from bastion.webhooks.model import WebhookRules
from tests.api.test_admin import Caller, make_user
from tests.support import SmtpServer, assert_problem, bearer, login, make_settings, running_app
from tests.webhook_receiver import Receiver, receiving

HOOKS = "/api/v1/admin/webhooks"
FAST = WebhookRules(first_retry=timedelta(milliseconds=100), allow_private=True)


class StaticResolver:
    """Names resolved from a table, as a DNS server would answer (no network here)."""

    def __init__(self, table: dict[str, list[str]]) -> None:
        self.table = table

    async def addresses(self, host: str, port: int) -> list[str]:
        return self.table.get(host, [])


@asynccontextmanager
async def webhook_app(
    database_url: str, smtp: SmtpServer, rules: WebhookRules = FAST, **overrides: Any
) -> AsyncIterator[tuple[httpx.AsyncClient, Services, Caller]]:
    settings = make_settings(database_url, smtp.url)
    async with running_app(settings, webhook_rules=rules, **overrides) as (client, services):
        try:
            yield client, services, await make_user(client, services, Role.ADMIN)
        finally:
            # The database is shared by the tests: leave no endpoint for the next ones to call.
            for hook in await services.webhooks.list():
                await services.webhooks.delete(hook.id)


async def add_hook(
    client: httpx.AsyncClient, admin: Caller, url: str, types: list[str] | None = None
) -> httpx.Response:
    body = {"url": url, "event_types": types or ["session.revoked", "user.deleted"]}
    return await client.post(HOOKS, json=body, headers=admin.headers)


async def deliveries(client: httpx.AsyncClient, admin: Caller, hook_id: str) -> list[Any]:
    response = await client.get(f"{HOOKS}/{hook_id}/deliveries", headers=admin.headers)
    assert response.status_code == 200, response.text
    items: list[Any] = response.json()["items"]
    return items


async def log_out_someone(client: httpx.AsyncClient, services: Services) -> str:
    user = await make_user(client, services, Role.USER, "leaver")
    session = (await login(client, user.email, "Correct-Horse-7")).json()
    assert (await client.post("/api/v1/auth/logout", headers=bearer(user.token))).status_code == 204
    response = await client.post("/api/v1/auth/logout", headers=bearer(session["access_token"]))
    assert response.status_code == 204
    sid: str = session["session_id"]
    return sid


async def test_the_admin_manages_webhooks_and_sees_the_secret_once(
    database_url: str, smtp: SmtpServer
) -> None:
    async with webhook_app(database_url, smtp) as (client, _, admin):
        created = await add_hook(client, admin, "http://127.0.0.1:9/hooks")
        assert created.status_code == 201, created.text
        body = created.json()
        assert body["secret"].startswith("whsec_") and body["enabled"] is True
        hook = f"{HOOKS}/{body['id']}"
        listed = await client.get(HOOKS, headers=admin.headers)
        assert body["secret"] not in listed.text and body["id"] in listed.text
        one = await client.get(hook, headers=admin.headers)
        assert one.status_code == 200 and "secret" not in one.json()
        patched = await client.patch(
            hook, json={"enabled": False, "event_types": ["user.deleted"]}, headers=admin.headers
        )
        assert patched.json()["enabled"] is False
        assert patched.json()["event_types"] == ["user.deleted"]
        assert (await client.delete(hook, headers=admin.headers)).status_code == 204
        assert_problem(await client.get(hook, headers=admin.headers), 404, "WEBHOOK_NOT_FOUND")
        bad = await client.post(
            HOOKS,
            json={"url": "http://127.0.0.1:9/", "event_types": ["nope"]},
            headers=admin.headers,
        )
        assert_problem(bad, 422, "VALIDATION_ERROR")
        manager = await make_user(client, _, Role.MANAGER)
        assert_problem(await client.get(HOOKS, headers=manager.headers), 403, "FORBIDDEN")


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1/hooks",
        "http://localhost:8080/",
        "http://169.254.169.254/latest/meta-data/",
        "http://10.0.0.5/",
        "http://[::1]/",
        "http://[fd00:ec2::254]/",
        "https://internal.example.com/",  # resolves to a private address
        "https://rebinding.example.com/",  # one of its addresses is loopback
    ],
)
async def test_urls_reaching_internal_addresses_are_refused(
    database_url: str, smtp: SmtpServer, url: str
) -> None:
    resolver = StaticResolver(
        {
            "127.0.0.1": ["127.0.0.1"],
            "localhost": ["127.0.0.1", "::1"],
            "169.254.169.254": ["169.254.169.254"],
            "10.0.0.5": ["10.0.0.5"],
            "::1": ["::1"],
            "fd00:ec2::254": ["fd00:ec2::254"],
            "internal.example.com": ["192.168.1.20"],
            "rebinding.example.com": ["93.184.216.34", "127.0.0.1"],
        }
    )
    strict = WebhookRules()
    async with webhook_app(database_url, smtp, strict, webhook_resolver=resolver) as (
        client,
        _,
        admin,
    ):
        assert_problem(await add_hook(client, admin, url), 422, "WEBHOOK_URL_FORBIDDEN")
        fine = await add_hook(client, admin, "https://hooks.example.com/in")
        assert_problem(fine, 422, "WEBHOOK_URL_INVALID")  # does not resolve
        resolver.table["hooks.example.com"] = ["93.184.216.34"]
        assert (await add_hook(client, admin, "https://hooks.example.com/in")).status_code == 201
        hook_id = (await client.get(HOOKS, headers=admin.headers)).json()["items"][0]["id"]
        moved = await client.patch(f"{HOOKS}/{hook_id}", json={"url": url}, headers=admin.headers)
        assert_problem(moved, 422, "WEBHOOK_URL_FORBIDDEN")


async def test_production_refuses_http_urls(database_url: str, smtp: SmtpServer) -> None:
    rules = WebhookRules(allow_http=False)
    resolver = StaticResolver({"hooks.example.com": ["93.184.216.34"]})
    async with webhook_app(database_url, smtp, rules, webhook_resolver=resolver) as (
        client,
        _,
        admin,
    ):
        refused = await add_hook(client, admin, "http://hooks.example.com/in")
        assert_problem(refused, 422, "WEBHOOK_URL_FORBIDDEN")
        assert (await add_hook(client, admin, "https://hooks.example.com/in")).status_code == 201


async def test_a_receiver_that_is_down_then_fails_then_recovers_loses_nothing(
    fresh_database_url: str, smtp: SmtpServer
) -> None:
    receiver = Receiver()  # not listening yet: connections are refused
    # A database of its own: an endpoint hears of events from the second it was added (their
    # times are whole seconds), and on the shared database those include the previous test's.
    async with webhook_app(fresh_database_url, smtp) as (client, services, admin):
        created = (await add_hook(client, admin, receiver.url)).json()
        # Let the fan-out start its cursor before the events it must carry.
        await asyncio.sleep(0.7)
        sids = [await log_out_someone(client, services) for _ in range(2)]
        for _ in range(100):
            pending = await deliveries(client, admin, created["id"])
            if len(pending) == 4 and all(d["attempts"] >= 1 for d in pending):
                break
            await asyncio.sleep(0.1)
        assert len(pending) == 4 and all(d["status"] == "pending" for d in pending), pending
        assert all(d["attempts"] >= 1 and d["last_response_status"] is None for d in pending)
        receiver.statuses = [500, 503]
        receiver.start()
        try:
            await asyncio.wait_for(all_delivered(client, admin, created["id"], 4), 20)
        finally:
            receiver.stop()
    verifier = Verifier(created["secret"])
    by_id: dict[str, list[Any]] = {}
    for request in receiver.received:
        payload = verifier.verify(request.body, request.headers)
        by_id.setdefault(request.headers["webhook-id"], []).append(payload)
        assert set(payload) == {"type", "occurred_at", "data"}
    delivered = {p[0]["data"]["sid"] for p in by_id.values() if p[0]["type"] == "session.revoked"}
    assert set(sids) <= delivered
    # A retried delivery came again with the same webhook-id.
    assert any(len(payloads) > 1 for payloads in by_id.values())


async def all_delivered(
    client: httpx.AsyncClient, admin: Caller, hook_id: str, count: int
) -> list[Any]:
    while True:
        found = await deliveries(client, admin, hook_id)
        if len(found) >= count and all(d["status"] == "delivered" for d in found):
            return found
        await asyncio.sleep(0.1)


async def test_a_test_event_is_sent_and_redelivered_with_the_same_id(
    database_url: str, smtp: SmtpServer
) -> None:
    with receiving() as receiver:
        async with webhook_app(database_url, smtp) as (client, _, admin):
            created = (await add_hook(client, admin, receiver.url)).json()
            sent = await client.post(f"{HOOKS}/{created['id']}/test", headers=admin.headers)
            assert sent.status_code == 202
            [first] = await receiver.wait_for(1)
            assert json.loads(first.body)["type"] == "webhook.test"
            [delivery] = await all_delivered(client, admin, created["id"], 1)
            assert delivery["attempts"] == 1 and delivery["last_response_status"] == 200
            assert delivery["next_attempt_at"] is None
            again = await client.post(
                f"{HOOKS}/{created['id']}/deliveries/{delivery['id']}/redeliver",
                headers=admin.headers,
            )
            assert again.status_code == 202
            _, second = await receiver.wait_for(2)
            assert second.headers["webhook-id"] == first.headers["webhook-id"]
            Verifier(created["secret"]).verify(second.body, second.headers)
            missing = await client.post(
                f"{HOOKS}/{created['id']}/deliveries/999999999/redeliver", headers=admin.headers
            )
            assert_problem(missing, 404, "DELIVERY_NOT_FOUND")


async def test_an_endpoint_failing_for_the_whole_window_is_disabled_and_admins_told(
    fresh_database_url: str, smtp: SmtpServer
) -> None:
    rules = WebhookRules(
        first_retry=timedelta(milliseconds=100),
        give_up_after=timedelta(seconds=1),
        allow_private=True,
    )
    with receiving() as receiver:
        receiver.then = 500
        # A database of its own: every active admin is told, and the shared test database
        # holds the admins of every other test.
        async with webhook_app(fresh_database_url, smtp, rules) as (client, _, admin):
            created = (await add_hook(client, admin, receiver.url)).json()
            assert await client.post(f"{HOOKS}/{created['id']}/test", headers=admin.headers)
            await smtp.mailbox.wait_for(admin.email, "webhook was disabled", timeout=60)
            for _ in range(50):
                url = f"{HOOKS}/{created['id']}"
                hook = (await client.get(url, headers=admin.headers)).json()
                if not hook["enabled"]:
                    break
                await asyncio.sleep(0.1)
            assert hook["enabled"] is False and hook["failing_since"] is not None
            for _ in range(50):
                [delivery] = await deliveries(client, admin, created["id"])
                if delivery["status"] == "failed":
                    break
                await asyncio.sleep(0.1)
            assert delivery["status"] == "failed" and delivery["last_response_status"] == 500
