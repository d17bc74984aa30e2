"""The guide's SSE helpers, where the guide imports them: format_sse_event, parse_sse_event, SSEDecoder,
TokenBuffer. A facade: they live in `bedrock/wire/`."""

from __future__ import annotations

if not __package__:  # imported flat from inside bedrock/, as the guide does
    import _pathfix  # noqa: F401

from typing import Any

from bedrock.wire.batching import TokenBuffer
from bedrock.wire.decoding import ParsedEvent, SSEDecoder, parse_sse_event
from bedrock.wire.events import SSEEvent, encode_frame


def format_sse_event(event_type: str, data: Any, event_id: int | None = None) -> SSEEvent:
    """Frame one event as `event: TYPE\\ndata: JSON\\n[id: N\\n]\\n`."""
    return encode_frame(event_type, data, event_id)


__all__ = ["format_sse_event", "parse_sse_event", "ParsedEvent", "SSEDecoder", "SSEEvent", "TokenBuffer"]
