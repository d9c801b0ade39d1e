"""A task service protected by Bastion: offline token checks, revocation within a second by the
event stream, and a webhook receiver that forgets users Bastion deleted.

Run it (see README.md) with BASTION_ISSUER, BASTION_SERVICE_KEY and TASKS_WEBHOOK_SECRET set.
"""

from __future__ import annotations

import logging
import os
from typing import Annotated

from bastion_verifier import Claims, Verifier
from fastapi import Depends, FastAPI, HTTPException, Request, Response
from pydantic import BaseModel, Field
from standardwebhooks import Webhook, WebhookVerificationError

logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
log = logging.getLogger("task_service")

verifier = Verifier(
    issuer=os.environ.get("BASTION_ISSUER", "http://127.0.0.1:8000"),
    audience=os.environ.get("BASTION_AUDIENCE", "bastion"),
    # Where this service reaches Bastion, if not at the issuer's address.
    bastion_url=os.environ.get("BASTION_URL") or None,
    # Refuse a logged-out token within a second; the key (bsk_…) comes from BASTION_SERVICE_KEY.
    revocation="events",
)
webhooks = Webhook(os.environ["TASKS_WEBHOOK_SECRET"])

app = FastAPI(title="Tasks")
verifier.install(app)
User = Annotated[Claims, Depends(verifier.require())]

TASKS: dict[str, list[str]] = {}  # by user id; a real service has a database
SEEN: set[str] = set()  # webhook-ids already handled: a delivery may come twice


class NewTask(BaseModel):
    title: str = Field(min_length=1, max_length=200)


@app.get("/tasks")
async def list_tasks(user: User) -> dict[str, list[str]]:
    return {"tasks": TASKS.get(user.sub, [])}


@app.post("/tasks", status_code=201)
async def add_task(task: NewTask, user: User) -> dict[str, list[str]]:
    TASKS.setdefault(user.sub, []).append(task.title)
    return {"tasks": TASKS[user.sub]}


@app.get("/public/tasks")
async def unprotected_tasks() -> dict[str, list[str]]:
    """The same work without a token: what the benchmark compares the protected GET with."""
    return {"tasks": []}


@app.post("/webhooks/bastion", status_code=204)
async def bastion_webhook(request: Request) -> Response:
    body = await request.body()
    try:
        event = webhooks.verify(body, dict(request.headers))
    except WebhookVerificationError:
        raise HTTPException(status_code=400, detail="bad signature") from None
    message_id = request.headers["webhook-id"]
    if message_id not in SEEN:
        SEEN.add(message_id)
        if event["type"] == "user.deleted":
            user_id = event["data"]["user_id"]
            TASKS.pop(user_id, None)
            log.info("user deleted: %s (their tasks are gone)", user_id)
    return Response(status_code=204)
