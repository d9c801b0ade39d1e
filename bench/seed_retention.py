"""Rows for the retention purge to delete, to measure it at scale (docs/operations.md).

    .venv/bin/python -m bench.seed_retention postgresql://postgres@127.0.0.1:5432/DB --rows 1000000

Adds ROWS audit events older than the default AUDIT_RETENTION_DAYS (90), and ROWS sessions that
ended before the default SESSION_RETENTION_DAYS (30), half expired and half revoked, each with a
refresh token; they belong to the database's users (one is made if it has none). PostgreSQL only:
one INSERT … SELECT FROM generate_series per table, about a minute per million rows on 2 cores.
Then run `bastion purge` (or let a server's background purge run) while the load of interest
runs, and compare its latencies with a run without the purge.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time

import asyncpg

USERS = "SELECT coalesce(array_agg(id), '{}') FROM (SELECT id FROM users LIMIT 100000) AS sample"
ONE_USER = """
INSERT INTO users (id, email, password_hash, role, is_verified, is_active, created_at, updated_at)
VALUES (gen_random_uuid(), 'retention-seed@example.com', '!', 'user', true, true, now(), now())
RETURNING id
"""
# Each row at its own second, well past its window: 100 days for events, 60 for sessions.
AUDIT_EVENTS = """
INSERT INTO audit_events (occurred_at, type, user_id, ip, user_agent, details)
SELECT now() - interval '100 days' - i * interval '1 second', 'login_succeeded',
       ($2::uuid[])[1 + i % cardinality($2::uuid[])], '203.0.113.1', 'retention seed', '{}'
FROM generate_series(1, $1::int) AS i
"""
SESSIONS = """
WITH ended AS (
    INSERT INTO sessions (id, user_id, created_at, expires_at, last_seen_at, ip, user_agent,
                          remember_me, revoked_at, revoke_reason, auth_time)
    SELECT gen_random_uuid(), ($2::uuid[])[1 + i % cardinality($2::uuid[])],
           now() - interval '90 days' - i * interval '1 second',
           now() - interval '60 days' - i * interval '1 second',
           now() - interval '90 days', '203.0.113.1', 'retention seed', true,
           CASE WHEN i % 2 = 0 THEN now() - interval '80 days' - i * interval '1 second' END,
           CASE WHEN i % 2 = 0 THEN 'logout' END,
           now() - interval '90 days' - i * interval '1 second'
    FROM generate_series(1, $1::int) AS i
    RETURNING id, created_at
)
INSERT INTO refresh_tokens (token_hash, session_id, created_at)
SELECT encode(sha256(id::text::bytea), 'hex'), id, created_at FROM ended
"""


async def seed(url: str, rows: int) -> None:
    connection = await asyncpg.connect(url)
    try:
        users = await connection.fetchval(USERS) or [await connection.fetchval(ONE_USER)]
        for name, statement in (("audit events", AUDIT_EVENTS), ("sessions", SESSIONS)):
            started = time.monotonic()
            await connection.execute(statement, rows, users)
            print(f"{rows} {name} in {time.monotonic() - started:.1f} s", file=sys.stderr)
        await connection.execute("ANALYZE audit_events, sessions, refresh_tokens")
    finally:
        await connection.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.seed_retention", description=__doc__)
    parser.add_argument("url", help="postgresql://user@host:port/database (not +asyncpg)")
    parser.add_argument("--rows", type=int, default=1_000_000, help="rows of each kind")
    arguments = parser.parse_args(argv)
    asyncio.run(seed(arguments.url.replace("+asyncpg", ""), arguments.rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
