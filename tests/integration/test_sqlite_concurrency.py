"""The embedded default must not answer 'database is locked' under concurrent writes."""

from __future__ import annotations

import asyncio
from pathlib import Path

from bastion.migrate import upgrade
from tests.support import STRONG_PASSWORD, SmtpServer, make_settings, random_email, running_app


async def test_fifty_concurrent_registrations_on_sqlite_all_succeed(
    tmp_path: Path, smtp: SmtpServer
) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'concurrent.db'}"
    await asyncio.to_thread(upgrade, url)
    # Fifty sign-ups from one address: lift the per-IP registration limit.
    settings = make_settings(url, smtp.url, register_per_hour=50)
    async with running_app(settings) as (client, _):
        emails = [random_email("burst") for _ in range(50)]
        responses = await asyncio.gather(
            *(
                client.post("/api/v1/auth/register", json={"email": e, "password": STRONG_PASSWORD})
                for e in emails
            )
        )
    assert [r.status_code for r in responses] == [202] * 50
