"""Which database failures are an outage (503, retried later) rather than a bug (500)."""

from __future__ import annotations

import pytest
from sqlalchemy.exc import DBAPIError

from bastion.adapters.sql.unit_of_work import is_unavailable


class DriverError(Exception):
    def __init__(self, sqlstate: str | None) -> None:
        super().__init__("driver error")
        self.sqlstate = sqlstate


def wrapped(sqlstate: str | None) -> DBAPIError:
    return DBAPIError("SELECT 1", None, DriverError(sqlstate))


@pytest.mark.parametrize(
    "sqlstate",
    [
        "53300",  # too many clients already
        "53000",  # insufficient resources
        "57P01",  # the server is shutting down
        "57P03",  # the server is starting up
        "08006",  # the connection failed
    ],
)
def test_a_server_that_refuses_work_for_now_is_an_outage(sqlstate: str) -> None:
    assert is_unavailable(wrapped(sqlstate))


@pytest.mark.parametrize("sqlstate", ["23505", "42P01", "22001", None])
def test_a_refused_statement_is_not_an_outage(sqlstate: str | None) -> None:
    assert not is_unavailable(wrapped(sqlstate))
