"""Content negotiation: does a request's `Accept` prefer an event stream to JSON; does its body speak AG-UI?

Hand-written (a few dozen lines) because Starlette has no Accept parser and none of the maintained ones is a
dependency already; only the question this server asks is answered, by RFC 9110's rules: each type takes the
weight of the most specific range that matches it, and `q=0` means "not acceptable".
"""

from __future__ import annotations

from typing import Any

from bedrock.config import Settings

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


def agui_of(settings: Settings, payload: Any) -> tuple[Any, Any]:
    """An AG-UI RunAgentInput body as our payload, and the AG-UI rendering of its run (None for our own bodies).

    AGENT_PROTOCOL=ag-ui: every run is AG-UI's; our actions (cancel, resume, status, history, memories, forget) stay
    reachable, or an AG-UI-only deployment (on AgentCore, where no disconnect arrives) could not stop a run, nor show
    or forget an actor's memories."""
    ag_ui_only = settings.agent_protocol == "ag-ui" and not _is_run_action(payload)
    if not (ag_ui_only or (isinstance(payload, dict) and "threadId" in payload)):
        return payload, None
    # Imported with the first AG-UI body: ag-ui-protocol's models take ~55 ms to import, which every AgentCore
    # session (a cold start) would otherwise pay (bench/RESULTS_cold_start.md).
    from bedrock.wire import agui as ag_ui

    if not (ag_ui_only or ag_ui.looks_like_run_agent_input(payload)):
        return payload, None
    ours, run_input = ag_ui.payload_from_agui(payload)
    return ours, ag_ui.AGUIStream(run_input)


def _is_run_action(payload: Any) -> bool:
    """Our payload for an action (not a run): on a session's runs, or on an actor's memories."""
    return isinstance(payload, dict) and payload.get("action") in (
        "cancel", "resume", "status", "history", "memories", "forget")
