"""The JSON values a client sends, held to what JSON can write and UTF-8 can encode, and to a size.

Python's JSON parser is laxer than JSON: it takes `NaN`, `Infinity`, `1e400` and `\\ud800` escapes (lone
surrogates), none of which a strict reader (a browser's JSON.parse) or a UTF-8 writer (memory, the model's request,
the SSE stream) can take back. These walkers find the first such value by its dotted path, so the 400 names it.
"""

from __future__ import annotations

import json
import math
from typing import Any

from bedrock.errors import PayloadError

MAX_OBJECT_BYTES = 16_384
MAX_OBJECT_DEPTH = 8


def field_error(field: str, message: str) -> PayloadError:
    """The 400 `invalid_payload` for one field, named in its message and in its details."""
    return PayloadError(f"invalid payload: {field}: {message}", [{"field": field, "message": message}])


def depth(value: Any, level: int = 1) -> int:
    """How deeply `value` nests (a scalar is 1), counted no further than one past MAX_OBJECT_DEPTH."""
    if level > MAX_OBJECT_DEPTH:
        return level
    if isinstance(value, dict):
        return max((depth(v, level + 1) for v in value.values()), default=level)
    if isinstance(value, list):
        return max((depth(v, level + 1) for v in value), default=level)
    return level


def bounded_object(value: dict[str, Any] | None) -> dict[str, Any] | None:
    """A pydantic validator for a free-form object field: at most MAX_OBJECT_DEPTH deep and MAX_OBJECT_BYTES as
    JSON, else ValueError (pydantic words it into the field's 400)."""
    if value is None:
        return value
    if depth(value) > MAX_OBJECT_DEPTH:
        raise ValueError(f"nested deeper than {MAX_OBJECT_DEPTH} levels")
    if len(json.dumps(value, default=str)) > MAX_OBJECT_BYTES:
        raise ValueError(f"larger than {MAX_OBJECT_BYTES} bytes as JSON")
    return value


def non_finite_field(value: Any, path: str = "") -> str | None:
    """The dotted path of the first NaN or ±Infinity in `value`, else None.

    Python's JSON parser takes `NaN`, `Infinity` and `1e400` (→ inf), which JSON has no way to write: stored, they
    would come back out as `NaN` in a frame no strict parser reads (a browser's JSON.parse), in every later model
    request of the session, and as a 500 from every read of it."""
    if isinstance(value, float):
        return None if math.isfinite(value) else (path or "payload")
    if isinstance(value, dict):
        for key, item in value.items():
            found = non_finite_field(item, f"{path}.{key}" if path else str(key))
            if found is not None:
                return found
    elif isinstance(value, (list, tuple)):
        for i, item in enumerate(value):
            found = non_finite_field(item, f"{path}.{i}" if path else str(i))
            if found is not None:
                return found
    return None


def refuse_non_finite(payload: Any) -> None:
    """PayloadError naming the field that holds a number JSON cannot write (NaN, ±Infinity, or one past a double)."""
    field = non_finite_field(payload)
    if field is not None:
        raise field_error(field.encode("utf-8", "backslashreplace").decode(),
                      "not a finite number (JSON has no NaN or Infinity)")


def unencodable_field(value: Any, path: str = "") -> str | None:
    """The dotted path of the first string (or key) in `value` that UTF-8 cannot encode, else None."""
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return path or "payload"
        return None
    if isinstance(value, dict):
        for key, item in value.items():
            where = f"{path}.{key}" if path else str(key)
            if isinstance(key, str) and unencodable_field(key) is not None:
                return where.encode("utf-8", "backslashreplace").decode()
            found = unencodable_field(item, where)
            if found is not None:
                return found.encode("utf-8", "backslashreplace").decode()
    elif isinstance(value, (list, tuple)):
        for i, item in enumerate(value):
            found = unencodable_field(item, f"{path}.{i}" if path else str(i))
            if found is not None:
                return found
    return None
