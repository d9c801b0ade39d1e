"""The HTTP clients the verifier talks to Bastion with, created when first needed."""

from __future__ import annotations

import threading
from importlib.metadata import version

import httpx

USER_AGENT = f"bastion-verifier/{version('bastion-verifier')}"


class HttpClients:
    """One pooled sync client and one async client, so each call reuses open connections."""

    def __init__(self, timeout: float) -> None:
        self._timeout = timeout
        self._lock = threading.Lock()
        self._sync: httpx.Client | None = None
        self._async: httpx.AsyncClient | None = None

    def sync_client(self) -> httpx.Client:
        if self._sync is None:
            with self._lock:
                if self._sync is None:
                    self._sync = httpx.Client(timeout=self._timeout, headers=self.headers())
        return self._sync

    def async_client(self) -> httpx.AsyncClient:
        if self._async is None:
            with self._lock:
                if self._async is None:
                    self._async = httpx.AsyncClient(timeout=self._timeout, headers=self.headers())
        return self._async

    def headers(self) -> dict[str, str]:
        return {"User-Agent": USER_AGENT}

    def close(self) -> None:
        with self._lock:
            client, self._sync = self._sync, None
        if client is not None:
            client.close()

    async def aclose(self) -> None:
        with self._lock:
            client, self._async = self._async, None
        if client is not None:
            await client.aclose()
        self.close()
