"""What webhooks need from the network: name resolution and an HTTP POST."""

from __future__ import annotations

import asyncio
import socket

import httpx


class SystemResolver:
    async def addresses(self, host: str, port: int) -> list[str]:
        try:
            found = await asyncio.get_running_loop().getaddrinfo(
                host, port, type=socket.SOCK_STREAM
            )
        except (OSError, UnicodeError):
            return []
        return sorted({str(info[4][0]) for info in found})


class HttpSender:
    """POSTs without following redirects (a redirect could lead anywhere, past the check)."""

    def __init__(self) -> None:
        self._client: httpx.AsyncClient | None = None

    async def post(
        self, url: str, body: bytes, headers: dict[str, str], timeout: float
    ) -> int | None:
        if self._client is None:
            self._client = httpx.AsyncClient(follow_redirects=False, trust_env=False)
        try:
            response = await self._client.post(url, content=body, headers=headers, timeout=timeout)
        except httpx.HTTPError:
            return None
        return response.status_code

    async def close(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            await client.aclose()
