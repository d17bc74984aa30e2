"""A2A against a live server, with a2a-sdk's own client: the agent card at /a2a/.well-known/agent-card.json,
message/send and message/stream (working → the answer's chunks → completed), tasks/cancel mid-task (canceled, the
session's history unchanged), an approval asked (input-required) and answered by the task's next message, a stream
dropped mid-way and joined again (tasks/resubscribe: what remains, once), v0.3's method names over raw JSON-RPC, and
the JSON-RPC body bounded as /invocations' is."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from a2a.client import A2ACardResolver, Client, ClientConfig, ClientFactory, create_client
from a2a.helpers import get_artifact_text, get_data_parts, get_text_parts
from a2a.types import (CancelTaskRequest, GetTaskRequest, Message, Part, Role, SendMessageRequest, StreamResponse,
                       SubscribeToTaskRequest, Task, TaskState)
from a2a.utils.errors import TaskNotFoundError

from testkit import loopback
from testkit.live_server import LiveServer

LONG = "Tell me about the sea"  # the offline model's longest answer: ~26 tokens, 40 ms apart when paced
PACED = {"OFFLINE_TOKEN_DELAY_MS": "40", "TOKEN_BUFFER_SIZE": "1"}


def message(text: str = "", *, task_id: str = "", context_id: str = "", data: Any = None) -> Message:
    parts = [Part(text=text)] if text else []
    if data is not None:
        from a2a.helpers import new_data_part

        parts.append(new_data_part(data))
    return Message(role=Role.ROLE_USER, message_id=str(uuid.uuid4()), parts=parts, task_id=task_id,
                   context_id=context_id)


def send(text: str = "", **fields: Any) -> SendMessageRequest:
    return SendMessageRequest(message=message(text, **fields))


async def a2a_client(live: LiveServer, *, streaming: bool = True, token: str | None = None,
                     path: str = "/a2a") -> Client:
    """a2a-sdk's client, made from the card it fetches below `path` (as any A2A client would)."""
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    http = loopback.AsyncClient(timeout=30, headers=headers)
    return await create_client(live.url + path, ClientConfig(httpx_client=http, streaming=streaming))


async def collected(events: AsyncIterator[StreamResponse]) -> list[StreamResponse]:
    return [event async for event in events]


async def send_once(live: LiveServer, request: SendMessageRequest, *, token: str | None = None,
                    path: str = "/a2a") -> Task:
    """message/send (not streamed) on a client of its own: the task it answers with."""
    async with await a2a_client(live, streaming=False, token=token, path=path) as client:
        return final_task(await collected(client.send_message(request)))


def final_task(events: list[StreamResponse]) -> Task:
    """The task a non-streamed message/send answers with (one event: the task, finished or waiting)."""
    assert len(events) == 1 and events[0].HasField("task"), events
    return events[0].task


def answer_of(task: Task) -> str:
    """The text of the task's last artifact (its last turn's answer)."""
    assert task.artifacts, task
    return get_artifact_text(task.artifacts[-1], "")


def states(events: list[StreamResponse]) -> list[int]:
    return [event.status_update.status.state for event in events if event.HasField("status_update")]


def history(live: LiveServer, session_id: str) -> list[dict[str, Any]]:
    response = loopback.post(live.url + "/invocations", json={"action": "history", "session_id": session_id},
                             timeout=30)
    assert response.status_code == 200, response.text
    return response.json()["messages"]


@pytest.fixture(scope="module")
def paced():
    live = LiveServer(PACED)
    yield live
    live.stop()


@pytest.fixture(scope="module")
def approvals():
    live = LiveServer({**PACED, "APPROVAL_REQUIRED_TOOLS": "calculator"})
    yield live
    live.stop()


async def test_the_agent_card_is_served_below_the_a2a_path(paced):
    response = loopback.get(paced.url + "/a2a/.well-known/agent-card.json", timeout=30)
    assert response.status_code == 200 and response.headers["etag"]
    card = response.json()
    assert card["name"] == "calculator-agent" and card["capabilities"]["streaming"] is True
    assert {skill["id"] for skill in card["skills"]} >= {"calculator"}
    assert {(i["url"], i["protocolBinding"], i["protocolVersion"]) for i in card["supportedInterfaces"]} == {
        (paced.url + "/a2a", "JSONRPC", "1.0"), (paced.url + "/a2a", "JSONRPC", "0.3")}
    assert (card["url"], card["preferredTransport"]) == (paced.url + "/a2a", "JSONRPC")  # v0.3 clients' fields
    assert "securitySchemes" not in card  # AUTH_MODE=none
    client = await a2a_client(paced)  # a2a-sdk's client resolves the same card, and takes its 1.0 interface
    async with client:
        events = await collected(client.send_message(send("What is 25 * 4?")))
    assert states(events)[-1] == TaskState.TASK_STATE_COMPLETED


async def test_message_send_answers_with_the_finished_task(paced):
    async with await a2a_client(paced, streaming=False) as client:
        task = final_task(await collected(client.send_message(send("What is 25 * 4?"))))
    assert task.status.state == TaskState.TASK_STATE_COMPLETED
    assert "100" in answer_of(task) and len(task.artifacts[-1].parts) == 1  # the answer, whole, in one part
    assert task.history[0].parts[0].text == "What is 25 * 4?"
    assert task.metadata["session_id"] == task.context_id and task.metadata["run_id"].startswith("run-")
    assert [m["content"] for m in history(paced, task.context_id)][0] == "What is 25 * 4?"  # our session, same id


async def test_message_stream_goes_working_then_chunks_then_completed(paced):
    async with await a2a_client(paced) as client:
        events = await collected(client.send_message(send(LONG)))
    assert events[0].HasField("task") and events[0].task.status.state == TaskState.TASK_STATE_SUBMITTED
    kinds = [event.WhichOneof("payload") for event in events[1:]]
    assert kinds[0] == "status_update" and kinds[-1] == "status_update"
    assert states(events) == [TaskState.TASK_STATE_WORKING, TaskState.TASK_STATE_COMPLETED]
    chunks = [event.artifact_update for event in events if event.HasField("artifact_update")]
    assert len(chunks) > 10  # token by token
    assert not chunks[0].append and all(chunk.append for chunk in chunks[1:-1])  # one artifact, appended to
    assert chunks[-1].last_chunk and not chunks[-1].append and len({c.artifact.artifact_id for c in chunks}) == 1
    streamed = "".join(get_artifact_text(chunk.artifact, "") for chunk in chunks[:-1])
    assert streamed == get_artifact_text(chunks[-1].artifact, "")  # the closing chunk: the answer, whole
    async with await a2a_client(paced) as client:
        stored = await client.get_task(GetTaskRequest(id=events[0].task.id))
    assert stored.status.state == TaskState.TASK_STATE_COMPLETED and answer_of(stored) == streamed


async def test_a_cancelled_task_is_rolled_back(paced):
    async with await a2a_client(paced) as client:
        first = await send_once(paced, send("What is 25 * 4?"))
        context_id = first.context_id
        before = history(paced, context_id)
        assert len(before) == 4  # the question, the call, its result, the answer
        events: list[StreamResponse] = []
        cancelled: Task | None = None
        async for event in client.send_message(send(LONG, context_id=context_id)):
            events.append(event)
            if event.HasField("artifact_update") and cancelled is None:  # mid-answer
                cancelled = await client.cancel_task(CancelTaskRequest(id=events[0].task.id))
                # When tasks/cancel answers, the run is rolled back: the session is as it was before the task.
                assert cancelled.status.state == TaskState.TASK_STATE_CANCELED
                assert history(paced, context_id) == before
        assert states(events)[-1] == TaskState.TASK_STATE_CANCELED  # the stream says so too, and ends
        stored = await client.get_task(GetTaskRequest(id=events[0].task.id))
        assert stored.status.state == TaskState.TASK_STATE_CANCELED
        assert history(paced, context_id) == before
        again = await collected(client.send_message(send("What is 25 * 4?", context_id=context_id)))
        assert states(again)[-1] == TaskState.TASK_STATE_COMPLETED  # the context goes on
        assert len(history(paced, context_id)) == 8


async def test_an_approval_is_asked_and_answered_in_the_same_task(approvals):
    async with await a2a_client(approvals) as client:
        asked = await collected(client.send_message(send("What is 25 * 4?")))
        task_id, context_id = asked[0].task.id, asked[0].task.context_id
        waiting = asked[-1].status_update.status
        assert waiting.state == TaskState.TASK_STATE_INPUT_REQUIRED
        (question,) = get_text_parts(waiting.message.parts)
        (interrupt,) = get_data_parts(waiting.message.parts)
        assert "calculator" in question and interrupt["interrupt_id"].startswith("approval-")
        assert interrupt["args"] == {"expression": "25 * 4"}
        answered = await collected(client.send_message(send("yes", task_id=task_id, context_id=context_id)))
        assert states(answered) == [TaskState.TASK_STATE_WORKING, TaskState.TASK_STATE_COMPLETED]
        task = await client.get_task(GetTaskRequest(id=task_id))
    assert "100" in answer_of(task) and task.status.state == TaskState.TASK_STATE_COMPLETED
    assert [m["type"] for m in history(approvals, context_id)] == ["human", "ai", "tool", "ai"]


async def test_an_approval_answered_by_data_or_declined(approvals):
    async with await a2a_client(approvals, streaming=False) as client:
        waiting = final_task(await collected(client.send_message(send("What is 6 * 7?"))))
        assert waiting.status.state == TaskState.TASK_STATE_INPUT_REQUIRED
        done = final_task(await collected(client.send_message(send(
            task_id=waiting.id, context_id=waiting.context_id, data={"approved": True}))))
        assert done.status.state == TaskState.TASK_STATE_COMPLETED and "42" in answer_of(done)
        waiting = final_task(await collected(client.send_message(send("What is 6 * 7?"))))
        declined = final_task(await collected(client.send_message(send(
            "no thanks", task_id=waiting.id, context_id=waiting.context_id))))
    assert declined.status.state == TaskState.TASK_STATE_COMPLETED
    assert "declined" in answer_of(declined) and "42" not in answer_of(declined)


async def test_a_user_graph_s_question_is_answered_by_the_next_message():
    """tests/graphs/questions.py: interrupt("Which city?") — any interrupt's value is the text it is answered with."""
    graph = Path(__file__).resolve().parents[1] / "graphs" / "questions.py"
    with LiveServer({"AGENT_GRAPH": f"{graph}:graph"}) as live:
        waiting = await send_once(live, send("Plan a trip"))
        assert waiting.status.state == TaskState.TASK_STATE_INPUT_REQUIRED
        assert get_text_parts(waiting.status.message.parts) == ["Which city?"]
        done = await send_once(live, send("Lisbon", task_id=waiting.id, context_id=waiting.context_id))
    assert done.status.state == TaskState.TASK_STATE_COMPLETED and answer_of(done) == "City is Lisbon"


async def test_a_dropped_stream_is_joined_again_with_what_remains(paced):
    async with await a2a_client(paced) as client:
        stream = client.send_message(send(LONG))
        seen: list[StreamResponse] = []
        async for event in stream:
            seen.append(event)
            if sum(e.HasField("artifact_update") for e in seen) == 3:
                break
        await stream.aclose()  # the connection is gone; the task goes on
        task_id = seen[0].task.id
        rejoined = await collected(client.subscribe(SubscribeToTaskRequest(id=task_id)))
        stored = await client.get_task(GetTaskRequest(id=task_id))
    snapshot = rejoined[0]
    assert snapshot.HasField("task") and snapshot.task.status.state == TaskState.TASK_STATE_WORKING
    so_far = "".join(get_artifact_text(artifact, "") for artifact in snapshot.task.artifacts)
    chunks = [event.artifact_update for event in rejoined[1:] if event.HasField("artifact_update")]
    assert chunks and all(chunk.append for chunk in chunks[:-1]) and chunks[-1].last_chunk
    remaining = "".join(get_artifact_text(chunk.artifact, "") for chunk in chunks[:-1])
    answer = get_artifact_text(chunks[-1].artifact, "")
    # Each event once: what was sent before the rejoin is in the snapshot, the rest follows it, nothing twice.
    assert so_far + remaining == answer == answer_of(stored)
    assert len(so_far) >= 3 and remaining
    assert states(rejoined) == [TaskState.TASK_STATE_COMPLETED]
    assert stored.status.state == TaskState.TASK_STATE_COMPLETED


async def test_v0_3_method_names_over_raw_json_rpc(paced):
    body = {"jsonrpc": "2.0", "id": 7, "method": "message/send", "params": {"message": {
        "kind": "message", "role": "user", "messageId": str(uuid.uuid4()),
        "parts": [{"kind": "text", "text": "What is 25 * 4?"}]}}}
    async with loopback.AsyncClient(timeout=30) as http:
        reply = (await http.post(paced.url + "/a2a", json=body)).json()
        assert reply["id"] == 7 and "error" not in reply, reply
        task = reply["result"]
        assert task["kind"] == "task" and task["status"]["state"] == "completed"
        assert "100" in task["artifacts"][-1]["parts"][0]["text"]
        got = (await http.post(paced.url + "/a2a", json={"jsonrpc": "2.0", "id": 8, "method": "tasks/get",
                                                          "params": {"id": task["id"]}})).json()
        assert got["result"]["status"]["state"] == "completed" and got["result"]["contextId"] == task["contextId"]
        missing = (await http.post(paced.url + "/a2a", json={"jsonrpc": "2.0", "id": 9, "method": "tasks/get",
                                                              "params": {"id": str(uuid.uuid4())}})).json()
        assert missing["error"]["code"] == -32001  # TaskNotFoundError


async def test_a_v0_3_client_streams_and_resubscribes(paced):
    """a2a-sdk's own v0.3 transport (message/stream, tasks/resubscribe), taking the card's 0.3 interface."""
    async with loopback.AsyncClient(timeout=30) as http:
        card = await A2ACardResolver(http, paced.url + "/a2a").get_agent_card()
        legacy = [i for i in card.supported_interfaces if i.protocol_version == "0.3"]
        del card.supported_interfaces[:]
        card.supported_interfaces.extend(legacy)
        client = ClientFactory(ClientConfig(httpx_client=http)).create(card)
        stream = client.send_message(send(LONG))
        seen = []
        async for event in stream:
            seen.append(event)
            if event.HasField("artifact_update"):
                break
        await stream.aclose()
        rejoined = await collected(client.subscribe(SubscribeToTaskRequest(id=seen[0].task.id)))
    assert rejoined[0].HasField("task") and states(rejoined)[-1] == TaskState.TASK_STATE_COMPLETED
    so_far = "".join(get_artifact_text(artifact, "") for artifact in rejoined[0].task.artifacts)
    chunks = [event.artifact_update for event in rejoined if event.HasField("artifact_update")]
    assert so_far + "".join(get_artifact_text(c.artifact, "") for c in chunks[:-1]) == \
        get_artifact_text(chunks[-1].artifact, "")


async def test_a_context_that_is_no_session_id_maps_to_a_stable_one(paced):
    context_id = "urn:example:conversation/1"  # not of our ids' alphabet
    async with await a2a_client(paced, streaming=False) as client:
        first = final_task(await collected(client.send_message(send("My name is Ada", context_id=context_id))))
        second = final_task(await collected(client.send_message(send("What's my name?", context_id=context_id))))
    assert first.context_id == second.context_id == context_id
    assert first.metadata["session_id"] == second.metadata["session_id"]
    assert first.metadata["session_id"].startswith("a2a-") and "Ada" in answer_of(second)


async def test_what_is_refused_before_a_run(paced):
    async with await a2a_client(paced, streaming=False) as client:
        data_only = final_task(await collected(client.send_message(send(data=["not", "an", "object"]))))
        assert data_only.status.state == TaskState.TASK_STATE_REJECTED
        (details,) = get_data_parts(data_only.status.message.parts)
        assert details["code"] == "invalid_payload" and data_only.metadata["code"] == "invalid_payload"
        with pytest.raises(TaskNotFoundError):
            await client.get_task(GetTaskRequest(id=str(uuid.uuid4())))


def test_the_json_rpc_body_is_bounded_as_invocations_is(paced):
    rpc = {"jsonrpc": "2.0", "id": 1, "method": "message/send", "params": {}}
    as_text = loopback.post(paced.url + "/a2a", content=json.dumps(rpc),
                            headers={"Content-Type": "text/plain", "Origin": "https://evil.example"}, timeout=30)
    assert as_text.status_code == 415 and as_text.json()["error"]["code"] == "unsupported_media_type"
    huge = loopback.post(paced.url + "/a2a", json={**rpc, "params": {"x": "y" * 2_000_000}}, timeout=30)
    assert huge.status_code == 413 and huge.json()["error"]["code"] == "payload_too_large"
    not_json = loopback.post(paced.url + "/a2a", content=b"{", headers={"Content-Type": "application/json"},
                             timeout=30)
    assert not_json.status_code == 200 and not_json.json()["error"]["code"] == -32700  # JSON-RPC's parse error
