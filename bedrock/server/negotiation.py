"""Content negotiation: does a request's `Accept` ask for an event stream and nothing else?

Hand-written (a dozen lines) because Starlette has no Accept parser and none of the maintained ones is a
dependency already; only the question this server asks is answered, by RFC 9110's rules (media ranges,
`q` weights, `q=0` meaning "not acceptable").
"""

from __future__ import annotations

EVENT_STREAM = "text/event-stream"


def accepts_only_event_stream(accept: str | None) -> bool:
    """True if `text/event-stream` is the one acceptable media type (e.g. `agentcore dev`'s `Accept`).

    `*/*`, no header, or `text/event-stream, application/json` (the starter toolkit's) leave the choice to
    the payload's `stream`, as before: the guide's clients send `*/*` and expect JSON unless they ask.
    """
    if not accept:
        return False
    acceptable = set()
    for media_range in accept.split(","):
        kind, *params = (part.strip() for part in media_range.split(";"))
        quality = 1.0
        for param in params:
            name, _, value = param.partition("=")
            if name.strip().lower() == "q":
                try:
                    quality = float(value)
                except ValueError:
                    quality = 0.0  # an unreadable weight: not counted as acceptable
        if kind and quality > 0:
            acceptable.add(kind.lower())
    return acceptable == {EVENT_STREAM}
