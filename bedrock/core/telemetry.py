"""A turn's telemetry: OpenTelemetry GenAI spans and metrics, and the ids its log lines carry.

One trace per turn, named as the GenAI semantic conventions name them (`conventions.py`):

    invoke_agent langgraph_agentcore     INTERNAL; parent: the request's trace context (its server span,
    │                                    else its `traceparent` / X-Ray header); ends with the turn's
    │                                    terminal event, or when a turn cut short has been rolled back
    ├── chat <model id>                  CLIENT; one per model call: tokens, time to first chunk, stop reason
    ├── execute_tool <tool>              INTERNAL; one per tool run: status, error.type
    └── chat <model id>

Metrics (per turn): `gen_ai.client.operation.duration`, `gen_ai.client.operation.time_to_first_chunk` and
`gen_ai.client.token.usage` for the `invoke_agent` operation; `langgraph_agentcore.turns` by outcome,
`langgraph_agentcore.runs.active`, `langgraph_agentcore.tool.errors` by tool.

Through `opentelemetry-api` only: with no SDK configured every span is non-recording, the turn keeps the plain
MetricsCallback (nothing per token), and a turn pays a few µs (bench/token_cost.py). On AgentCore the ADOT
distro's `opentelemetry-instrument` configures the SDK and exports.

Why our own callback rather than an instrumentation package (both read 2026-11): the ADOT distro's LangChain
instrumentation (`aws_langchain`) does not support the async API (`astream`, the only one we use) and records
message content with no switch; OpenLLMetry's `opentelemetry-instrumentation-langchain` records content unless
told not to, names the agent span after the graph run (which knows neither the session's owner nor our error
codes, and ends before a cut turn is rolled back), and neither measures time to first chunk. The Dockerfile
turns `aws_langchain` off, so a turn is not traced twice.
"""

from __future__ import annotations

import contextlib
import json
import logging
import time
from contextvars import Token
from typing import Any
from uuid import UUID

from langchain_core.messages import BaseMessage
from langchain_core.outputs import LLMResult
from opentelemetry import context as otel_context
from opentelemetry import metrics, trace
from opentelemetry.trace import SpanKind, Status, StatusCode

from bedrock.config import Settings
from bedrock.core.conventions import (AGENT, AGENT_NAME, CONVERSATION, ERROR_TYPE, FINISH_REASONS, INPUT_MESSAGES,
                                      INPUT_TOKENS, MCP_SERVER, OPERATION, OUTCOME, OUTPUT_MESSAGES, OUTPUT_TOKENS,
                                      PROVIDER, PROVIDER_NAME, REQUEST_MAX_TOKENS, REQUEST_MODEL, REQUEST_TEMPERATURE,
                                      RUN, SCOPE, SECONDS_BUCKETS, SESSION, TIME_TO_FIRST_CHUNK, TOKEN_BUCKETS,
                                      TOKEN_TYPE, TOOL_ARGUMENTS, TOOL_CALL_ID, TOOL_NAME, TOOL_RESULT, TOOL_TYPE, USER,
                                      messages_json, role, text)
from bedrock.core.correlation import LOG_FIELDS, carries_trace
from bedrock.core.metrics import MetricsCallback, reported_usage
from bedrock.errors import classify
from bedrock.wire.events import AGENT_END, SSEEvent

logger = logging.getLogger(__name__)



def incoming_context(headers: Any) -> Any:
    """The trace context a request's headers carry (`traceparent`, X-Ray's header, `baggage`: whatever the
    configured propagators read), or None when there is none or a server span already carries it (ASGI
    instrumentation under `opentelemetry-instrument`: the turn is then that span's child)."""
    if not carries_trace(headers):
        return None
    if trace.get_current_span().get_span_context().is_valid:
        return None
    from opentelemetry import propagate  # with the first traced request: it loads the propagators' entry points

    return propagate.extract(headers)


def attach_incoming(headers: Any) -> Token[otel_context.Context] | None:
    """Make the request's trace context current (a token for `detach`), or None when it has none."""
    parent = incoming_context(headers)
    return otel_context.attach(parent) if parent is not None else None


def detach(token: Token[otel_context.Context] | None) -> None:
    """Undo `attach_incoming`: nothing if it attached nothing (OpenTelemetry logs an error for a None token)."""
    if token is not None:
        otel_context.detach(token)


class Telemetry:
    """The tracer and instruments turns report to: the global providers (what `opentelemetry-instrument` set),
    or the ones given (a benchmark's, a test's)."""

    def __init__(self, settings: Settings, tracer_provider: Any = None, meter_provider: Any = None) -> None:
        self.tracer_provider = tracer_provider
        self.meter_provider = meter_provider
        self.tracer = trace.get_tracer(SCOPE, tracer_provider=tracer_provider)
        self.model = settings.bedrock_model_id
        # OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT: prompts, answers and tool arguments in spans.
        self.capture_content = settings.otel_capture_content
        meter = metrics.get_meter(SCOPE, meter_provider=meter_provider)
        self.duration = meter.create_histogram(
            "gen_ai.client.operation.duration", unit="s", description="Turn latency, to its terminal event",
            explicit_bucket_boundaries_advisory=SECONDS_BUCKETS)
        self.first_chunk = meter.create_histogram(
            "gen_ai.client.operation.time_to_first_chunk", unit="s",
            description="From a turn's start to its first model token",
            explicit_bucket_boundaries_advisory=SECONDS_BUCKETS)
        self.token_usage = meter.create_histogram(
            "gen_ai.client.token.usage", unit="{token}", description="Model-reported tokens per turn",
            explicit_bucket_boundaries_advisory=TOKEN_BUCKETS)
        self.turns = meter.create_counter("langgraph_agentcore.turns", unit="{turn}", description="Turns by outcome")
        self.active = meter.create_up_down_counter("langgraph_agentcore.runs.active", unit="{run}",
                                                   description="Turns running now")
        self.tool_errors = meter.create_counter("langgraph_agentcore.tool.errors", unit="{error}",
                                                description="Tool runs that raised, by tool")

    def flush(self, timeout_s: float = 5.0) -> None:
        """Export what the SDK still holds (its batch processor waits up to 5 s), before the process exits.

        Needed: on SIGTERM uvicorn shuts down, then re-raises the signal with its default action, so the
        process dies without running `atexit` — where the SDK would flush. Measured: without this, the last
        turns' spans before a SIGTERM (an AgentCore session ending) were never exported.
        """
        from opentelemetry import _logs

        millis = int(timeout_s * 1000)
        for provider in (self.tracer_provider or trace.get_tracer_provider(),
                         self.meter_provider or metrics.get_meter_provider(), _logs.get_logger_provider()):
            force_flush = getattr(provider, "force_flush", None)  # the API's no-op providers have none
            if callable(force_flush):
                try:
                    force_flush(millis)
                except Exception:  # an exporter that fails must not stop the shutdown
                    logger.exception("could not flush telemetry")

    def turn(self, session_id: str, actor_id: str, run_id: str) -> TurnTrace:
        """A turn's trace, its parent the caller's current context (captured now, where the request is served)."""
        return TurnTrace(self, session_id, actor_id, run_id)


class TurnTrace:
    """One turn's span, callback and metrics: `begin()` when the turn starts running, `end(terminal)` once.

    `end` gets the terminal event (`agent_end` or `error`), or None for a turn cut short (cancelled by its
    caller, a disconnect, the `cancel` action); a second call does nothing.
    """

    def __init__(self, telemetry: Telemetry, session_id: str, actor_id: str, run_id: str) -> None:
        self.telemetry = telemetry
        self.session_id = session_id
        self.actor_id = actor_id
        self.run_id = run_id
        self.parent = otel_context.get_current()
        self.span: Any = None
        self.context: Any = None  # the turn span's context: its children's parent
        self.callback: MetricsCallback = MetricsCallback()
        self._ended = False

    def begin(self, prompt: str | None = None) -> MetricsCallback:
        """Start the turn's span; returns the turn's LangChain callback (which also counts agent_end's metrics).
        Telemetry never fails a turn: an SDK or exporter that raises is logged, and the turn goes on untraced."""
        try:
            return self._begin(prompt)
        except Exception:
            logger.exception("could not start the telemetry of turn %s", self.run_id)
            self.span = None
            self.callback = MetricsCallback()
            return self.callback

    def end(self, terminal: SSEEvent | None) -> None:
        """Close the span (and any model call or tool still open) and record the turn's metrics, once."""
        if self._ended or self.span is None:
            return
        self._ended = True
        try:
            self._end(terminal)
        except Exception:
            logger.exception("could not record the telemetry of turn %s", self.run_id)
            with contextlib.suppress(Exception):
                self.span.end()  # the span at least ends (and is exported), whatever failed before

    def _begin(self, prompt: str | None) -> MetricsCallback:
        telemetry = self.telemetry
        self.span = span = telemetry.tracer.start_span(
            f"invoke_agent {AGENT_NAME}", context=self.parent, kind=SpanKind.INTERNAL,
            attributes={OPERATION: "invoke_agent", AGENT: AGENT_NAME, PROVIDER_NAME: PROVIDER,
                        REQUEST_MODEL: telemetry.model, CONVERSATION: self.session_id, SESSION: self.session_id,
                        USER: self.actor_id, RUN: self.run_id})
        if span.is_recording():
            self.context = trace.set_span_in_context(span)
            self.callback = SpanCallback(self)
            if telemetry.capture_content and prompt is not None:
                span.set_attribute(INPUT_MESSAGES, messages_json([("user", prompt)]))
        telemetry.active.add(1)
        context = span.get_span_context()
        fields = {"session_id": self.session_id, "run_id": self.run_id}
        if context.is_valid:
            fields["trace_id"] = format(context.trace_id, "032x")
            fields["span_id"] = format(context.span_id, "016x")
        LOG_FIELDS.set(fields)
        return self.callback

    def _end(self, terminal: SSEEvent | None) -> None:
        telemetry, span = self.telemetry, self.span
        data: Any = terminal.data if terminal is not None else None  # the terminal event's JSON object
        if terminal is None:
            outcome, code, numbers = "cancelled", None, self.callback.snapshot()
        elif terminal.type == AGENT_END:
            outcome, code, numbers = data["status"], None, data["metrics"]  # the numbers agent_end reported
        else:
            outcome, code, numbers = "failed", data.get("code", "internal_error"), self.callback.snapshot()
        attributes = {OPERATION: "invoke_agent", PROVIDER_NAME: PROVIDER, REQUEST_MODEL: telemetry.model}
        if code is not None:
            attributes[ERROR_TYPE] = code
        telemetry.active.add(-1)
        telemetry.turns.add(1, {**attributes, OUTCOME: outcome})
        telemetry.duration.record(numbers["latency_ms"] / 1000, attributes)
        if numbers["time_to_first_token_ms"] is not None:
            telemetry.first_chunk.record(numbers["time_to_first_token_ms"] / 1000, attributes)
        if numbers["llm_calls"]:
            telemetry.token_usage.record(numbers["input_tokens"], {**attributes, TOKEN_TYPE: "input"})
            telemetry.token_usage.record(numbers["output_tokens"], {**attributes, TOKEN_TYPE: "output"})
        for tool in self.callback.failed_tools:
            telemetry.tool_errors.add(1, {TOOL_NAME: tool})
        if not span.is_recording():
            span.end()
            return
        if isinstance(self.callback, SpanCallback):
            self.callback.close_open("cancelled" if terminal is None else code or "turn_ended")
        span.set_attributes({
            OUTCOME: outcome, INPUT_TOKENS: numbers["input_tokens"], OUTPUT_TOKENS: numbers["output_tokens"],
            "langgraph_agentcore.turn.llm_calls": numbers["llm_calls"],
            "langgraph_agentcore.turn.tool_calls": numbers["tool_calls"],
        })
        if numbers["time_to_first_token_ms"] is not None:
            span.set_attribute(TIME_TO_FIRST_CHUNK, numbers["time_to_first_token_ms"] / 1000)
        if code is not None:
            span.set_attribute(ERROR_TYPE, code)
            span.set_status(Status(StatusCode.ERROR, code))  # the code, not the message: no model text in it
        elif terminal is not None and telemetry.capture_content and data.get("output"):
            span.set_attribute(OUTPUT_MESSAGES, messages_json([("assistant", data["output"])]))
        span.end()


class SpanCallback(MetricsCallback):
    """MetricsCallback that also traces each model call and tool run as a child of the turn's span.

    Used only while the turn's span records. Inline and synchronous, as MetricsCallback: LangChain calls it on
    the model's and tools' own task, and its hooks only open and close spans.
    """

    def __init__(self, turn: TurnTrace) -> None:
        super().__init__()
        self.turn = turn
        self.tracer = turn.telemetry.tracer
        self.capture = turn.telemetry.capture_content
        self.calls: dict[UUID, list[Any]] = {}  # run id → [span, started (perf_counter), first chunk or None]
        self.tools: dict[UUID, Any] = {}

    def on_chat_model_start(self, serialized: dict[str, Any], messages: list[list[BaseMessage]], *,
                            run_id: UUID, metadata: dict[str, Any] | None = None, **kwargs: Any) -> None:
        super().on_chat_model_start(serialized, messages, run_id=run_id, **kwargs)
        meta = metadata or {}
        model = meta.get("ls_model_name") or self.turn.telemetry.model
        attributes = {OPERATION: "chat", PROVIDER_NAME: PROVIDER, REQUEST_MODEL: model}
        if meta.get("ls_max_tokens") is not None:
            attributes[REQUEST_MAX_TOKENS] = meta["ls_max_tokens"]
        if meta.get("ls_temperature") is not None:
            attributes[REQUEST_TEMPERATURE] = meta["ls_temperature"]
        span = self.tracer.start_span(f"chat {model}", context=self.turn.context, kind=SpanKind.CLIENT,
                                      attributes=attributes)
        if self.capture and messages:
            span.set_attribute(INPUT_MESSAGES, messages_json((role(m), text(m.content)) for m in messages[0]))
        self.calls[run_id] = [span, time.perf_counter(), None]

    def on_llm_new_token(self, token: str | list[str | dict[str, Any]], *, run_id: UUID, **kwargs: Any) -> None:
        if self.first_token_at is None and token:
            self.first_token_at = time.perf_counter()
        call = self.calls.get(run_id) if token else None
        if call is not None and call[2] is None:
            call[2] = time.perf_counter()

    def on_llm_end(self, response: LLMResult, *, run_id: UUID, **kwargs: Any) -> None:
        super().on_llm_end(response, run_id=run_id, **kwargs)
        call = self.calls.pop(run_id, None)
        if call is None:
            return
        span, started, first = call
        input_tokens, output_tokens = reported_usage(response)
        span.set_attributes({INPUT_TOKENS: input_tokens, OUTPUT_TOKENS: output_tokens})
        if first is not None:
            span.set_attribute(TIME_TO_FIRST_CHUNK, round(first - started, 6))
        reasons, texts = [], []
        for generations in response.generations:
            for generation in generations:
                message = getattr(generation, "message", None)
                reason = (getattr(message, "response_metadata", None) or {}).get("stopReason")
                if reason:
                    reasons.append(reason)
                if self.capture and message is not None:
                    texts.append(("assistant", text(message.content)))
        if reasons:
            span.set_attribute(FINISH_REASONS, reasons)
        if texts:
            span.set_attribute(OUTPUT_MESSAGES, messages_json(texts))
        span.end()

    def on_llm_error(self, error: BaseException, *, run_id: UUID, **kwargs: Any) -> None:
        super().on_llm_error(error, run_id=run_id, **kwargs)
        call = self.calls.pop(run_id, None)
        if call is not None:
            _failed(call[0], _code(error))

    def on_tool_start(self, serialized: dict[str, Any], input_str: str, *, run_id: UUID,
                      tool_call_id: str | None = None, **kwargs: Any) -> None:
        super().on_tool_start(serialized, input_str, run_id=run_id, **kwargs)
        name = serialized.get("name") or kwargs.get("name") or "tool"
        server = (kwargs.get("metadata") or {}).get("mcp_server")  # an MCP tool's (bedrock/mcp/tools.py)
        # The conventions' types: an agent-side function, or an "extension" the agent calls out to (an MCP server).
        attributes = {OPERATION: "execute_tool", TOOL_NAME: name, TOOL_TYPE: "extension" if server else "function"}
        if server:
            attributes[MCP_SERVER] = server
        if tool_call_id:
            attributes[TOOL_CALL_ID] = tool_call_id
        span = self.tracer.start_span(f"execute_tool {name}", context=self.turn.context, attributes=attributes)
        if self.capture:  # as JSON, as the conventions ask (`input_str` is the arguments' Python repr)
            inputs = kwargs.get("inputs")
            arguments = json.dumps(inputs, ensure_ascii=False, default=str) if isinstance(inputs, dict) else input_str
            span.set_attribute(TOOL_ARGUMENTS, arguments)
        self.tools[run_id] = span

    def on_tool_end(self, output: Any, *, run_id: UUID, **kwargs: Any) -> None:
        super().on_tool_end(output, run_id=run_id, **kwargs)
        span = self.tools.pop(run_id, None)
        if span is None:
            return
        if self.capture:
            span.set_attribute(TOOL_RESULT, text(getattr(output, "content", output)))
        if getattr(output, "status", "success") == "error":  # a tool that reported its own failure
            _failed(span, "tool_error")
        else:
            span.end()

    def on_tool_error(self, error: BaseException, *, run_id: UUID, **kwargs: Any) -> None:
        super().on_tool_error(error, run_id=run_id, **kwargs)
        span = self.tools.pop(run_id, None)
        if span is not None:
            _failed(span, type(error).__qualname__)

    def close_open(self, reason: str) -> None:
        """End the model calls and tool runs the turn left open (it was cut short, or failed inside them)."""
        for span in [*(call[0] for call in self.calls.values()), *self.tools.values()]:
            _failed(span, reason)
        self.calls.clear()
        self.tools.clear()


def _failed(span: Any, code: str) -> None:
    span.set_attribute(ERROR_TYPE, code)
    span.set_status(Status(StatusCode.ERROR, code))
    span.end()


def _code(error: BaseException) -> str:
    """Our catalog's code for a model call's failure (`model_throttled`, …); a cancellation says so."""
    if isinstance(error, BaseException) and type(error).__name__ == "CancelledError":
        return "cancelled"
    return classify(error).code
