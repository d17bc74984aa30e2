"""AgentClient.connect(): one WebSocket to a real server's /ws for many turns and actions — the same events, results
and errors as over HTTP; several streams at once; a cancel on the same connection; the bearer token on the
handshake; refusals, including those the server sends without a request_id; the server going away mid-stream."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from typing import Any

import pytest

from bedrock.client import (
    AgentClient,
    AgentConnectionError,
    AgentHTTPError,
    AgentStreamError,
    Connection,
    runtime_session_id,
)
from bedrock.wire.events import SSEEvent
from tests.server.test_auth import AUDIENCE, ISSUER, Keys

LONG = "Tell me about the sea"  # ~40 tokens: ~1.6 s at 40 ms a token
PACED = {"OFFLINE_TOKEN_DELAY_MS": "40", "TOKEN_BUFFER_SIZE": "1"}


@pytest.fixture(scope="module")
def paced():
    from testkit.live_server import LiveServer

    live = LiveServer(PACED)
    yield live
    live.stop()


def ids(events: list[SSEEvent]) -> list[int | None]:
    return [event.id for event in events]


async def test_two_turns_on_one_connection_keep_the_session_s_memory(server, session_id):
    async with AgentClient(base_url=server.url) as client:
        async with client.connect() as conn:
            assert isinstance(conn, Connection) and conn.url == server.url.replace("http://", "ws://") + "/ws"
            first = await conn.invoke({"prompt": "My name is Alice", "session_id": session_id})
            events = [e async for e in conn.stream({"prompt": "What's my name?", "session_id": session_id})]
        over_http = [e async for e in client.stream({"prompt": "What's my name?", "session_id": session_id,
                                                     "stream_tokens": True})]
    assert set(first) == {"output", "session_id", "actor_id", "run_id", "steps", "metrics"}
    assert first["session_id"] == session_id
    assert all(isinstance(e, SSEEvent) for e in events) and ids(events) == list(range(1, len(events) + 1))
    assert events[0].type == "agent_start" and events[0].data["session_id"] == session_id
    assert events[-1].type == "agent_end" and events[-1].data["output"] == "Your name is Alice."
    assert str(events[-1]).startswith("event: agent_end\ndata: {")  # the SSE frame, as AgentClient.stream's
    # The same turn's events as over HTTP (a socket streams tokens unless told not to: HTTP asked for them).
    assert [(e.type, e.id) for e in events] == [(e.type, e.id) for e in over_http]
    assert over_http[-1].data["output"] == "Your name is Alice."


async def test_two_streams_at_once_on_one_connection_each_get_their_own_events(paced, session_id):
    sessions = {"sea": f"{session_id}-sea", "calc": f"{session_id}-calc"}
    prompts = {"sea": LONG, "calc": "What is 25 * 4?"}
    seen: dict[str, list[tuple[float, SSEEvent]]] = {}
    async with AgentClient(base_url=paced.url, timeout=60) as client, client.connect() as conn:

        async def follow(name: str) -> None:
            seen[name] = [(time.monotonic(), e) async for e in
                          conn.stream({"prompt": prompts[name], "session_id": sessions[name]})]

        await asyncio.gather(follow("sea"), follow("calc"))
    for name, timed in seen.items():
        events = [e for _, e in timed]
        assert ids(events) == list(range(1, len(events) + 1)), name  # each its run's own, in order, once
        assert {e.data["session_id"] for e in events if e.type == "agent_start"} == {sessions[name]}
        assert events[-1].type == "agent_end" and sum(e.type == "agent_end" for e in events) == 1
    assert seen["calc"][-1][1].data["output"] == "The result of 25 * 4 is 100."
    assert len({e.data["run_id"] for name in seen for _, e in seen[name] if e.type == "agent_start"}) == 2
    # Both streamed at once: each began before the other ended.
    (sea_start, sea_end), (calc_start, calc_end) = ((t[0][0], t[-1][0]) for t in (seen["sea"], seen["calc"]))
    assert sea_start < calc_end and calc_start < sea_end


async def test_a_cancel_on_the_same_connection_ends_the_stream_with_the_cancelled_error(paced, session_id):
    async with AgentClient(base_url=paced.url, timeout=60) as client, client.connect() as conn:
        seen: list[SSEEvent] = []
        async for event in conn.stream({"prompt": LONG, "session_id": session_id}):
            seen.append(event)
            if event.type == "llm_token" and len([e for e in seen if e.type == "llm_token"]) == 1:
                answer = await conn.cancel(session_id, seen[0].data["run_id"])
        # As AgentClient.stream: the run's `error` event comes last, yielded, not raised.
        assert seen[-1].type == "error" and seen[-1].data["code"] == "cancelled"
        assert answer == {"session_id": session_id, "run_id": seen[0].data["run_id"], "status": "cancelled"}
        assert sum(e.type == "llm_token" for e in seen) <= 4  # tokens every 40 ms: it stopped at once
        assert (await conn.status(session_id))["state"] == "cancelled"

        # invoke's fold raises it, as AgentClient.invoke does; the cancel comes from another task meanwhile.
        turn = asyncio.ensure_future(conn.invoke({"prompt": LONG, "session_id": session_id}))
        while True:
            try:
                if (await conn.status(session_id))["state"] == "running":
                    break
            except AgentHTTPError:
                pass  # not registered yet
            await asyncio.sleep(0.02)
        await conn.cancel(session_id)
        with pytest.raises(AgentStreamError) as cancelled:
            await turn
        assert cancelled.value.code == "cancelled"
        history = await conn.history(session_id)
    assert history["messages"] == [] and history["run"] is None  # both turns rolled back


async def test_history_and_status_answer_as_over_http(server, session_id):
    async with AgentClient(base_url=server.url) as client:
        async with client.connect() as conn:
            result = await conn.invoke({"prompt": "What is 25 * 4?", "session_id": session_id})
            status = await conn.status(session_id)
            history = await conn.history(session_id)
            by_run = await conn.status(session_id, result["run_id"])
        assert status == await client.status(session_id) and history == await client.history(session_id)
    assert status["session_id"] == session_id and status["run_id"] == result["run_id"]
    assert status["state"] == "completed" and status["last_event_id"] > 0 and by_run == status
    assert [m["type"] for m in history["messages"]][0] == "human" and history["pending"] == []
    assert history["messages"][0]["content"] == "What is 25 * 4?"
    assert history["messages"][-1]["content"] == "The result of 25 * 4 is 100." == result["output"]


async def test_refusals_raise_the_http_client_s_errors_and_the_connection_keeps_serving(server, session_id):
    async with AgentClient(base_url=server.url) as client, client.connect() as conn:
        with pytest.raises(AgentHTTPError) as no_run:
            await conn.status(f"nobody-{uuid.uuid4().hex}")
        with pytest.raises(AgentHTTPError) as empty:
            async for _ in conn.stream({"prompt": ""}):
                pass
        with pytest.raises(AgentHTTPError) as over_http:
            await client.status(f"nobody-{uuid.uuid4().hex}")
        with pytest.raises(ValueError):
            await conn.forget()  # neither key nor all: refused before anything is sent, as AgentClient.forget
        assert (await conn.invoke({"prompt": "hi", "session_id": session_id}))["output"]
    assert (no_run.value.status, no_run.value.code) == (404, "run_not_found") and no_run.value.message
    assert (over_http.value.status, over_http.value.code) == (404, "run_not_found")
    assert (empty.value.status, empty.value.code) == (400, "invalid_payload")
    assert empty.value.body["data"]["details"]  # the refusal's message, whole


async def test_refusals_sent_without_a_request_id_reach_their_own_call(make_server, session_id):
    """WS_MAX_MESSAGES_PER_S=1 (bursts of 2): of four calls at once, two are answered and two refused as
    `rate_limited` — a refusal the server sends before it reads the message's request_id. Each reaches its call."""
    live = make_server({"WS_MAX_MESSAGES_PER_S": "1"})
    async with AgentClient(base_url=live.url) as client:
        async with client.connect() as warm:  # the server's first answer is slow (its store opens): not in the race
            await warm.history(session_id)
        async with client.connect() as conn:  # a fresh connection: a full bucket
            sessions = [f"{session_id}-{n}" for n in range(4)]
            answers = await asyncio.wait_for(asyncio.gather(*(conn.history(s) for s in sessions),
                                                            return_exceptions=True), 10)
            refused = [a for a in answers if isinstance(a, AgentHTTPError)]
            assert all((a.status, a.code) == (429, "rate_limited") for a in refused), answers
            assert 1 <= len(refused) <= 2, answers  # (2 unless a busy machine answers slower than the bucket fills)
            for asked, answer in zip(sessions, answers):
                assert isinstance(answer, AgentHTTPError) or answer["session_id"] == asked  # each its own answer
            await asyncio.sleep(1.1)  # the bucket refills: the connection still serves
            assert (await conn.history(session_id))["session_id"] == session_id


def jwt_server(make_server: Any, tmp_path: Any, **env: str) -> tuple[Any, Keys]:
    """A server with AUTH_MODE=jwt trusting a fresh key set, and that key set (tokens are its)."""
    keys = Keys()
    jwks = tmp_path / "jwks.json"
    jwks.write_text(json.dumps(keys.jwks()))
    return make_server({"AUTH_MODE": "jwt", "JWT_JWKS_FILE": str(jwks), "JWT_ISSUER": ISSUER,
                        "JWT_AUDIENCE": AUDIENCE, **env}), keys


async def test_the_bearer_token_goes_on_the_handshake(make_server, tmp_path, session_id):
    live, keys = jwt_server(make_server, tmp_path, REQUEST_READ_TIMEOUT_S="2")
    alice = {"Authorization": f"Bearer {keys.token('alice')}"}
    async with AgentClient(base_url=live.url, headers=alice) as client, client.connect() as conn:
        result = await conn.invoke({"prompt": "My name is Alice", "session_id": session_id})
    assert result["actor_id"] == "alice"
    async with AgentClient(base_url=live.url, headers={"Authorization": "Bearer nonsense"}) as client:
        with pytest.raises(AgentHTTPError) as refused:  # refused before the upgrade: the catalog's 401
            await client.connect().open()
    assert (refused.value.status, refused.value.code) == (401, "unauthorized")
    async with AgentClient(base_url=live.url) as client, client.connect() as conn:  # no token at all
        with pytest.raises(AgentHTTPError) as unauthorized:  # the first message is refused, then the socket closed
            await conn.history(session_id)
        with pytest.raises(AgentConnectionError, match="4401"):
            await asyncio.wait_for(conn.status(session_id), 10)
    assert (unauthorized.value.status, unauthorized.value.code) == (401, "unauthorized")


async def test_renew_gives_the_connection_a_new_token_of_its_actor(make_server, tmp_path, session_id):
    live, keys = jwt_server(make_server, tmp_path, JWT_LEEWAY_S="0")
    expires = int(time.time()) + 2
    alice = {"Authorization": f"Bearer {keys.token('alice', exp=expires)}"}
    async with AgentClient(base_url=live.url, headers=alice) as client, client.connect() as conn:
        await conn.invoke({"prompt": "My name is Alice", "session_id": session_id})
        with pytest.raises(AgentHTTPError) as other:  # another actor's token: refused, the connection kept
            await conn.renew(keys.token("bob"))
        assert (other.value.status, other.value.code) == (403, "actor_forbidden")
        assert await conn.renew(keys.token("alice", exp=int(time.time()) + 600)) == "alice"
        while time.time() <= expires + 0.2:  # the first token's own clock, not a synchronisation
            await asyncio.sleep(0.05)
        result = await conn.invoke({"prompt": "What is my name?", "session_id": session_id})
    assert result["output"] == "Your name is Alice." and result["actor_id"] == "alice"


async def test_leaving_a_stream_cancels_its_run_only_if_its_payload_says_so(paced, session_id):
    async with AgentClient(base_url=paced.url, timeout=60) as client, client.connect() as conn:
        for how in ("cancel", "continue"):
            sid = f"{session_id}-{how}"
            async for event in conn.stream({"prompt": LONG, "session_id": sid, "on_disconnect": how}):
                if event.type == "llm_token":
                    break
            deadline = time.monotonic() + 10
            while (state := (await conn.status(sid))["state"]) == "running" and time.monotonic() < deadline:
                await asyncio.sleep(0.05)
            assert state == ("cancelled" if how == "cancel" else "completed"), how


@pytest.mark.parametrize("how", ["stop", "kill"])
async def test_the_server_going_away_mid_stream_ends_every_waiting_call(make_server, session_id, how):
    """SIGTERM: each stream ends with its run's `server_shutting_down` event, then the socket closes (1012) and a
    later call raises AgentConnectionError. A killed server: every waiting call raises it at once."""
    live = make_server({**PACED, "SHUTDOWN_GRACE_S": "0.5"})
    async with AgentClient(base_url=live.url, timeout=60) as client:
        conn = await client.connect()
        streaming = asyncio.Event()
        outcomes: list[BaseException | SSEEvent] = []

        async def follow(sid: str) -> None:
            try:
                async for event in conn.stream({"prompt": LONG, "session_id": sid}):
                    if event.type == "llm_token":
                        streaming.set()
                outcomes.append(event)
            except BaseException as error:
                outcomes.append(error)

        tasks = [asyncio.ensure_future(follow(f"{session_id}-{n}")) for n in range(2)]
        await asyncio.wait_for(streaming.wait(), 10)
        if how == "stop":  # SIGTERM: the runs end within the grace, their last event sent; then uvicorn's 1012
            stopping = asyncio.ensure_future(asyncio.to_thread(live.stop))
        else:
            live.process.kill()
        await asyncio.wait_for(asyncio.gather(*tasks), 10)  # not a hang
        assert len(outcomes) == 2, outcomes
        if how == "stop":
            assert all(isinstance(o, SSEEvent) and o.type == "error" and o.data["code"] == "server_shutting_down"
                       for o in outcomes), outcomes
            await stopping
        else:
            assert all(isinstance(o, AgentConnectionError) and "broke" in str(o) for o in outcomes), outcomes
        with pytest.raises(AgentConnectionError) as gone:
            await conn.status(session_id)
        assert ("1012" in str(gone.value)) if how == "stop" else ("broke" in str(gone.value))
        assert conn.closed
        await conn.close()


async def test_a_runtime_arn_connects_through_agentcore_s_signed_handshake(server, serve, session_id):
    """The AgentCore SDK signs the handshake (SigV4, `bedrock-agentcore`) for the runtime's /ws; the stand-in of the
    data plane checks it and relays to the agent, as AgentCore does; the connection is one runtime session."""
    from tests.client.runtime_standin import RuntimeStandIn
    from tests.client.test_client import ARN

    runtime = RuntimeStandIn(server.url)
    url = serve(runtime.app)
    async with AgentClient(agent_runtime_arn=ARN, endpoint_url=url) as client, client.connect(session_id) as conn:
        await conn.invoke({"prompt": "My name is Alice", "session_id": session_id})
        result = await conn.invoke({"prompt": "What's my name?", "session_id": session_id})
    assert result["output"] == "Your name is Alice."
    [call] = runtime.calls
    assert call["ws"] and call["arn"] == ARN and call["session_id"] == runtime_session_id(session_id)
    assert "/us-east-1/bedrock-agentcore/aws4_request" in call["authorization"]


async def test_connect_url():
    async with AgentClient(base_url="https://agent.example/x/") as client:
        assert client.connect().url == "wss://agent.example/x/ws"  # nothing opened until `async with` or await
    async with AgentClient(base_url="http://127.0.0.1:1", retries=1, backoff_s=0.01) as client:
        with pytest.raises(AgentConnectionError, match="after 2 attempt"):
            await client.connect()
