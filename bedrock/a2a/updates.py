"""TurnUpdates: one run's events → its A2A task's updates.

    agent_start                 working (metadata: our session_id, run_id, actor_id — the run's ids on every other
                                wire: /invocations' `resume`, `status`, `history`)
    llm_token                   artifact chunks (the tokens of up to CHUNK_INTERVAL_S each), appended to the turn's
                                one text artifact, `answer`
    agent_end  completed        the artifact closed (last_chunk) by the turn's output, whole, in one part (append
                                false: it replaces the chunks, and the narration of a turn that also called tools),
                                then completed
               interrupted      the artifact closed likewise, then input-required; its status message: the
                                interrupts' question or summary as text, and each interrupt's data as a data part
                                (what the next message's answer is matched to: inputs.py)
    error      code cancelled   canceled (the run was rolled back)
               any other code   failed; its status message: our error message, and {code, type, retryable} as data
    a refusal before any run    rejected, likewise (refused: the session of another actor, an invalid answer …)
    agent_step, custom          nothing (a tool's result reaches the answer through the model)

Each chunk of an artifact is numbered in its metadata (`chunk`: 1, 2, …; merged into the stored artifact, whose
`chunk` is then the last one it holds): a task's snapshot says which chunks it already has, so tasks/resubscribe
sends each update once (`already_in`; a2a-sdk may hand a new subscriber an update its snapshot already holds).
"""

from __future__ import annotations

import asyncio

from typing import Any

from a2a.helpers import new_data_part, new_text_part
from a2a.server.tasks import TaskUpdater
from a2a.types import Task, TaskArtifactUpdateEvent, TaskState, TaskStatusUpdateEvent

from bedrock.a2a.inputs import is_approval
from bedrock.errors import AgentError
from bedrock.wire.events import AGENT_END, AGENT_START, ERROR, INTERRUPT, LLM_TOKEN, SSEEvent, dumps, finite

ARTIFACT_NAME = "answer"
CHUNK = "chunk"  # an artifact chunk's number, in its metadata
# Tokens are sent as a chunk at most this often (those arriving meanwhile wait for the next token, or the end): a2a-sdk
# applies each update to the stored task by copying it whole, so a chunk per token costs ~1 ms of CPU each by the end
# of a 1,000-token answer (bench/wire_bench.py); 20 chunks a second read as smoothly.
CHUNK_INTERVAL_S = 0.05
QUESTION_KEYS = ("question", "message", "prompt", "description", "text")  # an interrupt value's own words, if any


class TurnUpdates:
    """The updates of one run of a task (a task that waits for input has one run per answer): a new artifact each."""

    def __init__(self, updater: TaskUpdater) -> None:
        self.updater = updater
        self.artifact_id = ""
        self.chunks = 0
        self.streamed: list[str] = []
        self._sent = 0  # tokens of `streamed` already sent as chunks
        self._sent_at = float("-inf")  # when the last chunk went
        self.interrupts: list[dict[str, Any]] = []

    async def apply(self, event: SSEEvent) -> bool:
        """Send what `event` changes in the task; True once the run has ended (its last event)."""
        kind, data = event.type, event.data
        if kind == LLM_TOKEN:
            text = data.get("text") or data.get("token")
            if text:
                self.streamed.append(text)
                now = asyncio.get_running_loop().time()
                if now - self._sent_at >= CHUNK_INTERVAL_S:
                    await self._flush(now)
            return False
        if self._sent < len(self.streamed) and kind != AGENT_END:  # what is held goes before what follows it
            await self._flush(asyncio.get_running_loop().time())
        if kind == AGENT_START:
            self.artifact_id = f"{ARTIFACT_NAME}-{data.get('run_id', '')}"
            ids = {key: data[key] for key in ("session_id", "run_id", "actor_id") if key in data}
            await self.updater.update_status(TaskState.TASK_STATE_WORKING, metadata=ids)
        elif kind == INTERRUPT:
            self.interrupts.append(data)
        elif kind == AGENT_END:
            await self._close(data.get("output"))
            if data.get("status") == "interrupted":
                interrupts = [{key: value for key, value in interrupt.items() if key != "run_id"}
                              for interrupt in data.get("interrupts") or self.interrupts]
                await self.updater.requires_input(self.updater.new_agent_message(
                    [new_text_part(question(interrupts)), *(new_data_part(finite(i)) for i in interrupts)]))
            else:
                await self.updater.complete()
            return True
        elif kind == ERROR:
            if data.get("code") == "cancelled":
                await self.updater.cancel()
            else:
                await self._ended(TaskState.TASK_STATE_FAILED, data)
            return True
        return False

    async def refused(self, error: AgentError) -> None:
        """The message was refused before any run began: rejected, with our error."""
        await self._ended(TaskState.TASK_STATE_REJECTED, error.event_data(""))

    async def _ended(self, state: TaskState, data: dict[str, Any]) -> None:
        code: dict[str, Any] = {key: data[key] for key in ("code", "type", "retryable") if key in data}
        details = {**code, "details": data["details"]} if data.get("details") else code
        message = self.updater.new_agent_message([new_text_part(str(data.get("error") or "")), new_data_part(details)])
        await self.updater.update_status(state, message, metadata=code)

    async def _flush(self, now: float) -> None:
        """The tokens held since the last chunk, as one chunk."""
        text = "".join(self.streamed[self._sent:])
        append, self._sent, self._sent_at = self._sent > 0, len(self.streamed), now
        await self._chunk(text, append=append, last=False)

    async def _chunk(self, text: str, *, append: bool, last: bool) -> None:
        self.chunks += 1
        await self.updater.add_artifact([new_text_part(text)], artifact_id=self.artifact_id, name=ARTIFACT_NAME,
                                        metadata={CHUNK: self.chunks}, append=append, last_chunk=last)

    async def _close(self, output: Any) -> None:
        """The turn's artifact, closed by its output, whole, in one part: it replaces the chunks streamed so far (a
        client that reads the task later finds one text, not a part per token — nor, for a turn that called tools,
        the narration before its answer)."""
        text = output if isinstance(output, str) else "" if output is None else dumps(output)
        if text or self.streamed:
            await self._chunk(text or "".join(self.streamed), append=False, last=True)


def already_in(snapshot: Task, event: object) -> bool:
    """Whether `event` is an update the task's `snapshot` already holds: its status, as it is now (a status's
    timestamp is its own), or a chunk of one of its artifacts up to the last chunk that artifact holds."""
    if isinstance(event, TaskStatusUpdateEvent):
        return event.status == snapshot.status
    if isinstance(event, TaskArtifactUpdateEvent):
        chunk = event.artifact.metadata[CHUNK] if CHUNK in event.artifact.metadata else None
        for artifact in snapshot.artifacts:
            if artifact.artifact_id == event.artifact.artifact_id and CHUNK in artifact.metadata:
                return chunk is not None and chunk <= artifact.metadata[CHUNK]
    return False


def question(interrupts: list[dict[str, Any]]) -> str:
    """What the interrupts ask, in words: an approval's tool call, LangChain's HumanInTheLoopMiddleware's calls to
    review, else each value's own question (a string, or an object's `question`, `message` …), else its JSON."""
    lines = []
    for interrupt in interrupts:
        value = interrupt.get("value")
        if is_approval(interrupt):
            lines.append(f"Approve calling {interrupt.get('tool_name')} with {dumps(interrupt.get('args'))}? "
                         "Answer yes to approve; anything else declines.")
        elif isinstance(value, str):
            lines.append(value)
        elif isinstance(value, dict) and isinstance(value.get("action_requests"), list):  # HumanInTheLoopMiddleware
            for request in value["action_requests"]:
                if isinstance(request, dict):
                    lines.append(f"Review calling {request.get('name')} with {dumps(request.get('args'))}"
                                 + (f": {request['description']}" if request.get("description") else "."))
            lines.append('Answer with a data part {"decisions": [...]}, one decision per call ({"type": "approve"}, '
                         '{"type": "reject", "message": …}, {"type": "edit", "edited_action": …}).')
        elif isinstance(value, dict) and any(isinstance(value.get(key), str) for key in QUESTION_KEYS):
            lines.append(next(value[key] for key in QUESTION_KEYS if isinstance(value.get(key), str)))
        else:
            lines.append(f"The agent waits for an answer to: {dumps(value)}")
    return "\n".join(lines) or "The agent waits for input."

