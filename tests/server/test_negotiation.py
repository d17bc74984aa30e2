"""Content negotiation (bedrock/server/negotiation.py) and what it changes over HTTP: a payload without
`"stream"` streams, with its tokens, when the client accepts only `text/event-stream` (as `agentcore dev` does);
`"stream_format": "text"` streams the run as text, which the starter toolkit's `agentcore invoke` prints as such."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from bedrock.server.negotiation import prefers_event_stream
from testkit.sse import frames_of
from testkit import loopback

@pytest.mark.parametrize("accept, streams", [
    ("text/event-stream", True),  # agentcore dev "…"
    ("text/event-stream, */*", True),  # agentcore dev's browser chat
    ("Text/Event-Stream", True),
    ("text/event-stream; q=0.9", True),
    ("text/event-stream, application/json;q=0", True),
    ("text/event-stream, application/json;q=0.5", True),
    ("text/*", True),  # JSON is not acceptable at all
    ("text/event-stream, application/json", False),  # the starter toolkit: either will do, the payload decides
    ("application/json, text/event-stream", False),
    ("text/event-stream;q=0.5, */*", False),  # anything (JSON) rather than a stream
    ("application/json", False),
    ("*/*", False),  # the guide's clients
    ("", False),
    (None, False),
    ("text/event-stream;q=0", False),
    ("text/event-stream;q=oops", False),
    (",,;", False),
])
def test_prefers_event_stream(accept, streams):
    assert prefers_event_stream(accept) is streams


def test_an_event_stream_only_client_gets_a_stream_with_tokens_and_their_text(server, session_id):
    reply = loopback.post(server.url + "/invocations", json={"prompt": "What is 25 * 4?", "session_id": session_id},
                       headers={"Accept": "text/event-stream"}, timeout=30)
    assert reply.headers["content-type"].startswith("text/event-stream")
    frames = frames_of(reply.content)
    tokens = [data for kind, data, _ in frames if kind == "llm_token"]
    assert tokens and all(t["text"].endswith(t["token"]) for t in tokens)  # what the AgentCore CLI prints
    assert [t["text"] for t in tokens if t["text"] != t["token"]] == ["\n\nThe "]  # the second message's first
    assert "".join(t["text"] for t in tokens) == "I'll calculate that for you.\n\nThe result of 25 * 4 is 100."
    assert frames[-1][0] == "agent_end" and "100" in frames[-1][1]["output"]


@pytest.mark.parametrize("accept, payload, streamed, tokens", [
    ("*/*", {}, False, False),  # the guide's clients: JSON unless they ask
    ("text/event-stream, application/json", {}, False, False),
    ("text/event-stream", {"stream": False}, False, False),  # the payload's own word wins
    ("text/event-stream", {"stream_tokens": False}, True, False),
    ("*/*", {"stream": True}, True, False),
])
def test_the_payload_decides_whenever_it_says(server, session_id, accept, payload, streamed, tokens):
    reply = loopback.post(server.url + "/invocations", headers={"Accept": accept}, timeout=30,
                       json={"prompt": "What is 25 * 4?", "session_id": session_id, **payload})
    assert reply.headers["content-type"].startswith("text/event-stream" if streamed else "application/json")
    if streamed:
        assert any(kind == "llm_token" for kind, _, _ in frames_of(reply.content)) is tokens


def test_actions_and_refusals_answer_json_whatever_the_accept(server, session_id):
    only_events = {"Accept": "text/event-stream"}
    refused = loopback.post(server.url + "/invocations", json={"prompt": ""}, headers=only_events, timeout=10)
    assert refused.status_code == 400 and refused.json()["error"]["code"] == "invalid_payload"
    status = loopback.post(server.url + "/invocations", json={"action": "history", "session_id": session_id},
                        headers=only_events, timeout=10)
    assert status.status_code == 200 and status.json()["messages"] == []


def test_a_text_stream_is_the_answer_as_json_strings_and_resumes_by_id(server, session_id):
    reply = loopback.post(server.url + "/invocations", timeout=30,
                       headers={"Accept": "text/event-stream, application/json"},
                       json={"prompt": "What is 25 * 4?", "session_id": session_id, "stream_format": "text"})
    frames = frames_of(reply.content)
    assert all(isinstance(data, str) for _, data, _ in frames)
    text = "".join(data for _, data, _ in frames)
    assert text == "I'll calculate that for you.\n(calculator → 100)\nThe result of 25 * 4 is 100.\n"
    run_id = loopback.post(server.url + "/invocations", json={"action": "status", "session_id": session_id},
                        timeout=10).json()["run_id"]
    after = frames[2][2]  # the id of the third text frame: ids are the run's own
    again = loopback.post(server.url + "/invocations", timeout=30, headers={"Last-Event-ID": str(after)},
                       json={"action": "resume", "session_id": session_id, "run_id": run_id, "stream_format": "text"})
    assert "".join(data for _, data, _ in frames_of(again.content)) == "".join(d for _, d, _ in frames[3:])


def test_the_starter_toolkits_invoke_dev_prints_readable_text_token_by_token(make_server, tmp_path):
    live = make_server({"OFFLINE_TOKEN_DELAY_MS": "40"})
    payload = '{"prompt": "What is 25 * 4?", "stream_format": "text"}'
    toolkit = Path(sys.executable).parent / "agentcore"  # the starter toolkit's CLI, installed beside pytest
    process = subprocess.Popen([str(toolkit), "invoke", "--dev", "--port", str(live.port), payload], cwd=tmp_path,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                               env={**os.environ, "AGENTCORE_SUPPRESS_RECOMMENDATION": "1", "COLUMNS": "200"})
    assert process.stdout is not None
    reads = []
    while chunk := os.read(process.stdout.fileno(), 65536):
        reads.append((time.monotonic(), chunk.decode()))
    assert process.wait(30) == 0
    printed = "".join(text for _, text in reads)
    assert "I'll calculate that for you.\n(calculator → 100)\nThe result of 25 * 4 is 100." in printed, printed
    assert '{"' not in printed  # no raw JSON
    answer = [when for when, text in reads if "Response from dev server" not in text]
    assert len(answer) >= 5 and answer[-1] - answer[0] >= 0.2  # token by token, as the model paced them


def test_the_agentcore_cli_chats_forward_streams_its_text_in_its_session(server, session_id):
    """What `agentcore dev`'s browser chat sends through the CLI's own server: its body as the chat wrote it
    (prompt, agentName, sessionId, userId), `Accept: text/event-stream, */*`, the session header."""
    def chat(prompt: str) -> list[tuple[str, object, int]]:
        reply = loopback.post(server.url + "/invocations", timeout=30, json={
            "prompt": prompt, "agentName": "langgraph_agent", "sessionId": session_id, "userId": "ada"},
            headers={"Accept": "text/event-stream, */*", "x-amzn-bedrock-agentcore-runtime-session-id": session_id,
                     "x-amzn-bedrock-agentcore-runtime-user-id": "ada"})
        assert reply.status_code == 200 and reply.headers["content-type"].startswith("text/event-stream")
        return frames_of(reply.content)

    chat("My name is Ada")
    frames = chat("What's my name?")
    shown = "".join(data["text"] for _, data, _ in frames if isinstance(data, dict) and "text" in data)
    assert shown == "Your name is Ada." and frames[0][1]["actor_id"] == "ada"
    assert not any(isinstance(data, dict) and "error" in data for _, data, _ in frames)
