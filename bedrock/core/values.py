"""Whatever a graph puts in its state, as JSON: messages as the wire shows them, models and dataclasses as their
fields, anything else as a typed placeholder (never a repr, which can hold anything), within MAX_EVENT_BYTES."""

from __future__ import annotations

import dataclasses
import datetime
import enum
import json
import math
import uuid
from collections.abc import Mapping
from decimal import Decimal
from pathlib import PurePath
from typing import Any

from langchain_core.messages import BaseMessage
from pydantic import BaseModel

from bedrock.core.messages import message_data

MAX_DEPTH = 32  # deeper than this (or a cycle) is a placeholder


def placeholder(kind: str, **facts: Any) -> dict[str, Any]:
    """What stands for a value that is not shown: `{"__type__": kind, …}`."""
    return {"__type__": kind, **facts}


def json_safe(value: Any, depth: int = 0) -> Any:
    """`value` as JSON-ready data (dicts with string keys, lists, strings, finite numbers, booleans, None)."""
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if depth >= MAX_DEPTH:
        return placeholder("too_deep")
    if isinstance(value, BaseMessage):
        return message_data(value)
    if isinstance(value, Mapping):
        return {str(key): json_safe(item, depth + 1) for key, item in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [json_safe(item, depth + 1) for item in value]
    if isinstance(value, BaseModel):
        return json_safe(value.model_dump(), depth + 1)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return json_safe({f.name: getattr(value, f.name) for f in dataclasses.fields(value)}, depth + 1)
    if isinstance(value, enum.Enum):
        return json_safe(value.value, depth + 1)
    if isinstance(value, (datetime.date, datetime.time)):
        return value.isoformat()
    if isinstance(value, (uuid.UUID, Decimal, PurePath)):
        return str(value)
    if isinstance(value, (bytes, bytearray)):
        return placeholder("bytes", length=len(value))
    return placeholder(type(value).__name__)


def bounded_json(value: Any, max_bytes: int) -> Any:
    """`json_safe(value)`, or a `too_large` placeholder (with its size) when its JSON is over `max_bytes`."""
    safe = json_safe(value)
    size = len(json.dumps(safe, separators=(",", ":")))
    return safe if size <= max_bytes else placeholder("too_large", bytes=size)
