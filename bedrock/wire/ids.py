"""The ids of the contract: sessions, actors, runs — one alphabet, bounded lengths."""

from __future__ import annotations

import re
import uuid

ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_-]*$"
MAX_SESSION_ID = 100  # AgentCore Memory's limit for a session id
MAX_ACTOR_ID = 255
MAX_RUN_ID = 64
_ID = re.compile(ID_PATTERN)


def valid_id(value: str, max_length: int | None = None) -> bool:
    """Whether `value` is an id of the contract's alphabet (and at most `max_length` characters, if given)."""
    return (max_length is None or len(value) <= max_length) and _ID.fullmatch(value) is not None


def new_session_id() -> str:
    """A session id for a run that names none."""
    return f"session-{uuid.uuid4().hex}"
