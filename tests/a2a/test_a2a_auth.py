"""A2A with AUTH_MODE=jwt: the JSON-RPC endpoint needs a verified bearer token (401 without one), the card stays
public and says so; the token's subject is the run's actor, and owns the task: another actor cannot get, cancel,
join or continue it, and a message in another actor's context (their session) is refused before anything runs."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import pytest
from a2a.client import A2AClientError
from a2a.helpers import get_data_parts
from a2a.types import (CancelTaskRequest, GetTaskRequest, ListTasksRequest, SubscribeToTaskRequest, TaskState)
from a2a.utils.errors import TaskNotFoundError

from testkit import loopback
from testkit.live_server import LiveServer
from tests.a2a.test_a2a_server import LONG, PACED, a2a_client, answer_of, collected, send, send_once, states
from tests.server.test_auth import AUDIENCE, ISSUER, Keys


@pytest.fixture(scope="module")
def keys() -> Keys:
    return Keys()


@pytest.fixture(scope="module")
def secured(keys, tmp_path_factory):
    jwks = Path(tmp_path_factory.mktemp("jwks")) / "jwks.json"
    jwks.write_text(json.dumps(keys.jwks()))
    live = LiveServer({**PACED, "AUTH_MODE": "jwt", "JWT_JWKS_FILE": str(jwks), "JWT_ISSUER": ISSUER,
                       "JWT_AUDIENCE": AUDIENCE})
    yield live
    live.stop()


def history(live: LiveServer, session_id: str, token: str) -> list[dict]:
    response = loopback.post(live.url + "/invocations", json={"action": "history", "session_id": session_id},
                             headers={"Authorization": f"Bearer {token}"}, timeout=30)
    assert response.status_code == 200, response.text
    return response.json()["messages"]


def test_the_json_rpc_endpoint_needs_a_token_and_the_card_does_not(secured, keys):
    rpc = {"jsonrpc": "2.0", "id": 1, "method": "message/send", "params": {"message": {
        "kind": "message", "role": "user", "messageId": "m-1", "parts": [{"kind": "text", "text": "hi"}]}}}
    for headers in ({}, {"Authorization": "Bearer not-a-token"},
                    {"Authorization": "Bearer " + keys.token(key=keys.stranger)}):
        refused = loopback.post(secured.url + "/a2a", json=rpc, headers=headers, timeout=30)
        assert refused.status_code == 401, refused.text
        assert refused.json()["error"]["code"] == "unauthorized"
        assert refused.headers["www-authenticate"].startswith("Bearer")
    card = loopback.get(secured.url + "/a2a/.well-known/agent-card.json", timeout=30)
    assert card.status_code == 200
    scheme = card.json()["securitySchemes"]["bearer"]["httpAuthSecurityScheme"]
    assert (scheme["scheme"], scheme["bearerFormat"]) == ("Bearer", "JWT")
    assert card.json()["securityRequirements"] == [{"schemes": {"bearer": {}}}]
    ok = loopback.post(secured.url + "/a2a", json=rpc, headers={"Authorization": "Bearer " + keys.token("alice")},
                       timeout=30)
    assert ok.status_code == 200 and ok.json()["result"]["status"]["state"] == "completed"


async def test_tasks_and_contexts_are_their_actor_s(secured, keys):
    alice_token, bob_token = keys.token("alice"), keys.token("bob")
    async with await a2a_client(secured, token=alice_token) as alice, \
            await a2a_client(secured, token=bob_token) as bob:
        task = await send_once(secured, send("My name is Alice"), token=alice_token)
        assert task.status.state == TaskState.TASK_STATE_COMPLETED and task.metadata["actor_id"] == "alice"
        before = history(secured, task.context_id, alice_token)
        # Her task is nobody else's: not found, whatever bob asks of it.
        with pytest.raises(TaskNotFoundError):
            await bob.get_task(GetTaskRequest(id=task.id))
        with pytest.raises(TaskNotFoundError):
            await bob.cancel_task(CancelTaskRequest(id=task.id))
        with pytest.raises((TaskNotFoundError, A2AClientError)):
            await collected(bob.subscribe(SubscribeToTaskRequest(id=task.id)))
        with pytest.raises(TaskNotFoundError):
            await collected(bob.send_message(send("What's my name?", task_id=task.id, context_id=task.context_id)))
        assert task.id not in {t.id for t in (await bob.list_tasks(ListTasksRequest())).tasks}
        # Her context is her session: a task of bob's in it is refused before anything runs.
        refused = await collected(bob.send_message(send("What's my name?", context_id=task.context_id)))
        assert states(refused) == [TaskState.TASK_STATE_REJECTED]
        (details,) = get_data_parts(refused[-1].status_update.status.message.parts)
        assert details["code"] == "session_forbidden"
        assert history(secured, task.context_id, alice_token) == before
        # Her running task is hers to cancel, not his.
        running = alice.send_message(send(LONG))
        first = await anext(running)
        with pytest.raises(TaskNotFoundError):
            await bob.cancel_task(CancelTaskRequest(id=first.task.id))
        cancelled = await alice.cancel_task(CancelTaskRequest(id=first.task.id))
        assert cancelled.status.state == TaskState.TASK_STATE_CANCELED
        await running.aclose()
        mine = await send_once(secured, send("What's my name?", context_id=task.context_id), token=alice_token)
    assert "Alice" in answer_of(mine) and mine.metadata["actor_id"] == "alice"


def test_the_actor_is_the_token_s_subject(secured, keys):
    """A request's metadata may carry our per-turn fields (FORWARDED), its actor among them: another actor than the
    token's subject is refused (actor_forbidden) before anything runs; the subject's own is taken."""
    context_id = f"ctx-{uuid.uuid4().hex}"
    token = keys.token("carol")

    def rpc(metadata: dict) -> dict:
        body = {"jsonrpc": "2.0", "id": 1, "method": "message/send", "params": {"metadata": metadata, "message": {
            "kind": "message", "role": "user", "messageId": str(uuid.uuid4()), "contextId": context_id,
            "parts": [{"kind": "text", "text": "hi"}]}}}
        reply = loopback.post(secured.url + "/a2a", json=body, headers={"Authorization": f"Bearer {token}"},
                              timeout=30)
        return reply.json()["result"]

    refused = rpc({"actor_id": "alice"})
    assert refused["status"]["state"] == "rejected" and refused["metadata"]["code"] == "actor_forbidden"
    assert history(secured, context_id, token) == []
    mine = rpc({"actor_id": "carol", "preferences": {"tone": "brief"}})
    assert mine["status"]["state"] == "completed" and mine["metadata"]["actor_id"] == "carol"
    assert history(secured, context_id, token)[0]["content"] == "hi"
