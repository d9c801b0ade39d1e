"""Starting, observing and stopping the processes the benchmark owns.

Every process is started in a session of its own, so stopping it stops everything it spawned
(granian workers, multiprocessing helpers) with one signal to the process group.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
TCP_ESTABLISHED = "01"  # the state column of /proc/net/tcp


def free_port() -> int:
    """A port the kernel just handed out on 127.0.0.1, free unless someone races for it."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def spawn(
    argv: Sequence[str],
    *,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
    log: Path | None = None,
) -> subprocess.Popen[bytes]:
    """Start argv as the leader of a new process group, output to `log` (or discarded)."""
    output = log.open("ab") if log else subprocess.DEVNULL
    try:
        return subprocess.Popen(
            list(argv),
            env=dict(env) if env is not None else None,
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    finally:
        if log:
            output.close()  # type: ignore[union-attr]


def stop(process: subprocess.Popen[bytes], grace_seconds: float = 10.0) -> None:
    """Stop the process and its whole group: SIGTERM, then SIGKILL after the grace period."""
    for sig, wait in ((signal.SIGTERM, grace_seconds), (signal.SIGKILL, 5.0)):
        try:
            os.killpg(process.pid, sig)
        except ProcessLookupError:
            pass
        try:
            process.wait(timeout=wait)
        except subprocess.TimeoutExpired:
            continue
        # The leader is gone; stragglers in its group (an orphaned worker) still get the signal.
        if not _group_alive(process.pid):
            return
    _kill_group(process.pid)


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True


def _kill_group(pgid: int) -> None:
    try:
        os.killpg(pgid, signal.SIGKILL)
    except ProcessLookupError:
        pass


@dataclass(frozen=True)
class Usage:
    """CPU seconds of a finished child, from wait4, which needs no cooperation from it."""

    returncode: int
    cpu_seconds: float


def wait_with_usage(process: subprocess.Popen[bytes], timeout: float) -> Usage:
    """Reap `process` and return its CPU time; stop its group if it outlives `timeout`."""
    deadline = time.monotonic() + timeout
    while True:
        pid, status, rusage = os.wait4(process.pid, os.WNOHANG)
        if pid:
            process.returncode = os.waitstatus_to_exitcode(status)
            return Usage(process.returncode, rusage.ru_utime + rusage.ru_stime)
        if time.monotonic() > deadline:
            stop(process, grace_seconds=2.0)
            raise TimeoutError(f"{process.args!r} ran longer than {timeout:.0f} s")
        time.sleep(0.05)


def children(pid: int) -> list[int]:
    """Direct children of pid, i.e. the granian workers of a granian main process."""
    found: list[int] = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            found.extend(int(child) for child in (task / "children").read_text().split())
        except FileNotFoundError:
            continue
    return sorted(set(found))


def cpu_seconds(pid: int) -> float:
    """User plus system CPU of every thread of pid so far (0 once it is gone)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return 0.0
    # The command name may hold spaces; the numeric fields start after its closing paren.
    fields = stat[stat.rindex(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def established_connections(pids: Sequence[int], port: int) -> list[int]:
    """How many established TCP connections to local ``port`` each process holds."""
    sockets = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            local_port = int(fields[1].rsplit(":", 1)[1], 16)
            if fields[3] == TCP_ESTABLISHED and local_port == port:
                sockets.add(f"socket:[{fields[9]}]")
    counts = []
    for pid in pids:
        held = 0
        for fd in Path(f"/proc/{pid}/fd").iterdir():
            with contextlib.suppress(OSError):
                held += os.readlink(fd) in sockets
        counts.append(held)
    return counts


def peak_rss_mb(pid: int) -> float:
    """VmHWM: the most resident memory pid has ever had, in MiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmHWM for pid {pid}")


# The database and cache serve the system under test, so their CPU is not someone else's.
SERVICE_COMMANDS = frozenset({"postgres", "redis-server"})


def foreign_cpu_seconds(own_groups: set[int]) -> dict[int, float]:
    """CPU so far of every process outside `own_groups` and the services, by pid.

    A shared machine (tests running beside the bench) shows up as the growth of this between
    two snapshots; a process that starts and ends in between is missed, so it is a lower bound.
    """
    usage: dict[int, float] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except (FileNotFoundError, ProcessLookupError):
            continue
        command = stat[stat.index("(") + 1 : stat.rindex(")")]
        fields = stat[stat.rindex(")") + 2 :].split()
        if int(fields[2]) in own_groups or command in SERVICE_COMMANDS:
            continue
        usage[int(entry.name)] = (int(fields[11]) + int(fields[12])) / CLOCK_TICKS
    return usage


def growth(before: dict[int, float], after: dict[int, float]) -> float:
    """CPU seconds used between two foreign_cpu_seconds snapshots."""
    return sum(cpu - before.get(pid, 0.0) for pid, cpu in after.items())


def machine_busy_ticks() -> tuple[int, int]:
    """(busy, total) jiffies of all CPUs, to tell whether the machine was saturated."""
    fields = [int(value) for value in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = fields[3] + fields[4]
    total = sum(fields[:8])
    return total - idle, total
