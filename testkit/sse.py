"""Reading a whole SSE body strictly, as the tests check the wire contract."""

from __future__ import annotations

import json
import re
from typing import Any

FRAME = re.compile(r"event: ([a-z_]+)\ndata: ([^\n]+)\nid: (\d+)\n\n")


def frames_of(body: bytes) -> list[tuple[str, dict[str, Any], int]]:
    """Split a body into frames, asserting every byte belongs to a well-formed frame or a ping."""
    text = body.decode("ascii")
    frames, pos = [], 0
    while pos < len(text):
        if text.startswith(": ping\n\n", pos):
            pos += len(": ping\n\n")
            continue
        match = FRAME.match(text, pos)
        assert match, f"malformed bytes at {pos}: {text[pos:pos + 80]!r}"
        frames.append((match.group(1), json.loads(match.group(2)), int(match.group(3))))
        pos = match.end()
    return frames
