"""Finding text no database can store, wherever a request carries it."""

from __future__ import annotations

import json
from urllib.parse import urlencode

from hypothesis import given
from hypothesis import strategies as st

from bastion.http.unstorable import UNSTORABLE, is_storable, unstorable_locations

JSON = b"application/json"
FORM = b"application/x-www-form-urlencoded"
unstorable_characters = st.sampled_from(["\x00", "\ud800", "\udbff", "\udc00", "\udfff"])
# Any text JSON or a form can carry, surrogates included (JSON escapes them).
any_text = st.text(alphabet=st.characters(codec=None), max_size=20)
storable_text = any_text.filter(lambda text: not UNSTORABLE.search(text))
documents = st.recursive(
    st.none() | st.booleans() | st.integers() | any_text,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(storable_text, inner, max_size=4),
    max_leaves=20,
)


def in_json(document: object) -> list[list[str]]:
    return unstorable_locations("/", b"", JSON, json.dumps(document).encode())


def holds_unstorable(value: object) -> bool:
    if isinstance(value, str):
        return bool(UNSTORABLE.search(value))
    if isinstance(value, dict):
        return any(holds_unstorable(item) for item in value.values())
    if isinstance(value, list):
        return any(holds_unstorable(item) for item in value)
    return False


@given(documents)
def test_a_json_body_is_refused_exactly_when_some_string_in_it_is_unstorable(
    document: object,
) -> None:
    assert bool(in_json(document)) == holds_unstorable(document)


@given(st.dictionaries(storable_text, storable_text, min_size=1), unstorable_characters, st.data())
def test_the_location_names_the_field_holding_the_unstorable_text(
    document: dict[str, str], character: str, data: st.DataObject
) -> None:
    field = data.draw(st.sampled_from(sorted(document)))
    document[field] += character
    assert in_json(document) == [["body", field]]


@given(st.dictionaries(storable_text, storable_text, min_size=1), st.data())
def test_a_nul_in_a_query_value_is_named_and_a_form_is_left_to_its_page(
    pairs: dict[str, str], data: st.DataObject
) -> None:
    field = data.draw(st.sampled_from(sorted(pairs)))
    pairs[field] += "\x00"
    encoded = urlencode(pairs).encode()
    assert unstorable_locations("/", encoded, b"", None) == [["query", field]]
    assert unstorable_locations("/", b"", FORM, encoded) == []


@given(any_text)
def test_text_is_storable_exactly_when_it_holds_no_nul_and_no_lone_surrogate(text: str) -> None:
    assert is_storable(text) == all(c != "\x00" and not 0xD800 <= ord(c) <= 0xDFFF for c in text)


@given(st.text(max_size=40), any_text)
def test_a_path_is_refused_exactly_when_it_holds_unstorable_text(prefix: str, text: str) -> None:
    path = f"/{prefix}{text}"
    assert bool(unstorable_locations(path, b"", b"", None)) == bool(UNSTORABLE.search(path))


def test_an_escaped_backslash_followed_by_u0000_is_plain_text() -> None:
    assert unstorable_locations("/", b"", JSON, rb'{"a": "\\u0000"}') == []


def test_a_surrogate_pair_is_one_storable_character() -> None:
    assert unstorable_locations("/", b"", JSON, rb'{"a": "\ud83d\udd10"}') == []


def test_a_body_that_is_not_json_is_left_to_the_route() -> None:
    assert unstorable_locations("/", b"", JSON, b'{"a": "\\u0000"') == []


def test_a_deeply_nested_document_is_searched_without_recursion() -> None:
    depth = 100_000
    body = b"[" * depth + b'"\\u0000"' + b"]" * depth
    assert unstorable_locations("/", b"", JSON, body) == []  # json.loads gives up: left to route
    shallow = b"[" * 500 + b'"\\u0000"' + b"]" * 500
    assert unstorable_locations("/", b"", JSON, shallow) == [["body", *["0"] * 500]]
