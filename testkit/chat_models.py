"""ScriptedChatModel: the offline rules as a LangChain chat model, with no endpoint and no botocore."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Iterator, Sequence
from typing import Any

from langchain_core.callbacks import AsyncCallbackManagerForLLMRun, CallbackManagerForLLMRun
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, AIMessageChunk, BaseMessage, ToolMessage
from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, ChatResult
from langchain_core.runnables import Runnable
from langchain_core.utils.function_calling import convert_to_openai_tool

from bedrock.core.messages import message_text
from bedrock.offline.rules import Reply, Turn, reply_to, tokenize


def turns_from_messages(messages: Sequence[BaseMessage]) -> list[Turn]:
    """LangChain messages → Turns."""
    turns = []
    for message in messages:
        if isinstance(message, ToolMessage):
            turns.append(Turn("tool", message_text(message), is_error=message.status == "error",
                              tool_call_id=message.tool_call_id))
        elif isinstance(message, AIMessage):
            calls = [{"id": c["id"], "name": c["name"], "args": c["args"]} for c in message.tool_calls]
            turns.append(Turn("assistant", message_text(message), tool_calls=calls))
        else:
            role = {"system": "system", "human": "user"}.get(message.type, "user")
            turns.append(Turn(role, message_text(message)))
    return turns


class ScriptedChatModel(BaseChatModel):
    """The offline rules as a LangChain chat model (streams word-sized chunks, reports usage).

    For tests and benchmarks that measure the runtime without botocore and the endpoint in the way; the
    product itself always runs ChatBedrockConverse.
    """

    token_delay_ms: float = 0

    @property
    def _llm_type(self) -> str:
        return "offline-rules"

    def bind_tools(self, tools: Sequence[Any], **kwargs: Any) -> Runnable[Any, AIMessage]:
        return self.bind(tools=[convert_to_openai_tool(t) for t in tools], **kwargs)

    def _reply(self, messages: list[BaseMessage], tools: Sequence[dict] | None) -> Reply:
        return reply_to(turns_from_messages(messages), {t["function"]["name"] for t in tools or ()})

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        reply = self._reply(messages, kwargs.get("tools"))
        message = AIMessage(
            content=reply.text,
            tool_calls=[dict(call) for call in reply.tool_calls],
            usage_metadata=usage_metadata(reply),
        )
        return ChatResult(generations=[ChatGeneration(message=message)])

    async def _agenerate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        # No I/O: skip the default executor hop.
        return self._generate(messages, stop, **kwargs)

    def _chunks(self, reply: Reply) -> Iterator[AIMessageChunk]:
        for token in tokenize(reply.text):
            yield AIMessageChunk(content=token)
        tool_chunks = [{"name": call["name"], "args": json.dumps(call["args"]), "id": call["id"], "index": i}
                       for i, call in enumerate(reply.tool_calls)]
        yield AIMessageChunk(
            content="", tool_call_chunks=tool_chunks, usage_metadata=usage_metadata(reply), chunk_position="last"
        )

    def _stream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> Iterator[ChatGenerationChunk]:
        for i, chunk in enumerate(self._chunks(self._reply(messages, kwargs.get("tools")))):
            if i and self.token_delay_ms:
                time.sleep(self.token_delay_ms / 1000)
            if run_manager and isinstance(chunk.content, str) and chunk.content:
                run_manager.on_llm_new_token(chunk.content, chunk=ChatGenerationChunk(message=chunk))
            yield ChatGenerationChunk(message=chunk)

    async def _astream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> AsyncIterator[ChatGenerationChunk]:
        for i, chunk in enumerate(self._chunks(self._reply(messages, kwargs.get("tools")))):
            if i and self.token_delay_ms:
                await asyncio.sleep(self.token_delay_ms / 1000)
            generation = ChatGenerationChunk(message=chunk)
            if run_manager and isinstance(chunk.content, str) and chunk.content:
                await run_manager.on_llm_new_token(chunk.content, chunk=generation)
            yield generation


def usage_metadata(reply: Reply) -> dict[str, int]:
    """A reply's token usage as LangChain messages carry it."""
    return {
        "input_tokens": reply.input_tokens,
        "output_tokens": reply.output_tokens,
        "total_tokens": reply.input_tokens + reply.output_tokens,
    }
