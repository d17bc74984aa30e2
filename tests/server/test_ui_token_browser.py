"""The chat page against a server with AUTH_MODE=jwt, in headless Chromium: refused (401), it asks for a bearer
token, keeps it for the tab, and sends it with every request — each POST's Authorization header, or a WebSocket's
first message (`?transport=ws`); the turns are the token's actor's. A token refused later asks again."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from testkit import loopback
from testkit.live_server import LiveServer
from tests.server.test_auth import AUDIENCE, ISSUER, Keys
from tests.server import test_ui_ws_browser as ws_page
from tests.server.test_ui_ws_browser import Traffic, answer_text, last_turn_done, send, session_of

# The WebSocket page tests' fixtures: Chromium launched once a module, a context and page per test.
browser_ready, launched, context, page = ws_page.browser_ready, ws_page.launched, ws_page.context, ws_page.page

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def keys() -> Keys:
    return Keys()


@pytest.fixture(scope="module")
def guarded(browser_ready: None, keys: Keys, tmp_path_factory: Any) -> Iterator[LiveServer]:
    jwks = tmp_path_factory.mktemp("jwks") / "jwks.json"
    jwks.write_text(json.dumps(keys.jwks()))
    with LiveServer({"AUTH_MODE": "jwt", "JWT_JWKS_FILE": str(jwks), "JWT_ISSUER": ISSUER,
                     "JWT_AUDIENCE": AUDIENCE}) as live:
        yield live


def authorizations(page: Any) -> list[str | None]:
    """The Authorization header of each POST the page sends, as Playwright sees them."""
    seen: list[str | None] = []
    page.on("request", lambda r: seen.append(r.headers.get("authorization")) if r.method == "POST" else None)
    return seen


def signed_in(page: Any, url: str, token: str) -> None:
    """The page at `url`, refused, asking for a token; given `token`, it loads again with it."""
    page.goto(url)
    page.wait_for_selector("#token-form:not([hidden])")
    assert "AUTH_MODE=jwt" in page.inner_text("#token-why")
    assert page.evaluate("() => document.activeElement.id") == "token"
    page.fill("#token", f"Bearer {token}")  # as copied from a header: the prefix is taken off
    with page.expect_navigation():
        page.click("#use-token")
    page.wait_for_function("() => document.getElementById('session-id').textContent !== ''")
    assert page.is_hidden("#token-form")


def history_of(live: LiveServer, token: str, session: str) -> list[str]:
    reply = loopback.post(live.url + "/invocations", json={"action": "history", "session_id": session},
                          headers={"Authorization": f"Bearer {token}"}, timeout=30)
    assert reply.status_code == 200, reply.text
    return [m["content"] for m in reply.json()["messages"] if m["type"] == "human"]


def answered(page: Any, prompt: str) -> str:
    send(page, prompt)
    last_turn_done(page)
    return answer_text(page)


def test_over_http_the_page_asks_for_a_token_and_posts_it(page, guarded, keys):
    token = keys.token("alice")
    sent = authorizations(page)
    signed_in(page, guarded.url + "/", token)
    assert "The result of 6 * 7 is 42." in answered(page, "What is 6 * 7?")
    assert sent[0] is None and sent[-1] == f"Bearer {token}"  # refused without, then every POST with it
    assert history_of(guarded, token, session_of(page)) == ["What is 6 * 7?"]  # alice's session
    other = loopback.post(guarded.url + "/invocations", json={"action": "history", "session_id": session_of(page)},
                          headers={"Authorization": f"Bearer {keys.token('bob')}"}, timeout=30)
    assert other.status_code == 403 and not page.problems


def test_over_the_socket_the_token_is_its_first_message(page, guarded, keys):
    token = keys.token("alice")
    traffic = Traffic(page)
    signed_in(page, guarded.url + "/?transport=ws", token)
    assert "The result of 2 + 2 is 4." in answered(page, "What is 2 + 2?")
    last = traffic.sockets[-1]
    firsts = [m for m in traffic.sent if "authorization" in m]
    assert firsts and firsts[-1] == {"authorization": f"Bearer {token}"}
    assert any(m.get("event") == "authenticated" and m["data"]["actor_id"] == "alice" for m in traffic.received)
    assert traffic.request(prompt="What is 2 + 2?")  # the turn went over the socket
    assert not last.is_closed() and page.is_hidden("#notice") and not page.problems


def test_a_token_refused_later_asks_again(page, guarded, keys):
    signed_in(page, guarded.url + "/", keys.token("alice"))
    page.evaluate("() => sessionStorage.setItem('langgraph-agentcore.token', 'not-a-token')")
    page.reload()
    page.wait_for_selector("#token-form:not([hidden])")
    assert not page.problems
