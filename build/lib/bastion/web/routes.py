"""The pages that email links land on. They change nothing on GET: the user's click does."""

from __future__ import annotations

from importlib import resources

from fastapi import APIRouter
from fastapi.responses import HTMLResponse, Response

router = APIRouter(include_in_schema=False)
STATIC = resources.files("bastion.web") / "static"
ASSET_TYPES = {"pages.js": "text/javascript", "pages.css": "text/css"}


def _page(title: str, body: str) -> HTMLResponse:
    html = (
        "<!doctype html><html lang='en'><head><meta charset='utf-8'>"
        "<meta name='viewport' content='width=device-width, initial-scale=1'>"
        f"<title>{title}</title><link rel='stylesheet' href='/assets/pages.css'>"
        "<script src='/assets/pages.js' defer></script></head>"
        f"<body><main>{body}</main></body></html>"
    )
    return HTMLResponse(html, headers={"Cache-Control": "no-store"})


@router.get("/verify-email")
async def verify_email_page() -> HTMLResponse:
    return _page(
        "Confirm your email",
        "<h1>Confirm your email</h1>"
        "<p>Click the button to confirm your email address.</p>"
        "<button id='verify' type='button'>Confirm my email</button>"
        "<p id='result' role='status'></p>",
    )


@router.get("/reset-password")
async def reset_password_page() -> HTMLResponse:
    return _page(
        "Choose a new password",
        "<h1>Choose a new password</h1>"
        "<form id='reset'>"
        "<label>New password <input type='password' name='new_password' "
        "autocomplete='new-password' required maxlength='256'></label>"
        "<label>Repeat it <input type='password' name='repeat' autocomplete='new-password' "
        "required maxlength='256'></label>"
        "<button type='submit'>Set my new password</button></form>"
        "<p id='result' role='status'></p>",
    )


@router.get("/assets/{name}")
async def asset(name: str) -> Response:
    if name not in ASSET_TYPES:
        return Response(status_code=404)
    return Response(
        (STATIC / name).read_bytes(),
        media_type=ASSET_TYPES[name],
        headers={"Cache-Control": "public, max-age=3600"},
    )
