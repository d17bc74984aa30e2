"""A local stand-in of AgentCore Memory's data plane (`bedrock-agentcore`) for long-term memory, in memory.

Why it exists: moto (5.2.5) implements only CreateEvent, GetEvent, ListEvents and DeleteEvent of bedrock-agentcore —
no memory records — and AgentCoreMemories (bedrock/store/agentcore_memories.py) is made of memory records.

    with AgentCoreMemoryStandIn() as standin:
        memory_id = standin.create_memory()
        client = boto3.client("bedrock-agentcore", endpoint_url=standin.url, region_name="us-east-1")

It speaks botocore's rest-json protocol as botocore's own service model says, for CreateEvent, ListEvents,
BatchCreateMemoryRecords, BatchUpdateMemoryRecords, BatchDeleteMemoryRecords, ListMemoryRecords,
RetrieveMemoryRecords, GetMemoryRecord and DeleteMemoryRecord: each operation's route (method, requestUri), its
status, its input checked against the model's shapes (required members, types, lengths, ranges, enums, patterns —
matched whole — and unions), errors as the model's shapes (`x-amzn-ErrorType`; ResourceNotFoundException 404 for an
unknown memory or record, ValidationException 400 with `reason` and `fieldList`). A record a batch call cannot
write (an unknown id) is a `failedRecords` entry with errorCode 404, as the service reports one.

What it models and how:
- Namespaces: `namespace` is an exact match, `namespacePath` a string prefix (AWS's namespace guide has namespaces
  end in "/" because a prefix search for `/alice` also reaches `/alice2/`; so it does here).
- RetrieveMemoryRecords ranks by word overlap with the query (the share of the query's words in the record's text):
  a stand-in for AgentCore's embeddings, so records sharing no word with the query are not returned.
- Strategies: each memory has extractors (by default one PreferenceExtractor, a stand-in for a user-preference
  strategy). On CreateEvent with conversational payloads (and no `extractionMode: SKIP`) each adds records for the
  USER messages it picks. AgentCore extracts asynchronously, some time after the events; here it happens before
  CreateEvent returns, so a test reads the records at once.
- ListMemoryRecords lists newest first (record timestamp, then creation); ListEvents in the order written (as moto).
  Pages: `nextToken` is the next offset. metadataFilters are refused (400): nothing here uses them.
"""

from __future__ import annotations

import json
import re
import threading
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import botocore.session
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from bedrock.offline.background import BackgroundServer

SERVICE = botocore.session.get_session().get_service_model("bedrock-agentcore")
DEFAULT_PAGE = 20  # maxResults when a request gives none (the service model's documented default)
DEFAULT_TOP_K = 10  # RetrieveMemoryRecords topK when none is given
_WORD = re.compile(r"\w+")


class ServiceError(Exception):
    """An error shape of the model: its code, status and body fields."""

    def __init__(self, code: str, message: str, **fields: Any) -> None:
        super().__init__(message)
        self.code = code
        self.status = SERVICE.shape_for(code).metadata["error"]["httpStatusCode"]
        self.body = {"message": message, **fields}


def invalid(message: str, fields: Iterable[tuple[str, str]] = ()) -> ServiceError:
    field_list = [{"name": name, "message": text} for name, text in fields]
    return ServiceError("ValidationException", message, reason="FieldValidationFailed", fieldList=field_list)


# Input checked against the model's shapes (botocore checks types and minimums on the client, never maximums or
# patterns; the service checks all of them, and so does this).
def violations(shape: Any, value: Any, name: str) -> list[tuple[str, str]]:
    """What in `value` breaks `shape`'s constraints, as (member path, reason) pairs."""
    kind = shape.type_name
    if kind == "structure":
        return _structure_violations(shape, value, name)
    if kind == "list":
        if not isinstance(value, list):
            return [(name, "must be a list")]
        found = _range(shape, len(value), name, "items")
        for index, member in enumerate(value):
            found += violations(shape.member, member, f"{name}[{index}]")
        return found
    if kind == "map":
        if not isinstance(value, dict):
            return [(name, "must be an object")]
        found = _range(shape, len(value), name, "entries")
        for key, member in value.items():
            found += violations(shape.key, key, f"{name}.<key>") + violations(shape.value, member, f"{name}.{key}")
        return found
    if kind == "string":
        return _string_violations(shape, value, name)
    if kind in ("integer", "long"):
        ok = isinstance(value, int) and not isinstance(value, bool)
        return _range(shape, value, name, "") if ok else [(name, "must be an integer")]
    if kind in ("double", "float"):
        ok = isinstance(value, int | float) and not isinstance(value, bool)
        return [] if ok else [(name, "must be a number")]
    if kind == "boolean":
        return [] if isinstance(value, bool) else [(name, "must be a boolean")]
    if kind == "timestamp":
        ok = isinstance(value, int | float | str) and not isinstance(value, bool)
        return [] if ok else [(name, "must be a timestamp")]
    return []


def _structure_violations(shape: Any, value: Any, name: str) -> list[tuple[str, str]]:
    if getattr(shape, "is_document_type", False):
        return []  # a document is any JSON value (a string too: the owners' records and the saver's blobs are)
    if not isinstance(value, dict):
        return [(name, "must be an object")]
    found = [(f"{name}.{member}", "is required") for member in shape.required_members if member not in value]
    for member, given in value.items():
        if member not in shape.members:
            found.append((f"{name}.{member}", "is not a member"))
        else:
            found += violations(shape.members[member], given, f"{name}.{member}")
    if shape.metadata.get("union") and len(value) != 1:
        found.append((name, "must set exactly one member"))
    return found


def _string_violations(shape: Any, value: Any, name: str) -> list[tuple[str, str]]:
    if not isinstance(value, str):
        return [(name, "must be a string")]
    found = _range(shape, len(value), name, "characters")
    if shape.enum and value not in shape.enum:
        found.append((name, f"must be one of {shape.enum}"))
    pattern = shape.metadata.get("pattern")
    if pattern and re.fullmatch(pattern, value) is None:
        found.append((name, f"must match {pattern}"))
    return found


def _range(shape: Any, size: int, name: str, unit: str) -> list[tuple[str, str]]:
    low, high = shape.metadata.get("min"), shape.metadata.get("max")
    if low is not None and size < low:
        return [(name, f"must be at least {low} {unit}".rstrip())]
    if high is not None and size > high:
        return [(name, f"must be at most {high} {unit}".rstrip())]
    return []


# The memories' contents.
def epoch(when: datetime) -> float:
    return when.timestamp()


def when_of(value: float | str | None) -> datetime:
    """A timestamp of a request (rest-json sends epoch seconds)."""
    if value is None:
        return datetime.now(UTC)
    if isinstance(value, str):
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    return datetime.fromtimestamp(value, UTC)


@dataclass
class StoredRecord:
    record_id: str
    namespace: str
    text: str
    created_at: datetime
    timestamp: datetime
    strategy_id: str | None = None
    metadata: dict[str, Any] | None = None

    def summary(self, score: float | None = None) -> dict[str, Any]:
        shown: dict[str, Any] = {"memoryRecordId": self.record_id, "content": {"text": self.text},
                                 "namespaces": [self.namespace], "createdAt": epoch(self.created_at),
                                 "timestamp": epoch(self.timestamp)}
        if self.strategy_id is not None:
            shown["memoryStrategyId"] = self.strategy_id
        if self.metadata:
            shown["metadata"] = self.metadata
        if score is not None:
            shown["score"] = score
        return shown


@dataclass(frozen=True)
class PreferenceExtractor:
    """A stand-in for a user-preference strategy: a USER message starting with one of `triggers` (any case) becomes
    a record of that text under `namespace` ({actorId}, {sessionId} and {memoryStrategyId} filled in)."""

    strategy_id: str = "preferences-standin"
    namespace: str = "/users/{actorId}/preferences/"  # the starter toolkit's STM_AND_LTM preference namespace
    triggers: tuple[str, ...] = ("i prefer", "remember that")

    def __call__(self, actor_id: str, session_id: str, messages: list[tuple[str, str]]) -> list[tuple[str, str]]:
        """(namespace, text) of the records extracted from an event's (role, text) messages."""
        where = self.namespace.format(actorId=actor_id, sessionId=session_id, memoryStrategyId=self.strategy_id)
        return [(where, text) for role, text in messages
                if role == "USER" and text.strip().lower().startswith(self.triggers)]


Extractor = Callable[[str, str, list[tuple[str, str]]], list[tuple[str, str]]]


@dataclass
class Memory:
    extractors: list[tuple[str, Extractor]]  # (strategy id, extractor)
    records: dict[str, StoredRecord] = field(default_factory=dict)
    events: dict[tuple[str, str], list[dict[str, Any]]] = field(default_factory=dict)

    def add(self, namespace: str, text: str, strategy_id: str | None = None, when: datetime | None = None,
            metadata: dict[str, Any] | None = None) -> StoredRecord:
        now = datetime.now(UTC)
        record = StoredRecord(f"mem-{uuid.uuid4()}", namespace, text, now, when or now, strategy_id, metadata)
        self.records[record.record_id] = record
        return record


class AgentCoreMemoryStandIn:
    """The stand-in's memories and its server. `create_memory()` makes a memory (its extractors: a
    PreferenceExtractor unless given); `start()`/`stop()` or `with`; `url` is boto3's `endpoint_url`."""

    def __init__(self) -> None:
        self.memories: dict[str, Memory] = {}
        self.lock = threading.Lock()  # requests run on the server's thread; tests read and seed from theirs
        self.calls: list[str] = []  # operation names, in the order served
        self.server = BackgroundServer(self.app())
        self.url = ""

    def create_memory(self, memory_id: str | None = None,
                      extractors: Iterable[Extractor] | None = None) -> str:
        memory_id = memory_id or f"standin-{uuid.uuid4().hex[:10]}"
        chosen = [PreferenceExtractor()] if extractors is None else list(extractors)
        pairs = [(getattr(extractor, "strategy_id", f"strategy-{index}"), extractor)
                 for index, extractor in enumerate(chosen)]
        with self.lock:
            self.memories[memory_id] = Memory(pairs)
        return memory_id

    def start(self) -> str:
        self.url = self.server.start()
        return self.url

    def stop(self) -> None:
        self.server.stop()

    def __enter__(self) -> AgentCoreMemoryStandIn:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # HTTP: one route per operation, as the model's `http` trait has it.
    def app(self) -> Starlette:
        routes = []
        for name, handler in self._handlers().items():
            operation = SERVICE.operation_model(name)
            # An actor id may hold '/' (ActorId's pattern), which the request path carries percent-decoded.
            path = operation.http["requestUri"].replace("{actorId}", "{actorId:path}")
            routes.append(Route(path, self._endpoint(operation, handler), methods=[operation.http["method"]]))
        return Starlette(routes=routes)

    def _handlers(self) -> dict[str, Callable[[Memory, dict[str, Any]], dict[str, Any]]]:
        return {
            "CreateEvent": self.create_event, "ListEvents": self.list_events,
            "BatchCreateMemoryRecords": self.batch_create, "BatchUpdateMemoryRecords": self.batch_update,
            "BatchDeleteMemoryRecords": self.batch_delete, "ListMemoryRecords": self.list_records,
            "RetrieveMemoryRecords": self.retrieve_records, "GetMemoryRecord": self.get_record,
            "DeleteMemoryRecord": self.delete_record,
        }

    def _endpoint(self, operation: Any, handler: Callable[[Memory, dict[str, Any]], dict[str, Any]]) -> Any:
        async def endpoint(request: Request) -> Response:
            try:
                params = await _input(operation, request)
                with self.lock:
                    self.calls.append(operation.name)
                    memory = self.memories.get(params["memoryId"])
                    if memory is None:
                        raise ServiceError("ResourceNotFoundException", f"Memory {params['memoryId']} not found")
                    output = handler(memory, params)
            except ServiceError as error:
                return JSONResponse(error.body, status_code=error.status, headers={"x-amzn-ErrorType": error.code})
            return JSONResponse(output, status_code=operation.http.get("responseCode", 200))

        return endpoint

    # Events
    def create_event(self, memory: Memory, params: dict[str, Any]) -> dict[str, Any]:
        when = when_of(params["eventTimestamp"])
        event = {"memoryId": params["memoryId"], "actorId": params["actorId"],
                 "sessionId": params.get("sessionId") or "default", "eventTimestamp": epoch(when),
                 "eventId": f"{int(when.timestamp() * 1000)}#{uuid.uuid4().hex[:16]}", "payload": params["payload"]}
        memory.events.setdefault((event["actorId"], event["sessionId"]), []).append(event)
        if params.get("extractionMode") != "SKIP":
            self._extract(memory, event)
        return {"event": event}

    def _extract(self, memory: Memory, event: dict[str, Any]) -> None:
        said = [(item["conversational"]["role"], item["conversational"]["content"].get("text", ""))
                for item in event["payload"] if "conversational" in item]
        if not said:
            return
        for strategy_id, extractor in memory.extractors:
            for namespace, text in extractor(event["actorId"], event["sessionId"], said):
                memory.add(namespace, text, strategy_id)

    def list_events(self, memory: Memory, params: dict[str, Any]) -> dict[str, Any]:
        if params.get("filter"):
            raise invalid("the stand-in does not filter events")
        events = memory.events.get((params["actorId"], params["sessionId"]), [])
        if params.get("includePayloads") is False:
            events = [{k: v for k, v in event.items() if k != "payload"} for event in events]
        page, token = _page(events, params)
        return {"events": page, **token}

    # Records
    def batch_create(self, memory: Memory, params: dict[str, Any]) -> dict[str, Any]:
        done = []
        for given in params["records"]:
            record = memory.add(given["namespaces"][0] if given["namespaces"] else "/", given["content"]["text"],
                                given.get("memoryStrategyId"), when_of(given["timestamp"]), given.get("metadata"))
            done.append({"memoryRecordId": record.record_id, "status": "SUCCEEDED",
                         "requestIdentifier": given["requestIdentifier"]})
        return {"successfulRecords": done, "failedRecords": []}

    def batch_update(self, memory: Memory, params: dict[str, Any]) -> dict[str, Any]:
        done, failed = [], []
        for given in params["records"]:
            record = memory.records.get(given["memoryRecordId"])
            if record is None:
                failed.append(_missing(given["memoryRecordId"]))
                continue
            record.timestamp = when_of(given["timestamp"])
            if "content" in given:
                record.text = given["content"]["text"]
            if given.get("namespaces"):
                record.namespace = given["namespaces"][0]
            record.strategy_id = given.get("memoryStrategyId", record.strategy_id)
            record.metadata = given.get("metadata", record.metadata)
            done.append({"memoryRecordId": record.record_id, "status": "SUCCEEDED"})
        return {"successfulRecords": done, "failedRecords": failed}

    def batch_delete(self, memory: Memory, params: dict[str, Any]) -> dict[str, Any]:
        done, failed = [], []
        for given in params["records"]:
            if memory.records.pop(given["memoryRecordId"], None) is None:
                failed.append(_missing(given["memoryRecordId"]))
            else:
                done.append({"memoryRecordId": given["memoryRecordId"], "status": "SUCCEEDED"})
        return {"successfulRecords": done, "failedRecords": failed}

    def list_records(self, memory: Memory, params: dict[str, Any]) -> dict[str, Any]:
        if params.get("metadataFilters"):
            raise invalid("the stand-in does not filter on metadata")
        found = _in_namespace(memory, params, params.get("memoryStrategyId"))
        found.sort(key=lambda record: (record.timestamp, record.created_at, record.record_id), reverse=True)
        page, token = _page([record.summary() for record in found], params)
        return {"memoryRecordSummaries": page, **token}

    def retrieve_records(self, memory: Memory, params: dict[str, Any]) -> dict[str, Any]:
        criteria = params["searchCriteria"]
        if criteria.get("metadataFilters"):
            raise invalid("the stand-in does not filter on metadata")
        query = set(_WORD.findall(criteria["searchQuery"].lower()))
        scored = [(overlap(query, record.text), record)
                  for record in _in_namespace(memory, params, criteria.get("memoryStrategyId"))]
        scored = [pair for pair in scored if pair[0] > 0]
        scored.sort(key=lambda pair: (pair[0], pair[1].timestamp, pair[1].record_id), reverse=True)
        top = scored[:criteria.get("topK", DEFAULT_TOP_K)]
        page, token = _page([record.summary(score) for score, record in top], params)
        return {"memoryRecordSummaries": page, **token}

    def get_record(self, memory: Memory, params: dict[str, Any]) -> dict[str, Any]:
        record = memory.records.get(params["memoryRecordId"])
        if record is None:
            raise ServiceError("ResourceNotFoundException", f"Memory record {params['memoryRecordId']} not found")
        return {"memoryRecord": record.summary()}

    def delete_record(self, memory: Memory, params: dict[str, Any]) -> dict[str, Any]:
        if memory.records.pop(params["memoryRecordId"], None) is None:
            raise ServiceError("ResourceNotFoundException", f"Memory record {params['memoryRecordId']} not found")
        return {"memoryRecordId": params["memoryRecordId"]}


def overlap(query: set[str], text: str) -> float:
    """The share of the query's words in `text`: the stand-in's relevance score (AgentCore's is embedding
    similarity)."""
    return len(query & set(_WORD.findall(text.lower()))) / len(query) if query else 0.0


async def _input(operation: Any, request: Request) -> dict[str, Any]:
    """The operation's input from the request (path, query string, JSON body), checked against its shape."""
    shape = operation.input_shape
    params: dict[str, Any] = {}
    raw = await request.body()
    if raw:
        try:
            params = json.loads(raw)
        except ValueError as error:
            raise ServiceError("ValidationException", f"body is not JSON: {error}", reason="CannotParse") from None
    for name, member in shape.members.items():
        where, wire = member.serialization.get("location"), member.serialization.get("name", name)
        if where == "uri":
            params[name] = request.path_params[wire]
        elif where == "querystring" and wire in request.query_params:
            params[name] = request.query_params[wire]
    found = violations(shape, params, shape.name)
    if found:
        raise invalid(f"{len(found)} validation error(s): {found[0][0]} {found[0][1]}", found)
    return params


def _in_namespace(memory: Memory, params: dict[str, Any], strategy_id: str | None) -> list[StoredRecord]:
    exact, path = params.get("namespace"), params.get("namespacePath")
    if (exact is None) == (path is None):
        raise invalid("Either namespace or namespacePath is required", [("namespace", "one of the two is required")])
    return [record for record in memory.records.values()
            if (record.namespace == exact if exact is not None else record.namespace.startswith(path or ""))
            and (strategy_id is None or record.strategy_id == strategy_id)]


def _page(items: list[Any], params: dict[str, Any]) -> tuple[list[Any], dict[str, str]]:
    token = params.get("nextToken") or "0"
    if not token.isdigit():
        raise invalid("nextToken is not one this service gave", [("nextToken", "unknown token")])
    start = int(token)
    end = start + params.get("maxResults", DEFAULT_PAGE)
    return items[start:end], ({"nextToken": str(end)} if end < len(items) else {})


def _missing(record_id: str) -> dict[str, Any]:
    return {"memoryRecordId": record_id, "status": "FAILED", "errorCode": 404,
            "errorMessage": f"Memory record {record_id} not found"}
