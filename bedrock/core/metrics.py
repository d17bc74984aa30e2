"""MetricsCallback: what one turn really used (model-reported tokens, calls, errors, timings)."""

from __future__ import annotations

import time
from typing import Any
from uuid import UUID

from langchain_core.callbacks import BaseCallbackHandler
from langchain_core.messages import BaseMessage
from langchain_core.outputs import LLMResult


def reported_usage(response: LLMResult) -> tuple[int, int]:
    """(input, output) tokens as the model reported them in its messages' `usage_metadata`."""
    input_tokens = output_tokens = 0
    for generations in response.generations:
        for generation in generations:
            usage = getattr(getattr(generation, "message", None), "usage_metadata", None)
            if usage:
                input_tokens += usage.get("input_tokens", 0)
                output_tokens += usage.get("output_tokens", 0)
    return input_tokens, output_tokens


class MetricsCallback(BaseCallbackHandler):
    """Counts what one turn really used: model-reported tokens, LLM calls, tool calls, errors, timings.

    Synchronous and inline on purpose: its hooks only add to counters, so LangChain calls them directly on the
    loop (a sync handler not marked `run_inline` is run on the loop's executor, a thread hop per token).
    """

    run_inline = True
    raise_error = False

    def __init__(self) -> None:
        self.started_at = time.perf_counter()
        self.input_tokens = 0
        self.output_tokens = 0
        self.llm_calls = 0
        self.tool_calls = 0
        self.errors = 0
        self.first_token_at: float | None = None
        self.approvals_asked = 0  # tool calls that waited for the user's approval (APPROVAL_REQUIRED_TOOLS)
        self.approvals_granted = 0
        self.approvals_declined = 0
        self.failed_tools: list[str] = []  # the tools that raised, by name (a tool-errors metric)
        self._tool_names: dict[UUID, str] = {}

    @property
    def tokens(self) -> int:
        """Input plus output tokens, as the model reported them."""
        return self.input_tokens + self.output_tokens

    def on_llm_start(self, serialized: dict[str, Any], prompts: list[str], **kwargs: Any) -> None:
        self.llm_calls += 1

    # LangChain's signatures (a run_id always comes), so that SpanCallback's overrides may name it.
    def on_chat_model_start(self, serialized: dict[str, Any], messages: list[list[BaseMessage]], *, run_id: UUID,
                            **kwargs: Any) -> None:
        self.llm_calls += 1

    def on_llm_new_token(self, token: str | list[str | dict[str, Any]], *, run_id: UUID, **kwargs: Any) -> None:
        if self.first_token_at is None and token:
            self.first_token_at = time.perf_counter()

    def on_llm_end(self, response: LLMResult, *, run_id: UUID, **kwargs: Any) -> None:
        input_tokens, output_tokens = reported_usage(response)
        self.input_tokens += input_tokens
        self.output_tokens += output_tokens

    def on_llm_error(self, error: BaseException, *, run_id: UUID, **kwargs: Any) -> None:
        self.errors += 1

    def on_tool_start(self, serialized: dict[str, Any], input_str: str, *, run_id: UUID, **kwargs: Any) -> None:
        self.tool_calls += 1
        self._tool_names[run_id] = serialized.get("name") or kwargs.get("name") or "tool"

    def on_tool_end(self, output: Any, *, run_id: UUID, **kwargs: Any) -> None:
        name = self._tool_names.pop(run_id, "tool")
        if getattr(output, "status", "success") == "error":  # a tool that reported its failure as its result (MCP's)
            self._tool_failed(name)

    def on_tool_error(self, error: BaseException, *, run_id: UUID, **kwargs: Any) -> None:
        self._tool_failed(self._tool_names.pop(run_id, "tool"))

    def _tool_failed(self, name: str) -> None:
        self.errors += 1
        self.failed_tools.append(name)

    def record_error(self) -> None:
        """Count an error the runtime saw outside any callback (a failed turn)."""
        self.errors += 1

    def snapshot(self) -> dict[str, Any]:
        """The `metrics` object of `agent_end`."""
        ttft = None
        if self.first_token_at is not None:
            ttft = round((self.first_token_at - self.started_at) * 1000, 1)
        return {
            "tokens": self.tokens,
            "input_tokens": self.input_tokens,
            "output_tokens": self.output_tokens,
            "tool_calls": self.tool_calls,
            "errors": self.errors,
            "llm_calls": self.llm_calls,
            "latency_ms": round((time.perf_counter() - self.started_at) * 1000, 1),
            "time_to_first_token_ms": ttft,
            "approvals_asked": self.approvals_asked,
            "approvals_granted": self.approvals_granted,
            "approvals_declined": self.approvals_declined,
        }
