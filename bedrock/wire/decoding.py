"""Reading SSE: parse_sse_event (one whole frame) and SSEDecoder (bytes as they arrive, split anywhere)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any


class ParsedEvent(dict):
    """`{'type', 'data'}` (and `'id'` when the frame had one).

    Keys it lacks read through to `data`, so the guide's `parse_sse_event(event)['token']` works as well
    as its own `parse_sse_event(event)['data']['token']`.
    """

    def __missing__(self, key: str) -> Any:
        data = dict.get(self, "data")
        if isinstance(data, dict) and key in data:
            return data[key]
        raise KeyError(key)


def _split_field(line: str) -> tuple[str, str]:
    name, _, value = line.partition(":")
    if value.startswith(" "):
        value = value[1:]
    return name, value


def _build(event_type: str, data_lines: list[str], event_id: str | None, strict: bool = False) -> ParsedEvent:
    raw = "\n".join(data_lines)
    try:
        data: Any = json.loads(raw)
    except json.JSONDecodeError:
        if strict:
            raise
        data = raw  # a foreign stream's plain-text data is still an event
    parsed = ParsedEvent(type=event_type or "message", data=data)
    if event_id is not None:
        parsed["id"] = int(event_id) if event_id.isdigit() else event_id
    return parsed


def parse_sse_event(event_str: str | bytes) -> ParsedEvent:
    """Parse one frame; a frame that cannot be read gives `{'type': 'error', 'data': {'error': ...}}`."""
    try:
        text = event_str.decode("utf-8") if isinstance(event_str, bytes) else str(event_str)
        event_type, data_lines, event_id = "", [], None
        for line in text.replace("\r\n", "\n").replace("\r", "\n").split("\n"):
            if not line or line.startswith(":"):
                continue
            name, value = _split_field(line)
            if name == "event":
                event_type = value
            elif name == "data":
                data_lines.append(value)
            elif name == "id":
                event_id = value
        if not data_lines:
            raise ValueError("frame has no data line")
        return _build(event_type, data_lines, event_id, strict=True)
    except (ValueError, UnicodeDecodeError) as exc:
        return ParsedEvent(type="error", data={"error": f"Parse error: {exc}"})


class SSEDecoder:
    """Incremental SSE reader: feed it bytes as they arrive, get whole events back.

    Written by hand because httpx-sse's decoder is private and wants whole lines, while this one is for
    raw chunks (a browser-style reader, the benchmarks, the property tests) that split anywhere,
    including inside a UTF-8 character or between `\\r` and `\\n`.
    """

    def __init__(self) -> None:
        self._bytes = b""
        self._pending_cr = False
        self._type = ""
        self._data: list[str] = []
        self._id: str | None = None

    def feed(self, chunk: bytes | str) -> list[ParsedEvent]:
        """Consume a chunk; return the events it completed."""
        if isinstance(chunk, str):
            chunk = chunk.encode("utf-8")
        self._bytes += chunk
        events: list[ParsedEvent] = []
        for line in self._lines():
            event = self._line(line)
            if event is not None:
                events.append(event)
        return events

    def _lines(self) -> Iterator[str]:
        buf = self._bytes
        start = 0
        i = 0
        n = len(buf)
        while i < n:
            byte = buf[i]
            if self._pending_cr:
                self._pending_cr = False
                if byte == 0x0A:  # the \n of a \r\n pair already ended the line
                    start = i = i + 1
                    continue
            if byte == 0x0D or byte == 0x0A:
                yield buf[start:i].decode("utf-8")
                self._pending_cr = byte == 0x0D
                start = i + 1
            i += 1
        self._bytes = buf[start:]

    def _line(self, line: str) -> ParsedEvent | None:
        if line == "":
            if not self._data:
                self._type = ""
                return None
            event = _build(self._type, self._data, self._id)
            self._type, self._data, self._id = "", [], None
            return event
        if line.startswith(":"):
            return None
        name, value = _split_field(line)
        if name == "event":
            self._type = value
        elif name == "data":
            self._data.append(value)
        elif name == "id":
            self._id = value
        return None
