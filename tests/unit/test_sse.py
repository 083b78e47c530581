"""SSE events reassembled from arbitrary chunks, byte for byte."""

from __future__ import annotations

import random

import pytest

from mcp_gateway.sse import EventTooLarge, SseEvent, SseEventSplitter

STREAM = (b"event: endpoint\r\ndata: /messages/?session_id=1\r\n\r\n"
          b"data: {\"a\": 1}\n\n"
          b": comment\rdata: x\r\r"
          b"id: 7\nevent: message\ndata: line1\ndata: line2\n\n")


def split_everywhere(data: bytes, seed: int) -> list[bytes]:
    rng = random.Random(seed)
    chunks, i = [], 0
    while i < len(data):
        n = rng.randint(1, 7)
        chunks.append(data[i:i + n])
        i += n
    return chunks


@pytest.mark.parametrize("seed", range(25))
def test_events_survive_any_chunking(seed):
    splitter = SseEventSplitter()
    events = [e for chunk in split_everywhere(STREAM, seed) for e in splitter.feed(chunk)]
    assert b"".join(events) == STREAM
    assert len(events) == 4
    assert splitter.flush() == b""


def test_an_event_is_released_as_soon_as_its_blank_line_arrives():
    splitter = SseEventSplitter()
    assert splitter.feed(b"data: a\n") == []
    assert splitter.feed(b"\n") == [b"data: a\n\n"]


def test_parse_and_serialize():
    event = SseEvent.parse(b"id: 7\nevent: message\ndata: line1\ndata: line2\n\n")
    assert (event.id, event.event, event.data) == ("7", "message", "line1\nline2")
    assert SseEvent.parse(event.serialize()) == event


def test_oversized_events_are_refused():
    splitter = SseEventSplitter(max_event_bytes=100)
    with pytest.raises(EventTooLarge):
        splitter.feed(b"data: " + b"x" * 200)
