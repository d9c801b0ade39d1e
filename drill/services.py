"""The processes the drill owns besides Bastion: a private Redis and the PostgreSQL proxy.

Both are started in process groups of their own (bench.procs), so stopping them never touches
the shared PostgreSQL or Redis other people use on this machine.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import redis

from bench import procs
from bench.config import REPO

HOST = "127.0.0.1"
START_TIMEOUT = 10.0


class PrivateRedis:
    """A `redis-server` of the drill's own, without persistence, on a fixed port."""

    def __init__(self, port: int, scratch: Path, log: Path) -> None:
        self.port = port
        self.scratch = scratch
        self.log = log
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://{HOST}:{self.port}/0"

    def start(self) -> None:
        argv = ["redis-server", "--bind", HOST, "--port", str(self.port), "--save", ""]
        argv += ["--appendonly", "no", "--dir", str(self.scratch)]
        self.process = procs.spawn(argv, log=self.log)
        deadline = time.monotonic() + START_TIMEOUT
        client = redis.Redis(host=HOST, port=self.port, socket_timeout=1)
        try:
            while time.monotonic() < deadline:
                try:
                    client.ping()
                    return
                except redis.RedisError:
                    time.sleep(0.05)
        finally:
            client.close()
        raise RuntimeError(f"redis-server did not start on port {self.port}; see {self.log}")

    def stop(self) -> None:
        if self.process is not None:
            procs.stop(self.process, grace_seconds=5.0)
            self.process = None


class PostgresProxy:
    """`drill.proxy` in a process of its own, driven through its standard input."""

    def __init__(self, listen_port: int, target_port: int, log: Path) -> None:
        self.listen_port = listen_port
        self.target_port = target_port
        self.log = log
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with self.log.open("ab") as errors:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "drill.proxy", str(self.listen_port), str(self.target_port)],
                cwd=REPO,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=errors,
                start_new_session=True,
            )
        self._expect("ready")

    def command(self, command: str) -> None:
        """`down`, `hang` or `up`; returns once the proxy has it in force."""
        assert self.process is not None and self.process.stdin is not None
        self.process.stdin.write(f"{command}\n".encode())
        self.process.stdin.flush()
        self._expect(f"ok {command}")

    def stop(self) -> None:
        if self.process is not None:
            procs.stop(self.process, grace_seconds=2.0)
            self.process = None

    def _expect(self, line: str) -> None:
        assert self.process is not None and self.process.stdout is not None
        answer = self.process.stdout.readline().decode().strip()
        if answer != line:
            raise RuntimeError(f"proxy answered {answer!r} instead of {line!r}; see {self.log}")
