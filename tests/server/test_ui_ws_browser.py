"""The chat page over its WebSocket transport (`/?transport=ws`, bedrock/server/static/chat.js), in headless
Chromium (Debian's package, driven by Playwright) against the real server on a free port: a turn answered with
every request on the one socket and none POSTed, Stop mid-answer, a tool approval; a socket the server closes for
idleness replaced by a new one; and the fallback to HTTP, said on the page, when the socket cannot open or drops
mid-answer.

What goes over the wire is read from Playwright's own view of the page's traffic (`page.on("websocket")` frames,
`page.on("request")`), not from the page. Without Chromium these tests are skipped and say why; with
REQUIRE_BROWSER=1 (as `.ci/run` sets) they fail instead."""

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
from testkit.proxy import CuttingProxy

pytestmark = pytest.mark.slow  # (pyproject.toml: `make test-quick` leaves it out)

LONG = "Tell me about the sea"
DONE = '.msg.agent[data-state="done"]'
FALLBACK = "The WebSocket connection to the agent is not available"


@pytest.fixture(scope="module")
def browser_ready() -> None:
    missing = chromium_missing()
    if missing and os.environ.get("REQUIRE_BROWSER") == "1":
        pytest.fail(f"REQUIRE_BROWSER=1 but {missing}")
    if missing:
        pytest.skip(missing)


@pytest.fixture(scope="module")
def paced(browser_ready: None) -> Iterator[LiveServer]:
    # One token an event, 40 ms apart: Stop and a dropped connection land mid-answer.
    with LiveServer({"OFFLINE_TOKEN_DELAY_MS": "40", "TOKEN_BUFFER_SIZE": "1"}) as live:
        yield live


@pytest.fixture(scope="module")
def approvals(browser_ready: None) -> Iterator[LiveServer]:
    with LiveServer({"OFFLINE_TOKEN_DELAY_MS": "40", "TOKEN_BUFFER_SIZE": "1",
                     "APPROVAL_REQUIRED_TOOLS": "calculator"}) as live:
        yield live


@pytest.fixture(scope="module")
def launched(browser_ready: None) -> Iterator[Any]:
    with browser() as chromium:
        yield chromium


@pytest.fixture
def context(launched: Any) -> Iterator[Any]:
    """Each test a new context: its own storage (the page keeps its session id there), cookies and cache."""
    fresh = launched.new_context(viewport=VIEWPORT)
    yield fresh
    fresh.close()


@pytest.fixture
def page(context: Any) -> Any:
    page = context.pages[0] if context.pages else context.new_page()
    page.set_default_timeout(20_000)
    page.problems = []  # uncaught errors on the page, and refusals by its Content-Security-Policy: none may happen
    page.on("pageerror", lambda error: page.problems.append(str(error)))
    page.on("console", lambda m: page.problems.append(m.text) if "Content Security Policy" in m.text else None)
    return page


class Traffic:
    """What the page sent and received, as Playwright sees it: each WebSocket's URL, the JSON of its frames both
    ways, and the POSTs to /invocations (their JSON bodies)."""

    def __init__(self, page: Any) -> None:
        self.sockets: list[Any] = []
        self.sent: list[dict[str, Any]] = []
        self.received: list[dict[str, Any]] = []
        self.posts: list[dict[str, Any]] = []
        page.on("websocket", self._socket)
        page.on("request", self._request)

    def _socket(self, ws: Any) -> None:
        self.sockets.append(ws)
        ws.on("framesent", lambda payload: self.sent.append(json.loads(payload)))
        ws.on("framereceived", lambda payload: self.received.append(json.loads(payload)))

    def _request(self, request: Any) -> None:
        if request.method == "POST" and request.url.endswith("/invocations"):
            self.posts.append(json.loads(request.post_data or "null"))

    def request(self, **fields: Any) -> dict[str, Any]:
        """The one message the page sent over a socket with these fields."""
        found = [m for m in self.sent if all(m.get(k) == v for k, v in fields.items())]
        assert len(found) == 1, (fields, self.sent)
        return found[0]

    def answers(self, request: dict[str, Any]) -> list[dict[str, Any]]:
        """The messages that answered `request` over the socket, in order."""
        return [m for m in self.received if m.get("request_id") == request["request_id"]]


def post(url: str, payload: dict[str, Any]) -> httpx.Response:
    return loopback.post(url + "/invocations", json=payload, timeout=30)


def send(page: Any, prompt: str) -> None:
    page.fill("#prompt", prompt)
    page.press("#prompt", "Enter")


def last_turn_done(page: Any) -> None:
    page.wait_for_selector(f".turn:last-child {DONE}")


def answer_text(page: Any) -> str:
    return " ".join(page.locator(".turn:last-child .answer").all_inner_texts())


def answer_longer_than(page: Any, chars: int) -> None:
    """Wait until the last turn's answer shows more than `chars` characters (mid-answer, at 40 ms a token)."""
    page.wait_for_function(f"() => document.querySelector('.turn:last-child .answer')?.textContent.length > {chars}")


def session_of(page: Any) -> str:
    return page.inner_text("#session-id")


def stored_answer(url: str, session: str) -> str:
    """The session's AI messages as the server kept them, as the page shows them (one block each)."""
    messages = post(url, {"action": "history", "session_id": session}).json()["messages"]
    return " ".join(m["content"] for m in messages if m["type"] == "ai" and m["content"])


def open_ws_page(page: Any, url: str) -> Traffic:
    """The page at `url/?transport=ws` with its traffic recorded, once its conversation has loaded."""
    traffic = Traffic(page)
    response = page.goto(url + "/?transport=ws")
    # The page's policy stays `connect-src 'self'` (bedrock/server/ui.py says why); page.problems holds any refusal.
    assert "connect-src 'self'" in response.headers["content-security-policy"]
    page.wait_for_function("() => document.getElementById('session-id').textContent !== ''")
    return traffic


def test_a_turn_goes_over_the_one_socket_and_nothing_is_posted(paced, page):
    traffic = open_ws_page(page, paced.url)
    session = session_of(page)
    send(page, "What is 25 * 4?")
    last_turn_done(page)
    assert "100" in answer_text(page) and page.locator(".turn:last-child .result").inner_text() == "100"
    assert answer_text(page) == stored_answer(paced.url, session)  # every token once, in order
    # Everything went over one socket to the page's own origin: the history, the memories, the turn.
    assert [ws.url for ws in traffic.sockets] == [paced.url.replace("http://", "ws://") + "/ws"]
    assert traffic.posts == []
    assert {"history", "memories"} <= {m.get("action") for m in traffic.sent}
    turn = traffic.request(prompt="What is 25 * 4?")
    assert turn["session_id"] == session and turn["stream_tokens"] is True
    ids = [m["request_id"] for m in traffic.sent]
    assert len(set(ids)) == len(ids)  # each request its own id
    answers = traffic.answers(turn)
    events = [m["event"] for m in answers]
    assert events[0] == "agent_start" and events[-1] == "agent_end" and events.count("llm_token") >= 6, events
    assert [m["id"] for m in answers] == list(range(1, len(answers) + 1))
    assert all(m["run_id"] == answers[0]["data"]["run_id"] for m in answers)
    assert "1 tool call" in page.inner_text(".turn:last-child .metrics")
    assert page.locator("#notice").is_hidden() and page.locator(".error").count() == 0
    assert page.problems == []


@pytest.mark.parametrize("when", ["mid-answer", "right after sending"])
def test_stop_cancels_the_run_over_the_socket(paced, page, when):
    traffic = open_ws_page(page, paced.url)
    session = session_of(page)
    send(page, LONG)
    if when == "mid-answer":
        answer_longer_than(page, 10)
    page.click("#stop")
    page.wait_for_selector('.turn:last-child .msg.agent[data-state="stopped"]')
    turn = traffic.request(prompt=LONG)
    run_id = traffic.answers(turn)[0]["run_id"]
    cancel = traffic.request(action="cancel")
    assert cancel["run_id"] == run_id and cancel["session_id"] == session
    last = traffic.answers(turn)[-1]
    assert last["event"] == "error" and last["data"]["code"] == "cancelled"
    assert post(paced.url, {"action": "status", "session_id": session}).json()["state"] == "cancelled"
    history = post(paced.url, {"action": "history", "session_id": session}).json()
    assert history["messages"] == [] and history["run"] is None  # rolled back, nothing running
    assert page.is_enabled("#send") and not page.is_enabled("#stop")
    send(page, "What is 25 * 4?")  # the same socket answers the next turn
    last_turn_done(page)
    assert "100" in answer_text(page) and len(traffic.sockets) == 1 and traffic.posts == []
    assert [m["event"] for m in traffic.answers(cancel)] == ["result"]  # (answered long before this turn's end)
    assert page.problems == []


def test_an_approval_is_asked_and_answered_over_the_socket(approvals, page):
    traffic = open_ws_page(page, approvals.url)
    send(page, "What is 25 * 4?")
    page.wait_for_selector('.turn:last-child .msg.agent[data-state="interrupted"]')
    card = page.locator("form.approval")
    assert "calculator" in card.inner_text()
    asked = [m for m in traffic.answers(traffic.request(prompt="What is 25 * 4?")) if m["event"] == "interrupt"]
    assert len(asked) == 1 and asked[0]["data"]["tool_name"] == "calculator"
    page.click("form.approval button.approve")
    last_turn_done(page)
    assert "100" in answer_text(page) and page.locator("form.approval").count() == 0
    tool = page.locator(".turn:last-child details.tool")
    assert tool.get_attribute("data-status") == "success" and tool.locator(".result").inner_text() == "100"
    resumed = [m for m in traffic.sent if "resume" in m]
    assert len(resumed) == 1 and resumed[0]["resume"] == {"interrupt_id": asked[0]["data"]["interrupt_id"],
                                                          "approved": True}
    assert traffic.answers(resumed[0])[-1]["event"] == "agent_end"
    assert traffic.posts == [] and page.problems == []


def test_a_socket_that_cannot_open_leaves_the_page_on_http_and_it_says_so(paced, page):
    refused: list[str] = []

    def unavailable(route: Any) -> None:  # closed before it opens, as a proxy without WebSocket support has it
        refused.append(route.url)
        route.close(code=1011, reason="unavailable")

    page.route_web_socket("**/ws", unavailable)
    traffic = open_ws_page(page, paced.url)
    session = session_of(page)
    send(page, "What is 25 * 4?")
    last_turn_done(page)
    assert "100" in answer_text(page) and answer_text(page) == stored_answer(paced.url, session)
    assert FALLBACK in page.inner_text("#notice") and page.is_visible("#notice")
    assert len(refused) == 1  # tried once: every request after it is POSTed
    assert traffic.sent == []
    assert [p.get("prompt") for p in traffic.posts if "prompt" in p] == ["What is 25 * 4?"]
    assert {"history", "memories"} <= {p.get("action") for p in traffic.posts}
    send(page, "What is 7 * 6?")
    page.wait_for_selector(f".turn:nth-child(2) {DONE}")
    assert "42" in answer_text(page) and len(refused) == 1
    assert page.locator(".error").count() == 0 and page.problems == []


def test_a_socket_dropped_mid_answer_re_attaches_over_http_and_the_answer_completes_once(paced, page):
    with CuttingProxy(paced.port) as proxy:
        traffic = open_ws_page(page, proxy.url)
        session = session_of(page)
        send(page, LONG)
        answer_longer_than(page, 20)
        assert proxy.cut() >= 1  # the socket (and any idle HTTP connection) drops mid-answer
        last_turn_done(page)
    assert answer_text(page) == stored_answer(paced.url, session)  # every token once, none missing, in order
    turn = traffic.request(prompt=LONG)
    run_id = traffic.answers(turn)[0]["run_id"]
    assert "llm_token" in {m["event"] for m in traffic.answers(turn)}  # it began on the socket
    resumes = [p for p in traffic.posts if p.get("action") == "resume"]  # and ended over HTTP, from where it was
    assert len(resumes) >= 1 and resumes[0]["run_id"] == run_id and resumes[0]["last_event_id"] > 0
    assert not any("prompt" in p for p in traffic.posts)  # the turn was not sent again
    assert FALLBACK in page.inner_text("#notice")
    assert page.locator(".turn").count() == 1 and page.locator(".error").count() == 0
    assert page.problems == []


def test_a_socket_closed_for_idleness_is_replaced_not_given_up(browser_ready, page):
    with LiveServer({"OFFLINE_TOKEN_DELAY_MS": "10", "WS_IDLE_TIMEOUT_S": "1"}) as live:
        traffic = open_ws_page(page, live.url)
        first = traffic.sockets[0]
        first.wait_for_event("close")  # the server's idle close (1000): nothing was in flight
        send(page, "What is 25 * 4?")
        last_turn_done(page)
        assert "100" in answer_text(page)
        assert page.locator("#notice").is_hidden()  # (while the server runs: its stop closes the socket, 1012)
    assert len(traffic.sockets) == 2 and traffic.posts == []
    assert traffic.answers(traffic.request(prompt="What is 25 * 4?"))[-1]["event"] == "agent_end"
    assert page.problems == []
