"""Mail transports: SMTP for real delivery, the console for a laptop."""

from __future__ import annotations

import sys
from email.message import EmailMessage as MimeMessage
from typing import TextIO
from urllib.parse import parse_qs, unquote, urlsplit

import aiosmtplib

from bastion.mail.model import EmailMessage


def _mime(message: EmailMessage, sender: str) -> MimeMessage:
    mime = MimeMessage()
    mime["From"] = sender
    mime["To"] = message.recipient
    mime["Subject"] = message.subject
    mime.set_content(message.text)
    mime.add_alternative(message.html, subtype="html")
    return mime


class SmtpTransport:
    """Delivers over SMTP: ``smtp://`` (optionally ``?starttls=true``) or ``smtps://``."""

    def __init__(self, url: str, timeout: float) -> None:
        parts = urlsplit(url)
        query = parse_qs(parts.query)
        self._implicit_tls = parts.scheme == "smtps"
        self._hostname = parts.hostname or "localhost"
        self._port = parts.port or (465 if self._implicit_tls else 25)
        self._username = unquote(parts.username) if parts.username else None
        self._password = unquote(parts.password) if parts.password else None
        self._starttls = query.get("starttls", ["false"])[0].lower() in {"1", "true", "yes"}
        self._timeout = timeout

    async def send(self, message: EmailMessage, sender: str) -> None:
        await aiosmtplib.send(
            _mime(message, sender),
            hostname=self._hostname,
            port=self._port,
            username=self._username,
            password=self._password,
            use_tls=self._implicit_tls,
            start_tls=self._starttls if not self._implicit_tls else None,
            timeout=self._timeout,
        )


class ConsoleTransport:
    """Prints each email instead of sending it: the zero-setup default on a laptop.

    This is deliberate output for the developer, not a log line; production configures SMTP.
    """

    def __init__(self, stream: TextIO = sys.stdout) -> None:
        self._stream = stream

    async def send(self, message: EmailMessage, sender: str) -> None:
        rule = "-" * 72
        self._stream.write(
            f"\n{rule}\nEmail (no BASTION_SMTP_URL set, so printed here instead of sent)\n"
            f"From: {sender}\nTo: {message.recipient}\nSubject: {message.subject}\n\n"
            f"{message.text}\n{rule}\n"
        )
        self._stream.flush()
