"""`python -m testkit.screenshot [PATH]`: the chat page after a finished tool-calling turn, as a PNG
(default docs/chat-page.png, the README's picture), from the real server and Debian's headless Chromium."""

from __future__ import annotations

import sys
from contextlib import nullcontext
from pathlib import Path
from typing import Any

from testkit.browser import chromium, chromium_missing
from testkit.live_server import ROOT, LiveServer


def screenshot(path: Path, width: int = 900, height: int = 860, context: Any = None) -> Path:
    """Made in `context` (a Playwright BrowserContext) if given, else in a Chromium of its own."""
    with LiveServer({"OFFLINE_TOKEN_DELAY_MS": "5"}) as live, nullcontext(context) if context else chromium() as ctx:
        page = ctx.new_page()
        page.set_viewport_size({"width": width, "height": height})
        page.goto(live.url + "/")
        for prompt in ("My name is Ada", "What is 25 * 4?"):
            page.fill("#prompt", prompt)
            page.press("#prompt", "Enter")
            page.wait_for_selector(f'.turn:nth-child({1 if "Ada" in prompt else 2}) .msg.agent[data-state="done"]')
        page.click(".turn:last-child details.tool summary")  # the tool step opened: arguments and result
        page.locator("#prompt").blur()
        page.evaluate("() => window.scrollTo(0, document.body.scrollHeight)")
        path.parent.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(path))
    return path


def main() -> None:
    missing = chromium_missing()
    if missing:
        sys.exit(missing)
    target = Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / "docs" / "chat-page.png"
    print(screenshot(target))


if __name__ == "__main__":
    main()
