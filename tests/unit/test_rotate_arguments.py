"""`bastion keys rotate --if-older-than` takes whole days, at least 1, and says so in one line.

The command line is parsed in-process; the days are refused before any setting is read.
"""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from bastion.cli import app


@pytest.mark.parametrize("days", ["0", "-3", "1.5", "two", "", "²", "99999999999999999999"])
def test_anything_but_whole_days_from_one_is_refused_in_one_line(days: str) -> None:
    result = CliRunner().invoke(app, ["keys", "rotate", "--if-older-than", days])
    assert result.exit_code == 2
    assert result.stdout == ""
    assert result.stderr == (
        f"Error: --if-older-than takes a whole number of days from 1 to 36500, not {days!r}.\n"
    )
