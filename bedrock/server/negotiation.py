"""Content negotiation: does a request's `Accept` prefer an event stream to JSON?

Hand-written (a few dozen lines) because Starlette has no Accept parser and none of the maintained ones is a
dependency already; only the question this server asks is answered, by RFC 9110's rules: each type takes the
weight of the most specific range that matches it, and `q=0` means "not acceptable".
"""

from __future__ import annotations

EVENT_STREAM = "text/event-stream"
JSON = "application/json"


def _ranges(accept: str) -> dict[str, float]:
    ranges: dict[str, float] = {}
    for media_range in accept.split(","):
        kind, *params = (part.strip() for part in media_range.split(";"))
        quality = 1.0
        for param in params:
            name, _, value = param.partition("=")
            if name.strip().lower() == "q":
                try:
                    quality = min(max(float(value), 0.0), 1.0)
                except ValueError:
                    quality = 0.0  # an unreadable weight: not counted as acceptable
        if kind:
            ranges[kind.lower()] = quality
    return ranges


def _weight(ranges: dict[str, float], media_type: str) -> float:
    kind = media_type.split("/")[0]
    for candidate in (media_type, f"{kind}/*", "*/*"):
        if candidate in ranges:
            return ranges[candidate]
    return 0.0


def prefers_event_stream(accept: str | None) -> bool:
    """True if `Accept` weighs `text/event-stream` above JSON, or names it while JSON comes only by a wildcard.

    `text/event-stream` (`agentcore dev "…"`) and `text/event-stream, */*` (its browser chat) stream;
    `*/*`, no header (the guide's clients), and `text/event-stream, application/json` (the starter toolkit:
    either will do) leave it to the payload's `stream`, as before.
    """
    if not accept:
        return False
    ranges = _ranges(accept)
    events, json = _weight(ranges, EVENT_STREAM), _weight(ranges, JSON)
    if events <= 0:
        return False
    return events > json or (events == json and EVENT_STREAM in ranges and JSON not in ranges)
