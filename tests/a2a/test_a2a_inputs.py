"""An A2A message → our payload: contextId ↔ session, a prompt or the graph's input, and an input-required task's
answer as our `resume` (approvals: yes or no, or exactly by data; any other interrupt: its value); the interrupts'
question; finished tasks forgotten after RUN_RETENTION_S."""

from __future__ import annotations

import uuid

import pytest
from a2a.helpers import new_data_part, new_text_part
from a2a.server.context import ServerCallContext
from a2a.types import (Artifact, Message, Part, Role, Task, TaskArtifactUpdateEvent, TaskState, TaskStatus,
                       TaskStatusUpdateEvent)

from bedrock.a2a.context import ActorUser
from bedrock.a2a.inputs import payload_for, pending_of, session_id_for
from bedrock.a2a.tasks import RetainedTaskStore
from bedrock.a2a.updates import already_in, question
from bedrock.errors import PayloadError
from bedrock.wire.request import parse_request

APPROVAL = {"interrupt_id": "approval-0123456789abcdef01234567", "tool_name": "calculator",
            "tool_call_id": "tooluse_1", "args": {"expression": "25 * 4"}}
QUESTION = {"interrupt_id": "5f1c0e8a9b7d", "value": "Which city?", "node": "ask", "namespace": []}


def message(*parts: Part) -> Message:
    return Message(role=Role.ROLE_USER, message_id=str(uuid.uuid4()), parts=list(parts))


def waiting(*interrupts: dict) -> Task:
    """An input-required task whose status message carries `interrupts` (as updates.py writes it)."""
    status = TaskStatus(state=TaskState.TASK_STATE_INPUT_REQUIRED)
    status.message.CopyFrom(Message(role=Role.ROLE_AGENT, message_id="m", parts=[
        new_text_part(question(list(interrupts))), *(new_data_part(i) for i in interrupts)]))
    return Task(id="t", context_id="c", status=status)


def test_a_context_id_is_the_session_id_or_a_stable_digest():
    assert session_id_for("3f2b8c1e-0d4a-4c1b-9a51-7d2f0e6b8a90") == "3f2b8c1e-0d4a-4c1b-9a51-7d2f0e6b8a90"
    odd = session_id_for("urn:ctx/1")
    assert odd == session_id_for("urn:ctx/1") != session_id_for("urn:ctx/2")
    assert odd.startswith("a2a-") and len(odd) == 44
    assert session_id_for("x" * 101).startswith("a2a-")


def test_text_is_the_prompt_and_data_the_graph_s_input():
    assert payload_for(message(new_text_part("Hello"), new_text_part("there")), "c", []) == {
        "session_id": "c", "prompt": "Hello\nthere"}
    assert payload_for(message(new_data_part({"topic": "tea", "n": 3})), "c", []) == {
        "session_id": "c", "input": {"topic": "tea", "n": 3}}  # 3, not protobuf's 3.0
    with pytest.raises(PayloadError, match="text part"):
        payload_for(message(new_data_part([1, 2])), "c", [])
    with pytest.raises(PayloadError):
        payload_for(message(new_text_part("  ")), "c", [])


def test_a_request_s_metadata_gives_a_turn_s_own_options_alone():
    metadata = {"preferences": {"tone": "brief"}, "context": {"user_tier": 2.0}, "multitask_strategy": "reject",
                "on_disconnect": "continue", "session_id": "elsewhere", "prompt": "no", "stream": False}
    assert payload_for(message(new_text_part("Hi")), "c", [], metadata) == {
        "session_id": "c", "prompt": "Hi", "preferences": {"tone": "brief"}, "context": {"user_tier": 2},
        "multitask_strategy": "reject"}


def test_an_approval_is_answered_yes_or_no_by_text_or_exactly_by_data():
    pending = pending_of(waiting(APPROVAL))
    assert [p["interrupt_id"] for p in pending] == [APPROVAL["interrupt_id"]]
    iid = APPROVAL["interrupt_id"]
    for text, approved in (("yes", True), ("Approve", True), ("OK.", True), ("y", True), ("no", False),
                           ("yes please", False), ("", False)):
        parts = [new_text_part(text)] if text else [new_data_part({"note": 1})]
        assert payload_for(message(*parts), "c", pending)["resume"] == {"interrupt_id": iid, "approved": approved}
    edited = payload_for(message(new_data_part({"approved": True, "args": {"expression": "2 + 2"}})), "c", pending)
    assert edited["resume"] == {"interrupt_id": iid, "approved": True, "args": {"expression": "2 + 2"}}
    with pytest.raises(PayloadError):
        payload_for(message(new_data_part({"approved": "sure"})), "c", pending)
    for payload in (edited, payload_for(message(new_text_part("no")), "c", pending)):  # what the runtime takes
        parse_request(payload)


def test_any_other_interrupt_gets_the_text_or_the_data_as_its_value():
    pending = pending_of(waiting(QUESTION))
    assert payload_for(message(new_text_part("Lisbon")), "c", pending)["resume"] == {
        "interrupt_id": "5f1c0e8a9b7d", "value": "Lisbon"}
    decisions = {"decisions": [{"type": "approve"}]}
    assert payload_for(message(new_data_part(decisions)), "c", pending)["resume"] == {
        "interrupt_id": "5f1c0e8a9b7d", "value": decisions}
    both = pending_of(waiting(APPROVAL, QUESTION))
    assert payload_for(message(new_text_part("yes")), "c", both)["resume"] == {"values": {
        APPROVAL["interrupt_id"]: {"approved": True}, "5f1c0e8a9b7d": "yes"}}
    ours = {"values": {"5f1c0e8a9b7d": "Porto"}}  # our own `resume`, whole
    assert payload_for(message(new_data_part(ours)), "c", both)["resume"] == ours


def test_only_an_input_required_task_s_interrupts_are_pending():
    assert pending_of(None) == []
    done = waiting(APPROVAL)
    done.status.state = TaskState.TASK_STATE_COMPLETED
    assert pending_of(done) == []


def test_the_question_says_what_each_interrupt_asks():
    assert question([APPROVAL]).startswith('Approve calling calculator with {"expression":"25 * 4"}?')
    assert question([QUESTION]) == "Which city?"
    assert question([{"interrupt_id": "i", "value": {"question": "Pick one", "options": [1, 2]}}]) == "Pick one"
    assert "waits for an answer" in question([{"interrupt_id": "i", "value": {"options": [1, 2]}}])
    review = {"action_requests": [{"name": "refund", "args": {"order_id": "A-1001", "amount": 10},
                                   "description": "Refund needs approval"}], "review_configs": []}
    lines = question([{"interrupt_id": "i", "value": review}]).splitlines()
    assert lines[0] == 'Review calling refund with {"order_id":"A-1001","amount":10}: Refund needs approval'
    assert '"decisions"' in lines[1]


async def test_finished_tasks_are_forgotten_after_the_retention():
    now = [0.0]
    store = RetainedTaskStore(retention_s=10, clock=lambda: now[0])  # (its byte bound, 16 MB, far off)
    alice, bob = ServerCallContext(user=ActorUser("alice")), ServerCallContext(user=ActorUser("bob"))

    def task(task_id: str, state: TaskState) -> Task:
        return Task(id=task_id, context_id="c", status=TaskStatus(state=state))

    await store.save(task("done", TaskState.TASK_STATE_COMPLETED), alice)
    await store.save(task("waiting", TaskState.TASK_STATE_INPUT_REQUIRED), alice)
    await store.save(task("bobs", TaskState.TASK_STATE_WORKING), bob)
    assert await store.get("done", alice) is not None and await store.get("done", bob) is None  # per owner
    now[0] = 11.0
    await store.save(task("bobs", TaskState.TASK_STATE_FAILED), bob)
    assert await store.get("done", alice) is None  # ended 11 s ago
    assert await store.get("waiting", alice) is not None and await store.get("bobs", bob) is not None


async def test_finished_tasks_past_the_byte_bound_are_forgotten_oldest_first():
    """Each finished task keeps its message (here 100 KB, as a caller's 1 MB prompts would be): past RUN_RETAIN_BYTES
    together, the oldest go before their retention; running ones stay, whatever their size."""
    store = RetainedTaskStore(retention_s=600, retain_bytes=350_000, clock=lambda: 0.0)
    alice = ServerCallContext(user=ActorUser("alice"))

    def task(task_id: str, state: TaskState) -> Task:
        sent = Message(role=Role.ROLE_USER, message_id=task_id, parts=[new_text_part("x" * 100_000)])
        return Task(id=task_id, context_id="c", status=TaskStatus(state=state), history=[sent])

    await store.save(task("running", TaskState.TASK_STATE_WORKING), alice)
    for n in range(5):
        await store.save(task(f"done-{n}", TaskState.TASK_STATE_COMPLETED), alice)
    kept = [n for n in range(5) if await store.get(f"done-{n}", alice) is not None]
    assert kept == [2, 3, 4] and await store.get("running", alice) is not None
    await store.save(task("done-2", TaskState.TASK_STATE_COMPLETED), alice)  # saved again: still the oldest
    await store.save(task("done-5", TaskState.TASK_STATE_COMPLETED), alice)
    assert [n for n in range(6) if await store.get(f"done-{n}", alice) is not None] == [3, 4, 5]


def test_a_snapshot_knows_the_updates_it_holds():
    """What tasks/resubscribe leaves out after the task's snapshot: its own status, and the chunks its artifact
    holds (their numbers: the stored artifact's `chunk` is the last merged into it)."""
    status = TaskStatus(state=TaskState.TASK_STATE_WORKING)
    status.timestamp.FromSeconds(100)
    held = Artifact(artifact_id="answer-run-1", parts=[new_text_part("a"), new_text_part("b")])
    held.metadata.update({"chunk": 2})
    snapshot = Task(id="t", context_id="c", status=status, artifacts=[held])

    def chunk(n: int, artifact_id: str = "answer-run-1") -> TaskArtifactUpdateEvent:
        artifact = Artifact(artifact_id=artifact_id, parts=[new_text_part(str(n))])
        artifact.metadata.update({"chunk": n})
        return TaskArtifactUpdateEvent(task_id="t", context_id="c", artifact=artifact, append=n > 1)

    assert already_in(snapshot, chunk(1)) and already_in(snapshot, chunk(2))
    assert not already_in(snapshot, chunk(3)) and not already_in(snapshot, chunk(1, "answer-run-2"))
    assert already_in(snapshot, TaskStatusUpdateEvent(task_id="t", context_id="c", status=status))
    later = TaskStatus(state=TaskState.TASK_STATE_COMPLETED)
    assert not already_in(snapshot, TaskStatusUpdateEvent(task_id="t", context_id="c", status=later))
