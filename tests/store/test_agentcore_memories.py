"""AgentCoreMemories (LangGraph's BaseStore over AgentCore Memory's long-term records) against the local stand-in of
the bedrock-agentcore data plane (testkit/agentcore_memory.py: moto has no memory records), through real boto3."""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Iterator

import boto3
import pytest
from botocore.exceptions import ClientError
from langchain_core.messages import AIMessage, HumanMessage, ToolMessage
from langgraph.store.base import GetOp, InvalidNamespaceError, PutOp, SearchOp

from bedrock.store.agentcore_memories import AgentCoreMemories, item_text, namespace_of, namespace_path
from testkit.agentcore_memory import AgentCoreMemoryStandIn, PreferenceExtractor

REGION = "us-east-1"


@pytest.fixture(autouse=True)
def dummy_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                        "AWS_SESSION_TOKEN": "testing", "AWS_DEFAULT_REGION": REGION}.items():
        monkeypatch.setenv(name, value)


@pytest.fixture(scope="module")
def standin() -> Iterator[AgentCoreMemoryStandIn]:
    with AgentCoreMemoryStandIn() as server:
        yield server


@pytest.fixture
def memory_id(standin: AgentCoreMemoryStandIn) -> str:
    return standin.create_memory()  # a memory of its own per test


@pytest.fixture
def store(standin: AgentCoreMemoryStandIn, memory_id: str) -> AgentCoreMemories:
    return AgentCoreMemories(memory_id, region_name=REGION, endpoint_url=standin.url)


def texts(standin: AgentCoreMemoryStandIn, memory_id: str) -> list[str]:
    return sorted(record.text for record in standin.memories[memory_id].records.values())


def test_namespaces_map_to_slash_terminated_strings():
    assert namespace_path(()) == "/"
    assert namespace_path(("alice", "memories")) == "/alice/memories/"
    assert namespace_of("/alice/memories/") == namespace_of("/alice/memories") == ("alice", "memories")


def test_put_get_overwrite_delete_by_key(store, standin, memory_id):
    ns = ("alice", "memories")
    assert store.get(ns, "tea") is None
    store.put(ns, "tea", {"text": "likes green tea"})
    item = store.get(ns, "tea")
    assert (item.namespace, item.key, item.value) == (ns, "tea", {"text": "likes green tea"})
    # One record, its content the key and the value; AgentCore sees its namespace with a trailing slash.
    (record,) = standin.memories[memory_id].records.values()
    assert record.namespace == "/alice/memories/"
    assert json.loads(record.text) == {"store_key": "tea", "value": {"text": "likes green tea"}}

    store.put(ns, "tea", {"text": "likes black tea"})
    again = store.get(ns, "tea")
    assert again.value == {"text": "likes black tea"}
    assert again.created_at == item.created_at and again.updated_at > item.updated_at
    assert texts(standin, memory_id) == [item_text("tea", {"text": "likes black tea"})]  # updated in place

    store.put(ns, "coffee", {"text": "no coffee"})
    store.delete(ns, "tea")
    assert store.get(ns, "tea") is None and store.get(ns, "coffee").value == {"text": "no coffee"}
    assert texts(standin, memory_id) == [item_text("coffee", {"text": "no coffee"})]
    store.delete(ns, "never-written")  # deleting nothing is no error


def test_a_batch_reads_before_it_writes_and_its_last_write_of_a_key_wins(store):
    ns = ("alice", "memories")
    store.put(ns, "k", {"n": 0})
    results = store.batch([PutOp(ns, "k", {"n": 1}), GetOp(ns, "k"), PutOp(ns, "k", {"n": 2}), PutOp(ns, "j", None)])
    assert results[0] is None and results[1].value == {"n": 0}  # as LangGraph's InMemoryStore
    assert store.get(ns, "k").value == {"n": 2}


def test_duplicate_records_of_a_key_read_as_the_newest_and_are_left_as_one(store, standin, memory_id):
    # Two processes creating one new key at once: two records of it.
    memory = standin.memories[memory_id]
    with standin.lock:
        old = memory.add("/alice/memories/", item_text("k", {"v": "old"}))
        new = memory.add("/alice/memories/", item_text("k", {"v": "new"}))
        old.timestamp = new.timestamp.replace(year=2020)
    assert store.get(("alice", "memories"), "k").value == {"v": "new"}
    store.put(("alice", "memories"), "k", {"v": "newest"})
    assert texts(standin, memory_id) == [item_text("k", {"v": "newest"})]
    store.delete(("alice", "memories"), "k")
    assert texts(standin, memory_id) == []


def test_search_without_a_query_lists_newest_first_with_filter_limit_offset(store):
    ns = ("alice", "memories")
    for n in range(5):
        store.put(ns, f"k{n}", {"n": n, "kind": "even" if n % 2 == 0 else "odd"})
    assert [item.key for item in store.search(("alice",))] == ["k4", "k3", "k2", "k1", "k0"]
    assert [item.key for item in store.search(ns, limit=2, offset=1)] == ["k3", "k2"]
    assert [item.key for item in store.search(ns, filter={"kind": "even"})] == ["k4", "k2", "k0"]
    assert [item.key for item in store.search(ns, filter={"n": {"$gte": 3}})] == ["k4", "k3"]
    assert all(item.score is None for item in store.search(ns))
    assert store.search(("alice", "elsewhere")) == []


def test_search_with_a_query_is_retrieve_memory_records_ranked(store, standin):
    ns = ("alice", "memories")
    store.put(ns, "tea", {"text": "likes green tea in the morning"})
    store.put(ns, "seat", {"text": "wants a window seat"})
    store.put(ns, "tea2", {"text": "tea", "kind": "short"})
    standin.calls.clear()
    found = store.search(("alice",), query="green tea")
    assert standin.calls == ["RetrieveMemoryRecords"]
    assert [item.key for item in found] == ["tea", "tea2"]  # the seat shares no word (the stand-in's ranking)
    assert found[0].score > found[1].score > 0
    assert [item.key for item in store.search(("alice",), query="green tea", filter={"kind": "short"})] == ["tea2"]
    assert [item.key for item in store.search(("alice",), query="green tea", offset=1)] == ["tea2"]


def test_an_actors_prefix_never_returns_another_actors_records(store):
    # "alice2" starts with "alice": the trailing slash and the tuple check keep them apart.
    for actor in ("alice", "alice2", "bob"):
        store.put((actor, "memories"), "tea", {"text": f"{actor} likes tea"})
        store.put((actor, "notes", "deep"), "n", {"text": f"{actor} note about tea"})
    for actor in ("alice", "alice2", "bob"):
        listed = store.search((actor,), limit=50)
        queried = store.search((actor,), query="tea", limit=50)
        assert {item.namespace[0] for item in listed} == {item.namespace[0] for item in queried} == {actor}
        assert len(listed) == len(queried) == 2
        assert store.list_namespaces(prefix=(actor,)) == [(actor, "memories"), (actor, "notes", "deep")]
    assert store.list_namespaces(prefix=("alice",), max_depth=1) == [("alice",)]
    assert store.list_namespaces(suffix=("deep",)) == [(a, "notes", "deep") for a in ("alice", "alice2", "bob")]


def test_record_turn_writes_the_texts_and_the_strategy_records_come_back(standin, memory_id):
    # Under "users", as AgentCoreStore makes it: the starter toolkit's preference strategy writes to
    # /users/{actorId}/preferences/, so alice's view (("alice",)) holds what the strategy extracted.
    store = AgentCoreMemories(memory_id, region_name=REGION, endpoint_url=standin.url, root=("users",))
    store.put(("alice", "memories"), "m1", {"text": "lives in Lisbon"})
    store.record_turn("alice", "session-1", [
        HumanMessage("I prefer window seats"), AIMessage("Noted: window seats."),
        AIMessage("", tool_calls=[{"name": "calculator", "args": {}, "id": "c1"}]),
        ToolMessage("4", tool_call_id="c1"), HumanMessage("What is 2+2?"),
    ])
    events = store.client.list_events(memoryId=memory_id, actorId="alice", sessionId="session-1",
                                      includePayloads=True)["events"]
    assert [(p["conversational"]["role"], p["conversational"]["content"]["text"]) for p in events[0]["payload"]] == [
        ("USER", "I prefer window seats"), ("ASSISTANT", "Noted: window seats."), ("USER", "What is 2+2?")]

    items = {item.key: item for item in store.search(("alice",))}
    assert len(items) == 2 and items["m1"].namespace == ("alice", "memories")
    (extracted,) = [item for key, item in items.items() if key != "m1"]
    assert extracted.key.startswith("mem-") and extracted.namespace == ("alice", "preferences")
    assert extracted.value == {"text": "I prefer window seats", "strategy_id": "preferences-standin"}
    assert store.get(("alice", "preferences"), extracted.key).value == extracted.value
    assert [item.key for item in store.search(("alice",), query="window seat")] == [extracted.key]
    assert store.search(("bob",)) == []

    store.delete(("alice", "preferences"), extracted.key)  # deleting a strategy's record by its key
    assert [item.key for item in store.search(("alice",))] == ["m1"]
    assert texts(standin, memory_id) == [item_text("m1", {"text": "lives in Lisbon"})]


def test_a_put_of_a_strategy_records_key_rewrites_it_as_ours(standin):
    memory_id = standin.create_memory(extractors=[PreferenceExtractor(namespace="/{actorId}/preferences/")])
    store = AgentCoreMemories(memory_id, region_name=REGION, endpoint_url=standin.url)
    store.record_turn("bob", "s1", [HumanMessage("Remember that my dog is Rex")])
    (item,) = store.search(("bob",))
    store.put(item.namespace, item.key, {"text": "dog: Rex"})
    assert [(i.key, i.value) for i in store.search(("bob",))] == [(item.key, {"text": "dog: Rex"})]
    assert len(standin.memories[memory_id].records) == 1


def test_more_than_a_page_of_records(store, standin):
    ns = ("alice", "many")
    standin.calls.clear()
    store.batch([PutOp(ns, f"k{n:03}", {"n": n}) for n in range(130)])
    assert standin.calls == ["ListMemoryRecords", "BatchCreateMemoryRecords", "BatchCreateMemoryRecords"]
    standin.calls.clear()
    assert len(store.search(ns, limit=200)) == 130
    assert standin.calls == ["ListMemoryRecords", "ListMemoryRecords"]  # 100, then 30
    assert store.get(ns, "k000").value == {"n": 0}


async def test_abatch_runs_boto3_off_the_loop(store):
    loop_thread = threading.get_ident()
    threads = []
    batch = store.batch

    def recorded(ops):
        threads.append(threading.get_ident())
        return batch(ops)

    store.batch = recorded
    ns = ("alice", "memories")
    await store.aput(ns, "k", {"text": "async tea"})
    results = await store.abatch([GetOp(ns, "k"), SearchOp(("alice",), query="tea")])
    assert results[0].value == {"text": "async tea"} and [item.key for item in results[1]] == ["k"]
    assert (await asyncio.gather(store.aget(ns, "k"), store.aget(ns, "none")))[1] is None
    await store.adelete(ns, "k")
    assert await store.asearch(("alice",)) == []
    assert threads and loop_thread not in threads


async def test_aws_errors_surface_as_client_errors(standin, store):
    unknown = AgentCoreMemories("unknown-0123456789", region_name=REGION, endpoint_url=standin.url)
    for call in (lambda: unknown.get(("a",), "k"), lambda: unknown.put(("a",), "k", {"v": 1}),
                 lambda: unknown.search(("a",), query="q"),
                 lambda: unknown.record_turn("a", "s", [HumanMessage("hi")])):
        with pytest.raises(ClientError) as caught:
            call()
        assert caught.value.response["Error"]["Code"] == "ResourceNotFoundException"
    with pytest.raises(ClientError):
        await unknown.aget(("a",), "k")
    with pytest.raises(ClientError) as caught:
        store.put(("alice", "has space"), "k", {"v": 1})  # outside AgentCore's namespace pattern
    assert caught.value.response["Error"]["Code"] == "ValidationException"
    with pytest.raises(ClientError) as caught:
        store.put(("alice",), "big", {"text": "x" * 16_000})  # a record's text: at most 16,000 characters
    assert caught.value.response["Error"]["Code"] == "ValidationException"
    with pytest.raises(InvalidNamespaceError):
        store.put(("alice", "a/b"), "k", {"v": 1})  # '/' would split the label in AgentCore's string


def test_standin_speaks_the_service_model(standin, memory_id):
    client = boto3.client("bedrock-agentcore", region_name=REGION, endpoint_url=standin.url)
    with pytest.raises(ClientError) as caught:
        client.list_memory_records(memoryId=memory_id)  # namespace or namespacePath is required
    assert caught.value.response["Error"]["Code"] == "ValidationException"
    assert caught.value.response["reason"] == "FieldValidationFailed"
    with pytest.raises(ClientError) as caught:
        client.get_memory_record(memoryId=memory_id, memoryRecordId="mem-" + "0" * 36)
    assert caught.value.response["ResponseMetadata"]["HTTPStatusCode"] == 404
    # An actor id may hold '/' (the session owners' registry actor does): it is one path segment, encoded.
    client.create_event(memoryId=memory_id, actorId="agentcore-runtime/owners", sessionId="s1",
                        eventTimestamp=1_700_000_000, payload=[{"blob": {"owner": "alice"}}])
    (event,) = client.list_events(memoryId=memory_id, actorId="agentcore-runtime/owners", sessionId="s1")["events"]
    assert event["payload"] == [{"blob": {"owner": "alice"}}] and standin.memories[memory_id].records == {}
    failed = client.batch_delete_memory_records(memoryId=memory_id, records=[{"memoryRecordId": "mem-" + "1" * 36}])
    assert failed["failedRecords"][0]["errorCode"] == 404 and failed["successfulRecords"] == []


def test_agentcore_store_opens_its_long_term_memory_under_users():
    from bedrock.store.agentcore import AgentCoreStore
    from bedrock.store.long_term import LongTermOptions

    store = AgentCoreStore.open("unused-0123456789", REGION, LongTermOptions())
    assert isinstance(store.long_term, AgentCoreMemories) and store.long_term.root == ("users",)
    assert store.long_term.supports_ttl is False
    assert AgentCoreStore.open("unused-0123456789", REGION).long_term is None
