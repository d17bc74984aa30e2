"""The guide's code blocks, read by heading from the user's guide itself when the checkout sits beside it, else from
docs/STREAMING_GUIDE.md: the repository's copy, whose code blocks are the guide's own (a test compares them) and
whose links point inside the repository."""

from __future__ import annotations

import re
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# The spec itself when the checkout sits beside it (developers' machines and CI), else the repository's copy.
SPEC = ROOT.parent / "shared" / "spec" / "STREAMING_GUIDE.md"
GUIDE = SPEC if SPEC.exists() else ROOT / "docs" / "STREAMING_GUIDE.md"


def snippet(heading: str, index: int = 0) -> str:
    """The `index`-th fenced code block under the `### heading` section."""
    blocks: list[str] = []
    current: list[str] | None = None
    in_section = False
    for line in GUIDE.read_text().splitlines(keepends=True):
        if current is not None:  # inside a fence: headings here are code comments
            if line.startswith("```"):
                blocks.append("".join(current))
                current = None
            else:
                current.append(line)
        elif line.startswith("```"):
            if in_section:
                current = []
        elif re.match(r"#+ ", line):
            if in_section:
                break
            in_section = line.rstrip("\n").split(" ", 1)[1] == heading
    if not blocks and not in_section:
        raise KeyError(heading)
    return blocks[index]


def as_async_body(code: str, name: str = "_snippet", params: str = "") -> str:
    """Wrap top-level snippet code (which uses `async for` / `yield`) in an async function."""
    return f"async def {name}({params}):\n" + textwrap.indent(code, "    ")


def unprefixed(code: str) -> str:
    """The guide imports `bedrock.agent_runtime`; run from inside bedrock/ the prefix is dropped."""
    return code.replace("from bedrock.", "from ")


def run_httpx_client(base_url: str, prompt: str | None = None) -> list[str]:
    """Run the guide's "Python with httpx" client against `base_url` (optionally with another prompt); the lines
    it prints."""
    import asyncio
    import io
    from contextlib import redirect_stdout

    code = snippet("Python with httpx").replace("https://your-agent.amazonaws.com", base_url)
    if prompt is not None:
        code = code.replace("What is 2+2?", prompt)
    namespace: dict = {}
    exec(code, namespace)
    out = io.StringIO()
    with redirect_stdout(out):
        asyncio.run(namespace["stream_request"]())
    return out.getvalue().splitlines()
