"""Store: one storage backend as one object — its checkpointer, its sessions' owners, its lock across processes.

Below `core`: nothing here imports `bedrock.core` or `bedrock.server`. A backend is chosen once, from the settings
(`open_store`); everything above uses the parts a Store hands it and never asks which backend it is.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar, Protocol

if TYPE_CHECKING:
    from langgraph.checkpoint.base import BaseCheckpointSaver
    from langgraph.store.base import BaseStore

    from bedrock.store.locks import SharedLocks


class OwnerStore(Protocol):
    """Where a backend keeps each session's owner (the actor that created it), durably where its sessions are."""

    async def claim(self, session_id: str, actor_id: str) -> str:
        """Make `actor_id` the owner if the session has none; return the owner either way."""

    async def owner(self, session_id: str) -> str | None:
        """The session's owner, or None if it has none yet (writes nothing)."""


class Store:
    """A backend's storage: `checkpointer` (LangGraph's saver, the sessions' histories), `owners` (an OwnerStore
    beside them), `shared_locks` (a session's lock that other processes sharing the storage honour; None where no
    other process can reach it), `long_term` (LangGraph's BaseStore of the actors' memories across sessions, None when
    LONG_TERM_MEMORY is off), and `close()`. Each backend's module makes one with its `open`."""

    backend: ClassVar[str] = ""  # the MEMORY_BACKEND value it serves, for logs and tests

    def __init__(self, checkpointer: BaseCheckpointSaver, owners: OwnerStore,
                 shared_locks: SharedLocks | None = None, long_term: BaseStore | None = None) -> None:
        self.checkpointer = checkpointer
        self.owners = owners
        self.shared_locks = shared_locks
        self.long_term = long_term

    def close(self) -> None:
        """Free the shared locks (their queued releases run first), then the checkpointer's connections. Call once
        the turns are settled."""
        if self.shared_locks is not None:
            self.shared_locks.close()
        self.close_long_term()
        self.close_checkpointer()

    def close_long_term(self) -> None:
        """Stop the long-term store's work (its expiry sweeper) and close what it holds alone; nothing here."""

    def close_checkpointer(self) -> None:
        """Close the checkpointer's connections and threads; nothing to close here (a backend with some says so)."""
