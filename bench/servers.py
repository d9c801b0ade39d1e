"""The servers a run compares, all granian with the ASGI interface and the same worker count."""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import httpx

from bench import procs
from bench.config import HOST, MAIN_VENV, PEER_VENV, REPO, WORKERS


@dataclass(frozen=True)
class Server:
    name: str
    process: subprocess.Popen[bytes]
    base_url: str
    log: Path

    def workers(self) -> list[int]:
        """The granian worker processes: the direct children of the granian main process."""
        return procs.children(self.process.pid)

    def stop(self) -> None:
        procs.stop(self.process)


def clean_environment(extra: Mapping[str, str]) -> dict[str, str]:
    """The bench's environment without any BASTION_* the caller's shell may carry, plus `extra`."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("BASTION_")}
    env.update(extra)
    return env


def start_bastion(port: int, env: Mapping[str, str], log: Path, cwd: Path) -> Server:
    # cwd is a scratch directory so Bastion reads no stray .env and writes no secret file here.
    argv = [
        str(MAIN_VENV / "bin" / "bastion"),
        "serve",
        "--host",
        HOST,
        "--port",
        str(port),
        "--workers",
        str(WORKERS),
    ]
    process = procs.spawn(argv, env=clean_environment(env), cwd=cwd, log=log)
    return Server("bastion", process, f"http://{HOST}:{port}", log)


def start_granian(
    name: str,
    target: str,
    port: int,
    log: Path,
    *,
    peer: bool = False,
    env: Mapping[str, str] | None = None,
) -> Server:
    """Serve `target` (module:attribute under the repo) the way `bastion serve` serves Bastion."""
    venv = PEER_VENV if peer else MAIN_VENV
    argv = [
        str(venv / "bin" / "granian"),
        "--interface",
        "asgi",
        # The event loop `bastion serve` runs on.
        "--loop",
        "uvloop",
        "--workers",
        str(WORKERS),
        "--host",
        HOST,
        "--port",
        str(port),
        target,
    ]
    process = procs.spawn(argv, env=clean_environment(env or {}), cwd=REPO, log=log)
    return Server(name, process, f"http://{HOST}:{port}", log)


def wait_ready(server: Server, path: str, timeout: float) -> None:
    """Block until `path` answers 200 and every worker is up, or fail with the server's log."""
    deadline = time.monotonic() + timeout
    with httpx.Client(base_url=server.base_url, timeout=2.0) as client:
        while time.monotonic() < deadline:
            if server.process.poll() is not None:
                raise RuntimeError(f"{server.name} exited early:\n{_tail(server.log)}")
            try:
                ready = client.get(path).status_code == 200
            except httpx.TransportError:
                ready = False
            if ready and len(server.workers()) >= WORKERS:
                return
            time.sleep(0.2)
    raise TimeoutError(f"{server.name} not ready after {timeout:.0f} s:\n{_tail(server.log)}")


def _tail(log: Path, lines: int = 40) -> str:
    try:
        return "\n".join(log.read_text(errors="replace").splitlines()[-lines:])
    except FileNotFoundError:
        return "(no log)"
