"""The SMTP server Bastion delivers to during the drill: it records every message it accepts,
and the drill can take it down or make it slow.

Messages are recognised by subject (the kind of email) and carry the one-time token of their
link, so the drill's users read their mail here as people would in their inbox.
"""

from __future__ import annotations

import asyncio
import email
import email.policy
import re
import threading
import time
from collections import defaultdict
from dataclasses import dataclass
from email.message import EmailMessage

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session

HOST = "127.0.0.1"
# The slow server: it takes the message, then waits this long before answering.
SLOW_ANSWER_SECONDS = 10.0
KINDS = {
    "Confirm your email address": "verify_email",
    "Reset your password": "reset_password",
    "Your password was changed": "password_changed",
    "A sign-in of yours was ended for your safety": "refresh_token_reused",
    "Someone tried to sign up with your email": "already_registered",
}
TOKEN = re.compile(r"[?&]token=([A-Za-z0-9_\-]+)")


@dataclass(frozen=True)
class Delivery:
    recipient: str
    kind: str
    token: str | None
    at: float  # time.monotonic() when the sink answered 250


class Mailbox:
    """Every message accepted, by recipient; shared between the sink's thread and the drill."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._by_recipient: dict[str, list[Delivery]] = defaultdict(list)
        self.unreadable = 0

    def add(self, delivery: Delivery) -> None:
        with self._lock:
            self._by_recipient[delivery.recipient].append(delivery)

    def of(self, recipient: str, kind: str) -> list[Delivery]:
        with self._lock:
            return [d for d in self._by_recipient.get(recipient, ()) if d.kind == kind]

    def of_recipient(self, recipient: str) -> list[Delivery]:
        with self._lock:
            return list(self._by_recipient.get(recipient, ()))

    def all(self) -> list[Delivery]:
        with self._lock:
            return [d for deliveries in self._by_recipient.values() for d in deliveries]


class _Handler:
    def __init__(self, mailbox: Mailbox) -> None:
        self.mailbox = mailbox
        self.slow = False

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:  # noqa: N802
        if self.slow:
            await asyncio.sleep(SLOW_ANSWER_SECONDS)
        raw = envelope.original_content or envelope.content
        message = email.message_from_bytes(
            raw if isinstance(raw, bytes) else b"", policy=email.policy.default
        )
        if not isinstance(message, EmailMessage) or message["Subject"] is None:
            self.mailbox.unreadable += 1
            return "250 OK"
        body = message.get_body(preferencelist=("plain",))
        text = str(body.get_content()) if body is not None else ""
        found = TOKEN.search(text)
        for recipient in envelope.rcpt_tos:
            self.mailbox.add(
                Delivery(
                    recipient=recipient.lower(),
                    kind=KINDS.get(str(message["Subject"]), "unknown"),
                    token=found.group(1) if found else None,
                    at=time.monotonic(),
                )
            )
        return "250 OK"


class Sink:
    """An SMTP server on a fixed port that can be stopped (connections refused) and restarted."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.mailbox = Mailbox()
        self._handler = _Handler(self.mailbox)
        self._controller: Controller | None = None

    @property
    def url(self) -> str:
        return f"smtp://{HOST}:{self.port}"

    def up(self) -> None:
        self._handler.slow = False
        if self._controller is None:
            self._controller = Controller(self._handler, hostname=HOST, port=self.port)
            self._controller.start()

    def down(self) -> None:
        if self._controller is not None:
            self._controller.stop()
            self._controller = None

    def slow(self) -> None:
        self.up()
        self._handler.slow = True
