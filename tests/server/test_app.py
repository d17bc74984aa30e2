"""The wire over real HTTP: uvicorn on a free loopback port, real clients (httpx, the guide's snippets)."""

from __future__ import annotations

import json
import re
from typing import Any

import httpx
import pytest

from bedrock.streaming_utils import SSEDecoder
from bedrock.config import Settings
from testkit.sse import frames_of
from tests.guide import run_httpx_client
from testkit import loopback



def post_stream(url: str, payload: dict[str, Any], path: str = "/invocations", **kwargs: Any) -> tuple[httpx.Response, bytes]:
    with loopback.Client(timeout=30) as client:
        with client.stream("POST", url + path, json=payload, **kwargs) as response:
            return response, response.read()




def test_stream_frames_are_byte_exact_and_bracketed(server, session_id):
    response, body = post_stream(server.url, {"prompt": "What is 25 * 4?", "session_id": session_id, "stream": True, "stream_tokens": True})
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/event-stream")
    assert response.headers["cache-control"] == "no-cache"
    assert response.headers["x-accel-buffering"] == "no"
    frames = frames_of(body)
    types = [f[0] for f in frames]
    assert types[0] == "agent_start" and types.count("agent_start") == 1
    assert types[-1] == "agent_end" and sum(t in ("agent_end", "error") for t in types) == 1
    assert [f[2] for f in frames] == list(range(1, len(frames) + 1))
    assert "llm_token" in types
    end = frames[-1][1]
    assert "100" in end["output"] and end["metrics"]["tool_calls"] == 1 and end["metrics"]["tokens"] > 0
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", end["timestamp"])


def test_idle_stream_gets_ping_comments(make_server, session_id):
    live = make_server({"SSE_PING_INTERVAL_S": "0.05", "OFFLINE_TOKEN_DELAY_MS": "60", "TOKEN_BUFFER_SIZE": "1"})
    _, body = post_stream(live.url, {"prompt": "What is 25 * 4?", "session_id": session_id, "stream": True, "stream_tokens": True})
    assert b"\n\n: ping\n\n" in body or body.startswith(b": ping\n\n")
    assert frames_of(body)[-1][0] == "agent_end"  # pings never break a frame


def test_session_header_is_used_on_invocations(server):
    _, body = post_stream(
        server.url, {"prompt": "hi", "stream": True},
        headers={"X-Amzn-Bedrock-AgentCore-Runtime-Session-Id": "hdr-session-1"},
    )
    assert frames_of(body)[0][1]["session_id"] == "hdr-session-1"


@pytest.mark.parametrize("path", ["/invocations", "/invoke"])
def test_non_stream_reply_equals_the_fold_of_the_stream(server, session_id, path):
    prompt = {"prompt": "What is 25 * 4?"}
    reply = loopback.post(server.url + path, json={**prompt, "session_id": session_id + "-a"}, timeout=30)
    assert reply.status_code == 200 and reply.headers["content-type"] == "application/json"
    result = reply.json()
    _, body = post_stream(server.url, {**prompt, "session_id": session_id + "-b"}, path="/stream")
    end = frames_of(body)[-1][1]
    assert result["output"] == end["output"] == "The result of 25 * 4 is 100."
    assert result["steps"] == end["steps"] == 4
    timing = ("latency_ms", "time_to_first_token_ms")
    assert {k: v for k, v in result["metrics"].items() if k not in timing} == {
        k: v for k, v in end["metrics"].items() if k not in timing
    }
    assert result["session_id"] == session_id + "-a" and result["actor_id"] == "default-user"


@pytest.mark.parametrize(
    "path, body",
    [
        ("/invoke", b"{not json"),
        ("/invoke", b""),
        ("/stream", b"[1, 2]"),
        ("/invocations", b'{"prompt": ""}'),
        ("/invocations", b'{"prompt": "x", "stream": "yes"}'),
        ("/invocations", b'"just a string"'),
    ],
)
def test_bad_input_gets_400_json_and_the_server_keeps_serving(server, path, body):
    response = loopback.post(server.url + path, content=body, headers={"content-type": "application/json"}, timeout=10)
    assert response.status_code == 400
    error = response.json()["error"]
    assert isinstance(error, dict) and error["code"] == "invalid_payload" and error["message"]
    assert "Traceback" not in response.text
    assert loopback.get(server.url + "/ping", timeout=5).json()["status"] == "Healthy"


def test_guide_httpx_client_reads_the_stream(server, session_id):
    lines = run_httpx_client(server.url)
    assert lines[0].startswith("[agent_start]") and lines[-1].startswith("[agent_end]")
    assert "The result of 2+2 is 4." in lines[-1]


def test_httpx_sse_reads_typed_events(server, session_id):
    from httpx_sse import connect_sse

    with loopback.Client(timeout=30) as client:
        with connect_sse(client, "POST", server.url + "/stream", json={"prompt": "What is 25 * 4?", "session_id": session_id}) as source:
            events = [(e.event, json.loads(e.data), e.id) for e in source.iter_sse()]
    assert events[0][0] == "agent_start" and events[-1][0] == "agent_end" and events[-1][2] == str(len(events))


def test_decoder_reads_the_live_stream_chunk_by_chunk(server, session_id):
    decoder, events = SSEDecoder(), []
    with loopback.Client(timeout=30) as client:
        with client.stream("POST", server.url + "/stream", json={"prompt": "What is 7 * 6?", "session_id": session_id, "stream_tokens": True}) as response:
            for chunk in response.iter_raw():
                events.extend(decoder.feed(chunk))
    assert events[-1]["type"] == "agent_end" and "42" in events[-1]["output"]


@pytest.mark.parametrize("where", ["prompt", "preferences", "custom_data", "key"])
@pytest.mark.parametrize("shape", [{"stream": True}, {"stream": True, "stream_tokens": True}, {},
                                   {"stream_tokens": True}])
def test_a_lone_surrogate_anywhere_is_a_400_and_nothing_is_stored(server, session_id, where, shape):
    payload = {"prompt": "My name is Zed", "session_id": session_id, **shape}
    if where == "prompt":
        payload["prompt"] = "My name is Zed \ud800"
    elif where == "key":
        payload["custom_data"] = {"\udfff": 1}
    else:
        payload[where] = {"note": ["fine", "bad \ud800"]}
    body = json.dumps(payload)  # ASCII escapes: "\ud800" on the wire, as a hostile client sends it
    response = loopback.post(server.url + "/invocations", content=body, headers={"content-type": "application/json"},
                          timeout=30)
    assert response.status_code == 400, response.text
    assert response.json()["error"]["code"] == "invalid_payload"
    after = loopback.post(server.url + "/invocations", json={"prompt": "What's my name?", "session_id": session_id},
                       timeout=30)
    assert after.status_code == 200 and after.json()["output"].startswith("I don't know")


def test_an_unexpected_failure_is_a_json_500_without_internals(monkeypatch, tmp_path, session_id):
    from bedrock.core.build import build_agent
    from bedrock.offline.background import BackgroundServer
    from bedrock.server.app import build_app

    settings = Settings(memory_path=str(tmp_path / "m.sqlite"))
    agent = build_agent(settings)
    app = build_app(settings, agent=agent)

    def broken(*_: object, **__: object) -> object:  # a turn whose events fail outside its own error handling
        async def events() -> object:
            raise RuntimeError("secret /srv/internal/path")
            yield  # an async generator

        return events()

    monkeypatch.setattr(agent, "stream", broken)
    server = BackgroundServer(app)
    url = server.start()
    try:
        for path in ("/invocations", "/invoke", "/stream"):
            response = loopback.post(url + path, json={"prompt": "hi", "session_id": session_id}, timeout=30)
            if path == "/stream":  # the stream had begun: its one event is the error
                assert frames_of(response.content)[-1][1]["code"] == "internal_error"
            else:
                assert response.status_code == 500 and response.json()["error"]["code"] == "internal_error"
            assert "secret" not in response.text

        def broken_validation(*_: object, **__: object) -> None:
            raise RuntimeError("secret /srv/internal/path")

        monkeypatch.setattr(app.state.runtime, "validate", broken_validation)  # before any response exists
        response = loopback.post(url + "/invocations", json={"prompt": "hi", "session_id": session_id}, timeout=30)
        assert response.status_code == 500 and response.json()["error"]["code"] == "internal_error"
        assert "secret" not in response.text
    finally:
        server.stop()


def test_invocations_keep_the_sdks_request_context_and_read_the_body_once(monkeypatch, tmp_path, session_id):
    """Our `/invocations` handler replaces the SDK's: its request context must still be set for the turn, and
    no route reads or parses the body again after JSONBodyGuard."""
    from bedrock_agentcore.runtime.context import BedrockAgentCoreContext
    from starlette.requests import Request

    from bedrock.core.build import build_agent
    from bedrock.offline.background import BackgroundServer
    from bedrock.server.app import build_app

    settings = Settings(memory_backend="memory")
    agent = build_agent(settings)
    app = build_app(settings, agent=agent)
    seen: list[tuple[str | None, str | None]] = []
    stream = agent.stream

    def recording(*args: object, **kwargs: object) -> object:
        seen.append((BedrockAgentCoreContext.get_session_id(), BedrockAgentCoreContext.get_request_id()))
        return stream(*args, **kwargs)  # type: ignore[arg-type]

    reads: list[str] = []
    body = Request.body

    async def counted_body(self: Request) -> bytes:
        reads.append(self.url.path)
        return await body(self)

    monkeypatch.setattr(agent, "stream", recording)
    monkeypatch.setattr(Request, "body", counted_body)
    server = BackgroundServer(app)
    url = server.start()
    try:
        headers = {"X-Amzn-Bedrock-AgentCore-Runtime-Session-Id": session_id,
                   "X-Amzn-Bedrock-AgentCore-Runtime-Request-Id": "req-1"}
        reply = loopback.post(url + "/invocations", json={"prompt": "What is 2 + 2?"}, headers=headers, timeout=30)
        assert reply.status_code == 200 and reply.json()["session_id"] == session_id
        assert seen == [(session_id, "req-1")]
        for path in ("/invoke", "/stream"):
            assert loopback.post(url + path, json={"prompt": "hi", "session_id": session_id}, timeout=30).status_code == 200
        # Parsed once, by JSONBodyGuard: no route read it again (the in-process model endpoint's reads show
        # that the counter counts).
        assert [path for path in reads if not path.startswith("/model/")] == [] and reads
    finally:
        server.stop()
        agent.close()


@pytest.mark.parametrize("method, path, status, code", [
    ("GET", "/no-such-route", 404, "not_found"),
    ("POST", "/no-such-route", 404, "not_found"),
    ("GET", "/invocations", 405, "method_not_allowed"),
    ("DELETE", "/ping", 405, "method_not_allowed"),
])
def test_starlettes_own_refusals_are_in_the_one_json_shape(server, method, path, status, code):
    response = loopback.request(method, server.url + path, timeout=10)
    assert response.status_code == status and response.headers["content-type"] == "application/json"
    assert response.json()["error"]["code"] == code
    if status == 405:
        assert response.headers["allow"]  # the methods it does take, as Starlette says


def test_an_embedded_app_whose_agent_cannot_be_built_answers_errors_and_never_signals_its_process(tmp_path):
    """`build_app(..., process=False)` (an app inside someone else's server): a failed build used to SIGTERM the
    whole process it was embedded in. Its requests get `internal_error`; the process serving it goes on."""
    import signal

    from starlette.testclient import TestClient

    from bedrock.config import Settings
    from bedrock.server.app import build_app

    (tmp_path / "memory").write_text("a file where the memory folder should be")
    app = build_app(Settings(memory_backend="sqlite", memory_path=str(tmp_path / "memory" / "m.sqlite")))
    signalled: list[int] = []
    previous = signal.signal(signal.SIGTERM, lambda number, frame: signalled.append(number))
    try:
        with TestClient(app) as client:
            reply = client.post("/invocations", json={"prompt": "hi"})
            assert reply.status_code == 500 and reply.json()["error"]["code"] == "internal_error"
            assert "could not be started" in reply.json()["error"]["message"]
    finally:
        signal.signal(signal.SIGTERM, previous)
    assert signalled == []
