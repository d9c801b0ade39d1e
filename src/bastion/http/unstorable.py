"""Text no database can store, found in any part of a request before a route sees it.

PostgreSQL's text types cannot hold NUL, and a lone UTF-16 surrogate (which JSON's ``\\ud800``
escape can produce) cannot be encoded as UTF-8 at all. Either one would fail deep in a query as
a 500, so a request carrying one in its path, a query parameter or a JSON body field is refused
as a validation error, on every database alike.

Form posts are left to their handlers: only the pages of ``pages/`` take them (the API refuses
any body but JSON), and a person who sent one must see a page, with the error, rather than a
problem document. Their form check refuses such text with ``is_storable``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from urllib.parse import parse_qsl

UNSTORABLE = re.compile("[\x00\ud800-\udfff]")
# Cheap tests on the raw bytes; only when one matches is the request decoded and searched.
MAY_HOLD_NUL = re.compile(rb"\x00|%00")
MAY_HOLD_UNSTORABLE_JSON = re.compile(rb"\x00|\\u(?:0000|[dD][89abcdefABCDEF])")
JSON_TYPES = (b"application/json",)

Location = list[str]


def unstorable_locations(
    path: str, query_string: bytes, content_type: bytes, body: bytes | None
) -> list[Location]:
    """Where the request holds unstorable text, as validation-error locations."""
    found: list[Location] = []
    if UNSTORABLE.search(path):
        found.append(["path"])
    if MAY_HOLD_NUL.search(query_string):
        found.extend(_in_query(query_string))
    if (
        body
        and (content_type in JSON_TYPES or content_type.endswith(b"+json"))
        and MAY_HOLD_UNSTORABLE_JSON.search(body)
    ):
        found.extend(_in_json(body))
    return found


def is_storable(text: str) -> bool:
    """Whether a database can store ``text``: it holds no NUL and no unpaired surrogate."""
    return UNSTORABLE.search(text) is None


def _in_query(encoded: bytes) -> Iterator[Location]:
    # Decoded as Starlette decodes query strings: bytes that are not UTF-8 become U+FFFD, so
    # only NUL can come out of them.
    for name, value in parse_qsl(encoded.decode("latin-1"), keep_blank_values=True):
        if UNSTORABLE.search(value) or UNSTORABLE.search(name):
            yield ["query"] if UNSTORABLE.search(name) else ["query", name]


def _in_json(body: bytes) -> Iterator[Location]:
    try:
        document = json.loads(body)
    except (ValueError, RecursionError):
        return  # Not JSON: the route refuses it as malformed.
    # Walked with a stack of its own: the document may be nested as deep as the parser allows.
    pending: list[tuple[Location, object]] = [(["body"], document)]
    while pending:
        location, value = pending.pop()
        if isinstance(value, str):
            if UNSTORABLE.search(value):
                yield location
        elif isinstance(value, dict):
            for key, item in value.items():
                if UNSTORABLE.search(key):
                    # The key itself is not echoed: a surrogate cannot even be sent back.
                    yield location
                else:
                    pending.append(([*location, key], item))
        elif isinstance(value, list):
            pending.extend(([*location, str(index)], item) for index, item in enumerate(value))
