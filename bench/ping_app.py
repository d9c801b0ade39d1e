"""The HTTP ceiling: a bare FastAPI app served like Bastion, isolating Bastion's own cost."""

from __future__ import annotations

from fastapi import FastAPI

app = FastAPI(openapi_url=None, docs_url=None, redoc_url=None)


@app.get("/ping")
async def ping() -> dict[str, bool]:
    return {"ok": True}
