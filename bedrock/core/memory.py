"""Long-term memory: what an actor told the agent, kept across its sessions — LangGraph's BaseStore, seen by a turn
through `ActorMemory`.

Every graph gets a store (`get_store()`, a node's `store` argument, `runtime.store`), the backend's LangGraph store
(`Store.long_term`: InMemoryStore, SQLite, PostgreSQL, AgentCore Memory) seen through one turn's ActorMemory:

- **The actor's alone.** Every namespace the turn names is kept under its actor: `("memories",)` is kept as
  `(actor_id, "memories")`, and one that already starts with the actor's id is kept as it is (LangGraph's own
  convention for a per-user store). Items come back with the namespace they are kept under. No namespace a graph can
  write names another actor's memories: another actor's id in first place is kept under this actor too.
- **Kept with the turn.** The turn's writes wait in the view (its reads see them) and reach the backend only when the
  turn is kept (`keep`); a cut turn (cancel, timeout, error, SIGTERM, a disconnect with `cancel`) drops them
  (`drop`). A keep that a cut overtakes is undone: what each written key held before is written back, where the key
  still holds what this turn wrote (another session of the actor that wrote it since keeps its newer value).

`Memories` serves the `memories` and `forget` actions over the same namespaces.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import threading
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from typing import Any

from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, SystemMessage
from langchain_core.tools import ToolException, tool
from langgraph.config import get_store
from langgraph.store.base import (BaseStore, GetOp, Item, ListNamespacesOp, MatchCondition, Op, PutOp, Result,
                                  SearchItem, SearchOp)
from langgraph.store.memory import InMemoryStore

from bedrock.errors import AgentError

logger = logging.getLogger(__name__)

MEMORIES = ("memories",)  # the built-in agent's namespace (under the actor's id)
# A turn's writes are few (the built-in agent writes one per fact stated); a graph writing more than this in one turn
# is refused, as any bounded input is: each write is an embedding request and a row at the keep.
MAX_TURN_WRITES = 256
PAGE = 100  # items read at a time when the actions walk an actor's memories
MAX_FACT_CHARS = 1000  # one remembered fact (a sentence or two); the model is told to keep to one fact per call
# What the built-in agent's model is told before the memories it recalls (the offline model answers from them).
RECALL_HEADING = "From earlier conversations, you remember this about the user (their own words):"


def memory_key(text: str) -> str:
    """A fact's key: the same fact said twice (case, spacing) is kept once."""
    return "m-" + hashlib.sha256(" ".join(text.lower().split()).encode()).hexdigest()[:20]


class ActorMemory(BaseStore):
    """One turn's view of the long-term store: its actor's namespaces only; its writes held until `keep`."""

    def __init__(self, backing: BaseStore, actor_id: str) -> None:
        self.backing = backing
        self.root = (actor_id,)
        self.supports_ttl = backing.supports_ttl
        self.ttl_config = backing.ttl_config
        # The turn's writes: the puts in an InMemoryStore (so a search of the view filters them as LangGraph does),
        # every write (deletes too) in order. Sync nodes write from worker threads while the loop reads: a lock.
        self._overlay = InMemoryStore()
        self._writes: dict[tuple[tuple[str, ...], str], PutOp] = {}
        self._lock = threading.Lock()
        self._keeping: asyncio.Future[None] | None = None
        self._undo: list[PutOp] = []
        self._applied: dict[tuple[tuple[str, ...], str], Any] = {}  # what a keep wrote: each key's last value
        self.recalled: dict[tuple[str, int], list[str]] = {}  # the built-in agent's recall, once per turn and query

    def scoped(self, namespace: tuple[str, ...]) -> tuple[str, ...]:
        """Where a namespace the graph names is kept: under the actor's id."""
        return namespace if namespace[:1] == self.root else (*self.root, *namespace)

    @property
    def writes(self) -> list[PutOp]:
        with self._lock:
            return list(self._writes.values())

    # BaseStore: every method of the store API reaches these two.
    def batch(self, ops: Iterable[Op]) -> list[Result]:
        ops = list(ops)
        asked = self._backing_ops(ops)
        found = self.backing.batch([op for op in asked if op is not None]) if any(asked) else []
        return self._answers(ops, asked, found)

    async def abatch(self, ops: Iterable[Op]) -> list[Result]:
        ops = list(ops)
        asked = self._backing_ops(ops)
        found = await self.backing.abatch([op for op in asked if op is not None]) if any(asked) else []
        return self._answers(ops, asked, found)

    def _backing_ops(self, ops: Sequence[Op]) -> list[Op | None]:
        """What each op asks of the backend (None: the view answers it alone). Writes are held here."""
        asked: list[Op | None] = []
        for op in ops:
            if isinstance(op, PutOp):
                self._hold(op._replace(namespace=self.scoped(op.namespace)))
                asked.append(None)
            elif isinstance(op, GetOp):
                scoped = op._replace(namespace=self.scoped(op.namespace))
                asked.append(None if self._written(scoped.namespace, scoped.key) else scoped)
            elif isinstance(op, SearchOp):
                asked.append(self._search_op(op))
            elif isinstance(op, ListNamespacesOp):
                asked.append(op._replace(match_conditions=self._conditions(op.match_conditions), limit=op.limit
                                         + op.offset + len(self._writes), offset=0))
            else:
                raise ValueError(f"unknown store operation: {type(op).__name__}")
        return asked

    def _hold(self, op: PutOp) -> None:
        with self._lock:
            if (op.namespace, op.key) not in self._writes and len(self._writes) >= MAX_TURN_WRITES:
                raise AgentError("too_many_memories", f"A turn may write at most {MAX_TURN_WRITES} memories.")
            self._writes[(op.namespace, op.key)] = op
            if op.value is None:
                self._overlay.delete(op.namespace, op.key)
            else:
                self._overlay.put(op.namespace, op.key, dict(op.value))

    def _written(self, namespace: tuple[str, ...], key: str) -> bool:
        with self._lock:
            return (namespace, key) in self._writes

    def _search_op(self, op: SearchOp) -> SearchOp:
        prefix = self.scoped(op.namespace_prefix) if op.namespace_prefix else self.root
        if not self._writes:
            return op._replace(namespace_prefix=prefix)
        # Held writes replace what the backend holds: ask it for enough to fill the page once they are merged.
        return op._replace(namespace_prefix=prefix, offset=0, limit=op.offset + op.limit + len(self._writes))

    def _conditions(self, conditions: tuple[MatchCondition, ...] | None) -> tuple[MatchCondition, ...]:
        """A namespace listing's conditions, its prefix under the actor's id (one is added where none is given)."""
        given = list(conditions or ())
        prefixes = [c for c in given if c.match_type == "prefix"]
        if not prefixes:
            return (MatchCondition("prefix", self.root), *given)
        return tuple(c._replace(path=self.scoped(tuple(c.path))) if c.match_type == "prefix" else c for c in given)

    def _answers(self, ops: Sequence[Op], asked: Sequence[Op | None], found: Sequence[Result]) -> list[Result]:
        results: list[Result] = []
        backend = iter(found)
        for op, mine in zip(ops, asked, strict=True):
            answer = next(backend) if mine is not None else None
            if isinstance(op, GetOp) and mine is None:
                scoped = self.scoped(op.namespace)
                answer = self._overlay.get(scoped, op.key)
            elif isinstance(op, SearchOp) and self._writes:
                answer = self._merged_search(op, mine, answer)
            elif isinstance(op, ListNamespacesOp) and self._writes:
                answer = self._merged_namespaces(op, mine, answer)
            results.append(answer)
        return results

    def _merged_search(self, op: SearchOp, asked: Any, found: Any) -> list[SearchItem]:
        """The backend's page with the held writes applied: deleted and rewritten items out, new ones first."""
        with self._lock:
            written = set(self._writes)
        held = self._overlay.search(asked.namespace_prefix, filter=op.filter, limit=len(written) or 1)
        kept = [item for item in found if (item.namespace, item.key) not in written]
        return [*held, *kept][op.offset: op.offset + op.limit]

    def _merged_namespaces(self, op: ListNamespacesOp, asked: Any, found: Any) -> list[tuple[str, ...]]:
        held = self._overlay.list_namespaces(prefix=None, max_depth=op.max_depth, limit=len(self._writes) + 1)
        conditions = asked.match_conditions
        prefixes = [tuple(c.path) for c in conditions if c.match_type == "prefix"]
        held = [ns for ns in held if all(ns[:len(p)] == p for p in prefixes)]
        return sorted(set(found) | set(held))[op.offset: op.offset + op.limit]

    # The turn's end.
    async def keep(self) -> None:
        """Write the turn's held writes to the backend (the turn is kept). Awaited by the turn; a cancellation of that
        wait does not stop the write, which `drop` then undoes."""
        if not self._writes:
            return
        self._keeping = asyncio.ensure_future(self._apply(self.writes))
        await asyncio.shield(self._keeping)

    async def _apply(self, writes: list[PutOp]) -> None:
        before = await self.backing.abatch([GetOp(w.namespace, w.key, refresh_ttl=False) for w in writes])
        ttl = (self.ttl_config or {}).get("default_ttl")
        self._undo = [PutOp(w.namespace, w.key, item.value if isinstance(item, Item) else None, ttl=ttl)
                      for w, item in zip(writes, before, strict=True)]
        self._applied = {(w.namespace, w.key): w.value for w in writes}
        for batch in _distinct_batches(writes):
            await self.backing.abatch(batch)

    async def record_turn(self, session_id: str, prompt: str | None, answer: str) -> None:
        """A kept turn's conversation, for a backend that extracts memories from conversations itself (AgentCore
        Memory's strategies: `arecord_turn`); nothing for the others."""
        record = getattr(self.backing, "arecord_turn", None)
        if record is None:
            return
        messages: list[BaseMessage] = [HumanMessage(prompt)] if prompt else []
        if answer:
            messages.append(AIMessage(answer))
        if messages:
            await record(self.root[0], session_id, messages)

    async def drop(self) -> None:
        """The turn is cut: its held writes are dropped, and a keep that already ran is undone."""
        with self._lock:
            self._writes.clear()
        if self._keeping is None:
            return
        try:
            await self._keeping
        except Exception:
            pass  # the keep failed; what it wrote before failing is undone as the rest
        if self._undo:
            undo = await self._still_ours(self._undo)
            if undo:
                await self.backing.abatch(undo)

    async def _still_ours(self, undo: list[PutOp]) -> list[PutOp]:
        """The undo's writes of keys that still hold what the keep wrote. One read, on this rare path only: between
        the keep and the cut another session of the actor may have kept the same key (a fact said twice is one key),
        and writing back what this turn found would erase that session's kept memory."""
        now = await self.backing.abatch([GetOp(op.namespace, op.key, refresh_ttl=False) for op in undo])
        return [op for op, item in zip(undo, now, strict=True)
                if (item.value if isinstance(item, Item) else None) == self._applied[(op.namespace, op.key)]]


def _distinct_batches(writes: list[PutOp]) -> list[list[PutOp]]:
    """The writes in batches where no two values are equal: LangGraph's InMemoryStore (1.2) embeds each distinct text
    once and then fails to match two equal ones to their items ("Number of embeddings (1) does not match")."""
    batches: list[list[PutOp]] = [[]]
    seen: set[str] = set()
    for write in writes:
        value = repr(write.value)
        if value in seen:
            batches.append([])
            seen.clear()
        seen.add(value)
        batches[-1].append(write)
    return batches


@tool
async def remember(fact: str) -> str:
    """Save one fact or preference the user stated about themselves (e.g. "prefers metric units"), in their own
    words, so that their later conversations can recall it."""
    store = get_store()
    if store is None:
        raise ToolException("long-term memory is off on this server")
    text = " ".join(fact.split())
    if not text:
        raise ToolException("there is nothing to remember in an empty fact")
    if len(text) > MAX_FACT_CHARS:
        raise ToolException(f"a fact is at most {MAX_FACT_CHARS} characters: save one fact per call")
    await store.aput(MEMORIES, memory_key(text), {"text": text})
    return f"Remembered: {text}"


async def recall(messages: list[BaseMessage], limit: int) -> SystemMessage | None:
    """What the turn's actor told the agent before that bears on the latest human message (at most `limit`
    memories, by meaning where the backend searches so, else the newest), as context for the model."""
    store = get_store()
    query = next((m.text for m in reversed(messages) if isinstance(m, HumanMessage)), "")
    if store is None or limit <= 0 or not query.strip():
        return None
    cache = getattr(store, "recalled", None)  # ActorMemory's: the turn's later model calls search no more
    found = cache.get((query, limit)) if cache is not None else None
    if found is None:
        # An actor with no memories (most, on most turns) costs one read, not an embedding request (~50 ms on Bedrock).
        # Every namespace of the actor: its `remember`ed facts, and what a backend extracted itself (AgentCore's
        # strategies: preferences, facts).
        items = await store.asearch((), limit=1, refresh_ttl=False)
        if items:
            items = await store.asearch((), query=query, limit=limit)
        found = [str(item.value.get("text", "")) for item in items if item.value.get("text")]
        if cache is not None:
            cache[(query, limit)] = found
    if not found:
        return None
    return SystemMessage("\n".join([RECALL_HEADING, *(f"- {text}" for text in found)]))


class Memories:
    """An actor's memories as the `memories` and `forget` actions show them: every item under the actor's id."""

    def __init__(self, backing: BaseStore) -> None:
        self.backing = backing

    async def page(self, actor_id: str, limit: int, offset: int) -> dict[str, Any]:
        """A page of the actor's memories, newest first where the backend orders them, and the next page's offset."""
        items = await self.backing.asearch((actor_id,), limit=limit + 1, offset=offset)
        more = len(items) > limit
        return {"actor_id": actor_id, "memories": [item_json(item) for item in items[:limit]],
                "next_offset": offset + limit if more else None}

    async def forget(self, actor_id: str, key: str | None, namespace: Sequence[str] | None = None) -> int:
        """Delete the actor's memory `key` (in `namespace`, else in any of the actor's namespaces), or every memory
        of the actor (`key` None); the number deleted. AgentError `memory_not_found` when `key` names none."""
        root = (actor_id,)
        targets = await self._items(root if namespace is None else _under(root, tuple(namespace)), key)
        if key is not None and not targets:
            raise AgentError("memory_not_found", f"No memory {key!r} of this actor.")
        if targets:
            await self.backing.abatch([PutOp(ns, k, None) for ns, k in targets])
        return len(targets)

    async def _items(self, prefix: tuple[str, ...], key: str | None) -> list[tuple[tuple[str, ...], str]]:
        found: list[tuple[tuple[str, ...], str]] = []
        offset = 0
        while True:
            page = await self.backing.asearch(prefix, limit=PAGE, offset=offset, refresh_ttl=False)
            found += [(item.namespace, item.key) for item in page if key is None or item.key == key]
            if len(page) < PAGE:
                return found
            offset += PAGE


def _under(root: tuple[str, ...], namespace: tuple[str, ...]) -> tuple[str, ...]:
    return namespace if namespace[:1] == root else (*root, *namespace)


def item_json(item: Item) -> dict[str, Any]:
    """A stored item as the actions show it."""
    return {"namespace": list(item.namespace), "key": item.key, "value": item.value,
            "created_at": _iso(item.created_at), "updated_at": _iso(item.updated_at)}


def _iso(when: datetime | str) -> str:
    if isinstance(when, str):
        return when
    return (when if when.tzinfo else when.replace(tzinfo=UTC)).isoformat()
