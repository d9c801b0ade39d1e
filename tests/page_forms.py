"""Reading Bastion's pages as a browser without script does: their forms, posted as
urlencoded bodies from Bastion's own origin."""

from __future__ import annotations

from dataclasses import dataclass, field
from html.parser import HTMLParser

import httpx

from tests.support import PUBLIC_URL, Mailbox, link_in

SAME_ORIGIN = {"Origin": PUBLIC_URL}


@dataclass
class Form:
    method: str
    action: str
    fields: dict[str, str] = field(default_factory=dict)
    autocomplete: dict[str, str] = field(default_factory=dict)


class _Forms(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.forms: list[Form] = []
        self._open = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = {name: value or "" for name, value in attrs}
        if tag == "form":
            self.forms.append(Form(found.get("method", "get"), found.get("action", "")))
            self._open = True
        elif tag == "input" and self._open and "name" in found:
            form = self.forms[-1]
            if found.get("type") == "checkbox" and "checked" not in found:
                pass
            else:
                form.fields[found["name"]] = found.get("value", "")
            if "autocomplete" in found:
                form.autocomplete[found["name"]] = found["autocomplete"]

    def handle_endtag(self, tag: str) -> None:
        if tag == "form":
            self._open = False


def forms_of(page: httpx.Response) -> list[Form]:
    parser = _Forms()
    parser.feed(page.text)
    return parser.forms


def form_to(page: httpx.Response, action: str) -> Form:
    """The one form of ``page`` that posts to ``action``."""
    [form] = [f for f in forms_of(page) if f.action == action]
    assert form.method == "post"
    return form


async def submit(
    client: httpx.AsyncClient,
    form: Form,
    headers: dict[str, str] | None = None,
    **typed: str,
) -> httpx.Response:
    """Post ``form`` with ``typed`` filled in, from Bastion's origin unless ``headers`` say
    otherwise."""
    return await client.post(
        form.action,
        data={**form.fields, **typed},
        headers=SAME_ORIGIN if headers is None else headers,
    )


async def fill_in(
    client: httpx.AsyncClient, path: str, headers: dict[str, str] | None = None, **typed: str
) -> httpx.Response:
    """Open the page at ``path`` and post its form (the one posting to its own path)."""
    page = await client.get(path)
    return await submit(client, form_to(page, path.split("?")[0]), headers, **typed)


async def page_sign_in(
    client: httpx.AsyncClient, email: str, password: str, **typed: str
) -> httpx.Response:
    return await fill_in(client, "/login", email=email, password=password, **typed)


async def page_sign_up(
    client: httpx.AsyncClient, mailbox: Mailbox, email: str, password: str
) -> str:
    """Sign up and confirm on the pages; the address."""
    done = await fill_in(client, "/register", email=email, password=password)
    assert done.status_code == 200, done.text
    link = link_in(await mailbox.wait_for(email, "confirm your email"), "/verify-email")
    await client.get(link)
    confirmed = await fill_in(client, "/verify-email")
    assert "Your email is confirmed" in confirmed.text
    return email


def cookie_header(response: httpx.Response, name: str) -> str:
    for header in response.headers.get_list("set-cookie"):
        if header.startswith(f"{name}="):
            return header
    raise AssertionError(f"no {name} cookie in {response.headers.get_list('set-cookie')}")


SESSION_COOKIE = "__Host-bastion_session"
