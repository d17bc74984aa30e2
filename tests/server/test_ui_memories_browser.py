"""The chat page's Memories panel end to end, in headless Chromium (Debian's package, driven by Playwright) against
the real server with the offline model: a memory told shows in the panel and its × forgets it, "Forget all" asks
first, a value that is not text shows as JSON, a failure shows its error line, and a server that keeps no memories
(LONG_TERM_MEMORY=off) hides the button.

Skipped without Chromium, as tests/server/test_ui_browser.py is; with REQUIRE_BROWSER=1 they fail instead."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from testkit import loopback
from testkit.browser import VIEWPORT, browser, chromium_missing
from testkit.live_server import LiveServer

pytestmark = pytest.mark.slow  # (pyproject.toml: `make test-quick` leaves it out)

DONE = '.msg.agent[data-state="done"]'
MEMORY = "#memories-list .memory"


@pytest.fixture(scope="module")
def browser_ready() -> None:
    missing = chromium_missing()
    if missing and os.environ.get("REQUIRE_BROWSER") == "1":
        pytest.fail(f"REQUIRE_BROWSER=1 but {missing}")
    if missing:
        pytest.skip(missing)


@pytest.fixture(scope="module")
def launched(browser_ready: None) -> Iterator[Any]:
    with browser() as chromium:
        yield chromium


@pytest.fixture
def live(browser_ready: None) -> Iterator[LiveServer]:
    """A server of each test's own: the page's actor is always the default one, whose memories a test changes."""
    with LiveServer({"OFFLINE_TOKEN_DELAY_MS": "5"}) as server:
        yield server


@pytest.fixture
def page(launched: Any) -> Iterator[Any]:
    context = launched.new_context(viewport=VIEWPORT)
    page = context.new_page()
    page.set_default_timeout(20_000)
    page.problems = []  # uncaught errors on the page: none may happen
    page.on("pageerror", lambda error: page.problems.append(str(error)))
    yield page
    context.close()


def post(url: str, payload: dict[str, Any]) -> httpx.Response:
    return loopback.post(url + "/invocations", json=payload, timeout=30)


def stored(url: str) -> list[dict[str, Any]]:
    """The default actor's memories, as the server's `memories` action lists them."""
    answer = post(url, {"action": "memories"})
    assert answer.status_code == 200, answer.text
    return answer.json()["memories"]


def send(page: Any, prompt: str) -> None:
    page.fill("#prompt", prompt)
    page.press("#prompt", "Enter")
    page.wait_for_selector(f".turn:last-child {DONE}")


def open_panel(page: Any) -> None:
    page.click("#memories-toggle")
    page.wait_for_selector("#memories:not([hidden])")


def test_a_memory_told_shows_in_the_panel_and_its_delete_forgets_it(live, page):
    page.goto(live.url + "/")
    send(page, "I prefer metric units")
    open_panel(page)
    assert page.get_attribute("#memories-toggle", "aria-expanded") == "true"
    memory = page.wait_for_selector(MEMORY)
    (kept,) = stored(live.url)
    assert memory.inner_text().startswith("I prefer metric units")
    assert memory.get_attribute("title") == kept["key"]
    assert page.is_hidden("#memories-empty") and page.is_hidden("#memories-error")

    page.click(f"{MEMORY} button.forget")
    page.wait_for_selector(MEMORY, state="detached")
    page.wait_for_selector("#memories-empty:not([hidden])")
    assert stored(live.url) == [] and page.is_disabled("#forget-all")

    send(page, "Remember that my dog is Rex")  # the open panel refreshes after the turn
    page.wait_for_selector(f"{MEMORY}:has-text('my dog is Rex')")
    page.click("#memories-toggle")
    assert page.is_hidden("#memories") and page.get_attribute("#memories-toggle", "aria-expanded") == "false"
    assert page.problems == []


def test_forget_all_asks_first_and_text_stays_text(live, page):
    for prompt in ("I prefer <img src=x onerror=alert(1)> units", "Remember that my dog is Rex"):
        assert post(live.url, {"prompt": prompt}).status_code == 200
    page.goto(live.url + "/")
    open_panel(page)
    page.wait_for_function("() => document.querySelectorAll('#memories-list .memory').length === 2")
    assert page.locator("#memories img").count() == 0
    assert "<img src=x onerror=alert(1)>" in page.inner_text("#memories-list")

    answers = iter([False, True])  # dismissed first: nothing is forgotten
    asked: list[str] = []

    def on_dialog(dialog: Any) -> None:
        asked.append(dialog.message)
        if next(answers):
            dialog.accept()
        else:
            dialog.dismiss()

    page.on("dialog", on_dialog)
    page.click("#forget-all")
    assert len(asked) == 1 and "Forget everything" in asked[0]
    assert len(stored(live.url)) == 2 and page.locator(MEMORY).count() == 2
    page.click("#forget-all")
    page.wait_for_selector("#memories-empty:not([hidden])")
    assert len(asked) == 2 and page.locator(MEMORY).count() == 0 and stored(live.url) == []
    assert page.problems == []


def test_a_value_that_is_not_text_shows_as_json_and_a_failure_shows_its_error(live, page):
    state = {"fail": False}
    graphs_own = {"namespace": ["default-user", "prefs"], "key": "units-pref", "value": {"units": "metric", "n": 2},
                  "created_at": "2026-01-01T00:00:00+00:00", "updated_at": "2026-01-01T00:00:00+00:00"}

    def memories(route: Any) -> None:  # the `memories` action answered here; every other request goes on
        body = json.loads(route.request.post_data or "{}")
        if body.get("action") != "memories":
            route.continue_()
        elif state["fail"]:
            route.fulfill(status=503, content_type="application/json", body=json.dumps(
                {"error": {"code": "memory_unavailable", "message": "Memory could not be read.", "retryable": True}}))
        else:
            route.fulfill(status=200, content_type="application/json", body=json.dumps(
                {"actor_id": "default-user", "memories": [graphs_own], "next_offset": None}))

    page.route("**/invocations", memories)
    page.goto(live.url + "/")
    open_panel(page)
    memory = page.wait_for_selector(MEMORY)
    assert memory.inner_text().startswith('{"units":"metric","n":2}') and memory.get_attribute("title") == "units-pref"

    state["fail"] = True
    page.click("#memories-toggle")
    open_panel(page)  # opening refreshes: the failure shows, the list as last read stays
    error = page.wait_for_selector('#memories-error:not([hidden])[data-code="memory_unavailable"]')
    assert "memory_unavailable" in error.inner_text() and "could not be read" in error.inner_text()
    assert page.locator(MEMORY).count() == 1 and page.is_visible("#memories-toggle")

    state["fail"] = False
    page.click("#memories-toggle")
    open_panel(page)
    page.wait_for_selector("#memories-error", state="hidden")
    assert page.problems == []


def test_a_server_that_keeps_no_memories_hides_the_button(browser_ready, page):
    with LiveServer({"LONG_TERM_MEMORY": "off"}) as off:
        page.goto(off.url + "/")
        page.wait_for_selector("#memories-toggle", state="hidden")
        assert page.is_hidden("#memories")
        send(page, "What is 25 * 4?")  # the chat itself is as before
        assert "100" in page.inner_text(".turn:last-child .msg.agent")
    assert page.problems == []
