"""The HTTP ceiling: a bare FastAPI app served exactly like Bastion, so the ratio isolates Bastion's own cost."""

from __future__ import annotations

from fastapi import FastAPI

app = FastAPI(openapi_url=None, docs_url=None, redoc_url=None)


@app.get("/ping")
async def ping() -> dict[str, bool]:
    return {"ok": True}
