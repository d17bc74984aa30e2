"""A session belongs to the actor that created it: claimed by its first turn, durably, never changed.

A turn on a session owned by another actor is refused before anything runs or is read, with 403
`session_forbidden`. Why 403 and not 404: sessions here are created by their first turn, so "not found"
would be a lie to a caller who is about to create one; ids are the client's own choice (AgentCore runtime
session ids are at least 33 random characters), so saying "taken" reveals nothing worth guessing for.

The owner lives beside the session's memory, in the store's OwnerStore (`bedrock/store`): a table in the SQLite
file or the PostgreSQL database, an event under a reserved actor in AgentCore Memory (whose own namespaces are per
actor, so without it bob would silently get a second, separate session under alice's id), or a dict for
in-process memory. Owners never change, so each process caches them (bounded, oldest out): after a session's
first turn the check is a dict lookup.

One exception, with AUTH_MODE=none only: a session started without naming an actor belongs to DEFAULT_ACTOR_ID,
which anyone becomes by naming no actor, so refusing a caller who names one there would protect nothing — and
broke the guide's own examples run in order (its Custom Data example sends `custom_data.user_id` on the session
its Quick Start had started without an actor). Such a caller is let in as the session's actor (`open_owner`).
"""

from __future__ import annotations

from collections import OrderedDict

from bedrock.errors import SessionForbidden
from bedrock.store.base import OwnerStore


class SessionOwners:
    """`check(session, actor)`: claim on first use, refuse other actors; owners cached per process."""

    def __init__(self, store: OwnerStore, cache_size: int = 10_000) -> None:
        self.store = store
        self.cache_size = cache_size
        self._cache: OrderedDict[str, str] = OrderedDict()

    async def check(self, session_id: str, actor_id: str, *, claim: bool = True,
                    open_owner: str | None = None) -> str:
        """Return the actor the request acts as in the session: `actor_id` if it owns the session (or, with
        `claim`, has just claimed it); raise SessionForbidden otherwise. Without `claim` (a read, or a refusal
        before a run starts) a session nobody owns passes and stays unowned: only a turn that runs claims one, so
        reads of unused ids store nothing and reserve nothing.

        `open_owner`: an owner whose sessions are anyone's (AUTH_MODE=none: DEFAULT_ACTOR_ID, the owner of the
        sessions started without naming an actor, which any caller reaches by naming none). Another actor is not
        refused there but acts as that owner: its turns join the session's memory (AgentCore Memory keeps it per
        actor) and its runs are the session's, instead of a 403 that protected nothing."""
        owner = self._cache.get(session_id)
        if owner is None:
            owner = await (self.store.claim(session_id, actor_id) if claim else self.store.owner(session_id))
            if owner is None:
                return actor_id
            self._cache[session_id] = owner
            if len(self._cache) > self.cache_size:
                self._cache.popitem(last=False)
        if owner != actor_id:
            if owner == open_owner:
                return owner
            raise SessionForbidden()
        return actor_id
