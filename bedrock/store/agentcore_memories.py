"""Long-term memory in AgentCore Memory: LangGraph's BaseStore over one memory's long-term records.

AgentCore Memory keeps no key-value items: it keeps *memory records* (a text, one namespace string, an id it
assigns), written by its strategies from conversational events or by us (BatchCreateMemoryRecords). An item is one
record:

- **Namespace.** A namespace tuple is the namespace string `"/" + "/".join(ns) + "/"` (under an optional `root`):
  `("alice", "memories")` ↔ `/alice/memories/`. The trailing slash is AWS's own advice (its namespaces guide: a
  prefix search for `/alice/` cannot reach `/alice2/`); records are still checked against the tuple prefix after
  every hierarchical read, whatever the service's prefix semantics.
- **Key and value.** Our record's content text is `{"store_key": key, "value": value}` (compact JSON), so a key is
  found by reading its namespace (ListMemoryRecords, exact namespace) and matching the texts. AgentCore embeds that
  whole text for semantic search. A put overwrites in place (BatchUpdateMemoryRecords), a delete removes every record
  of the key (BatchDeleteMemoryRecords); two processes creating one new key at once may leave two records: a read
  takes the newest, the next write of the key leaves one.
- **Records the memory's strategies extracted** (any text not in that form) come back too: key = their
  memoryRecordId, value `{"text": …, "strategy_id": …}`. A delete of that key deletes the record; a put of it
  rewrites the record as ours (its key kept).

Semantic search (a `query`) is RetrieveMemoryRecords (AgentCore embeds; its topK is at most 100, so offset + limit
beyond 100 finds nothing more); without one, ListMemoryRecords pages in the service's order. A `filter` is
LangGraph's own (the InMemoryStore's comparison), applied to the values read. Batches read before they write, as
LangGraph's InMemoryStore does; the writes of one batch go out as at most three batch calls per 100 records.

Why hand-written: langgraph-checkpoint-aws's AgentCoreMemoryStore writes conversational events on put and has no
delete and no get by key, so it cannot hold a key-value item. Errors from AWS propagate as botocore's ClientError (a
record a batch call refused is raised as one too); boto3 blocks, so `abatch` and `arecord_turn` run it on a thread.
"""

from __future__ import annotations

import asyncio
import json
from collections import defaultdict
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from botocore.exceptions import ClientError
from langchain_core.messages import BaseMessage
from langgraph.store.base import (BaseStore, GetOp, InvalidNamespaceError, Item, ListNamespacesOp, Op, PutOp,
                                  Result, SearchItem, SearchOp, validate_op_namespace)

# LangGraph's own filter and namespace-condition semantics, through InMemoryStore's public API (a probe store), so a
# filter or a namespace condition means here what it means on every other backend.
from langgraph.store.memory import InMemoryStore

PAGE = 100  # ListMemoryRecords / RetrieveMemoryRecords maxResults: 1..100 (the service model)
BATCH = 100  # records per Batch{Create,Update,Delete}MemoryRecords call: at most 100
TOP_K = 100  # RetrieveMemoryRecords searchCriteria.topK: at most 100
MAX_QUERY = 10_000  # searchCriteria.searchQuery: at most 10,000 characters
MAX_EVENT_TEXT = 100_000  # CreateEvent conversational content text: at most 100,000 characters
MAX_PAYLOADS = 100  # CreateEvent payload items: at most 100
KEY_FIELD = "store_key"  # marks a record's content as one of our items


def namespace_path(namespace: tuple[str, ...]) -> str:
    """A namespace tuple as an AgentCore namespace string: () → "/", ("a", "b") → "/a/b/"."""
    return "/" + "".join(label + "/" for label in namespace)


def namespace_of(path: str) -> tuple[str, ...]:
    """An AgentCore namespace string as a tuple; with or without the trailing slash."""
    return tuple(label for label in path.split("/") if label)


@dataclass(frozen=True)
class Record:
    """One memory record as an item: ours (the key in its text) or a strategy's (the key is its id)."""

    record_id: str
    path: str  # the namespace string as the service has it (sent back for IAM's namespace conditions)
    namespace: tuple[str, ...]  # under the store's root
    key: str
    value: dict[str, Any]
    created_at: datetime
    updated_at: datetime
    score: float | None = None

    def item(self) -> Item:
        return Item(value=self.value, key=self.key, namespace=self.namespace, created_at=self.created_at,
                    updated_at=self.updated_at)

    def search_item(self) -> SearchItem:
        return SearchItem(namespace=self.namespace, key=self.key, value=self.value, created_at=self.created_at,
                          updated_at=self.updated_at, score=self.score)


def item_text(key: str, value: dict[str, Any]) -> str:
    """Our record's content text for an item."""
    return json.dumps({KEY_FIELD: key, "value": value}, ensure_ascii=False, separators=(",", ":"))


def _ours(text: str) -> tuple[str, dict[str, Any]] | None:
    """The (key, value) our content text holds, or None for any other text (a strategy's record)."""
    if not text.startswith("{"):
        return None
    try:
        body = json.loads(text)
    except ValueError:
        return None
    if isinstance(body, dict) and isinstance(body.get(KEY_FIELD), str) and isinstance(body.get("value"), dict):
        return body[KEY_FIELD], body["value"]
    return None


class AgentCoreMemories(BaseStore):
    """LangGraph's BaseStore over the long-term records of AgentCore Memory `memory_id` (see the module).

    `root`: labels every namespace is kept under (e.g. `("users",)`: `("alice", "memories")` is
    `/users/alice/memories/`, beside the `/users/{actorId}/preferences/` the starter toolkit's strategies write)."""

    supports_ttl: bool = False

    def __init__(self, memory_id: str, *, client: Any = None, region_name: str | None = None,
                 endpoint_url: str | None = None, root: tuple[str, ...] = ()) -> None:
        if client is None:
            import boto3

            client = boto3.client("bedrock-agentcore", region_name=region_name, endpoint_url=endpoint_url)
        self.memory_id = memory_id
        self.client = client
        self.root = tuple(root)

    # BaseStore
    def batch(self, ops: Iterable[Op]) -> list[Result]:
        ops = list(ops)
        for op in ops:
            _check_namespace(op)
        reads = _Reads(self)
        results: list[Result] = []
        writes: dict[tuple[tuple[str, ...], str], PutOp] = {}
        for op in ops:
            if isinstance(op, GetOp):
                results.append(reads.get(op.namespace, op.key))
            elif isinstance(op, SearchOp):
                results.append(self._search(op))
            elif isinstance(op, ListNamespacesOp):
                results.append(self._list_namespaces(op))
            elif isinstance(op, PutOp):
                writes[(op.namespace, op.key)] = op  # the last write of a key wins, as in LangGraph's stores
                results.append(None)
            else:
                raise ValueError(f"unknown store operation: {type(op).__name__}")
        if writes:
            self._write(writes.values(), reads)
        return results

    async def abatch(self, ops: Iterable[Op]) -> list[Result]:
        return await asyncio.to_thread(self.batch, list(ops))

    # Conversational events: what the memory's strategies extract records from. Named as BaseStore's methods are:
    # `record_turn` blocks, `arecord_turn` runs it on a thread.
    def record_turn(self, actor_id: str, session_id: str, messages: Sequence[BaseMessage]) -> None:
        """CreateEvent with a kept turn's human and AI text messages (tool calls and empty texts left out); one event
        per 100 messages (CreateEvent's bound on payloads)."""
        payloads = turn_payloads(messages)
        for start in range(0, len(payloads), MAX_PAYLOADS):
            self.client.create_event(memoryId=self.memory_id, actorId=actor_id, sessionId=session_id,
                                     eventTimestamp=datetime.now(UTC), payload=payloads[start:start + MAX_PAYLOADS])

    async def arecord_turn(self, actor_id: str, session_id: str, messages: Sequence[BaseMessage]) -> None:
        """`record_turn` on a thread (boto3 blocks)."""
        await asyncio.to_thread(self.record_turn, actor_id, session_id, list(messages))

    # Namespaces ↔ the service's strings, under the root.
    def path(self, namespace: tuple[str, ...]) -> str:
        return namespace_path((*self.root, *namespace))

    def _record(self, summary: dict[str, Any]) -> Record | None:
        """A record summary as a Record, or None if its namespace is not under the root."""
        paths = summary.get("namespaces") or ["/"]
        full = namespace_of(paths[0])
        if full[:len(self.root)] != self.root:
            return None
        text = (summary.get("content") or {}).get("text", "")
        created = summary.get("createdAt") or datetime.now(UTC)
        ours = _ours(text)
        key, value = ours if ours else (summary["memoryRecordId"],
                                        {"text": text, "strategy_id": summary.get("memoryStrategyId")})
        # `timestamp` is the time of what the record holds (ours: the last put); `createdAt` the service's own, a
        # little after a first put's.
        updated = max(created, summary.get("timestamp") or created)
        return Record(record_id=summary["memoryRecordId"], path=paths[0], namespace=full[len(self.root):], key=key,
                      value=value, created_at=created, updated_at=updated, score=summary.get("score"))

    # Reads
    def records(self, namespace: tuple[str, ...], *, exact: bool) -> Iterator[Record]:
        """Every record in `namespace` (exact) or under it, in the service's order, page by page."""
        where = {"namespace" if exact else "namespacePath": self.path(namespace)}
        summaries = self._pages("list_memory_records", memoryId=self.memory_id, maxResults=PAGE, **where)
        yield from self._under(summaries, namespace, exact)

    def _pages(self, method: str, **params: Any) -> Iterator[dict[str, Any]]:
        call = getattr(self.client, method)
        while True:
            page = call(**params)
            yield from page.get("memoryRecordSummaries", [])
            if not page.get("nextToken"):
                return
            params["nextToken"] = page["nextToken"]

    def _under(self, summaries: Iterable[dict[str, Any]], namespace: tuple[str, ...],
               exact: bool) -> Iterator[Record]:
        for summary in summaries:
            record = self._record(summary)
            if record is None:
                continue
            if record.namespace == namespace or (not exact and record.namespace[:len(namespace)] == namespace):
                yield record

    def _search(self, op: SearchOp) -> list[SearchItem]:
        if op.limit <= 0:
            return []
        wanted = op.offset + op.limit
        if op.query:
            # Without a filter the service's own top offset + limit are the answer; with one, its top 100 are read.
            top_k = min(TOP_K, TOP_K if op.filter else wanted)
            criteria = {"searchQuery": op.query[:MAX_QUERY], "topK": top_k}
            summaries = self._pages("retrieve_memory_records", memoryId=self.memory_id, maxResults=min(PAGE, top_k),
                                    namespacePath=self.path(op.namespace_prefix), searchCriteria=criteria)
            found: Iterable[Record] = self._under(summaries, op.namespace_prefix, exact=False)
        else:
            found = self.records(op.namespace_prefix, exact=False)
        matched: list[Record] = []
        for record in found:
            if _matches(record.value, op.filter):
                matched.append(record)
                if len(matched) == wanted:
                    break
        return [record.search_item() for record in matched[op.offset:wanted]]

    def _list_namespaces(self, op: ListNamespacesOp) -> list[tuple[str, ...]]:
        # No API lists namespaces: the records under the conditions' literal prefix are read, their namespaces kept.
        conditions = op.match_conditions or ()
        prefix: tuple[str, ...] = ()
        for condition in conditions:
            if condition.match_type == "prefix":
                literal = tuple(condition.path)
                prefix = literal[:literal.index("*")] if "*" in literal else literal
        probe = InMemoryStore()
        for namespace in {record.namespace for record in self.records(prefix, exact=False)}:
            probe.put(namespace, "-", {})
        listed = probe.batch([op])[0]
        assert isinstance(listed, list)
        return listed  # type: ignore[return-value]  # a ListNamespacesOp's result: namespaces

    # Writes
    def _write(self, writes: Iterable[PutOp], reads: _Reads) -> None:
        now = datetime.now(UTC)
        creates: list[dict[str, Any]] = []
        updates: list[dict[str, Any]] = []
        deletes: list[dict[str, Any]] = []
        for op in writes:
            existing = reads.of_key(op.namespace, op.key)
            if op.value is not None and existing:
                newest, *stale = existing
                updates.append({"memoryRecordId": newest.record_id, "timestamp": now, "sourceNamespaces": [newest.path],
                                "content": {"text": item_text(op.key, dict(op.value))}})
                existing = stale
            elif op.value is not None:
                creates.append({"requestIdentifier": f"r{len(creates)}", "namespaces": [self.path(op.namespace)],
                                "content": {"text": item_text(op.key, dict(op.value))}, "timestamp": now})
            deletes += [{"memoryRecordId": record.record_id, "namespace": record.path} for record in existing]
        # Deletes first, creates last: a failure part-way leaves a key missing, never two values for it.
        self._send("batch_delete_memory_records", deletes)
        self._send("batch_update_memory_records", updates)
        self._send("batch_create_memory_records", creates)

    def _send(self, method: str, records: list[dict[str, Any]]) -> None:
        for start in range(0, len(records), BATCH):
            response = getattr(self.client, method)(memoryId=self.memory_id, records=records[start:start + BATCH])
            if response.get("failedRecords"):
                raise _refused(method, response["failedRecords"])


class _Reads:
    """One batch's reads of exact namespaces, each read once: its gets, then its writes, find keys in them."""

    def __init__(self, store: AgentCoreMemories) -> None:
        self.store = store
        self._keys: dict[tuple[str, ...], dict[str, list[Record]]] = {}

    def of_key(self, namespace: tuple[str, ...], key: str) -> list[Record]:
        """The key's records, newest first."""
        if namespace not in self._keys:
            keys: dict[str, list[Record]] = defaultdict(list)
            for record in self.store.records(namespace, exact=True):
                keys[record.key].append(record)
            for records in keys.values():
                records.sort(key=lambda record: record.updated_at, reverse=True)
            self._keys[namespace] = keys
        return list(self._keys[namespace].get(key, ()))

    def get(self, namespace: tuple[str, ...], key: str) -> Item | None:
        records = self.of_key(namespace, key)
        return records[0].item() if records else None


def _matches(value: dict[str, Any], conditions: dict[str, Any] | None) -> bool:
    if not conditions:
        return True
    probe = InMemoryStore()  # ~20 µs, beside a network call per page of records
    probe.put(("probe",), "-", value)
    return bool(probe.search(("probe",), filter=conditions))


def _check_namespace(op: Op) -> None:
    """LangGraph's label rules, and no '/' (it separates the labels of the service's namespace strings)."""
    validate_op_namespace(op)
    for namespace in _namespaces(op):
        if any("/" in label for label in namespace):
            raise InvalidNamespaceError(f"namespace labels cannot contain '/': {namespace}")


def _namespaces(op: Op) -> list[tuple[str, ...]]:
    if isinstance(op, GetOp | PutOp):
        return [op.namespace]
    if isinstance(op, SearchOp):
        return [op.namespace_prefix]
    if isinstance(op, ListNamespacesOp):
        return [tuple(condition.path) for condition in op.match_conditions or ()]
    return []


def _refused(method: str, failed: list[dict[str, Any]]) -> ClientError:
    """A record a batch call refused (the call itself succeeded) as the ClientError the service would raise for it;
    its errorCode is an HTTP status: 429 is throttling, other 4xx the request's fault, anything else the service's."""
    first = failed[0]
    status = int(first.get("errorCode") or 500)
    code = ("ThrottledException" if status == 429 else "ValidationException" if 400 <= status < 500
            else "ServiceException")
    operation = "".join(part.title() for part in method.split("_"))
    message = f"{len(failed)} record(s) refused; first {first.get('memoryRecordId')}: {first.get('errorMessage')}"
    return ClientError({"Error": {"Code": code, "Message": message},
                        "ResponseMetadata": {"HTTPStatusCode": status}}, operation)


def turn_payloads(messages: Sequence[BaseMessage]) -> list[dict[str, Any]]:
    """A turn's human and AI text messages as CreateEvent's conversational payloads (texts cut at the service's
    100,000 characters)."""
    # langgraph-checkpoint-aws's converter: the roles and texts its own AgentCore store writes.
    from langgraph_checkpoint_aws.checkpoint.agentcore.helpers import (  # type: ignore[import-untyped]
        convert_langchain_messages_to_event_messages)

    said = [message for message in messages if message.type in ("human", "ai")]
    return [{"conversational": {"content": {"text": text[:MAX_EVENT_TEXT]}, "role": role}}
            for text, role in convert_langchain_messages_to_event_messages(said)]
