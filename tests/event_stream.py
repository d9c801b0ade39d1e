"""A client of Bastion's event stream, as a service reads it: a thread that keeps one
``GET /api/v1/events`` open and collects what it says, parsed by the verifier's own parser."""

from __future__ import annotations

import json
import queue
import re
import subprocess
import threading
import time
from dataclasses import dataclass
from typing import Any

import httpx
from bastion_verifier.sse import EventStreamParser

from tests.serving import BASTION


@dataclass(frozen=True)
class Received:
    id: str
    type: str
    data: dict[str, Any]


class EventReader:
    """``GET {base_url}/api/v1/events`` in a thread until ``close()``."""

    def __init__(self, base_url: str, key: str, last_event_id: str | None = None) -> None:
        self.events: queue.Queue[Received] = queue.Queue()
        self.opened = threading.Event()
        self.status: int | None = None
        self.headers: httpx.Headers | None = None
        self._stop = threading.Event()
        self._client = httpx.Client(timeout=30)
        headers = {"Authorization": f"Bearer {key}", "Accept": "text/event-stream"}
        if last_event_id is not None:
            headers["Last-Event-ID"] = last_event_id
        self._thread = threading.Thread(
            target=self._run, args=(f"{base_url}/api/v1/events", headers), daemon=True
        )
        self._thread.start()
        assert self.opened.wait(10), "the event stream did not answer"

    def _run(self, url: str, headers: dict[str, str]) -> None:
        parser = EventStreamParser()
        try:
            with self._client.stream("GET", url, headers=headers) as response:
                self.status, self.headers = response.status_code, response.headers
                self.opened.set()
                if response.status_code != 200:
                    return
                for chunk in response.iter_raw():
                    for event in parser.feed(chunk):
                        self.events.put(Received(event.id, event.type, json.loads(event.data)))
                    if self._stop.is_set():
                        return
        except httpx.HTTPError:  # the server went away
            self.opened.set()
        finally:
            self._client.close()

    def next(self, timeout: float = 5.0) -> Received:
        return self.events.get(timeout=timeout)

    def until(self, predicate: Any, timeout: float = 5.0) -> Received:
        """The first event from now that ``predicate`` accepts."""
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            assert left > 0, "no such event arrived in time"
            event = self.events.get(timeout=left)
            if predicate(event):
                return event

    def close(self) -> None:
        # The thread hangs up at its next chunk (a keepalive at the latest); it is a daemon, and
        # a stopping server ends its streams itself.
        self._stop.set()


def create_service_key(environment: dict[str, str], name: str = "tests") -> str:
    """``bastion service-keys create NAME --scope events:read``: the key, its output's last line."""
    result = subprocess.run(
        [BASTION, "service-keys", "create", name, "--scope", "events:read"],
        env=environment,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    key = result.stdout.strip().splitlines()[-1]
    assert re.fullmatch(r"bsk_[A-Za-z0-9_-]{43}", key), result.stdout
    return key
