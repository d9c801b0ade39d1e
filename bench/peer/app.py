"""The documented app: auth, register and users routers. Tables come from `create_db_and_tables`,
run once by the bench before the server starts (`python -m bench.peer.app`), because two workers
running it in their lifespan would race to create the same tables."""

from __future__ import annotations

import asyncio

from fastapi import FastAPI

from bench.peer.db import create_db_and_tables
from bench.peer.schemas import UserCreate, UserRead, UserUpdate
from bench.peer.users import auth_backend, fastapi_users

app = FastAPI()

app.include_router(fastapi_users.get_auth_router(auth_backend), prefix="/auth/jwt", tags=["auth"])
app.include_router(
    fastapi_users.get_register_router(UserRead, UserCreate),
    prefix="/auth",
    tags=["auth"],
)
app.include_router(fastapi_users.get_reset_password_router(), prefix="/auth", tags=["auth"])
app.include_router(fastapi_users.get_verify_router(UserRead), prefix="/auth", tags=["auth"])
app.include_router(
    fastapi_users.get_users_router(UserRead, UserUpdate),
    prefix="/users",
    tags=["users"],
)


@app.get("/healthz")
async def healthz() -> dict[str, bool]:
    return {"ok": True}


if __name__ == "__main__":
    asyncio.run(create_db_and_tables())
