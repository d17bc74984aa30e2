"""Every Python snippet of the guide runs as written (only `bedrock.` prefixes and the demo URL differ)."""

from __future__ import annotations

import asyncio
import io
import subprocess
import sys
from contextlib import redirect_stdout
from pathlib import Path
from typing import Any

import pytest

from bedrock.agent_runtime import ainvoke_agent, stream_agent
from bedrock.streaming_utils import format_sse_event, parse_sse_event
from tests.guide import as_async_body, snippet

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
    result = subprocess.run([sys.executable, "test_streaming.py"], cwd=BEDROCK_DIR, capture_output=True, text=True, timeout=120)
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
    namespace = {"stream_agent": stream_agent, "asyncio": asyncio}
    exec(snippet("Handle Connection Errors"), namespace)
    events = [e async for e in namespace["stream_with_retry"]({"prompt": "What is 3 * 3?", "session_id": session_id})]
    assert events[-1].type == "agent_end" and "9" in events[-1].data["output"]


async def test_handle_timeout_yields_a_timeout_error_frame(session_id):
    namespace = {"stream_agent": slow_stream_agent, "format_sse_event": format_sse_event}
    exec(snippet("Handle Timeout"), namespace)
    # The agent is built on its first use (~150 ms, blocking): done first, or a 50 ms timeout would land before
    # `agent_start` whenever this test is the first of its worker to stream (a flake by test order, seen in CI).
    await ainvoke_agent({"prompt": "hi", "session_id": session_id + "-warm"})
    events = [e async for e in namespace["stream_with_timeout"]({"prompt": "What is 3 * 3?", "session_id": session_id}, timeout=0.05)]
    last = parse_sse_event(events[-1])
    assert last == {"type": "error", "data": {"error": "Request timeout", "timeout": 0.05}}
    assert parse_sse_event(events[0])["type"] == "agent_start"
    complete = [e async for e in namespace["stream_with_timeout"]({"prompt": "What is 3 * 3?", "session_id": session_id + "b"}, timeout=30)]
    assert complete[-1].type == "agent_end"


@pytest.mark.parametrize("timeout", [1e-6, 1e-5, 1e-4])
async def test_handle_timeout_never_loses_a_tiny_timeout(session_id, timeout):
    """The snippet over the real `stream_agent`: a timeout landing anywhere, even while the turn takes its
    session, reaches the caller (100 runs), and none of the cut turns is left in the session's memory."""
    namespace = {"stream_agent": stream_agent, "format_sse_event": format_sse_event}
    exec(snippet("Handle Timeout"), namespace)
    for _ in range(100):
        events = [e async for e in namespace["stream_with_timeout"]({"prompt": "My name is Zed", "session_id": session_id}, timeout=timeout)]
        assert parse_sse_event(events[-1]) == {"type": "error", "data": {"error": "Request timeout", "timeout": timeout}}
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
    namespace = {"stream_agent": stream_agent, "asyncio": asyncio}
    exec(snippet("Handle Backpressure"), namespace)
    events = [e async for e in namespace["stream_with_backpressure"]({"prompt": "What is 6 * 7?", "session_id": session_id}, 2)]
    assert events[0].type == "agent_start" and "42" in events[-1].data["output"]


@pytest.mark.parametrize("flat_module", ["streaming_utils", "callbacks", "agent_runtime"])
def test_flat_imports_from_inside_bedrock(flat_module):
    run_script(f"import {flat_module}", BEDROCK_DIR)
