"""MEMORY_BACKEND=agentcore (the default when a memory id is set): sessions in AgentCore Memory
(langgraph-checkpoint-aws's AgentCoreMemorySaver), their owners as events in the same memory.

No lock across processes: AgentCore routes a session to one microVM. Imported only for this backend
(`open_store`), and the saver's package only in `open`: other deployments never load langgraph-checkpoint-aws.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any
from datetime import UTC, datetime

from bedrock.store.base import Store

# AgentCore Memory actor that holds the owner records. It contains '/', which payload actor ids may not,
# and verified token subjects that do are hashed (bedrock.server.auth), so no caller can act as it.
REGISTRY_ACTOR = "agentcore-runtime/session-owners"


class AgentCoreOwners:
    """Owner records as events of `REGISTRY_ACTOR` in the session, in the same AgentCore Memory.

    CreateEvent cannot be conditional, so two actors racing to create one session may both write; every
    reader takes the earliest record (by timestamp, then event id) as the owner, so they all agree.
    """

    def __init__(self, memory_id: str, region: str) -> None:
        import boto3  # already loaded by the AgentCore saver

        self.memory_id = memory_id
        self.client = boto3.client("bedrock-agentcore", region_name=region)

    def _owner(self, session_id: str) -> str | None:
        events = self.client.list_events(
            memoryId=self.memory_id, sessionId=session_id, actorId=REGISTRY_ACTOR, includePayloads=True, maxResults=10
        ).get("events", [])
        records = []
        for event in events:
            for item in event.get("payload", []):
                blob = item.get("blob")
                owner = (json.loads(blob) if isinstance(blob, str) else blob or {}).get("owner")
                if isinstance(owner, str):
                    records.append((event["eventTimestamp"], event["eventId"], owner))
        return min(records)[2] if records else None

    def _claim(self, session_id: str, actor_id: str) -> str:
        owner = self._owner(session_id)
        if owner is not None:
            return owner
        self.client.create_event(
            memoryId=self.memory_id,
            actorId=REGISTRY_ACTOR,
            sessionId=session_id,
            eventTimestamp=datetime.now(UTC),
            payload=[{"blob": json.dumps({"owner": actor_id})}],
        )
        return self._owner(session_id) or actor_id

    async def claim(self, session_id: str, actor_id: str) -> str:
        return await asyncio.to_thread(self._claim, session_id, actor_id)

    async def owner(self, session_id: str) -> str | None:
        return await asyncio.to_thread(self._owner, session_id)


class AgentCoreStore(Store):
    """AgentCore Memory `memory_id`: the saver, and the owner records under REGISTRY_ACTOR (AgentCore Memory's own
    namespaces are per actor, so without them bob would silently get a second, separate session under alice's
    id)."""

    backend = "agentcore"

    @classmethod
    def open(cls, memory_id: str, region: str, long_term: Any = None) -> AgentCoreStore:
        """Raises whatever makes the memory unusable (`open_store` then falls back to SQLite)."""
        # Imported here: only AgentCore Memory deployments pay for langgraph-checkpoint-aws.
        from langgraph_checkpoint_aws import AgentCoreMemorySaver

        from bedrock.store.agentcore_memories import AgentCoreMemories

        saver = AgentCoreMemorySaver(memory_id, region_name=region)
        # Long-term memory (when asked for): the memory's records. Under "users": an actor's namespaces, ("alice", …),
        # are /users/alice/…/, where the starter toolkit's STM_AND_LTM strategies write alice's preferences and facts.
        # The options' embeddings and expiry do not apply: AgentCore embeds the records itself, and keeps no TTL.
        memories = AgentCoreMemories(memory_id, region_name=region, root=("users",)) if long_term is not None else None
        return cls(saver, AgentCoreOwners(memory_id, region), long_term=memories)
