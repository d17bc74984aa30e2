"""A turn's OpenTelemetry spans and metrics (bedrock/core/telemetry.py), read back from the SDK's in-memory
exporter and reader: names and attributes as the GenAI conventions spell them, every way a turn ends."""

from __future__ import annotations

import asyncio
import json
from typing import Any, Iterator

import pytest
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.semconv._incubating.attributes import gen_ai_attributes as conventions
from opentelemetry.semconv._incubating.metrics import gen_ai_metrics as metric_conventions
from opentelemetry.trace import SpanKind, StatusCode

from bedrock.config import Settings
from bedrock.core import conventions as ours
from bedrock.core import telemetry
from bedrock.core.build import build_agent
from bedrock.core.metrics import MetricsCallback
from bedrock.wire.request import parse_request
from bedrock.core.telemetry import Telemetry
from bedrock.core.turn import Agent
from bedrock.offline.endpoint import HttpError, OfflineBedrockEndpoint
from testkit.telemetry import Collected

PROMPT = "What is 25 * 4? Say it plainly, periwinkle."  # "periwinkle": a word only the prompt holds


@pytest.fixture
def collected() -> Iterator[Collected]:
    c = Collected()
    yield c
    c.shutdown()


@pytest.fixture
def endpoint() -> Iterator[OfflineBedrockEndpoint]:
    ep = OfflineBedrockEndpoint().start()
    yield ep
    ep.stop()


def agent_for(collected: Collected, tmp_path: Any, endpoint_url: str | None = None, **fields: Any) -> Agent:
    settings = Settings(memory_path=str(tmp_path / "m.sqlite"), **fields)
    return build_agent(settings, endpoint_url, telemetry=collected.telemetry(settings))


async def turn(agent: Agent, prompt: str, session_id: str, **extra: Any) -> list[Any]:
    return [e async for e in agent.stream(parse_request({"prompt": prompt, "session_id": session_id, **extra}))]


def everything_in(spans: list[ReadableSpan]) -> str:
    """Every name, attribute, event and status text of the spans, as one string to search."""
    return json.dumps([json.loads(span.to_json()) for span in spans])


async def test_a_tool_turn_is_one_trace_named_and_counted_as_the_conventions_say(collected, tmp_path, session_id):
    agent = agent_for(collected, tmp_path)
    events = await turn(agent, "What is 25 * 4?", session_id, stream_tokens=True)
    end = events[-1]
    assert end.type == "agent_end"
    turn_span = collected.turn_span()
    assert turn_span.name == "invoke_agent langgraph_agentcore" and turn_span.kind == SpanKind.INTERNAL
    assert turn_span.parent is None  # nothing upstream in-process
    attributes = turn_span.attributes
    assert attributes["gen_ai.operation.name"] == "invoke_agent"
    assert attributes["gen_ai.agent.name"] == "langgraph_agentcore"
    assert attributes["gen_ai.provider.name"] == "aws.bedrock"
    assert attributes["gen_ai.request.model"] == agent.settings.bedrock_model_id
    assert attributes["gen_ai.conversation.id"] == attributes["session.id"] == session_id
    assert attributes["user.id"] == "default-user"
    assert attributes["langgraph_agentcore.run.id"] == events[0].data["run_id"]
    assert attributes["langgraph_agentcore.turn.outcome"] == "completed"
    metrics = end.data["metrics"]
    assert attributes["gen_ai.usage.input_tokens"] == metrics["input_tokens"] > 0
    assert attributes["gen_ai.usage.output_tokens"] == metrics["output_tokens"] > 0
    assert attributes["gen_ai.response.time_to_first_chunk"] == pytest.approx(metrics["time_to_first_token_ms"] / 1000)
    assert turn_span.status.status_code == StatusCode.UNSET
    # Its children, in order: the model asks for the tool, the tool runs, the model answers.
    chat1, tool, chat2 = collected.children()
    assert [chat1.name, tool.name, chat2.name] == [f"chat {agent.settings.bedrock_model_id}", "execute_tool calculator",
                                                   f"chat {agent.settings.bedrock_model_id}"]
    assert len(collected.spans()) == 4
    for chat in (chat1, chat2):
        assert chat.kind == SpanKind.CLIENT
        assert chat.attributes["gen_ai.operation.name"] == "chat"
        assert chat.attributes["gen_ai.request.model"] == agent.settings.bedrock_model_id
        assert chat.attributes["gen_ai.request.max_tokens"] == agent.settings.max_tokens
        assert chat.attributes["gen_ai.response.time_to_first_chunk"] > 0
    assert chat1.attributes["gen_ai.response.finish_reasons"] == ("tool_use",)
    assert chat2.attributes["gen_ai.response.finish_reasons"] == ("end_turn",)
    # The chat spans' tokens add up to what agent_end reports.
    assert sum(c.attributes["gen_ai.usage.input_tokens"] for c in (chat1, chat2)) == metrics["input_tokens"]
    assert sum(c.attributes["gen_ai.usage.output_tokens"] for c in (chat1, chat2)) == metrics["output_tokens"]
    assert tool.attributes["gen_ai.operation.name"] == "execute_tool"
    assert tool.attributes["gen_ai.tool.name"] == "calculator"
    tool_step = next(e for e in events if e.type == "agent_step" and e.data["type"] == "tool")
    assert tool.attributes["gen_ai.tool.call.id"] == tool_step.data["tool_call_id"]
    assert tool.status.status_code == StatusCode.UNSET
    assert chat1.end_time <= tool.start_time and tool.end_time <= chat2.start_time <= turn_span.end_time
    # Metrics: one completed turn, its tokens and latency, nothing left running.
    (turns,) = collected.points("langgraph_agentcore.turns")
    assert turns.value == 1 and turns.attributes["langgraph_agentcore.turn.outcome"] == "completed"
    usage = {p.attributes["gen_ai.token.type"]: p.sum for p in collected.points("gen_ai.client.token.usage")}
    assert usage == {"input": metrics["input_tokens"], "output": metrics["output_tokens"]}
    (duration,) = collected.points("gen_ai.client.operation.duration")
    assert duration.count == 1 and duration.sum == pytest.approx(metrics["latency_ms"] / 1000)
    (first,) = collected.points("gen_ai.client.operation.time_to_first_chunk")
    assert first.count == 1 and first.sum == pytest.approx(metrics["time_to_first_token_ms"] / 1000)
    assert [p.value for p in collected.points("langgraph_agentcore.runs.active")] == [0]
    agent.close()


async def test_a_failed_turn_has_error_status_and_its_code(collected, tmp_path, endpoint, session_id):
    agent = agent_for(collected, tmp_path, endpoint.url, model_provider="bedrock", bedrock_retry_mode="standard",
                      bedrock_max_attempts=1)
    endpoint.then(HttpError(429, "ThrottlingException", "Too many requests"))
    events = await turn(agent, "What is 25 * 4?", session_id)
    assert events[-1].type == "error" and events[-1].data["code"] == "model_throttled"
    turn_span = collected.turn_span()
    assert turn_span.status.status_code == StatusCode.ERROR and turn_span.status.description == "model_throttled"
    assert turn_span.attributes["error.type"] == "model_throttled"
    assert turn_span.attributes["langgraph_agentcore.turn.outcome"] == "failed"
    (chat,) = collected.children()
    assert chat.status.status_code == StatusCode.ERROR and chat.attributes["error.type"] == "model_throttled"
    (turns,) = collected.points("langgraph_agentcore.turns")
    assert turns.attributes["langgraph_agentcore.turn.outcome"] == "failed"
    assert turns.attributes["error.type"] == "model_throttled"
    assert [p.value for p in collected.points("langgraph_agentcore.runs.active")] == [0]
    agent.close()


async def test_a_tool_that_fails_is_an_error_span_and_counted(collected, tmp_path, session_id):
    agent = agent_for(collected, tmp_path)
    events = await turn(agent, "What is 1/0?", session_id)
    assert events[-1].type == "agent_end"  # the agent reports it; the turn itself completes
    tool = next(s for s in collected.children() if s.name == "execute_tool calculator")
    assert tool.status.status_code == StatusCode.ERROR and tool.attributes["error.type"] == "ToolException"
    (errors,) = collected.points("langgraph_agentcore.tool.errors")
    assert errors.value == 1 and errors.attributes == {"gen_ai.tool.name": "calculator"}
    assert collected.turn_span().attributes["langgraph_agentcore.turn.outcome"] == "completed"
    agent.close()


@pytest.mark.parametrize("how", ["close", "cancel"])
async def test_a_cut_turn_says_cancelled_and_its_span_ends_after_the_rollback(collected, tmp_path, session_id, how):
    agent = agent_for(collected, tmp_path, offline_token_delay_ms=20, token_buffer_size=1)
    first_token = asyncio.Event()
    stream = agent.stream(parse_request({"prompt": "Tell me about the sea", "session_id": session_id,
                                         "stream_tokens": True}))

    async def consume() -> None:
        async for event in stream:
            if event.type == "llm_token":
                first_token.set()
                if how == "close":
                    break  # the caller stops reading, then closes the stream

    consumer = asyncio.ensure_future(consume())
    await first_token.wait()
    assert not collected.turn_spans()  # still running
    if how == "cancel":
        consumer.cancel()
        with pytest.raises(asyncio.CancelledError):
            await consumer
    else:
        await consumer
        assert not collected.turn_spans()  # open until closed
        await stream.aclose()
    turn_span = collected.turn_span()
    assert turn_span.attributes["langgraph_agentcore.turn.outcome"] == "cancelled"
    assert turn_span.status.status_code == StatusCode.UNSET  # a caller's choice, not a failure
    (chat,) = collected.children()  # the model call it was in is closed too, and says why
    assert chat.attributes["error.type"] == "cancelled"
    state = await agent.graph.aget_state({"configurable": {"thread_id": session_id}})
    assert not state.values.get("messages")  # rolled back before the span ended
    (turns,) = collected.points("langgraph_agentcore.turns")
    assert turns.attributes["langgraph_agentcore.turn.outcome"] == "cancelled"
    assert [p.value for p in collected.points("langgraph_agentcore.runs.active")] == [0]
    agent.close()


async def test_a_turn_past_its_deadline_ends_its_span_with_the_timeout(collected, tmp_path, session_id):
    agent = agent_for(collected, tmp_path, offline_token_delay_ms=50, request_timeout_s=0.3)
    events = await turn(agent, "Tell me about the sea", session_id, stream_tokens=True)
    assert events[-1].type == "error" and events[-1].data["code"] == "timeout"
    turn_span = collected.turn_span()
    assert turn_span.attributes["error.type"] == "timeout"
    assert turn_span.attributes["langgraph_agentcore.turn.outcome"] == "failed"
    assert all(s.end_time is not None for s in collected.spans())
    agent.close()


async def test_a_refused_turn_is_traced_as_failed(collected, tmp_path, session_id):
    agent = agent_for(collected, tmp_path)
    await turn(agent, "hi", session_id, actor_id="alice")
    events = await turn(agent, "hi", session_id, actor_id="mallory")
    assert events[-1].data["code"] == "session_forbidden"
    refused = collected.turn_spans()[-1]
    assert refused.attributes["error.type"] == "session_forbidden" and refused.attributes["user.id"] == "mallory"
    agent.close()


async def test_no_prompt_or_answer_in_spans_unless_asked(collected, tmp_path, session_id):
    agent = agent_for(collected, tmp_path)
    events = await turn(agent, PROMPT, session_id)
    answer = events[-1].data["output"]
    text = everything_in(collected.spans())
    assert "periwinkle" not in text and answer not in text and "25 * 4" not in text
    agent.close()


async def test_content_is_in_spans_when_the_capture_variable_is_set(collected, tmp_path, session_id):
    settings = Settings.from_env({"OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT": "true",
                                  "AGENT_MEMORY_PATH": str(tmp_path / "m.sqlite")})
    assert settings.otel_capture_content
    agent = build_agent(settings, telemetry=collected.telemetry(settings))
    events = await turn(agent, PROMPT, session_id)
    answer = events[-1].data["output"]
    turn_span = collected.turn_span()
    assert json.loads(turn_span.attributes["gen_ai.input.messages"]) == [
        {"role": "user", "parts": [{"type": "text", "content": PROMPT}]}]
    assert json.loads(turn_span.attributes["gen_ai.output.messages"])[0]["parts"][0]["content"] == answer
    chat1, tool, chat2 = collected.children()
    assert PROMPT in chat1.attributes["gen_ai.input.messages"]
    assert json.loads(tool.attributes["gen_ai.tool.call.arguments"]) == {"expression": "25 * 4"}
    assert tool.attributes["gen_ai.tool.call.result"] == "100"
    assert answer in chat2.attributes["gen_ai.output.messages"]
    agent.close()


async def test_without_an_sdk_nothing_records_and_the_turn_keeps_the_plain_callback(tmp_path, session_id):
    settings = Settings(memory_path=str(tmp_path / "m.sqlite"))
    agent = build_agent(settings)  # the global providers: none configured in tests
    trace = agent.telemetry.turn(session_id, "default-user", "run-1")
    callback = trace.begin("hi")
    assert type(callback) is MetricsCallback and not trace.span.is_recording()
    trace.end(None)
    events = await turn(agent, "What is 25 * 4?", session_id)
    assert events[-1].type == "agent_end"
    agent.close()


def test_our_names_are_the_conventions_names():
    for name in ("OPERATION_NAME", "PROVIDER_NAME", "AGENT_NAME", "CONVERSATION_ID", "REQUEST_MODEL",
                 "REQUEST_MAX_TOKENS", "REQUEST_TEMPERATURE", "USAGE_INPUT_TOKENS", "USAGE_OUTPUT_TOKENS",
                 "RESPONSE_FINISH_REASONS", "RESPONSE_TIME_TO_FIRST_CHUNK", "TOKEN_TYPE", "TOOL_NAME", "TOOL_TYPE",
                 "TOOL_CALL_ID", "TOOL_CALL_ARGUMENTS", "TOOL_CALL_RESULT", "INPUT_MESSAGES", "OUTPUT_MESSAGES"):
        assert getattr(conventions, "GEN_AI_" + name) in vars(ours).values(), name
    assert conventions.GenAiProviderNameValues.AWS_BEDROCK.value == ours.PROVIDER
    operations = {op.value for op in conventions.GenAiOperationNameValues}
    assert {"invoke_agent", "chat", "execute_tool"} <= operations
    collected = Collected()
    Telemetry(Settings(), collected.tracer_provider, collected.meter_provider)
    names = {metric_conventions.GEN_AI_CLIENT_OPERATION_DURATION, metric_conventions.GEN_AI_CLIENT_TOKEN_USAGE,
             metric_conventions.GEN_AI_CLIENT_OPERATION_TIME_TO_FIRST_CHUNK}
    source = open(telemetry.__file__).read()
    assert all(f'"{name}"' in source for name in names)


async def test_an_approval_is_an_interrupted_turn_and_its_answer_a_second_trace(collected, tmp_path, session_id):
    agent = agent_for(collected, tmp_path, approval_required_tools=("calculator",))
    asked = await turn(agent, "What is 25 * 4?", session_id)
    assert asked[-1].data["status"] == "interrupted"
    pending = asked[-1].data["interrupts"][0]
    resume = {"session_id": session_id, "resume": {"interrupt_id": pending["interrupt_id"], "approved": True}}
    answered = [e async for e in agent.stream(parse_request(resume))]
    assert "100" in answered[-1].data["output"]
    first, second = collected.turn_spans()
    assert first.attributes["langgraph_agentcore.turn.outcome"] == "interrupted"
    assert [s.name.split(" ")[0] for s in collected.children(first)] == ["chat"]  # asked, nothing ran
    assert second.attributes["langgraph_agentcore.turn.outcome"] == "completed"
    assert [s.name.split(" ")[0] for s in collected.children(second)] == ["execute_tool", "chat"]
    assert first.context.trace_id != second.context.trace_id
    agent.close()


async def test_telemetry_that_fails_never_fails_the_turn(collected, tmp_path, session_id, caplog):
    """An SDK or exporter that raises (here: every span's end) is logged; the turn streams and ends as ever."""
    agent = agent_for(collected, tmp_path)

    class Broken(Exception):
        pass

    def explode(*args: Any, **kwargs: Any) -> None:
        raise Broken("exporter down")

    collected.exporter.export = explode  # type: ignore[method-assign]
    events = await turn(agent, "What is 25 * 4?", session_id, stream_tokens=True)
    assert events[-1].type == "agent_end" and "100" in events[-1].data["output"]
    agent.telemetry.turns = None  # an instrument that fails as the turn ends
    events = await turn(agent, "What is 25 * 4?", session_id)
    assert events[-1].type == "agent_end"
    assert any("could not record the telemetry" in r.getMessage() for r in caplog.records)
    agent.telemetry.tracer = None  # a tracer that cannot even start a span
    events = await turn(agent, "What is 25 * 4?", session_id)
    assert events[-1].type == "agent_end"
    assert any("could not start the telemetry" in r.getMessage() for r in caplog.records)
    agent.close()
