"""The interactive API documentation (Swagger UI) at /docs, served from Bastion alone.

The Swagger UI files come from the ``fastapi-offline`` package (installed with Bastion), so the
page loads nothing from another host and works on a network without internet access. Its
Content-Security-Policy allows exactly what the page needs: scripts, styles and the OpenAPI
document from this origin, and the ``data:`` images Swagger UI's stylesheet draws its icons with.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from fastapi import APIRouter
from fastapi.responses import FileResponse, HTMLResponse
from starlette.exceptions import HTTPException

router = APIRouter(include_in_schema=False)
DOCS_PATH = "/docs"
OPENAPI_PATH = "/openapi.json"
ASSETS_PATH = f"{DOCS_PATH}/assets"
SWAGGER_UI = Path(str(resources.files("fastapi_offline") / "static"))
OWN = Path(str(resources.files("bastion.apidocs") / "static"))
# name -> (directory, media type): the only files served.
ASSETS = {
    "swagger-ui-bundle.js": (SWAGGER_UI, "text/javascript"),
    "swagger-ui.css": (SWAGGER_UI, "text/css"),
    "favicon.png": (SWAGGER_UI, "image/png"),
    "docs.js": (OWN, "text/javascript"),
}
DOCS_CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; form-action 'none'; base-uri 'none'; frame-ancestors 'none'"
)
DOCS_PAGE = f"""<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Bastion API</title>
<link rel="icon" href="{ASSETS_PATH}/favicon.png">
<link rel="stylesheet" href="{ASSETS_PATH}/swagger-ui.css">
</head>
<body>
<div id="swagger-ui" data-openapi-url="{OPENAPI_PATH}"></div>
<script src="{ASSETS_PATH}/swagger-ui-bundle.js"></script>
<script src="{ASSETS_PATH}/docs.js"></script>
</body>
</html>
"""


@router.get(DOCS_PATH)
async def docs_page() -> HTMLResponse:
    return HTMLResponse(DOCS_PAGE, headers={"Content-Security-Policy": DOCS_CSP})


@router.get(f"{ASSETS_PATH}/{{name}}")
async def docs_asset(name: str) -> FileResponse:
    if name not in ASSETS:
        raise HTTPException(404)
    directory, media_type = ASSETS[name]
    return FileResponse(
        directory / name,
        media_type=media_type,
        headers={"Cache-Control": "public, max-age=3600"},
    )
