"""Server-Sent Events, parsed as the WHATWG HTML standard's event-stream interpretation says.

Written here rather than taken from httpx's line iterator, which also breaks lines at U+2028,
form feeds and other characters that ``str.splitlines`` knows but an event stream does not.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

# An event stream's lines end with CRLF, LF or CR, and with nothing else.
_LINE_END = re.compile(rb"\r\n|\r|\n")
_BOM = b"\xef\xbb\xbf"


@dataclass(frozen=True, slots=True)
class ServerSentEvent:
    type: str
    data: str
    id: str  # the stream's last event id when this event was dispatched ("" if none yet)


class EventStreamParser:
    """Turns the bytes of one connection, fed in chunks of any size, into events."""

    def __init__(self) -> None:
        self._pending = b""
        self._at_start = True
        self._skip_line_feed = False
        self._data: list[str] = []
        self._type = ""
        self._id_buffer = ""
        self.last_event_id: str | None = None  # set when an event is dispatched
        self.retry_ms: int | None = None

    def feed(self, chunk: bytes) -> list[ServerSentEvent]:
        if self._skip_line_feed and chunk.startswith(b"\n"):
            # The CR that ended the previous chunk and this LF are one line ending.
            chunk = chunk[1:]
        self._skip_line_feed = False
        buffer = self._pending + chunk
        if self._at_start:
            if len(buffer) < len(_BOM) and _BOM.startswith(buffer):
                self._pending = buffer
                return []
            buffer = buffer.removeprefix(_BOM)
            self._at_start = False
        lines = _LINE_END.split(buffer)
        self._pending = lines.pop()
        self._skip_line_feed = buffer.endswith(b"\r")
        events = []
        for line in lines:
            event = self._line(line.decode("utf-8", errors="replace"))
            if event is not None:
                events.append(event)
        return events

    def _line(self, line: str) -> ServerSentEvent | None:
        if not line:
            return self._dispatch()
        if line.startswith(":"):
            return None
        field, colon, value = line.partition(":")
        if colon and value.startswith(" "):
            value = value[1:]
        if field == "event":
            self._type = value
        elif field == "data":
            self._data.append(value)
        elif field == "id":
            if "\0" not in value:
                self._id_buffer = value
        elif field == "retry" and value.isascii() and value.isdigit():
            self.retry_ms = int(value)
        return None

    def _dispatch(self) -> ServerSentEvent | None:
        self.last_event_id = self._id_buffer
        data, event_type = self._data, self._type
        self._data, self._type = [], ""
        if not data:
            return None
        return ServerSentEvent(
            type=event_type or "message", data="\n".join(data), id=self._id_buffer
        )
