"""Cursors arrive as text from anyone: a row id is read strictly, and only within 64 bits."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bastion.core.pagination import MAX_ROW_ID, parse_row_id


@given(st.integers(min_value=1, max_value=MAX_ROW_ID))
def test_every_row_id_reads_back_from_its_cursor(row_id: int) -> None:
    assert parse_row_id(str(row_id)) == row_id


@given(st.text())
def test_any_text_is_a_row_id_within_64_bits_or_refused(text: str) -> None:
    try:
        row_id = parse_row_id(text)
    except ValueError:
        return
    assert 1 <= row_id <= MAX_ROW_ID
    assert text == str(row_id).zfill(len(text))


@given(st.integers().filter(lambda value: not 1 <= value <= MAX_ROW_ID))
def test_integers_outside_the_row_ids_are_refused(value: int) -> None:
    with pytest.raises(ValueError):
        parse_row_id(str(value))


@pytest.mark.parametrize("text", ["+5", " 5", "5 ", "1_000", "٣", "５", "0x10", ""])
def test_only_plain_ascii_digits_make_a_row_id(text: str) -> None:
    with pytest.raises(ValueError):
        parse_row_id(text)
