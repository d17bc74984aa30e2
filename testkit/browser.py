"""Headless Chromium (Debian's `chromium` package) driven by Playwright, for the chat page's tests and its
screenshot. Playwright's own browser download cannot work offline; the system browser is launched instead:
`chromium()` with a fresh profile of its own each time, or one `browser()` whose contexts (`new_context`, each
with its own storage, as a new profile has) serve many tests — a launch is ~1.9 s of CPU here, a context ~0.7 s."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

CHROMIUM = os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium")
# No connections beyond 127.0.0.1: without these Chromium reaches for Google's services at every start.
CHROMIUM_FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]


VIEWPORT = {"width": 1000, "height": 800}


def chromium_missing() -> str | None:
    """Why the browser tests cannot run here, or None if they can."""
    if not Path(CHROMIUM).exists():
        return f"no Chromium at {CHROMIUM} (Debian: apt-get install chromium; .ci/run installs it)"
    try:
        import playwright  # noqa: F401
    except ImportError:
        return "Playwright is not installed (pip install -e '.[test]')"
    return None


@contextmanager
def chromium() -> Iterator[Any]:
    """A Playwright BrowserContext of a fresh Chromium with its own temporary profile, closed afterwards."""
    from playwright.sync_api import sync_playwright

    profile = tempfile.mkdtemp(prefix="chromium-profile-")
    try:
        with sync_playwright() as playwright:
            context = playwright.chromium.launch_persistent_context(
                profile, executable_path=CHROMIUM, headless=True, args=CHROMIUM_FLAGS,
                viewport=VIEWPORT,
            )
            try:
                yield context
            finally:
                context.close()
    finally:
        shutil.rmtree(profile, ignore_errors=True)


@contextmanager
def browser() -> Iterator[Any]:
    """A Playwright Browser (headless Chromium, Playwright's temporary profile), closed afterwards; each
    `new_context(viewport=VIEWPORT)` of it starts with empty storage."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_FLAGS)
        try:
            yield launched
        finally:
            launched.close()
