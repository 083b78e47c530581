"""Server-sent events, reassembled from the arbitrary chunks a TCP stream delivers.

The gateway must look at some events (the SSE transport's `endpoint` event, `tools/list`
answers) while passing every other byte through as it comes. `SseEventSplitter` yields
complete raw events as soon as their terminating blank line arrives; `SseEvent` parses
and re-serialises only the events that are changed.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

_EVENT_END = re.compile(rb"(?:\r\n|\r(?!\n)|\n)(?:\r\n|\r(?!\n)|\n)")
DEFAULT_MAX_EVENT_BYTES = 4 * 1024 * 1024


class EventTooLarge(Exception):
    pass


class SseEventSplitter:
    """Feed chunks, get back complete raw events (each ending with its blank line)."""

    def __init__(self, max_event_bytes: int = DEFAULT_MAX_EVENT_BYTES):
        self._buffer = bytearray()
        self._max = max_event_bytes

    def feed(self, chunk: bytes) -> list[bytes]:
        self._buffer += chunk
        events: list[bytes] = []
        start = 0
        data = bytes(self._buffer)
        for match in _EVENT_END.finditer(data):
            # A lone trailing "\r" may be the first half of "\r\n": wait for more data.
            if match.end() == len(data) and data.endswith(b"\r"):
                break
            events.append(data[start:match.end()])
            start = match.end()
        del self._buffer[:start]
        if len(self._buffer) > self._max:
            raise EventTooLarge(f"an SSE event exceeded {self._max} bytes")
        return events

    def flush(self) -> bytes:
        rest = bytes(self._buffer)
        self._buffer.clear()
        return rest


_LINE = re.compile(r"\r\n|\r|\n")


@dataclass
class SseEvent:
    event: str = "message"
    data: str = ""
    id: str | None = None
    retry: str | None = None
    comments: list[str] = field(default_factory=list)

    @classmethod
    def parse(cls, raw: bytes) -> SseEvent:
        parsed = cls()
        data_lines: list[str] = []
        for line in _LINE.split(raw.decode("utf-8", errors="replace")):
            if not line:
                continue
            if line.startswith(":"):
                parsed.comments.append(line[1:])
                continue
            name, _, value = line.partition(":")
            if value.startswith(" "):
                value = value[1:]
            if name == "event":
                parsed.event = value
            elif name == "data":
                data_lines.append(value)
            elif name == "id":
                parsed.id = value
            elif name == "retry":
                parsed.retry = value
        parsed.data = "\n".join(data_lines)
        return parsed

    def serialize(self) -> bytes:
        lines = [f":{c}" for c in self.comments]
        if self.event != "message":
            lines.append(f"event: {self.event}")
        if self.id is not None:
            lines.append(f"id: {self.id}")
        if self.retry is not None:
            lines.append(f"retry: {self.retry}")
        lines.extend(f"data: {line}" for line in self.data.split("\n"))
        return ("\n".join(lines) + "\n\n").encode()
