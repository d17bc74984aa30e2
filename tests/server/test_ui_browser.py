"""The chat page end to end, in headless Chromium (Debian's package, driven by Playwright) against the real
server on a free port, with the offline model paced at 40 ms a token: streaming, the tool step and metrics,
history after a reload, Stop, a dropped connection, approvals, hostile text, Retry, keyboard use, 360 px; and users'
graphs (tests/graphs/): a subgraph's progress and a question answered, a HumanInTheLoopMiddleware review decided.

Without Chromium these tests are skipped and say why; with REQUIRE_BROWSER=1 (as `.ci/run` sets) they fail
instead, so CI cannot pass without having run them."""

from __future__ import annotations

import os
import re
import time
from pathlib import Path
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from bedrock.offline.endpoint import HttpError, OfflineBedrockEndpoint
from testkit.browser import VIEWPORT, browser, chromium_missing
from testkit.live_server import LiveServer
from testkit.proxy import CuttingProxy
from testkit import loopback

pytestmark = pytest.mark.slow  # (pyproject.toml: `make test-quick` leaves it out)

GRAPHS = Path(__file__).resolve().parent.parent / "graphs"
LONG = "Tell me about the sea"
DONE = '.msg.agent[data-state="done"]'
LAST_AGENT = ".turn:last-child .msg.agent"


@pytest.fixture(scope="module")
def browser_ready() -> None:
    missing = chromium_missing()
    if missing and os.environ.get("REQUIRE_BROWSER") == "1":
        pytest.fail(f"REQUIRE_BROWSER=1 but {missing}")
    if missing:
        pytest.skip(missing)


@pytest.fixture(scope="module")
def paced(browser_ready: None) -> Iterator[LiveServer]:
    with LiveServer({"OFFLINE_TOKEN_DELAY_MS": "40"}) as live:
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
    page.problems = []  # uncaught errors on the page: none may happen
    page.on("pageerror", lambda error: page.problems.append(str(error)))
    return page


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


SAMPLER = """() => {
  // Each change to the conversation: when, how much answer text the last turn shows, and its state.
  window.samples = [];
  new MutationObserver(() => {
    const agent = document.querySelector('.turn:last-child .msg.agent');
    if (!agent) return;
    const text = [...agent.querySelectorAll('.answer')].map((b) => b.textContent).join('');
    window.samples.push({t: performance.now(), length: text.length, state: agent.dataset.state});
  }).observe(document.getElementById('log'), {subtree: true, childList: true, characterData: true,
                                               attributes: true});
}"""


def test_the_answer_grows_token_by_token_with_its_tool_step_and_metrics(paced, page):
    page.goto(paced.url + "/")
    page.evaluate(SAMPLER)
    send(page, "What is 25 * 4?")
    last_turn_done(page)
    samples = page.evaluate("window.samples")
    streaming = [s for s in samples if s["state"] == "streaming"]
    lengths = sorted({s["length"] for s in streaming if s["length"]})
    # "The result of 25 * 4 is 100." and the text before the tool call, 40 ms a token: many visible steps,
    # spread over the stream, every one before agent_end.
    assert len(lengths) >= 6, lengths
    growth = [s["t"] for s in streaming if s["length"]]
    assert growth[-1] - growth[0] >= 200
    assert "100" in answer_text(page)
    tool = page.locator(".turn:last-child details.tool")
    assert tool.count() == 1 and tool.get_attribute("data-status") == "success"
    assert "25 * 4" in tool.locator("summary").inner_text() and tool.locator(".result").inner_text() == "100"
    tool.locator("summary").click()  # expands: the arguments and the result in full
    assert '"expression": "25 * 4"' in tool.locator("pre").first.inner_text()
    metrics = page.inner_text(".turn:last-child .metrics")
    assert int(re.match(r"(\d+) tokens", metrics).group(1)) > 0 and "1 tool call" in metrics
    assert "first token" in metrics
    assert page.get_attribute(LAST_AGENT, "aria-live") == "polite"
    assert page.get_attribute(LAST_AGENT, "aria-busy") == "false"
    assert page.problems == []


def test_a_reload_shows_the_sessions_conversation_and_memory_answers(paced, page):
    page.goto(paced.url + "/")
    session = session_of(page)
    send(page, "My name is Ada")
    last_turn_done(page)
    page.reload()
    page.wait_for_selector(DONE)
    assert session_of(page) == session
    assert page.locator(".msg.user").all_inner_texts()[0].endswith("My name is Ada")
    assert "Ada" in answer_text(page)
    send(page, "What's my name?")
    page.wait_for_selector(f".turn:nth-child(2) {DONE}")
    assert "Your name is Ada" in answer_text(page)
    page.click("#new-chat")
    page.wait_for_function("() => document.querySelectorAll('.turn').length === 0")
    assert session_of(page) != session
    send(page, "What's my name?")
    last_turn_done(page)
    assert "Ada" not in answer_text(page)
    assert page.problems == []


@pytest.mark.parametrize("when", ["mid-answer", "right after sending"])
def test_stop_ends_the_run_on_the_server_and_the_next_prompt_answers_at_once(paced, page, when):
    """Right after sending, Stop most often comes before agent_start: the page cancels once it knows the run."""
    page.goto(paced.url + "/")
    session = session_of(page)
    send(page, LONG)
    if when == "mid-answer":
        answer_longer_than(page, 10)
    page.click("#stop")
    page.wait_for_selector('.turn:last-child .msg.agent[data-state="stopped"]')
    status = post(paced.url, {"action": "status", "session_id": session}).json()
    assert status["state"] == "cancelled"
    history = post(paced.url, {"action": "history", "session_id": session}).json()
    assert history["messages"] == [] and history["run"] is None  # rolled back, nothing running
    assert page.is_enabled("#send") and not page.is_enabled("#stop")
    asked = time.monotonic()
    send(page, "What is 25 * 4?")
    last_turn_done(page)
    assert time.monotonic() - asked < 5  # no wait for the stopped run: a few 40 ms tokens and one tool call
    first_token_ms = float(re.search(r"first token (\d+) ms", page.inner_text(".turn:last-child .metrics")).group(1))
    assert first_token_ms < 1000 and "100" in answer_text(page)
    assert page.problems == []


def test_a_dropped_connection_re_attaches_and_the_answer_completes_once(paced, page):
    with CuttingProxy(paced.port) as proxy:
        page.goto(proxy.url + "/")
        session = session_of(page)
        resumes: list[str] = []
        page.on("request", lambda r: resumes.append(r.post_data) if '"resume"' in (r.post_data or "") else None)
        send(page, LONG)
        answer_longer_than(page, 20)
        assert proxy.cut() >= 1  # mid-answer: the browser's read fails
        last_turn_done(page)
    stored = post(paced.url, {"action": "history", "session_id": session}).json()["messages"]
    assert [m["type"] for m in stored] == ["human", "ai"]
    assert answer_text(page) == stored[1]["content"]  # every token once, none missing, in order
    assert len(resumes) >= 1 and '"last_event_id"' in resumes[0]
    assert page.locator(".turn").count() == 1 and page.locator(".error").count() == 0
    assert page.problems == []


@pytest.fixture(scope="module")
def approvals(browser_ready: None) -> Iterator[LiveServer]:
    with LiveServer({"OFFLINE_TOKEN_DELAY_MS": "40", "APPROVAL_REQUIRED_TOOLS": "calculator"}) as live:
        yield live


def test_approve_with_edited_arguments_and_decline_by_keyboard_alone(approvals, page):
    page.goto(approvals.url + "/")
    page.keyboard.press("Tab")  # Memories
    page.keyboard.press("Tab")  # New chat
    page.keyboard.press("Tab")  # the message box
    assert page.evaluate("document.activeElement.id") == "prompt"
    page.keyboard.type("What is 25 * 4?")
    page.keyboard.press("Enter")
    page.wait_for_selector('.turn:last-child .msg.agent[data-state="interrupted"]')
    card = page.locator("form.approval")
    assert "calculator" in card.inner_text()
    # The page lands the keyboard on Approve; a reload keeps the question (it is the session's, on the server).
    assert page.evaluate("document.activeElement.textContent") == "Approve"
    page.reload()
    page.wait_for_selector("form.approval")
    page.locator("form.approval button.approve").focus()
    page.keyboard.press("Shift+Tab")  # the arguments
    page.keyboard.press("Control+A")
    page.keyboard.type('{"expression": "25 * 5"}')
    page.keyboard.press("Tab")
    page.keyboard.press("Enter")  # Approve
    last_turn_done(page)
    tool = page.locator(".turn:last-child details.tool")
    assert tool.locator(".call").inner_text() == "calculator(25 * 5)" and tool.locator(".result").inner_text() == "125"
    assert "125" in answer_text(page) and page.locator("form.approval").count() == 0

    page.locator("#prompt").focus()
    page.keyboard.type("What is 7 * 6?")
    page.keyboard.press("Enter")
    page.wait_for_selector("form.approval")
    page.keyboard.press("Tab")  # from Approve to Decline
    page.keyboard.press("Enter")
    last_turn_done(page)
    tool = page.locator(".turn:last-child details.tool")
    assert tool.get_attribute("data-status") == "error" and "42" not in answer_text(page)
    assert page.problems == []


def test_invalid_edited_arguments_are_refused_on_the_page(approvals, page):
    page.goto(approvals.url + "/")
    send(page, "What is 2 + 2?")
    page.wait_for_selector("form.approval")
    page.fill("form.approval textarea", "{not json")
    page.click("form.approval button.approve")
    assert "Not valid JSON" in page.inner_text("form.approval .problem")
    page.fill("form.approval textarea", "[1, 2]")
    page.click("form.approval button.approve")
    assert "must be a JSON object" in page.inner_text("form.approval .problem")
    page.click("form.approval button.decline")
    last_turn_done(page)


XSS = """<img src=x onerror="document.title='pwned'"><script>document.title='pwned'</script>"""


def test_hostile_text_shows_as_text_and_the_policy_forbids_inline_code(paced, page):
    violations: list[str] = []
    page.on("console", lambda m: violations.append(m.text) if "Content Security Policy" in m.text else None)
    response = page.goto(paced.url + "/")
    policy = response.headers["content-security-policy"]
    assert "script-src 'self'" in policy and "style-src 'self'" in policy and "unsafe-inline" not in policy
    assert loopback.get(paced.url + "/ui/chat.js").headers["content-security-policy"] == policy
    title = page.title()
    send(page, XSS)
    last_turn_done(page)
    for _ in range(2):  # as streamed, then as read back from the history
        assert page.locator(".msg.user .text").first.inner_text() == XSS
        assert page.locator("#log img, #log script").count() == 0
        assert page.title() == title
        page.reload()
        page.wait_for_selector(DONE)
    # Were markup ever inserted as HTML, the policy would still refuse its inline handler.
    page.evaluate("""() => { const d = document.createElement('div');
        d.innerHTML = '<img src="/nowhere" onerror="document.title = \\'pwned\\'">'; document.body.append(d); }""")
    page.wait_for_function("() => document.querySelector('body > div img') !== null")
    page.wait_for_timeout(300)  # the image's load fails at once; its handler must not have run by now
    assert page.title() == title and any("inline event handler" in v or "script-src" in v for v in violations)


def test_a_retryable_error_shows_its_code_and_retry_answers(browser_ready, page):
    endpoint = OfflineBedrockEndpoint(token_delay_ms=40).start()
    try:
        env = {"MODEL_PROVIDER": "bedrock", "AWS_ENDPOINT_URL_BEDROCK_RUNTIME": endpoint.url,
               "BEDROCK_MAX_ATTEMPTS": "1"}
        with LiveServer(env) as live:
            page.goto(live.url + "/")
            endpoint.then(HttpError(429, "ThrottlingException", "Too many requests"))
            send(page, "What is 25 * 4?")
            error = page.wait_for_selector('.turn:last-child .error[data-code="model_throttled"]')
            assert "model_throttled" in error.inner_text() and page.is_enabled("#send")
            page.click(".turn:last-child .error button.retry")
            last_turn_done(page)
            assert "100" in answer_text(page) and page.locator(".error").count() == 0
            assert page.locator(".turn").count() == 1 and page.locator("details.tool").count() == 1
            assert page.problems == []
    finally:
        endpoint.stop()


def test_readable_at_360_px_without_sideways_scrolling(paced, context):
    page = context.new_page()
    page.set_viewport_size({"width": 360, "height": 740})
    page.goto(paced.url + "/")
    send(page, "What is 25 * 4? " + "x" * 300)  # one long unbroken word must wrap, not widen the page
    last_turn_done(page)
    assert page.evaluate("document.documentElement.scrollWidth") <= 360
    for selector in ("#prompt", "#send", "#new-chat", ".turn:last-child details.tool"):
        box = page.locator(selector).bounding_box()
        assert box["x"] >= 0 and box["x"] + box["width"] <= 360, selector
    labels = page.evaluate("[...document.querySelectorAll('textarea')].map((t) => t.labels.length)")
    assert labels and all(count == 1 for count in labels)


def test_a_reload_mid_answer_follows_the_run_to_its_end(paced, page):
    page.goto(paced.url + "/")
    session = session_of(page)
    send(page, LONG)
    answer_longer_than(page, 20)
    page.reload()  # the run goes on without its page (as on AgentCore); the new page re-attaches from event 0
    page.wait_for_selector('.turn:last-child .msg.agent[data-state="streaming"]')
    last_turn_done(page)
    stored = post(paced.url, {"action": "history", "session_id": session}).json()["messages"]
    assert page.locator(".msg.user .text").all_inner_texts() == [LONG]
    assert answer_text(page) == stored[1]["content"] and page.locator(".turn").count() == 1
    assert page.problems == []


def test_the_readme_screenshot_is_made_from_a_finished_tool_turn(context, tmp_path):
    from testkit.screenshot import screenshot

    png = screenshot(tmp_path / "chat.png", context=context).read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and int.from_bytes(png[16:20], "big") == 900


READS_RECORDER = """
// Test instrumentation: what each network read of an event stream held, as the page's reader gets it.
window.streamReads = [];
const pageFetch = window.fetch;
window.fetch = async (...args) => {
  const response = await pageFetch(...args);
  if (!(response.headers.get('content-type') || '').startsWith('text/event-stream')) return response;
  const [forPage, forTest] = response.body.tee();
  (async () => {
    const reader = forTest.getReader();
    const decoder = new TextDecoder();
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      window.streamReads.push(decoder.decode(value, { stream: true }));
    }
  })();
  return new Response(forPage, { status: response.status, headers: response.headers });
};
"""


@pytest.mark.parametrize("network", ["each frame split over three reads", "frames held and read together"])
def test_the_page_reads_frames_however_the_network_cuts_them(browser_ready, page, network):
    """Pings every 100 ms between the frames; each frame split over many reads, or many frames (and pings) in one."""
    chunking = {"split_parts": 3} if "split" in network else {"hold_s": 0.3}
    page.add_init_script(READS_RECORDER)
    with LiveServer({"OFFLINE_TOKEN_DELAY_MS": "40", "SSE_PING_INTERVAL_S": "0.1"}) as live, \
            CuttingProxy(live.port, **chunking) as proxy:
        page.goto(proxy.url + "/")
        session = session_of(page)
        send(page, "What is 25 * 4?")
        last_turn_done(page)
        stored = post(live.url, {"action": "history", "session_id": session}).json()["messages"]
    reads = page.evaluate("window.streamReads")
    assert ": ping" in "".join(reads)  # comments came between the frames
    if "split" in network:  # many reads end inside a frame
        assert sum(not r.endswith("\n\n") for r in reads) >= 10, reads[:20]
    else:  # some read holds several frames
        assert max(r.count("\n\n") for r in reads) >= 3, reads[:20]
    assert answer_text(page) == " ".join(m["content"] for m in stored if m["type"] == "ai" and m["content"])
    assert page.locator(".turn:last-child .result").inner_text() == "100"
    assert page.locator(".error").count() == 0 and page.problems == []


# --- users' graphs ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def questions(browser_ready: None) -> Iterator[LiveServer]:
    with LiveServer({"AGENT_GRAPH": f"{GRAPHS / 'questions.py'}:graph", "OFFLINE_TOKEN_DELAY_MS": "40"}) as live:
        yield live


@pytest.fixture(scope="module")
def reviews(browser_ready: None) -> Iterator[LiveServer]:
    with LiveServer({"AGENT_GRAPH": f"{GRAPHS / 'hitl.py'}:graph", "OFFLINE_TOKEN_DELAY_MS": "10"}) as live:
        yield live


def focused(page: Any) -> dict[str, Any]:
    return page.evaluate("({id: document.activeElement.id, tag: document.activeElement.tagName,"
                         " text: document.activeElement.textContent, type: document.activeElement.type})")


def test_a_graphs_progress_shows_and_its_question_is_answered_by_keyboard(questions, page):
    page.goto(questions.url + "/")
    title = page.title()
    send(page, "Plan a trip")
    page.wait_for_selector('.turn:last-child .msg.agent[data-state="interrupted"]')
    progress = page.locator(".turn:last-child .progress").all_inner_texts()
    assert len(progress) == 2 and all(line.startswith("research › search") for line in progress), progress
    assert '{"phase":"start"}' in progress[0] and '{"phase":"done"}' in progress[1]
    assert "research › search" in page.locator(".turn:last-child .parts > p.node").all_inner_texts()
    assert "I looked at a few places." in answer_text(page)
    card = page.locator("form.question")
    assert "Which city?" in card.inner_text() and "Question from ask" in card.inner_text()
    assert focused(page)["tag"] == "TEXTAREA"  # the keyboard lands in the answer box
    # A reload asks the same question (it is the session's, on the server), and the keyboard lands there again.
    page.reload()
    page.wait_for_selector("form.question")
    assert page.locator("form.question").count() == 1 and focused(page)["tag"] == "TEXTAREA"
    page.keyboard.type("Paris")
    page.keyboard.press("Enter")
    last_turn_done(page)
    assert "City is Paris" in answer_text(page) and page.locator("form.question").count() == 0
    assert "You answered: Paris" in page.inner_text(".turn:last-child .msg.agent")
    update = page.locator(".turn:last-child details.update")
    assert update.count() == 1 and update.locator("summary").inner_text().startswith("ask")
    assert '{"city":"Paris"}' in update.locator("summary").inner_text()
    # A hostile answer is text wherever it shows (the note, the graph's message, its values).
    send(page, "Plan another trip")
    page.wait_for_selector("form.question")
    page.keyboard.type(XSS)
    page.keyboard.press("Enter")
    page.wait_for_selector(f".turn:nth-child(2) {DONE}")
    assert f"City is {XSS}" in answer_text(page) and f"You answered: {XSS}" in page.inner_text(".turn:last-child")
    assert page.locator("#log img, #log script").count() == 0 and page.title() == title
    assert page.problems == []


def test_an_answer_whose_run_is_stopped_is_asked_for_again(questions, page):
    """Stopping the run that answered rolls it back: the graph waits for that answer again, and the page asks."""
    page.goto(questions.url + "/")
    send(page, "Plan a trip")
    page.wait_for_selector("form.question")
    page.keyboard.type("Paris")
    page.keyboard.press("Enter")
    page.wait_for_function("() => document.querySelector('.turn:last-child .answer[data-node=answer]')"
                           "?.textContent.length > 3")
    page.click("#stop")
    page.wait_for_selector('.turn:last-child .msg.agent[data-state="stopped"]')
    page.wait_for_selector("form.question")
    page.fill("form.question textarea", '"Rome"')  # JSON: the string Rome
    page.press("form.question textarea", "Enter")
    last_turn_done(page)
    assert "City is Rome" in answer_text(page) and "City is Paris" not in answer_text(page)
    assert page.problems == []


def test_a_human_in_the_loop_review_is_approved_edited_and_rejected_by_keyboard(reviews, page):
    page.goto(reviews.url + "/")
    send(page, 'refund({"order_id": "A1", "amount": 5})')
    page.wait_for_selector("form.review")
    tool = page.locator(".turn:last-child details.tool")
    assert tool.get_attribute("data-status") == "pending" and "refund" in tool.locator(".call").inner_text()
    assert "refund" in page.inner_text("form.review legend")
    assert focused(page)["text"] == "Send decision"  # the keyboard lands on the decision; Approve is chosen
    page.keyboard.press("Enter")
    last_turn_done(page)
    assert tool.get_attribute("data-status") == "success" and tool.locator(".result").inner_text() == (
        "Refunded 5 on order A1.")
    assert "refund returned: Refunded 5 on order A1." in answer_text(page)
    assert "refund: approved" in page.inner_text(".turn:last-child .msg.agent")

    # Edited arguments: an `edit` decision (the middleware runs the reviewer's call)
    send(page, 'refund({"order_id": "A1", "amount": 5})')
    page.wait_for_selector("form.review")
    page.keyboard.press("Shift+Tab")  # the decision (Approve)
    page.keyboard.press("Shift+Tab")  # the arguments
    page.keyboard.press("Control+A")
    page.keyboard.type('{"order_id": "A1", "amount": 2}')
    page.keyboard.press("Tab")
    page.keyboard.press("Tab")
    page.keyboard.press("Enter")
    page.wait_for_selector(f".turn:nth-child(2) {DONE}")
    assert "Refunded 2 on order A1." in page.locator(".turn:last-child details.tool .result").inner_text()
    assert "approved with edited arguments" in page.inner_text(".turn:last-child .msg.agent")

    # Rejected, with a reason
    send(page, 'refund({"order_id": "A1", "amount": 5})')
    page.wait_for_selector("form.review")
    assert page.locator("form.review .message").is_hidden()
    page.keyboard.press("Shift+Tab")  # the decision
    page.keyboard.press("ArrowRight")  # Reject
    assert focused(page)["type"] == "radio" and page.locator("form.review .message").is_visible()
    page.keyboard.press("Tab")  # the reason
    page.keyboard.type("too much")
    page.keyboard.press("Tab")
    page.keyboard.press("Enter")
    page.wait_for_selector(f".turn:nth-child(3) {DONE}")
    rejected = page.locator(".turn:last-child details.tool")
    assert rejected.get_attribute("data-status") == "error" and "too much" in rejected.locator(".result").inner_text()
    assert "refund: rejected" in page.inner_text(".turn:last-child .msg.agent")
    assert page.locator("form.review").count() == 0 and page.problems == []
