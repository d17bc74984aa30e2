"""ActorMemory, a turn's view of the long-term store: every namespace under its actor, its writes held until the
turn is kept, dropped (and a keep undone) when it is cut; Memories, the actions' view."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from langgraph.store.base import PutOp
from langgraph.store.memory import InMemoryStore

from bedrock.core.memory import MAX_TURN_WRITES, ActorMemory, Memories, memory_key
from bedrock.errors import AgentError


def test_every_namespace_is_kept_under_the_actor():
    backing = InMemoryStore()
    view = ActorMemory(backing, "alice")
    assert view.scoped(("memories",)) == ("alice", "memories")
    assert view.scoped(("alice", "memories")) == ("alice", "memories")  # LangGraph's per-user convention, as is
    assert view.scoped(("bob", "memories")) == ("alice", "bob", "memories")  # another actor's id: still alice's
    assert view.scoped(("memories", "bob")) == ("alice", "memories", "bob")


async def test_writes_are_held_until_kept_and_reads_see_them():
    backing = InMemoryStore()
    backing.put(("alice", "memories"), "old", {"text": "old fact"})
    backing.put(("alice", "memories"), "gone", {"text": "to delete"})
    view = ActorMemory(backing, "alice")
    await view.aput(("memories",), "new", {"text": "new fact"})
    await view.adelete(("memories",), "gone")
    await view.aput(("memories",), "old", {"text": "rewritten"})
    assert backing.get(("alice", "memories"), "new") is None  # nothing reached the backend yet
    assert (await view.aget(("memories",), "new")).value == {"text": "new fact"}
    assert await view.aget(("memories",), "gone") is None
    found = {item.key: item.value["text"] for item in await view.asearch(("memories",))}
    assert found == {"new": "new fact", "old": "rewritten"}
    assert await view.alist_namespaces() == [("alice", "memories")]
    await view.keep()
    assert {i.key: i.value["text"] for i in backing.search(("alice",))} == {"new": "new fact", "old": "rewritten"}


def test_sync_nodes_use_the_same_view():
    backing = InMemoryStore()
    view = ActorMemory(backing, "alice")
    view.put(("notes",), "k", {"v": 1})
    assert view.get(("notes",), "k").value == {"v": 1}
    assert [i.key for i in view.search(("notes",), filter={"v": 1})] == ["k"]
    assert view.search(("notes",), filter={"v": 2}) == []
    assert backing.search(("alice",)) == []


async def test_another_actor_s_memories_are_neither_read_nor_written():
    backing = InMemoryStore()
    backing.put(("bob", "memories"), "secret", {"text": "bob's"})
    view = ActorMemory(backing, "alice")
    assert await view.aget(("bob", "memories"), "secret") is None
    assert await view.asearch(("bob",)) == []
    assert await view.asearch(()) == []  # the whole store, as the graph sees it: alice's alone
    await view.aput(("bob", "memories"), "secret", {"text": "overwritten?"})
    await view.keep()
    assert backing.get(("bob", "memories"), "secret").value == {"text": "bob's"}
    assert backing.get(("alice", "bob", "memories"), "secret").value == {"text": "overwritten?"}


async def test_a_dropped_turn_leaves_nothing():
    backing = InMemoryStore()
    view = ActorMemory(backing, "alice")
    await view.aput(("memories",), "k", {"text": "x"})
    await view.drop()
    assert backing.search(("alice",)) == []


class SlowStore(InMemoryStore):
    """A backend whose writes wait for the test: a cut lands while a turn's keep is under way."""

    def __init__(self) -> None:
        super().__init__()
        self.writing = asyncio.Event()
        self.go = asyncio.Event()

    async def abatch(self, ops: Any) -> Any:
        ops = list(ops)
        if any(isinstance(op, PutOp) for op in ops) and not self.go.is_set():
            self.writing.set()
            await self.go.wait()
        return await super().abatch(ops)


async def test_a_keep_overtaken_by_a_cut_is_undone():
    backing = SlowStore()
    backing.put(("alice", "memories"), "k", {"text": "before"})
    view = ActorMemory(backing, "alice")
    await view.aput(("memories",), "k", {"text": "after"})
    await view.aput(("memories",), "new", {"text": "new"})
    keeping = asyncio.ensure_future(view.keep())
    await backing.writing.wait()
    keeping.cancel()  # the turn's wait is cut; the write itself goes on
    with pytest.raises(asyncio.CancelledError):
        await keeping
    backing.go.set()
    await view.drop()  # what the settlement does for a cut turn
    assert backing.get(("alice", "memories"), "k").value == {"text": "before"}
    assert backing.get(("alice", "memories"), "new") is None


async def test_an_undo_leaves_a_key_another_session_kept_since():
    """Two sessions of alice keep the same key (a fact said twice is one key); the first's keep is overtaken by its
    cut after the second's keep: the second's value stays, and the first's other key is undone."""
    backing = SlowStore()
    backing.put(("alice", "memories"), "k", {"text": "before"})
    first, second = ActorMemory(backing, "alice"), ActorMemory(backing, "alice")
    await first.aput(("memories",), "k", {"text": "first"})
    await first.aput(("memories",), "only-first", {"text": "x"})
    keeping = asyncio.ensure_future(first.keep())
    await backing.writing.wait()
    keeping.cancel()
    with pytest.raises(asyncio.CancelledError):
        await keeping
    backing.go.set()
    await asyncio.wait_for(first._keeping, 5)  # type: ignore[arg-type]  # the first keep's writes land
    await second.aput(("memories",), "k", {"text": "second"})
    await second.keep()
    await first.drop()
    assert backing.get(("alice", "memories"), "k").value == {"text": "second"}
    assert backing.get(("alice", "memories"), "only-first") is None


async def test_a_turn_writes_a_bounded_number_of_memories():
    view = ActorMemory(InMemoryStore(), "alice")
    for i in range(MAX_TURN_WRITES):
        await view.aput(("m",), str(i), {"i": i})
    await view.aput(("m",), "0", {"i": "again"})  # rewriting one is no new write
    with pytest.raises(AgentError) as refused:
        await view.aput(("m",), "one-more", {})
    assert refused.value.code == "too_many_memories"


async def test_memories_pages_and_forgets_by_key_or_all():
    backing = InMemoryStore()
    for i in range(5):
        backing.put(("alice", "memories"), f"k{i}", {"text": f"fact {i}"})
    backing.put(("alice", "notes", "x"), "k0", {"text": "same key, other namespace"})
    backing.put(("bob", "memories"), "k0", {"text": "bob's"})
    memories = Memories(backing)
    first = await memories.page("alice", 4, 0)
    assert len(first["memories"]) == 4 and first["next_offset"] == 4
    rest = await memories.page("alice", 4, 4)
    assert len(rest["memories"]) == 2 and rest["next_offset"] is None
    assert await memories.forget("alice", "k0", ["memories"]) == 1
    assert backing.get(("alice", "notes", "x"), "k0") is not None
    assert await memories.forget("alice", "k0") == 1  # in whichever namespace holds it
    with pytest.raises(AgentError) as missing:
        await memories.forget("alice", "k0")
    assert missing.value.code == "memory_not_found"
    assert await memories.forget("alice", None) == 4
    assert (await memories.page("alice", 10, 0))["memories"] == []
    assert backing.get(("bob", "memories"), "k0") is not None  # never another actor's


def test_the_same_fact_said_twice_is_one_key():
    assert memory_key("I prefer  metric units") == memory_key("i prefer metric units")
    assert memory_key("I prefer metric units") != memory_key("I prefer imperial units")



async def test_two_equal_values_kept_in_one_turn_on_an_indexed_store():
    # LangGraph's InMemoryStore embeds each distinct text once, and fails a batch holding two equal ones.
    backing = InMemoryStore(index={"dims": 2, "embed": lambda texts: [[1.0, 0.0] for _ in texts]})
    view = ActorMemory(backing, "alice")
    await view.aput(("a",), "1", {"text": "same"})
    await view.aput(("b",), "2", {"text": "same"})
    await view.keep()
    assert sorted(item.key for item in backing.search(("alice",))) == ["1", "2"]
