"""Token streaming without LangGraph's `messages` mode: the model's chunks taken from its own callback.

LangGraph's `messages` mode hands each chunk to the graph's output stream with `call_soon_threadsafe` (its
nodes may run on threads), i.e. a write to the loop's self-pipe and a wake-up per chunk, plus its handler's
own bookkeeping. A callback of our own on the model run, inline, costs a call: with 100 paced streams the
LangGraph + model floor spent 7.7 ms of CPU a turn with `messages` mode and 6.8 ms with this (bench/capacity.py
setup, 5 rounds each, medians). The graph then streams `updates`, `custom` and `tasks` only.

The graph runs in a task of its own (the pump) so that chunks reach the turn while a node is still running;
its updates and the tap's chunks meet in one FIFO, in the order they happened. `aclose()` stops the pump — and
with it the graph run, which LangGraph cancels when its stream is closed — before a cut turn is rolled back.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import AsyncIterator, Iterator
from contextlib import aclosing
from typing import Any
from uuid import UUID

from langchain_core.callbacks import BaseCallbackHandler
from langgraph.constants import TAG_NOSTREAM

# LangChain streams a model call only when a handler of this kind is attached (or `stream=True` is passed,
# which the graph's node cannot): the same marker LangGraph's own `messages` handler carries.
from langchain_core.tracers._streaming import _StreamingCallbackHandler

from bedrock.wire.events import TokenSource

NS_SEP, NS_END = "|", ":"  # LangGraph's checkpoint namespace: "parent:<task id>|node:<task id>"
_END = object()


class _Failure:
    __slots__ = ("error",)

    def __init__(self, error: BaseException) -> None:
        self.error = error


class TokenTap(BaseCallbackHandler, _StreamingCallbackHandler):
    """Passes each chunk of every chat model call a graph node makes (any node, any subgraph; not one tagged
    `nostream`, as LangGraph's own `messages` mode skips) to `sink((None, "messages", (chunk, TokenSource)))`."""

    run_inline = True  # called in the model's own task, in order: no task or gather per chunk
    raise_error = True  # a sink that fails must not go unnoticed

    def __init__(self) -> None:
        self.sink: Any = None
        self._runs: dict[UUID, TokenSource] = {}

    def on_chat_model_start(self, serialized: Any, messages: Any, *, run_id: UUID,
                            metadata: dict[str, Any] | None = None, tags: list[str] | None = None,
                            **kwargs: Any) -> None:
        node = metadata.get("langgraph_node") if metadata else None
        if node is None or (tags and TAG_NOSTREAM in tags):
            return
        assert metadata is not None
        path = str(metadata.get("langgraph_checkpoint_ns", "")).split(NS_SEP)[:-1]  # the subgraphs above the node
        self._runs[run_id] = TokenSource(str(node), tuple(part.split(NS_END)[0] for part in path if part))

    def on_llm_new_token(self, token: Any, *, chunk: Any = None, run_id: UUID, **kwargs: Any) -> None:
        source = self._runs.get(run_id)
        if source is not None and chunk is not None:
            self.sink((None, "messages", (chunk.message, source)))

    def on_llm_end(self, response: Any, *, run_id: UUID, **kwargs: Any) -> None:
        self._runs.pop(run_id, None)

    def on_llm_error(self, error: BaseException, *, run_id: UUID, **kwargs: Any) -> None:
        self._runs.pop(run_id, None)

    # The streaming marker's interface: outputs pass through untouched.
    def tap_output_aiter(self, run_id: UUID, output: AsyncIterator[Any]) -> AsyncIterator[Any]:
        return output

    def tap_output_iter(self, run_id: UUID, output: Iterator[Any]) -> Iterator[Any]:
        return output


class TappedStream:
    """`(namespace, mode, chunk)` items: the graph stream's (updates, custom, tasks; subgraphs too) and the tap's
    (`(None, "messages", …)`), as they happened."""

    def __init__(self, graph_stream: AsyncIterator[Any], tap: TokenTap) -> None:
        self._items: deque[Any] = deque()
        self._waiter: asyncio.Future[None] | None = None
        tap.sink = self._put
        self._task = asyncio.ensure_future(self._pump(graph_stream))

    def _put(self, item: Any) -> None:
        self._items.append(item)
        waiter = self._waiter
        if waiter is not None:
            self._waiter = None
            if not waiter.done():
                waiter.set_result(None)

    async def _pump(self, graph_stream: AsyncIterator[Any]) -> None:
        try:
            async with aclosing(graph_stream):  # type: ignore[type-var]  # astream's generator, typed AsyncIterator
                async for item in graph_stream:
                    self._put(item)
        except asyncio.CancelledError:
            self._put(_Failure(asyncio.CancelledError()))
            raise
        except BaseException as error:  # the turn raises it where it reads
            self._put(_Failure(error))
            return
        self._put(_END)

    def __aiter__(self) -> TappedStream:
        return self

    async def __anext__(self) -> Any:
        while not self._items:
            self._waiter = asyncio.get_running_loop().create_future()
            await self._waiter
        item = self._items.popleft()
        if item is _END:
            raise StopAsyncIteration
        if item.__class__ is _Failure:
            raise item.error
        return item

    async def aclose(self) -> None:
        """Stop the graph run (if it still runs) and wait until it has stopped."""
        if not self._task.done():
            self._task.cancel()
        await asyncio.wait((self._task,))
        if not self._task.cancelled():
            self._task.exception()  # retrieved: the turn has seen it already, if it mattered
