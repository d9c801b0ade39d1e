"""The one canonical form of an email address: properties that hold for any input."""

from __future__ import annotations

import re
import unicodedata

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from bastion.core.email_address import (
    MAX_EMAIL_LENGTH,
    SPECIAL_USE_DOMAINS,
    InvalidEmailAddress,
    fold,
    normalize_email,
)
from bastion.http.schemas import EMAIL_SCHEMA

FULL_WIDTH_OFFSET = ord("ａ") - ord("a")


def canonical_or_none(text: str) -> str | None:
    try:
        return normalize_email(text)
    except InvalidEmailAddress:
        return None


def spelt_differently(address: str, choices: list[int]) -> str:
    """``address`` with each ASCII letter or digit in another case or in full width."""
    out = []
    for c, choice in zip(address, choices, strict=False):
        if c.isascii() and c.isalnum() and choice == 1:
            out.append(c.swapcase())
        elif c.isascii() and c.isalnum() and choice == 2:
            out.append(chr(ord(c) + FULL_WIDTH_OFFSET))
        else:
            out.append(c)
    return "".join(out) + address[len(out) :]


local_parts = st.text(
    st.characters(categories=["L", "M", "N", "Pd", "Pc", "Sm", "So", "Nl"]), min_size=1, max_size=30
)
addresses = st.one_of(
    st.emails(),
    st.builds(
        lambda local, domain: f"{local}@{domain}",
        local_parts,
        st.emails().map(lambda e: e.rpartition("@")[2]),
    ),
)


@given(st.text(max_size=400))
def test_any_text_is_either_an_address_or_refused(text: str) -> None:
    canonical_or_none(text)


@given(addresses)
def test_the_canonical_form_is_its_own_canonical_form(address: str) -> None:
    canonical = canonical_or_none(address)
    assume(canonical is not None)
    assert normalize_email(canonical) == canonical


@given(addresses)
def test_the_canonical_form_has_nothing_left_to_fold(address: str) -> None:
    canonical = canonical_or_none(address)
    assume(canonical is not None)
    assert canonical is not None
    local_part, _, domain = canonical.rpartition("@")
    assert fold(local_part) == local_part
    assert unicodedata.is_normalized("NFKC", canonical)
    assert domain == domain.lower()


@given(st.emails(), st.lists(st.sampled_from([0, 1, 2]), max_size=300))
def test_spellings_that_differ_in_case_or_width_are_one_address(
    address: str, choices: list[int]
) -> None:
    canonical = canonical_or_none(address)
    assume(canonical is not None)
    assert normalize_email(spelt_differently(address, choices)) == canonical


@given(st.text(st.characters(categories=["L", "N", "Zs"]), max_size=20), st.emails())
def test_an_address_with_a_display_name_is_refused(name: str, address: str) -> None:
    with pytest.raises(InvalidEmailAddress):
        normalize_email(f"{name} <{address}>")


@given(st.emails(), st.text(" \t", max_size=3), st.text(" \t", max_size=3))
def test_surrounding_blanks_do_not_change_the_address(
    address: str, before: str, after: str
) -> None:
    assert canonical_or_none(before + address + after) == canonical_or_none(address)


@pytest.mark.parametrize(
    ("spelling", "canonical"),
    [
        ("Alice@Example.com", "alice@example.com"),
        ("ａlice@example.com", "alice@example.com"),
        ("ALİCE@example.com", "alice@example.com"),
        ("ali\u0307ce@example.com", "alice@example.com"),
        ("user@ｅxample.com", "user@example.com"),
        ("user@xn--bcher-kva.example", "user@bücher.example"),
        ("STRAẞE@example.com", "strasse@example.com"),
        ("user@straße.de", "user@straße.de"),
    ],
)
def test_known_look_alikes_have_one_canonical_form(spelling: str, canonical: str) -> None:
    assert normalize_email(spelling) == canonical


@pytest.mark.parametrize(
    "text",
    ["x <user@example.com>", "a＠b@example.com", "ａ．@example.com", "user", "a" * 321 + "@x.com"],
)
def test_text_that_is_or_folds_into_no_address_is_refused(text: str) -> None:
    with pytest.raises(InvalidEmailAddress):
        normalize_email(text)


LONGEST = f"{'a' * 64}@{'b' * 63}.{'c' * 63}.{'d' * 57}.com"


def documented_as_refused(text: str) -> bool:
    """Whether the OpenAPI schema of an email field refuses ``text`` (a JSON Schema pattern is
    searched for, not matched whole)."""
    return len(text) > EMAIL_SCHEMA["maxLength"] or bool(
        re.search(EMAIL_SCHEMA["not"]["pattern"], text)
    )


def test_the_longest_address_is_accepted_and_one_blank_more_is_refused_as_documented() -> None:
    assert len(LONGEST) == MAX_EMAIL_LENGTH == EMAIL_SCHEMA["maxLength"]
    assert normalize_email(LONGEST) == LONGEST
    assert documented_as_refused(f" {LONGEST}")
    with pytest.raises(InvalidEmailAddress):
        normalize_email(f" {LONGEST}")


@pytest.mark.parametrize("domain", SPECIAL_USE_DOMAINS)
def test_every_special_use_domain_is_refused_and_documented_in_any_case(domain: str) -> None:
    for address in (f"ann@{domain}", f"ann@mail.{domain.upper()}"):
        assert documented_as_refused(address)
        with pytest.raises(InvalidEmailAddress):
            normalize_email(address)
    assert not documented_as_refused(f"ann@{domain}.example.com")


@given(st.one_of(addresses, st.text(max_size=300)))
def test_what_the_schema_documents_as_refused_is_refused(text: str) -> None:
    if documented_as_refused(text):
        assert canonical_or_none(text) is None
