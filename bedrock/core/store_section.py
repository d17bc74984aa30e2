"""langgraph.json's `store` section, as LangGraph's server reads it, for the actors' long-term memory:

    "store": {
      "index": {"embed": "bedrock:amazon.titan-embed-text-v2:0", "dims": 1024, "fields": ["text"]},
      "ttl": {"default_ttl": 10080, "refresh_on_read": true, "sweep_interval_minutes": 60}
    }

    index.embed     "bedrock:<model id>": EMBEDDING_MODEL_ID. Bedrock's embeddings alone are served here (the runtime's
                    credentials and endpoint, the offline endpoint's Titan v2); another provider is refused by name
    index.dims      EMBEDDING_DIMENSIONS (256, 512 or 1024)
    index.fields    which fields of a memory's value are embedded (LangGraph's paths: "text", "a.b", "$" the whole)
    ttl.default_ttl minutes: MEMORY_TTL_DAYS × 1440
    ttl.refresh_on_read, ttl.sweep_interval_minutes   LangGraph's TTLConfig's own

A variable the environment sets wins over the file (as langgraph.json's `env` never overrides one). `path` (a store of
the graph's own) is refused, as a graph compiled with its own store is; so is a key LangGraph's server does not know,
naming it, rather than ignored.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from bedrock.config import Settings
from bedrock.store.long_term import LongTermOptions

PROVIDER = "bedrock:"
DIMENSIONS = (256, 512, 1024)  # Titan text embeddings v2's (EMBEDDING_DIMENSIONS' choices)


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


class IndexSection(_Section):
    embed: str | None = None
    dims: int | None = None
    fields: list[str] | None = Field(default=None, min_length=1)

    @field_validator("embed")
    @classmethod
    def _bedrock_only(cls, embed: str | None) -> str | None:
        if embed is not None and not (embed.startswith(PROVIDER) and embed[len(PROVIDER):].strip()):
            raise ValueError(f"only Bedrock's embeddings are served here: {PROVIDER}<model id>, e.g. "
                             f"{PROVIDER}amazon.titan-embed-text-v2:0 (got {embed[:80]!r})")
        return embed

    @field_validator("dims")
    @classmethod
    def _dimensions(cls, dims: int | None) -> int | None:
        if dims is not None and dims not in DIMENSIONS:
            raise ValueError(f"must be one of {', '.join(map(str, DIMENSIONS))} (got {dims})")
        return dims

    @property
    def model_id(self) -> str | None:
        return self.embed[len(PROVIDER):].strip() if self.embed else None


class TTLSection(_Section):
    default_ttl: float | None = Field(default=None, gt=0)  # minutes
    refresh_on_read: bool = True
    sweep_interval_minutes: int = Field(default=60, gt=0)

    @property
    def days(self) -> float | None:
        return self.default_ttl / (24 * 60) if self.default_ttl is not None else None


class StoreSection(_Section):
    path: str | None = None
    index: IndexSection | None = None
    ttl: TTLSection | None = None

    @field_validator("path")
    @classmethod
    def _runtime_s_store(cls, path: str | None) -> str | None:
        if path is not None:
            raise ValueError("a store of your own is not served here: the runtime gives every graph its store (each "
                             "actor's namespaces, kept with the turn, where MEMORY_BACKEND says); remove `path`")
        return path

    def beneath(self, settings: Settings) -> Settings:
        """`settings` with the section's model, dimensions and expiry where the environment set none."""
        index, ttl, taken = self.index, self.ttl, settings.store_variables
        changes: dict[str, Any] = {}
        if index is not None and index.model_id and "EMBEDDING_MODEL_ID" not in taken:
            changes["embedding_model_id"] = index.model_id
        if index is not None and index.dims and "EMBEDDING_DIMENSIONS" not in taken:
            changes["embedding_dimensions"] = index.dims
        if ttl is not None and ttl.days is not None and "MEMORY_TTL_DAYS" not in taken:
            changes["memory_ttl_days"] = ttl.days
        return replace(settings, **changes)

    def options(self, options: LongTermOptions) -> LongTermOptions:
        """`options` with the section's embedded fields and expiry's refresh and sweep."""
        changes: dict[str, Any] = {}
        if self.index is not None and self.index.fields:
            changes["fields"] = tuple(self.index.fields)
        if self.ttl is not None:
            changes.update(refresh_on_read=self.ttl.refresh_on_read, sweep_minutes=self.ttl.sweep_interval_minutes)
        return replace(options, **changes)


def store_section(value: object) -> StoreSection:
    """The section, checked; ValueError naming the key and what is wrong."""
    try:
        return StoreSection.model_validate(value)
    except ValidationError as invalid:
        first = invalid.errors()[0]
        where = ".".join(str(part) for part in first["loc"]) or "store"
        message = first["msg"].removeprefix("Value error, ")
        if first["type"] == "extra_forbidden":
            message = "not a key LangGraph's server reads there (store: path, index, ttl; index: embed, dims, " \
                      "fields; ttl: default_ttl, refresh_on_read, sweep_interval_minutes)"
        raise ValueError(f"store.{where}: {message}" if where != "store" else f"store: {message}") from None
