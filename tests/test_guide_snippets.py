"""Every Python snippet of the guide runs as written (only `bedrock.` prefixes and the demo URL differ)."""

from __future__ import annotations

import asyncio
import hashlib
import io
import json
import os
import re
import shutil
import subprocess
import sys
from contextlib import redirect_stdout
from pathlib import Path
from typing import Any

import pytest

from bedrock.agent_runtime import ainvoke_agent, invoke_agent, stream_agent
from bedrock.streaming_utils import format_sse_event, parse_sse_event
from tests.guide import GUIDE, SPEC, as_async_body, snippet

ROOT = Path(__file__).resolve().parent.parent
BEDROCK_DIR = ROOT / "bedrock"


def run_script(code: str, cwd: Path) -> str:
    result = subprocess.run([sys.executable, "-c", code], cwd=cwd, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_quick_start_basic_streaming_prints_the_whole_stream():
    out = run_script(snippet("Basic Streaming Request"), ROOT)
    frames = [f.strip() for f in out.split("\n\n") if f.strip()]
    assert frames[0].startswith("event: agent_start") and frames[-1].startswith("event: agent_end")
    assert "The result of 25 * 4 is 100." in frames[-1]


def test_quick_start_non_streaming_prints_the_dict():
    out = run_script(snippet("Non-Streaming (Backward Compatible)"), ROOT)
    assert "'output': 'The result of 25 * 4 is 100.'" in out and "'steps': 4" in out


def test_testing_section_python_c_runs_from_inside_bedrock():
    code = snippet("Test Individual Features")
    command = code.split('python3 -c "', 1)[1].rsplit('"', 1)[0]
    out = run_script(command, BEDROCK_DIR)
    assert "event: agent_start" in out and "The result of 5+5 is 10." in out


def test_run_local_tests_command_passes():
    assert snippet("Run Local Tests").strip() == "cd bedrock\npython3 test_streaming.py"
    result = subprocess.run([sys.executable, "test_streaming.py"], cwd=BEDROCK_DIR, capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "FAIL" not in result.stdout and "all scenarios passed" in result.stdout


async def exec_async(code: str, namespace: dict[str, Any], *args: Any) -> str:
    """Run snippet code inside an async function; return what it printed."""
    exec(as_async_body(code), namespace)
    buffer = io.StringIO()
    with redirect_stdout(buffer):
        await namespace["_snippet"](*args)
    return buffer.getvalue()


async def test_token_level_streaming_prints_tokens_that_make_the_answer(session_id):
    namespace = {"stream_agent": stream_agent, "parse_sse_event": parse_sse_event}
    printed = await exec_async(snippet("Token-Level Streaming"), namespace)
    answer = await ainvoke_agent({"prompt": "Explain photosynthesis", "session_id": session_id})
    assert printed == answer["output"] and "offline" in printed


class Recorder:
    """Wraps stream_agent so a snippet that discards events can still be checked."""

    def __init__(self) -> None:
        self.events: list[Any] = []

    async def __call__(self, payload: dict[str, Any], **kwargs: Any):
        async for event in stream_agent(payload, **kwargs):
            self.events.append(event)
            yield event


async def test_memory_continuity_recalls_alice():
    recorder = Recorder()
    await exec_async(snippet("Memory Continuity"), {"stream_agent": recorder})
    ends = [e for e in recorder.events if e.type == "agent_end"]
    assert len(ends) == 2
    assert ends[1].data["output"] == "Your name is Alice."


async def test_custom_data_reaches_model_and_actor(session_id):
    namespace: dict[str, Any] = {}
    exec(snippet("Custom Data"), namespace)
    payload = {**namespace["payload"], "session_id": session_id}
    events = [e async for e in stream_agent(payload)]
    assert events[0].data["actor_id"] == "123"  # custom_data.user_id
    assert "genre: sci-fi" in events[-1].data["output"] and "rating: PG-13" in events[-1].data["output"]


async def test_handle_connection_errors_wrapper_streams_everything(session_id):
    namespace: dict[str, Any] = {"stream_agent": stream_agent, "asyncio": asyncio}
    exec(snippet("Handle Connection Errors"), namespace)
    events = [e async for e in namespace["stream_with_retry"]({"prompt": "What is 3 * 3?", "session_id": session_id})]
    assert events[-1].type == "agent_end" and "9" in events[-1].data["output"]


async def test_handle_timeout_yields_a_timeout_error_frame(session_id):
    namespace: dict[str, Any] = {"stream_agent": slow_stream_agent, "format_sse_event": format_sse_event}
    exec(snippet("Handle Timeout"), namespace)
    # The agent is built on its first use (~150 ms, blocking): done first, or a 50 ms timeout would land before
    # `agent_start` whenever this test is the first of its worker to stream (a flake by test order, seen in CI).
    await ainvoke_agent({"prompt": "hi", "session_id": session_id + "-warm"})
    with_timeout = namespace["stream_with_timeout"]
    events = [e async for e in with_timeout({"prompt": "What is 3 * 3?", "session_id": session_id}, timeout=0.05)]
    last = parse_sse_event(events[-1])
    assert last == {"type": "error", "data": {"error": "Request timeout", "timeout": 0.05}}
    assert parse_sse_event(events[0])["type"] == "agent_start"
    complete = [e async for e in with_timeout({"prompt": "What is 3 * 3?", "session_id": session_id + "b"}, timeout=30)]
    assert complete[-1].type == "agent_end"


@pytest.mark.parametrize("limit", [1e-6, 1e-5, 1e-4])
async def test_handle_timeout_never_loses_a_tiny_timeout(session_id, limit):
    """The snippet over the real `stream_agent`: a timeout landing anywhere, even while the turn takes its
    session, reaches the caller (100 runs), and none of the cut turns is left in the session's memory."""
    namespace: dict[str, Any] = {"stream_agent": stream_agent, "format_sse_event": format_sse_event}
    exec(snippet("Handle Timeout"), namespace)
    for _ in range(100):
        payload = {"prompt": "My name is Zed", "session_id": session_id}
        events = [e async for e in namespace["stream_with_timeout"](payload, timeout=limit)]
        assert parse_sse_event(events[-1]) == {"type": "error", "data": {"error": "Request timeout", "timeout": limit}}
    reply = await ainvoke_agent({"prompt": "What's my name?", "session_id": session_id})
    assert reply["output"].startswith("I don't know")


async def slow_stream_agent(payload: dict[str, Any]):
    """stream_agent with a pause between events, so a short timeout fires mid-stream."""
    async for event in stream_agent(payload):
        yield event
        await asyncio.sleep(0.02)


async def test_guides_parse_sse_event_reads_our_frames(session_id):
    namespace: dict[str, Any] = {"json": __import__("json")}
    exec(snippet("Parse SSE Events Safely"), namespace)
    guide_parse = namespace["parse_sse_event"]
    async for event in stream_agent({"prompt": "What is 25 * 4?", "session_id": session_id, "stream_tokens": True}):
        ours = parse_sse_event(event)
        assert guide_parse(event) == {"type": ours["type"], "data": ours["data"]}
    assert guide_parse("garbage")["type"] == "error"


async def test_buffer_tokens_yields_batches_that_make_the_answer(session_id):
    payload = {"prompt": "Explain photosynthesis", "session_id": session_id, "stream": True, "stream_tokens": True}
    namespace: dict[str, Any] = {"stream_agent": stream_agent}
    code = snippet("Buffer Tokens").replace("from streaming_utils", "from bedrock.streaming_utils")
    exec(as_async_body(code, "buffered", "payload"), namespace)
    batches = [b async for b in namespace["buffered"](payload)]
    answer = await ainvoke_agent({**payload, "session_id": session_id + "b"})
    assert "".join(batches) == answer["output"]
    assert len(batches) < len(answer["output"].split())  # batched, not one per token


async def test_collect_metrics_prints_real_counts(session_id):
    payload = {"prompt": "What is 25 * 4?", "session_id": session_id}
    code = snippet("Collect Metrics").replace("from callbacks", "from bedrock.callbacks")
    printed = await exec_async(code, {"stream_agent": stream_agent, "payload": payload})
    lines = dict(line.split(": ") for line in printed.strip().splitlines())
    assert int(lines["Tokens"]) > 0 and lines["Tool calls"] == "1" and lines["Errors"] == "0"


async def test_custom_callbacks_see_llm_and_tool_starts(session_id, caplog):
    class Metrics:
        def __init__(self) -> None:
            self.calls: list[tuple[str, list[str]]] = []

        def increment(self, name: str, tags: list[str]) -> None:
            self.calls.append((name, tags))

    import logging

    logger = logging.getLogger("guide.custom")
    namespace: dict[str, Any] = {"logger": logger, "metrics": Metrics()}
    exec(snippet("Custom Callbacks").replace("from callbacks", "from bedrock.callbacks"), namespace)
    with caplog.at_level(logging.INFO, logger="guide.custom"):
        events = [e async for e in stream_agent({"prompt": "What is 25 * 4?", "session_id": session_id},
                                                callbacks=[namespace["CustomCallback"]()])]
    assert events[-1].type == "agent_end"
    assert namespace["metrics"].calls == [("tool.invoked", ["tool:calculator"])]
    assert [r.message for r in caplog.records].count("LLM started") == 2


async def test_handle_backpressure_wrapper_streams_everything(session_id):
    namespace: dict[str, Any] = {"stream_agent": stream_agent, "asyncio": asyncio}
    exec(snippet("Handle Backpressure"), namespace)
    payload = {"prompt": "What is 6 * 7?", "session_id": session_id}
    events = [e async for e in namespace["stream_with_backpressure"](payload, 2)]
    assert events[0].type == "agent_start" and "42" in events[-1].data["output"]


@pytest.mark.parametrize("flat_module", ["streaming_utils", "callbacks", "agent_runtime"])
def test_flat_imports_from_inside_bedrock(flat_module):
    run_script(f"import {flat_module}", BEDROCK_DIR)


# --- the guide read in order --------------------------------------------------------------------------------------

# Every example of the guide, in the guide's order, and how a reader runs it: the Python ones one after another in
# one interpreter (in-process; `payload` is whichever the examples defined last, Custom Data's from there on, as it
# is for a reader pasting them in order), the HTTP clients against one live server that shares its session memory.
IN_ORDER = [
    ("Basic Streaming Request", "script"),  # my-session, no actor: the session is default-user's
    ("Non-Streaming (Backward Compatible)", "script"),
    ("Token-Level Streaming", "async"),
    ("Memory Continuity", "async"),
    ("Custom Data", "send"),  # my-session again, custom_data.user_id "123": was 403 session_forbidden
    ("Python with httpx", "httpx"),
    ("JavaScript (Browser)", "run"),  # under Node, against the live server
    ("React Component", "run"),
    ("Run Local Tests", "run"),
    ("Test Individual Features", "python -c"),
    ("Handle Connection Errors", "use stream_with_retry"),
    ("Handle Timeout", "use stream_with_timeout"),
    ("Parse SSE Events Safely", "define"),
    ("Buffer Tokens", "generator"),
    ("Handle Backpressure", "use stream_with_backpressure"),
    ("Collect Metrics", "async"),
    ("Custom Callbacks", "callbacks"),
]
# The guide's code blocks that are not examples to run, or cannot run in a test, and why.
NOT_RUN_IN_ORDER = {
    "AGENT_START": "a sample of the event (JSON), not code",
    "AGENT_STEP": "a sample of the event (JSON), not code",
    "AGENT_END": "a sample of the event (JSON), not code",
    "ERROR": "a sample of the event (JSON), not code",
    "Test in Production": "deploys to AWS (agentcore launch) and invokes the deployed runtime",
    "Connection Pooling": "a sketch: `client.stream(...)` and `prompts` are the reader's to fill in",
    "CloudWatch Logs": "tails AWS CloudWatch Logs",
}

# Runs the examples in order in one process — the Python ones in it, the others as commands — recording every event
# and result each in-process example got (argv: the examples as JSON, the live server's URL); prints, last, as JSON
# what each example got and printed.
IN_ORDER_DRIVER = r'''
import asyncio, io, json, logging, os, subprocess, sys, textwrap
from contextlib import redirect_stdout

import bedrock.agent_runtime as agent_runtime
from bedrock.errors import AgentError
from bedrock.streaming_utils import format_sse_event, parse_sse_event

examples, base_url = json.loads(sys.argv[1]), sys.argv[2]
seen, printed, current = [], {}, [None]
real_stream, real_invoke = agent_runtime.stream_agent, agent_runtime.invoke_agent


def stream_agent(payload, **kwargs):
    async def events():
        async for event in real_stream(payload, **kwargs):
            seen.append({"example": current[0], "type": event.type, "code": event.data.get("code"),
                         "actor_id": event.data.get("actor_id")})
            yield event
    return events()


def invoke_agent(payload, **kwargs):
    try:
        result = real_invoke(payload, **kwargs)
    except AgentError as exc:
        seen.append({"example": current[0], "type": "error", "code": exc.code, "actor_id": None})
        raise
    seen.append({"example": current[0], "type": "agent_end", "code": None, "actor_id": result["actor_id"]})
    return result


# What `from bedrock.agent_runtime import stream_agent` gets from here on: the same functions, recorded.
agent_runtime.stream_agent, agent_runtime.invoke_agent = stream_agent, invoke_agent


class Metrics:
    def increment(self, name, tags):
        pass


namespace = {"asyncio": asyncio, "json": json, "stream_agent": stream_agent, "parse_sse_event": parse_sse_event,
             "format_sse_event": format_sse_event, "logger": logging.getLogger("guide"), "metrics": Metrics()}


async def drain(events):
    async for _ in events:
        pass


def as_body(code):
    return "async def _example():\n" + textwrap.indent(code, "    ")


for name, how, code in examples:
    current[0] = name
    out = io.StringIO()
    with redirect_stdout(out):
        if how == "script" or how == "define":
            exec(code, namespace)
        elif how == "async" or how == "generator":
            exec(as_body(code), namespace)
            run = namespace["_example"]()
            asyncio.run(drain(run) if how == "generator" else run)
        elif how == "send":
            exec(code, namespace)
            asyncio.run(drain(namespace["stream_agent"](namespace["payload"])))
        elif how == "httpx":
            exec(code.replace("https://your-agent.amazonaws.com", base_url), namespace)
            asyncio.run(namespace["stream_request"]())
        elif how == "run":  # a command: the JavaScript examples under Node, the local test script
            argv, cwd = code
            done = subprocess.run(argv, cwd=cwd, capture_output=True, text=True,
                                  env={**os.environ, "BASE_URL": base_url})
            print(done.stdout + done.stderr)
        elif how == "python -c":
            command = code.split('python3 -c "', 1)[1].rsplit('"', 1)[0]
            done = subprocess.run([sys.executable, "-c", command], cwd="bedrock", capture_output=True, text=True)
            print(done.stdout + done.stderr)
        elif how.startswith("use "):
            exec(code, namespace)
            asyncio.run(drain(namespace[how[4:]](namespace["payload"])))
        elif how == "callbacks":
            exec(code, namespace)
            callbacks = [namespace["CustomCallback"]()]
            asyncio.run(drain(namespace["stream_agent"](namespace["payload"], callbacks=callbacks)))
    printed[name] = out.getvalue()
print(json.dumps({"seen": seen, "printed": printed}))
'''


# Examples whose sessions are new at every run (generated ids): read once, not again.
FRESH_SESSIONS = {"Run Local Tests", "Test Individual Features"}


def read_in_order(live: Any, memory: Path, tmp_path: Path, again: bool = False) -> dict[str, Any]:
    """One reading of the guide, in one process: every example in IN_ORDER (`again`: but FRESH_SESSIONS); what
    each got and printed."""
    from tests.test_js_clients import browser_program, react_program

    commands = {
        "JavaScript (Browser)": (["node", "browser.mjs"], browser_program("Calculate 15 * 8")),
        "React Component": (["node", "react.mjs"], react_program("What is 25 * 4?")),
    }
    examples: list[tuple[str, str, Any]] = []
    for name, how in IN_ORDER:
        code = snippet(name)
        if again and name in FRESH_SESSIONS:
            continue
        if name in commands:
            argv, program = commands[name]
            (tmp_path / argv[1]).write_text(program)
            examples.append((name, "run", ([shutil.which("node") or "node", str(tmp_path / argv[1])], str(tmp_path))))
        elif name == "Run Local Tests":
            assert code.strip() == "cd bedrock\npython3 test_streaming.py"
            examples.append((name, "run", ([sys.executable, "test_streaming.py"], str(BEDROCK_DIR))))
        else:
            code = code.replace("from streaming_utils", "from bedrock.streaming_utils")
            examples.append((name, how, code.replace("from callbacks", "from bedrock.callbacks")))
    done = subprocess.run([sys.executable, "-c", IN_ORDER_DRIVER, json.dumps(examples), live.url], cwd=ROOT,
                          env={**os.environ, "AGENT_MEMORY_PATH": str(memory)}, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    outcome: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    for name in commands:
        outcome["printed"][name] = [json.loads(line) for line in outcome["printed"][name].splitlines() if line]
    return outcome


def test_every_example_of_the_guide_is_read_in_order_or_listed_with_why_not():
    headings = [line.split(" ", 1)[1].strip() for line in GUIDE.read_text().splitlines() if line.startswith("### ")]
    with_code = [h for h in headings if _has_code(h)]
    listed = [name for name, _ in IN_ORDER] + list(NOT_RUN_IN_ORDER)
    assert sorted(listed) == sorted(with_code), "an example of the guide that the in-order reading misses"
    assert [h for h in with_code if h in dict(IN_ORDER)] == [name for name, _ in IN_ORDER], "not the guide's order"


def _has_code(heading: str) -> bool:
    try:
        snippet(heading)
    except (KeyError, IndexError):
        return False
    return True


def test_the_guides_examples_run_in_order_on_one_server_and_none_is_refused(make_server, tmp_path):
    """The guide as a reader runs it, top to bottom, twice (the second time every fixed session id is taken):
    no example gets 403 `session_forbidden` — its Custom Data example sends `custom_data.user_id` on the session its
    Quick Start started without an actor — and every one ends its turns with `agent_end`."""
    memory = tmp_path / "memory.sqlite"
    live = make_server({"AGENT_MEMORY_PATH": str(memory)})
    for reading in (1, 2):
        outcome = read_in_order(live, memory, tmp_path, again=reading == 2)
        seen, printed = outcome["seen"], outcome["printed"]
        assert not [s for s in seen if s["type"] == "error"], (reading, [s for s in seen if s["type"] == "error"])
        assert "session_forbidden" not in json.dumps(printed), reading
        for name, how in IN_ORDER:
            if how in ("define", "python -c", "httpx", "run"):
                continue
            assert [s for s in seen if s["example"] == name and s["type"] == "agent_end"], (reading, name)
        custom = [s for s in seen if s["example"] == "Custom Data" and s["type"] == "agent_start"]
        assert custom and custom[0]["actor_id"] == "default-user"  # joined the Quick Start's session, as its actor
        assert "[agent_end]" in printed["Python with httpx"]
        assert reading == 2 or "event: agent_end" in printed["Test Individual Features"]
        assert printed["JavaScript (Browser)"][-1][0] == "agent_end"
        answer = [["messages", ["The result of 25 * 4 is 100."]], ["currentMessage", ""]]
        assert printed["React Component"][-2:] == answer
        assert reading == 2 or "all scenarios passed" in printed["Run Local Tests"]


def test_a_session_started_without_an_actor_is_joined_not_refused(session_id):
    """AUTH_MODE=none: a caller naming an actor acts in an anonymous session as its actor, memory included; a named
    actor's session stays refused to everyone else, the anonymous too."""
    from bedrock.errors import AgentError

    invoke_agent({"prompt": "My name is Alice", "session_id": session_id})
    joined = invoke_agent({"prompt": "What's my name?", "session_id": session_id, "custom_data": {"user_id": "123"}})
    assert joined["actor_id"] == "default-user" and joined["output"] == "Your name is Alice."
    by_actor = invoke_agent({"prompt": "What's my name?", "session_id": session_id, "actor_id": "bob"})
    assert by_actor["actor_id"] == "default-user" and by_actor["output"] == "Your name is Alice."
    invoke_agent({"prompt": "My name is Carol", "session_id": session_id + "-c", "actor_id": "carol"})
    for payload in ({}, {"actor_id": "bob"}, {"custom_data": {"user_id": "123"}}):
        with pytest.raises(AgentError) as refused:
            invoke_agent({"prompt": "What's my name?", "session_id": session_id + "-c", **payload})
        assert refused.value.code == "session_forbidden"


def test_with_verified_actors_no_session_is_open():
    from bedrock.config import Settings
    from bedrock.server.runtime import Runtime

    jwt = Settings(auth_mode="jwt", jwt_jwks_file="keys.json", jwt_issuer="https://issuer")
    assert Runtime(jwt).open_owner is None
    assert Runtime(Settings()).open_owner == "default-user"


# The guide's 24 code blocks, joined by NUL, as published: the repository's copy must hold exactly these (a fresh
# clone has no guide beside it to compare with). When the guide changes, copy its code and record its new digest.
GUIDE_CODE_SHA256 = "431a4453e7c3e21409f2a3ccc3dfbde93b2007c3b0545c7a8635813640d038ca"


def _code_digest(path: Path) -> str:
    blocks = re.findall(r"^```\w*\n(.*?)^```", path.read_text(), flags=re.S | re.M)
    return hashlib.sha256("\x00".join(blocks).encode()).hexdigest()


def test_the_repositorys_copy_of_the_guide_has_the_guides_code():
    """docs/STREAMING_GUIDE.md keeps the user's guide's code blocks unchanged (its links point inside the repository;
    tests/test_readme.py checks that they resolve); beside the guide itself, the guide has them too."""
    copy = ROOT / "docs" / "STREAMING_GUIDE.md"
    assert _code_digest(copy) == GUIDE_CODE_SHA256
    assert "STREAMING_RESPONSE_DESIGN" not in copy.read_text()
    if SPEC.exists():  # a developer's checkout: the guide has not moved on without its copy
        assert _code_digest(SPEC) == GUIDE_CODE_SHA256
