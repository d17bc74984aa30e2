"""make_checkpointer(settings): where sessions' histories live."""

from __future__ import annotations

from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.checkpoint.memory import InMemorySaver

from bedrock.config import Settings


def make_checkpointer(settings: Settings) -> BaseCheckpointSaver:
    """An in-process checkpointer: memory continuity per session_id for the life of the process."""
    return InMemorySaver()
