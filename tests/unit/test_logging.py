"""A crash is logged with its traceback, never with the values its frames held."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import structlog

from bastion.logging import configure_logging

SECRET = "bastion_refresh=SecretRefreshToken-123456"


@pytest.fixture
def restore_logging() -> Iterator[None]:
    saved = structlog.get_config()
    yield
    structlog.configure(**saved)


def crash(cookie: str) -> None:
    raise RuntimeError("the handler failed")


@pytest.mark.usefixtures("restore_logging")
@pytest.mark.parametrize("json", [True, False])
def test_a_crash_log_names_the_frames_but_shows_none_of_their_values(
    json: bool, capsys: pytest.CaptureFixture[str]
) -> None:
    configure_logging(json=json)
    try:
        crash(SECRET)
    except RuntimeError as exc:
        structlog.get_logger("test").error("request.crashed", exc_info=exc)

    logged = capsys.readouterr().err
    assert "the handler failed" in logged and "crash" in logged
    assert "SecretRefreshToken" not in logged
