"""The event-stream parser, fed the way a network delivers bytes."""

from __future__ import annotations

from bastion_verifier.sse import EventStreamParser, ServerSentEvent

STREAM = (
    b": connected\n\n"
    b'id: 1\nevent: session.revoked\ndata: {"sid": "s1"}\n\n'
    b"id: 2\r\nevent: user.deleted\r\ndata: first\r\ndata: second\r\n\r\n"
    b"data: no type\rid: 3\r\r"
)
EXPECTED = [
    ServerSentEvent("session.revoked", '{"sid": "s1"}', "1"),
    ServerSentEvent("user.deleted", "first\nsecond", "2"),
    ServerSentEvent("message", "no type", "3"),
]


def parse(*chunks: bytes) -> tuple[list[ServerSentEvent], EventStreamParser]:
    parser = EventStreamParser()
    events = [event for chunk in chunks for event in parser.feed(chunk)]
    return events, parser


def test_events_carry_their_type_data_and_id_whatever_the_line_endings() -> None:
    events, parser = parse(STREAM)
    assert events == EXPECTED
    assert parser.last_event_id == "3"


def test_a_stream_split_anywhere_gives_the_same_events() -> None:
    for cut in range(len(STREAM) + 1):
        assert parse(STREAM[:cut], STREAM[cut:])[0] == EXPECTED, cut
    assert parse(*(STREAM[i : i + 1] for i in range(len(STREAM))))[0] == EXPECTED


def test_a_crlf_split_between_chunks_is_one_line_ending() -> None:
    events, _ = parse(b"data: a\r", b"\ndata: b\r\n\r\n")
    assert events == [ServerSentEvent("message", "a\nb", "")]


def test_only_cr_and_lf_end_lines_not_unicode_separators() -> None:
    data = '{"detail": "a\u2028b\x0cc\x85d"}'
    events, _ = parse(f"data: {data}\n\n".encode())
    assert events == [ServerSentEvent("message", data, "")]


def test_a_leading_byte_order_mark_is_skipped_even_when_split() -> None:
    events, _ = parse(b"\xef\xbb", b"\xbfdata: x\n\n")
    assert events == [ServerSentEvent("message", "x", "")]


def test_an_event_is_dispatched_only_at_its_blank_line() -> None:
    events, parser = parse(b"id: 7\ndata: half")
    assert events == []
    assert parser.last_event_id is None


def test_the_id_carries_over_to_later_events_and_an_id_only_event_still_moves_it() -> None:
    events, parser = parse(b"id: 5\ndata: a\n\ndata: b\n\nid: 6\n\n")
    assert events == [ServerSentEvent("message", "a", "5"), ServerSentEvent("message", "b", "5")]
    assert parser.last_event_id == "6"


def test_an_id_with_a_nul_is_ignored() -> None:
    events, _ = parse(b"id: 1\n\nid: 2\x003\ndata: x\n\n")
    assert events == [ServerSentEvent("message", "x", "1")]


def test_retry_comments_unknown_fields_and_bare_fields_follow_the_standard() -> None:
    events, parser = parse(b"retry: 1500\nretry: soon\n: note\nfoo: bar\ndata\n\ndata:x\n\n")
    assert parser.retry_ms == 1500
    assert events == [ServerSentEvent("message", "", ""), ServerSentEvent("message", "x", "")]


def test_invalid_utf8_is_replaced_not_fatal() -> None:
    events, _ = parse(b"data: \xff\xfe\n\n")
    assert events == [ServerSentEvent("message", "\ufffd\ufffd", "")]
