"""Bearer headers and token headers come from anyone: parsing them never fails but as invalid."""

from __future__ import annotations

import base64
import json

from hypothesis import given
from hypothesis import strategies as st
from starlette.requests import Request

from bastion.sessions.routes import bearer_token
from bastion.tokens.errors import InvalidToken
from bastion.tokens.service import signing_kid

# Whatever JSON a header segment may hold, nested as deep as an attacker likes.
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda inner: st.lists(inner) | st.dictionaries(st.text(), inner),
    max_leaves=50,
)


def segment(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def kid_or_invalid(token: str) -> str | None:
    try:
        return signing_kid(token)
    except InvalidToken:
        return None


@given(st.text())
def test_any_text_as_a_token_yields_a_kid_or_is_invalid(token: str) -> None:
    kid = kid_or_invalid(token)
    assert kid is None or isinstance(kid, str)


@given(st.binary(max_size=2048), st.text(max_size=100))
def test_any_bytes_as_a_header_segment_yield_a_kid_or_are_invalid(header: bytes, rest: str) -> None:
    kid = kid_or_invalid(f"{segment(header)}.{rest}")
    assert kid is None or isinstance(kid, str)


@given(json_values)
def test_a_header_that_is_any_json_but_an_eddsa_object_with_a_kid_is_invalid(
    header: object,
) -> None:
    kid = kid_or_invalid(f"{segment(json.dumps(header).encode())}.e30.AA")
    if kid is not None:
        assert isinstance(header, dict) and header["alg"] == "EdDSA" and header["kid"] == kid


@given(st.integers(min_value=1, max_value=100_000), st.sampled_from(["[", '{"a":']))
def test_a_header_nested_to_any_depth_is_invalid(depth: int, opener: str) -> None:
    closer = "]" if opener == "[" else "}"
    header = (opener * depth + "1" + closer * depth).encode()
    assert kid_or_invalid(f"{segment(header)}.e30.AA") is None


@given(st.text(alphabet=st.characters(max_codepoint=0x7E), min_size=1).filter(str.isalnum))
def test_an_eddsa_header_names_its_kid(kid: str) -> None:
    header = json.dumps({"alg": "EdDSA", "kid": kid, "typ": "JWT"}).encode()
    assert signing_kid(f"{segment(header)}.e30.AA") == kid


def request_with_authorization(value: bytes) -> Request:
    return Request({"type": "http", "method": "GET", "headers": [(b"authorization", value)]})


@given(st.binary(max_size=300))
def test_any_authorization_header_yields_a_stripped_token_or_is_invalid(value: bytes) -> None:
    try:
        token = bearer_token(request_with_authorization(value))
    except InvalidToken:
        return
    assert token and token == token.strip()
    assert value.decode("latin-1").lower().startswith("bearer ")


TOKEN_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_."


@given(
    st.sampled_from(["Bearer", "bearer", "BEARER"]),
    st.text(alphabet=TOKEN_ALPHABET, min_size=1),
    st.sampled_from(["", " ", "  "]),
)
def test_the_scheme_is_case_insensitive_and_the_token_is_kept_whole(
    scheme: str, token: str, padding: str
) -> None:
    value = f"{scheme} {padding}{token}{padding}".encode()
    assert bearer_token(request_with_authorization(value)) == token
