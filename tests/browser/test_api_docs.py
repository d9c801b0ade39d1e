"""/docs works in a real browser, from Bastion alone."""

from __future__ import annotations

import httpx
from playwright.sync_api import expect

from tests.browser.conftest import BrowsedPage
from tests.support import STRONG_PASSWORD, random_email


def operation_count(base_url: str) -> int:
    schema = httpx.get(f"{base_url}/openapi.json").json()
    return sum(len(item) for item in schema["paths"].values())


def test_the_docs_list_every_operation_without_a_request_to_another_host(
    browsed: BrowsedPage,
) -> None:
    page = browsed.page
    page.goto("/docs")
    operations = page.locator(".opblock")
    expect(operations.first).to_be_visible(timeout=20_000)
    expect(operations).to_have_count(operation_count(browsed.server.base_url))
    expect(page.locator('.opblock-summary-path[data-path="/api/v1/auth/login"]')).to_be_visible()
    assert browsed.foreign_requests == []
    assert browsed.console_errors == []


def test_a_token_given_to_authorize_is_sent_by_try_it_out(browsed: BrowsedPage) -> None:
    email = random_email("docs")
    browsed.server.create_user(email, STRONG_PASSWORD)
    token = browsed.server.access_token(email, STRONG_PASSWORD)
    page = browsed.page
    page.goto("/docs")
    page.locator(".auth-wrapper button.authorize").click()
    dialog = page.locator(".modal-ux")
    expect(dialog).to_contain_text("bearerAuth")
    dialog.locator("input#auth-bearer-value").fill(token)
    dialog.get_by_role("button", name="Apply credentials").click()
    dialog.locator("button.btn-done").click()

    me = page.locator(".opblock-get", has=page.locator('[data-path="/api/v1/auth/me"]'))
    me.locator(".opblock-summary").click()
    me.get_by_role("button", name="Try it out").click()
    with page.expect_response(f"{browsed.server.base_url}/api/v1/auth/me") as answered:
        me.get_by_role("button", name="Execute").click()
    assert answered.value.request.headers["authorization"] == f"Bearer {token}"
    assert answered.value.status == 200
    expect(me.locator(".live-responses-table .microlight").first).to_contain_text(email)
    assert browsed.foreign_requests == []
    assert browsed.console_errors == []
