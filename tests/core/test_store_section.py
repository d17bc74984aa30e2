"""langgraph.json's `store` section: its index (Bedrock's model, dims, the fields embedded) and TTL reach long-term
memory beneath the environment's variables; what this runtime cannot serve is refused at startup, naming the key."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from bedrock.config import Settings
from bedrock.core.build import build_agent, long_term_options
from bedrock.core.loader import GraphLoadError, find_graph
from bedrock.core.store_section import store_section
from bedrock.wire.request import parse_request

# A graph as LangGraph's memory docs write one: "remember: TEXT" keeps {"text": TEXT, "note": …}; "find: QUERY"
# answers the best match's text and score.
GRAPH = '''
import uuid
from langchain_core.messages import AIMessage
from langgraph.graph import START, MessagesState, StateGraph
from langgraph.store.base import BaseStore

def node(state: MessagesState, config, *, store: BaseStore):
    user = config["configurable"]["user_id"]
    text = str(state["messages"][-1].content)
    if text.startswith("remember: "):
        store.put(("memories", user), str(uuid.uuid4()),
                  {"text": text[10:], "note": "kept by a graph that also writes words nobody searches for"})
        return {"messages": [AIMessage("kept")]}
    found = store.search(("memories", user), query=text[6:], limit=1)
    return {"messages": [AIMessage(f"{found[0].value['text']} {found[0].score:.3f}")]}

builder = StateGraph(MessagesState)
builder.add_node("node", node)
builder.add_edge(START, "node")
graph = builder.compile()
'''

FULL = {"index": {"embed": "bedrock:amazon.titan-embed-text-v2:0", "dims": 512, "fields": ["text"]},
        "ttl": {"default_ttl": 2880, "refresh_on_read": False, "sweep_interval_minutes": 5}}


def project(tmp_path: Path, store: Any) -> Path:
    (tmp_path / "agent.py").write_text(GRAPH)
    config: dict[str, Any] = {"graphs": {"agent": "./agent.py:graph"}}
    if store is not None:
        config["store"] = store
    (tmp_path / "langgraph.json").write_text(json.dumps(config))
    return tmp_path


def settings(tmp_path: Path, env: dict[str, str] | None = None, **fields: Any) -> Settings:
    base = Settings.from_env({"MODEL_PROVIDER": "offline", **(env or {})})
    from dataclasses import replace

    return replace(base, memory_path=str(tmp_path / "m.sqlite"), **fields)


def test_the_section_sets_the_index_and_the_ttl(tmp_path):
    source = find_graph(settings(tmp_path), cwd=project(tmp_path, FULL))
    options = long_term_options(settings(tmp_path), "http://127.0.0.1:1", source.store)
    assert options is not None
    assert (options.dims, options.fields, options.ttl_days) == (512, ("text",), 2.0)
    assert options.ttl() == {"default_ttl": 2880, "refresh_on_read": False, "sweep_interval_minutes": 5}
    index = options.index()
    assert index is not None and index["fields"] == ["text"]


def test_the_environment_s_variables_win_over_the_file(tmp_path):
    env = {"EMBEDDING_DIMENSIONS": "256", "MEMORY_TTL_DAYS": "7", "EMBEDDING_MODEL_ID": "none"}
    config = settings(tmp_path, env)
    source = find_graph(config, cwd=project(tmp_path, FULL))
    options = long_term_options(config, None, source.store)
    assert options is not None
    # The environment's dimensions, expiry and "none" (no embeddings: recall by recency); the file's fields and sweep.
    assert (options.dims, options.ttl_days, options.embeddings, options.fields) == (256, 7.0, None, ("text",))
    assert options.ttl() == {"default_ttl": 7 * 24 * 60, "refresh_on_read": False, "sweep_interval_minutes": 5}


def test_without_a_section_the_defaults_hold(tmp_path):
    source = find_graph(settings(tmp_path), cwd=project(tmp_path, None))
    assert source.store is None
    options = long_term_options(settings(tmp_path), "http://127.0.0.1:1", source.store)
    assert options is not None and (options.dims, options.fields, options.ttl()) == (1024, ("$",), None)


@pytest.mark.parametrize("store,message", [
    ({"index": {"embed": "openai:text-embedding-3-small", "dims": 1536}},
     "store.index.embed: only Bedrock's embeddings are served here"),
    ({"index": {"embed": "./embeddings.py:embed"}}, "store.index.embed: only Bedrock's embeddings"),
    ({"index": {"dims": 1536}}, "store.index.dims: must be one of 256, 512, 1024 (got 1536)"),
    ({"index": {"fields": []}}, "store.index.fields: List should have at least 1 item"),
    ({"index": {"fields": "text"}}, "store.index.fields: Input should be a valid list"),
    ({"ttl": {"default_ttl": 0}}, "store.ttl.default_ttl: Input should be greater than 0"),
    ({"ttl": {"refresh_on_read": "yes"}}, "store.ttl.refresh_on_read: Input should be a valid boolean"),
    ({"indexes": {}}, "store.indexes: not a key LangGraph's server reads there"),
    ({"path": "./my_store.py:make"}, "store.path: a store of your own is not served here"),
    ([], "store: Input should be a valid dictionary"),
])
def test_what_cannot_be_served_is_refused_naming_the_file_and_the_key(tmp_path, store, message):
    with pytest.raises(GraphLoadError) as refused:
        find_graph(settings(tmp_path), cwd=project(tmp_path, store))
    assert str(tmp_path / "langgraph.json") in str(refused.value) and message in str(refused.value)


def test_a_refusal_stops_the_build_as_any_graph_that_cannot_load(tmp_path):
    project(tmp_path, {"index": {"embed": "openai:text-embedding-3-small"}})
    config = settings(tmp_path)
    with pytest.raises(GraphLoadError, match="only Bedrock's embeddings"):
        build_agent(config, source=find_graph(config, cwd=tmp_path))


@pytest.mark.parametrize("fields,exact", [(["text"], True), (None, False)])
async def test_the_fields_named_are_what_is_embedded(tmp_path, fields, exact):
    """The offline endpoint's embeddings are deterministic: a query equal to the embedded text scores 1.0. With
    `fields: ["text"]` only the text is embedded; by default ("$") the whole value is, its note too."""
    config = settings(tmp_path, memory_backend="memory")
    store = {"index": {"fields": fields}} if fields else {}
    agent = build_agent(config, source=find_graph(config, cwd=project(tmp_path, store)))
    try:
        async def say(prompt: str) -> str:
            result = await agent.invoke(parse_request({"prompt": prompt, "actor_id": "alice",
                                                      "session_id": f"s-{len(prompt)}"}))
            return str(result["output"])

        assert await say("remember: alpine hiking trips") == "kept"
        text, score = (await say("find: alpine hiking trips")).rsplit(" ", 1)
        assert text == "alpine hiking trips"
        assert (float(score) > 0.999) is exact, score
    finally:
        agent.close()


def test_the_schema_is_langgraph_s_server_s():
    section = store_section(FULL)
    assert section.index is not None and section.index.model_id == "amazon.titan-embed-text-v2:0"
    assert section.ttl is not None and section.ttl.days == 2.0
    assert store_section({}).index is None
