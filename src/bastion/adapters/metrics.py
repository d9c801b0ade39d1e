"""Prometheus metrics, correct when several worker processes serve the same port.

Each app owns its instruments. Under ``bastion serve`` every worker writes its values to files in
``PROMETHEUS_MULTIPROC_DIR`` and a scrape, whichever worker answers it, adds up all of them.
"""

from __future__ import annotations

import os
import re

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    values,
)
from prometheus_client.multiprocess import MultiProcessCollector, mark_process_dead

from bastion.audit.model import AuditEvent, EventType, LoginFailure

MULTIPROCESS_DIR_ENV = "PROMETHEUS_MULTIPROC_DIR"
REQUEST_BUCKETS = (0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
HASH_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
LOGIN_FAILURE_REASONS = frozenset(reason.value for reason in LoginFailure)
LOCKOUT_SCOPES = {EventType.IP_BLOCKED: "ip", EventType.ACCOUNT_PROTECTED: "account"}
# Clients choose the method: anything else is counted as OTHER, or each would be a new series.
HTTP_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


class Metrics:
    """Every instrument, and the observer hooks the services call.

    It observes requests (the middleware), committed audit events (logins, lockouts, refresh
    reuse), mail delivery (the outbox worker) and password hashing (the hasher).
    """

    def __init__(self) -> None:
        if os.environ.get(MULTIPROCESS_DIR_ENV):
            _store_values_in_files()
        self.registry = CollectorRegistry()
        registry = self.registry
        self.requests = Counter(
            "bastion_http_requests",
            "HTTP requests by method, route template and status.",
            ["method", "route", "status"],
            registry=registry,
        )
        self.request_duration = Histogram(
            "bastion_http_request_duration_seconds",
            "HTTP request latency by method, route template and status.",
            ["method", "route", "status"],
            buckets=REQUEST_BUCKETS,
            registry=registry,
        )
        self._request_series: dict[tuple[str, str, int], tuple[Counter, Histogram]] = {}
        self.login_successes = Counter(
            "bastion_login_successes", "Successful logins.", registry=registry
        )
        self.login_failures = Counter(
            "bastion_login_failures", "Failed logins by reason.", ["reason"], registry=registry
        )
        self.lockouts = Counter(
            "bastion_lockouts",
            "Lockouts started, by scope (ip or account).",
            ["scope"],
            registry=registry,
        )
        self.refresh_reuse = Counter(
            "bastion_refresh_token_reuse_detected",
            "Spent refresh tokens presented again (the session was revoked).",
            registry=registry,
        )
        self.emails_sent = Counter(
            "bastion_emails_sent", "Emails delivered, by kind.", ["kind"], registry=registry
        )
        self.emails_failed = Counter(
            "bastion_emails_failed",
            "Email delivery attempts that failed, by kind.",
            ["kind"],
            registry=registry,
        )
        self.outbox_backlog = Gauge(
            "bastion_outbox_backlog",
            "Emails queued and not yet delivered or given up on (read at scrape time).",
            multiprocess_mode="mostrecent",
            registry=registry,
        )
        # Set by each worker when its limiter changes state (and at each scrape it answers), and
        # summed over live workers only: a worker killed while Redis was down must not leave a 1
        # behind, nor may a worker that has not answered a scrape since Redis came back.
        self.limiter_degraded = Gauge(
            "bastion_limiter_degraded",
            "1 while Redis is configured but unreachable and limits fall back to this process.",
            multiprocess_mode="livemax",
            registry=registry,
        )
        self.password_hash_duration = Histogram(
            "bastion_password_hash_seconds",
            "Time to hash or verify one password, queueing for a hashing thread included.",
            buckets=HASH_BUCKETS,
            registry=registry,
        )

    def observe_request(self, method: str, route: str, status: int, seconds: float) -> None:
        # Route templates, methods and statuses are few, so this stays small.
        key = (method if method in HTTP_METHODS else "OTHER", route, status)
        series = self._request_series.get(key)
        if series is None:
            # Looking a labelled series up costs more than updating it: keep them.
            labels = (key[0], route, str(status))
            series = (self.requests.labels(*labels), self.request_duration.labels(*labels))
            self._request_series[key] = series
        count, duration = series
        count.inc()
        duration.observe(seconds)

    def recorded(self, event: AuditEvent) -> None:
        if event.type is EventType.LOGIN_SUCCEEDED:
            self.login_successes.inc()
        elif event.type is EventType.LOGIN_FAILED:
            reason = str(event.details.get("reason", ""))
            # Bounded label values: an unexpected reason must not create a new series per value.
            self.login_failures.labels(reason if reason in LOGIN_FAILURE_REASONS else "other").inc()
        elif event.type in LOCKOUT_SCOPES:
            self.lockouts.labels(LOCKOUT_SCOPES[event.type]).inc()
        elif event.type is EventType.REFRESH_REUSE_DETECTED:
            self.refresh_reuse.inc()

    def sent(self, kind: str) -> None:
        self.emails_sent.labels(kind).inc()

    def failed(self, kind: str) -> None:
        self.emails_failed.labels(kind).inc()

    def observe_hash_time(self, seconds: float) -> None:
        self.password_hash_duration.observe(seconds)

    def set_outbox_backlog(self, backlog: int) -> None:
        self.outbox_backlog.set(backlog)

    def set_limiter_degraded(self, degraded: bool) -> None:
        self.limiter_degraded.set(1 if degraded else 0)

    def exposition(self) -> bytes:
        """The Prometheus text format: every worker's values when they share a directory."""
        directory = os.environ.get(MULTIPROCESS_DIR_ENV)
        if directory:
            _forget_dead_workers(directory)
            registry = CollectorRegistry()
            MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
            return generate_latest(registry)
        return generate_latest(self.registry)


LIVE_GAUGE_FILE = re.compile(r"^gauge_live[a-z]+_(\d+)\.db$")


def _forget_dead_workers(directory: str) -> None:
    """Drop the live-only gauges of worker processes that are gone (a worker killed, and
    restarted by the server, leaves its files behind)."""
    for name in os.listdir(directory):
        found = LIVE_GAUGE_FILE.match(name)
        if found and not _alive(int(found.group(1))):
            mark_process_dead(int(found.group(1)), directory)  # type: ignore[no-untyped-call]


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _store_values_in_files() -> None:
    # prometheus_client decides where values live when it is first imported. `bastion serve`
    # imports it before choosing the shared directory, and its workers are forked from it, so
    # they inherit the in-memory choice. Switch once: a second switch would open the same file
    # twice in one process.
    if values.ValueClass is values.MutexValue:
        values.ValueClass = values.get_value_class()  # type: ignore[no-untyped-call]
