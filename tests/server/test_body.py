"""Bad input over HTTP: 400/413 JSON before any stream starts, no traceback, nothing stored, server keeps serving."""

from __future__ import annotations

import json

import httpx
import pytest

BAD_BODIES = [
    ("not json", b"{not json"),
    ("empty body", b""),
    ("array", b"[1, 2]"),
    ("string", b'"hello"'),
    ("number", b"42"),
    ("null", b"null"),
    ("missing prompt", b'{"session_id": "s1"}'),
    ("non-string prompt", b'{"prompt": 12}'),
    ("empty prompt", b'{"prompt": ""}'),
    ("whitespace prompt", b'{"prompt": "  \\n\\t "}'),
    ("oversized prompt", json.dumps({"prompt": "x" * 40_000}).encode()),
    ("session with path chars", b'{"prompt": "hi", "session_id": "../../etc/passwd"}'),
    ("session too long", json.dumps({"prompt": "hi", "session_id": "s" * 101}).encode()),
    ("actor with slash", b'{"prompt": "hi", "actor_id": "a/b"}'),
    ("actor too long", json.dumps({"prompt": "hi", "actor_id": "a" * 256}).encode()),
    ("stream as string", b'{"prompt": "hi", "stream": "true"}'),
    ("stream as int", b'{"prompt": "hi", "stream": 1}'),
    ("stream_tokens as null", b'{"prompt": "hi", "stream_tokens": null}'),
    ("preferences as list", b'{"prompt": "hi", "preferences": ["sci-fi"]}'),
    ("custom_data as string", b'{"prompt": "hi", "custom_data": "x"}'),
    ("custom_data too deep", json.dumps({"prompt": "hi", "custom_data": {"a": {"b": {"c": {"d": {"e": {"f": {"g": {"h": 1}}}}}}}}}).encode()),
    ("preferences too large", json.dumps({"prompt": "hi", "preferences": {"k": "v" * 20_000}}).encode()),
    ("unknown field", b'{"prompt": "hi", "temperature": 2}'),
    ("deeply nested body", b'{"prompt": "hi", "custom_data": ' + b'[' * 100_000 + b']' * 100_000 + b"}"),
    ("bad user_id", b'{"prompt": "hi", "custom_data": {"user_id": "a b"}}'),
    ("invalid utf-8", b'{"prompt": "\xff\xfe"}'),
]


@pytest.mark.parametrize("path", ["/invocations", "/stream"])
@pytest.mark.parametrize("name, body", BAD_BODIES, ids=[b[0] for b in BAD_BODIES])
def test_bad_input_is_400_json(server, path, name, body):
    response = httpx.post(server.url + path, content=body, headers={"content-type": "application/json"}, timeout=10)
    assert response.status_code == 400, response.text
    assert response.headers["content-type"] == "application/json"
    error = response.json()["error"]
    assert error["code"] == "invalid_payload" and error["message"]
    assert "Traceback" not in response.text and 'File "' not in response.text


def test_oversized_body_is_413(server):
    body = json.dumps({"prompt": "x", "custom_data": {"blob": "y" * 2_000_000}}).encode()
    response = httpx.post(server.url + "/invocations", content=body, timeout=10)
    assert response.status_code == 413 and response.json()["error"]["code"] == "payload_too_large"


def test_nothing_is_stored_and_the_server_keeps_serving(server, session_id):
    for name, body in BAD_BODIES[:5]:
        httpx.post(server.url + "/invocations", content=body, timeout=10)
    refused = httpx.post(server.url + "/invocations",
                         json={"prompt": "My name is Eve", "session_id": session_id, "surprise": True}, timeout=10)
    assert refused.status_code == 400 and "surprise" in refused.json()["error"]["message"]
    reply = httpx.post(server.url + "/invocations", json={"prompt": "What's my name?", "session_id": session_id}, timeout=10)
    assert reply.status_code == 200 and reply.json()["output"].startswith("I don't know")
    assert httpx.get(server.url + "/ping", timeout=5).json()["status"] == "Healthy"
