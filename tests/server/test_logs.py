"""Log lines (bedrock/server/logs.py): one JSON object per line with LOG_FORMAT=json — ours, uvicorn's and the
AgentCore SDK's —, carrying the turn's session, run and trace ids; text by default; never a prompt."""

from __future__ import annotations

import json
import re
import subprocess
import sys


from testkit.live_server import ROOT
from testkit.sse import frames_of
from testkit import loopback

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
TRACEPARENT = f"00-{TRACE_ID}-00f067aa0ba902b7-01"
PROMPT = "What is 25 * 4? Say it plainly, periwinkle."


def json_lines(log: str) -> list[dict]:
    lines = [line for line in log.splitlines() if line.strip()]
    assert lines, "the server logged nothing"
    parsed = []
    for line in lines:
        try:
            parsed.append(json.loads(line))
        except json.JSONDecodeError:
            raise AssertionError(f"not a JSON line: {line!r}") from None
    return parsed


def test_json_lines_carry_the_turns_ids_and_never_the_prompt(make_server, session_id):
    server = make_server({"LOG_FORMAT": "json", "LOG_LEVEL": "INFO"})
    with loopback.Client(timeout=30) as client:
        body = client.post(server.url + "/invocations", headers={"traceparent": TRACEPARENT},
                           json={"prompt": PROMPT, "session_id": session_id, "stream": True}).content
        reply = client.post(server.url + "/invocations", json={"prompt": PROMPT, "session_id": session_id + "-b"})
    run_id = frames_of(body)[0][1]["run_id"]
    assert reply.status_code == 200
    log = server.stop()
    assert "periwinkle" not in log
    records = json_lines(log)
    for record in records:
        assert {"timestamp", "level", "logger", "message"} <= record.keys(), record
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d+(Z|\+00:00)", record["timestamp"]), record
    assert any(r["message"].startswith("serving POST /invocations") for r in records)
    done = [r for r in records if r["message"].startswith("turn done")]
    assert len(done) == 2
    streamed = next(r for r in done if r["session_id"] == session_id)
    assert streamed["run_id"] == run_id and streamed["level"] == "INFO" and streamed["logger"] == "bedrock.core.turn"
    # No SDK in this server, yet the caller's trace id is on the line: the turn's (non-recording) span carries it.
    assert streamed["trace_id"] == TRACE_ID
    other = next(r for r in done if r["session_id"] == session_id + "-b")
    assert "trace_id" not in other and other["run_id"] != run_id


def test_a_failure_is_one_json_line_with_its_traceback(make_server, session_id):
    server = make_server({"LOG_FORMAT": "json", "MODEL_PROVIDER": "bedrock", "BEDROCK_MAX_ATTEMPTS": "1",
                          "BEDROCK_RETRY_MODE": "standard", "AWS_ENDPOINT_URL_BEDROCK_RUNTIME": "http://127.0.0.1:1"})
    reply = loopback.post(server.url + "/invocations", json={"prompt": PROMPT, "session_id": session_id}, timeout=30)
    assert reply.status_code != 200 and reply.json()["error"]["code"] == "model_unreachable"
    records = json_lines(server.stop())
    failed = next(r for r in records if r["message"].startswith("turn failed"))
    assert failed["level"] == "ERROR" and failed["session_id"] == session_id and failed["run_id"].startswith("run-")
    assert "Traceback" in failed["exc_info"]
    assert all("periwinkle" not in json.dumps(r) for r in records)


def test_text_is_the_default(make_server, session_id):
    server = make_server({"LOG_LEVEL": "INFO"})
    loopback.post(server.url + "/invocations", json={"prompt": "hi", "session_id": session_id}, timeout=30)
    lines = [line for line in server.stop().splitlines() if " bedrock.core.turn: turn done" in line]
    assert len(lines) == 1 and not lines[0].startswith("{")


def test_uvicorn_and_the_sdk_write_json_too():
    """uvicorn's own loggers (its `log_config`, and the handlers it set before our lifespan) and the SDK's."""
    script = """
import logging, logging.config, sys
from bedrock.config import Settings
from bedrock.server.logs import adopt_foreign_loggers, uvicorn_log_config
from bedrock_agentcore.runtime import BedrockAgentCoreApp
settings = Settings(log_format="json")
logging.config.dictConfig(uvicorn_log_config(settings))
logging.getLogger("uvicorn.error").info("Started server process")
logging.getLogger("uvicorn.access").info('%s - "%s %s HTTP/%s" %d', "127.0.0.1:5", "POST", "/invocations", "1.1", 200)
BedrockAgentCoreApp()  # installs the SDK's own handler
adopt_foreign_loggers(settings)
logging.getLogger("bedrock_agentcore.app").info("Async task started")
"""
    done = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    errors, access = json_lines(done.stderr), json_lines(done.stdout)
    assert [(r["logger"], r["message"]) for r in errors] == [
        ("uvicorn.error", "Started server process"), ("bedrock_agentcore.app", "Async task started")]
    assert access[0]["logger"] == "uvicorn.access" and "POST /invocations" in access[0]["message"]
