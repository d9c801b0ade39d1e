"""Origins as browsers write them, and the rule for following a URL handed in by a request."""

from __future__ import annotations

from collections.abc import Collection
from urllib.parse import SplitResult, urlsplit

DEFAULT_PORTS = {"http": 80, "https": 443}
MAX_URL_LENGTH = 2048


def browser_origin(parts: SplitResult) -> str:
    """The origin of an http(s) URL as a browser writes it in an `Origin` header: lower-case
    scheme and host, no user name, the port only when it is not the scheme's default.
    ValueError when the port is no port."""
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    port = parts.port
    shown = "" if port is None or port == DEFAULT_PORTS.get(parts.scheme) else f":{port}"
    return f"{parts.scheme}://{host}{shown}"


def safe_destination(url: str | None, allowed_origins: Collection[str]) -> str | None:
    """``url`` if a browser may be sent there: a path on this service, or an absolute http(s)
    URL whose origin is one of ``allowed_origins`` (exact scheme, host and port). None for
    anything else.

    Browsers are lenient where this is strict: they drop tabs and newlines, read a backslash
    as a slash, and take ``//host`` as another host, so any whitespace, control or non-ASCII
    character, any backslash, a user name (``https://good@evil``) and a missing host
    (``https:evil``) refuse the URL outright.
    """
    if not url or len(url) > MAX_URL_LENGTH:
        return None
    if any(not "!" <= c <= "~" for c in url) or "\\" in url:
        return None
    if url.startswith("/"):
        return None if url.startswith("//") else url
    parts = urlsplit(url)
    if parts.scheme not in DEFAULT_PORTS or not parts.hostname or "@" in parts.netloc:
        return None
    try:
        origin = browser_origin(parts)
    except ValueError:
        return None
    return url if origin in allowed_origins else None
