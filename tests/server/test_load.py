"""A small load run over HTTP (CI size; bench/load.py is the full one): no errors, histories exact."""

from __future__ import annotations

import asyncio
import json

import httpx

from bedrock.core.graph import build_graph
from bedrock.store.sqlite import ThreadedSqliteSaver
from testkit.chat_models import ScriptedChatModel
from bedrock.core.tools import default_tools
from testkit import loopback

SESSIONS, TURNS = 20, 3


async def run_session(client: httpx.AsyncClient, url: str, session: str) -> list[str]:
    outputs = []
    for turn in range(TURNS):
        payload = {"prompt": f"What is {turn} + {len(session)}?", "session_id": session, "stream_tokens": True}
        async with client.stream("POST", url + "/stream", json=payload) as response:
            assert response.status_code == 200
            last = None
            async for line in response.aiter_lines():
                if line.startswith("data: "):
                    last = json.loads(line[6:])
        assert last is not None and "output" in last, last
        outputs.append(last["output"])
    return outputs


async def load(url: str, prefix: str) -> list[list[str]]:
    async with loopback.AsyncClient(timeout=60, limits=httpx.Limits(max_connections=SESSIONS)) as client:
        return await asyncio.gather(*(run_session(client, url, f"{prefix}-{i:03d}") for i in range(SESSIONS)))


def test_concurrent_sessions_keep_exact_histories(server, session_id):
    outputs = asyncio.run(load(server.url, session_id))
    assert all(len(o) == TURNS for o in outputs)
    graph = build_graph(ScriptedChatModel(), default_tools(), ThreadedSqliteSaver.open(server.memory_path))
    for i in range(SESSIONS):
        session = f"{session_id}-{i:03d}"
        state = graph.get_state({"configurable": {"thread_id": session}})
        humans = [m.content for m in state.values["messages"] if m.type == "human"]
        assert humans == [f"What is {t} + {len(session)}?" for t in range(TURNS)]
        assert len(state.values["messages"]) == 4 * TURNS
