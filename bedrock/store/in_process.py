"""MEMORY_BACKEND=memory: sessions in this process (LangGraph's InMemorySaver), their owners in a dict — all lost
on restart, by design (tests, demos, a single process that keeps nothing)."""

from __future__ import annotations

from langgraph.checkpoint.memory import InMemorySaver

from bedrock.store.base import Store
from bedrock.store.long_term import LongTermOptions, in_process


class InProcessOwners:
    """For in-process memory: owners live (and die) with the process, as the sessions do."""

    def __init__(self) -> None:
        self._owners: dict[str, str] = {}

    async def claim(self, session_id: str, actor_id: str) -> str:
        return self._owners.setdefault(session_id, actor_id)

    async def owner(self, session_id: str) -> str | None:
        return self._owners.get(session_id)


class InProcessStore(Store):
    """Nothing outside this process can reach its sessions, so no lock across processes; nothing to close."""

    backend = "memory"
    checkpointer: InMemorySaver

    @classmethod
    def open(cls, long_term: LongTermOptions | None = None) -> InProcessStore:
        return cls(InMemorySaver(), InProcessOwners(),
                   long_term=in_process(long_term) if long_term is not None else None)
