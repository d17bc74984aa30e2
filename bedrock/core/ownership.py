"""A session belongs to the actor that created it: claimed by its first turn, durably, never changed.

A turn on a session owned by another actor is refused before anything runs or is read, with 403
`session_forbidden`. Why 403 and not 404: sessions here are created by their first turn, so "not found"
would be a lie to a caller who is about to create one; ids are the client's own choice (AgentCore runtime
session ids are at least 33 random characters), so saying "taken" reveals nothing worth guessing for.

The owner lives beside the session's memory: a table in the SQLite file, an event under a reserved actor in
AgentCore Memory (whose own namespaces are per actor, so without it bob would silently get a second,
separate session under alice's id), or a dict for in-process memory. Owners never change, so each process
caches them (bounded, oldest out): after a session's first turn the check is a dict lookup.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections import OrderedDict
from datetime import datetime, timezone
from typing import Any, Protocol

from langgraph.checkpoint.base import BaseCheckpointSaver

from bedrock.core.memory import ThreadedSqliteSaver
from bedrock.errors import SessionForbidden

logger = logging.getLogger(__name__)

# AgentCore Memory actor that holds the owner records. It contains '/', which payload actor ids may not,
# and verified token subjects that do are hashed (bedrock.server.auth), so no caller can act as it.
REGISTRY_ACTOR = "agentcore-runtime/session-owners"


class OwnerStore(Protocol):
    async def claim(self, session_id: str, actor_id: str) -> str:
        """Make `actor_id` the owner if the session has none; return the owner either way."""

    async def owner(self, session_id: str) -> str | None:
        """The session's owner, or None if it has none yet (writes nothing)."""


class InProcessOwners:
    """For in-process memory: owners live (and die) with the process, as the sessions do."""

    def __init__(self) -> None:
        self._owners: dict[str, str] = {}

    async def claim(self, session_id: str, actor_id: str) -> str:
        return self._owners.setdefault(session_id, actor_id)

    async def owner(self, session_id: str) -> str | None:
        return self._owners.get(session_id)


class SqliteOwners:
    """A `session_owners` table in the saver's own database file: one atomic INSERT OR IGNORE per claim.

    Sessions stored before owners were recorded are claimed for the actor their latest checkpoint names
    (LangGraph writes the run config's `actor_id` into each checkpoint's metadata), not for whoever asks first.
    """

    def __init__(self, saver: ThreadedSqliteSaver) -> None:
        self.saver = saver
        with saver.lock, saver.conn:
            saver.conn.execute(
                "CREATE TABLE IF NOT EXISTS session_owners (session_id TEXT PRIMARY KEY, actor_id TEXT NOT NULL, "
                "claimed_at TEXT NOT NULL)"
            )

    def _claim(self, session_id: str, actor_id: str) -> str:
        with self.saver.lock, self.saver.conn as conn:
            row = conn.execute("SELECT actor_id FROM session_owners WHERE session_id = ?", (session_id,)).fetchone()
            if row:
                return row[0]
            conn.execute(
                "INSERT OR IGNORE INTO session_owners (session_id, actor_id, claimed_at) VALUES (?, ?, ?)",
                (session_id, self._earlier(conn, session_id) or actor_id, datetime.now(timezone.utc).isoformat()),
            )
            return conn.execute("SELECT actor_id FROM session_owners WHERE session_id = ?", (session_id,)).fetchone()[0]

    def _owner(self, session_id: str) -> str | None:
        with self.saver.lock, self.saver.conn as conn:
            row = conn.execute("SELECT actor_id FROM session_owners WHERE session_id = ?", (session_id,)).fetchone()
            return row[0] if row else self._earlier(conn, session_id)

    @staticmethod
    def _earlier(conn: Any, session_id: str) -> str | None:
        """The actor the session's latest checkpoint names (a session stored before owners were recorded)."""
        latest = conn.execute(
            "SELECT metadata FROM checkpoints WHERE thread_id = ? AND checkpoint_ns = '' "
            "ORDER BY checkpoint_id DESC LIMIT 1",
            (session_id,),
        ).fetchone()
        return _metadata_actor(latest[0]) if latest else None

    async def claim(self, session_id: str, actor_id: str) -> str:
        return await self.saver.call(self._claim, session_id, actor_id)

    async def owner(self, session_id: str) -> str | None:
        return await self.saver.call(self._owner, session_id)


def _metadata_actor(raw: Any) -> str | None:
    try:
        actor = json.loads(raw).get("actor_id")
    except (ValueError, TypeError, AttributeError):
        return None
    return actor if isinstance(actor, str) and actor else None


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
            eventTimestamp=datetime.now(timezone.utc),
            payload=[{"blob": json.dumps({"owner": actor_id})}],
        )
        return self._owner(session_id) or actor_id

    async def claim(self, session_id: str, actor_id: str) -> str:
        return await asyncio.to_thread(self._claim, session_id, actor_id)

    async def owner(self, session_id: str) -> str | None:
        return await asyncio.to_thread(self._owner, session_id)


class SessionOwners:
    """`check(session, actor)`: claim on first use, refuse other actors; owners cached per process."""

    def __init__(self, store: OwnerStore, cache_size: int = 10_000) -> None:
        self.store = store
        self.cache_size = cache_size
        self._cache: OrderedDict[str, str] = OrderedDict()

    async def check(self, session_id: str, actor_id: str, *, claim: bool = True) -> None:
        """Return if `actor_id` owns the session (or, with `claim`, has just claimed it); raise SessionForbidden
        otherwise. Without `claim` (a read, or a refusal before a run starts) a session nobody owns passes and
        stays unowned: only a turn that runs claims one, so reads of unused ids store nothing and reserve nothing."""
        owner = self._cache.get(session_id)
        if owner is None:
            owner = await (self.store.claim(session_id, actor_id) if claim else self.store.owner(session_id))
            if owner is None:
                return
            self._cache[session_id] = owner
            if len(self._cache) > self.cache_size:
                self._cache.popitem(last=False)
        if owner != actor_id:
            raise SessionForbidden()


def make_owners(saver: BaseCheckpointSaver, memory_id: str = "", region: str = "us-east-1") -> SessionOwners:
    """The owner store that lives where `saver` keeps the sessions."""
    if isinstance(saver, ThreadedSqliteSaver):
        return SessionOwners(SqliteOwners(saver))
    if type(saver).__name__ == "ThreadedPostgresSaver":
        from bedrock.core.postgres import PostgresOwners

        return SessionOwners(PostgresOwners(saver))  # type: ignore[arg-type]
    if type(saver).__name__ == "AgentCoreMemorySaver":
        return SessionOwners(AgentCoreOwners(memory_id or saver.memory_id, region))
    return SessionOwners(InProcessOwners())
