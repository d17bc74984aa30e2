"""Bad input over HTTP: 400/413 JSON before any stream starts, no traceback, nothing stored, server keeps serving."""

from __future__ import annotations

import json

import pytest
from testkit import loopback

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
    response = loopback.post(server.url + path, content=body, headers={"content-type": "application/json"}, timeout=10)
    assert response.status_code == 400, response.text
    assert response.headers["content-type"] == "application/json"
    error = response.json()["error"]
    assert error["code"] == "invalid_payload" and error["message"]
    assert "Traceback" not in response.text and 'File "' not in response.text


def test_oversized_body_is_413(server):
    body = json.dumps({"prompt": "x", "custom_data": {"blob": "y" * 2_000_000}}).encode()
    response = loopback.post(server.url + "/invocations", content=body, timeout=10)
    assert response.status_code == 413 and response.json()["error"]["code"] == "payload_too_large"


def test_nothing_is_stored_and_the_server_keeps_serving(server, session_id):
    for name, body in BAD_BODIES[:5]:
        loopback.post(server.url + "/invocations", content=body, timeout=10)
    refused = loopback.post(server.url + "/invocations",
                         json={"prompt": "My name is Eve", "session_id": session_id, "surprise": True}, timeout=10)
    assert refused.status_code == 400 and "surprise" in refused.json()["error"]["message"]
    reply = loopback.post(server.url + "/invocations", json={"prompt": "What's my name?", "session_id": session_id}, timeout=10)
    assert reply.status_code == 200 and reply.json()["output"].startswith("I don't know")
    assert loopback.get(server.url + "/ping", timeout=5).json()["status"] == "Healthy"


NON_FINITE = [
    ("NaN in resume.args", b'{"session_id": "s1", "resume": {"interrupt_id": "approval-1", "approved": true, '
                           b'"args": {"n": NaN}}}', "resume.args.n"),
    ("Infinity in custom_data", b'{"prompt": "hi", "custom_data": {"x": [1, Infinity]}}', "custom_data.x.1"),
    ("-Infinity in preferences", b'{"prompt": "hi", "preferences": {"t": -Infinity}}', "preferences.t"),
    ("1e400 in custom_data", b'{"prompt": "hi", "custom_data": {"big": 1e400}}', "custom_data.big"),
    ("NaN in an AG-UI body", b'{"threadId": "t1", "runId": "r1", "state": {"v": NaN}, "messages": '
                             b'[{"id": "m1", "role": "user", "content": "hi"}]}', "state.v"),
]


@pytest.mark.parametrize("name, body, field", NON_FINITE, ids=[b[0] for b in NON_FINITE])
def test_a_number_json_cannot_write_is_refused_with_its_field(server, name, body, field):
    """Python's parser takes NaN, Infinity and 1e400; JSON has none of them: stored, they came back out as `NaN`
    in frames (which no browser parses), in every later model request, and as a 500 from `history`."""
    response = loopback.post(server.url + "/invocations", content=body, headers={"content-type": "application/json"},
                          timeout=10)
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["code"] == "invalid_payload" and error["details"][0]["field"] == field, error


@pytest.mark.parametrize("content_type", ["text/plain", "text/plain;charset=UTF-8", "application/x-www-form-urlencoded",
                                          "multipart/form-data; boundary=x"])
def test_a_body_a_web_page_could_send_cross_site_is_415(server, session_id, content_type):
    """A page can POST to any site without a CORS preflight only as text/plain, a form or multipart: with
    AUTH_MODE=none, any page a developer visits could otherwise drive their local server."""
    body = json.dumps({"prompt": "My name is Mallory", "session_id": session_id}).encode()
    response = loopback.post(server.url + "/invocations", content=body, headers={"content-type": content_type},
                          timeout=10)
    assert response.status_code == 415 and response.json()["error"]["code"] == "unsupported_media_type"
    no_type_from_a_page = loopback.post(server.url + "/invocations", content=body,
                                     headers={"origin": "https://evil.example"}, timeout=10)
    assert no_type_from_a_page.status_code == 415
    history = loopback.post(server.url + "/invocations", json={"action": "history", "session_id": session_id}, timeout=10)
    assert history.json()["messages"] == []  # nothing ran
    for fine in ("application/json", "application/json; charset=utf-8", "application/vnd.api+json"):
        ok = loopback.post(server.url + "/invocations", content=b'{"action": "history", "session_id": "s1"}',
                        headers={"content-type": fine}, timeout=10)
        assert ok.status_code == 200, (fine, ok.text)
