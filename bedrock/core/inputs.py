"""What a run gives a graph, checked against the graph before anything runs: its input (`prompt` as a human message,
or the request's `input`), its runtime `context` (the graph's context_schema), and `preferences` (the built-in
agent's alone). Every mismatch is a PayloadError (400 `invalid_payload`) naming the field."""

from __future__ import annotations

from functools import cached_property
from typing import Any, get_type_hints

from langchain_core.messages import convert_to_messages
from langgraph.graph.state import CompiledStateGraph
from pydantic import PydanticUserError, TypeAdapter, ValidationError

from bedrock.errors import PayloadError
from bedrock.wire.request import RunRequest


def _refusal(details: list[dict[str, str]]) -> PayloadError:
    summary = "; ".join(f"{d['field']}: {d['message']}" for d in details)
    return PayloadError(f"invalid payload: {summary}", details)


def _details(error: ValidationError, field: str, skip_missing: bool = False) -> list[dict[str, str]]:
    details = []
    for problem in error.errors():
        if skip_missing and problem["type"] == "missing":
            continue  # an input updates the state: it need not name every key
        where = [str(part) for part in problem["loc"] if part != "root"]
        details.append({"field": ".".join([field, *where]), "message": problem["msg"]})
    return details


def _adapter(schema: Any) -> TypeAdapter[Any] | None:
    try:
        return TypeAdapter(schema)
    except PydanticUserError:  # e.g. a `typing.TypedDict` on Python 3.11, which pydantic does not read
        return None


class GraphInputs:
    """A graph's input and context schemas, read once, and the checks of a run against them."""

    def __init__(self, graph: CompiledStateGraph, built_in: bool = True) -> None:
        self.graph = graph
        self.built_in = built_in

    @cached_property
    def _fields(self) -> frozenset[str]:
        try:
            return frozenset(self.graph.get_input_jsonschema().get("properties", {}))
        except PydanticUserError:  # a schema pydantic cannot read: its annotated keys (as LangGraph's channels are)
            return frozenset(get_type_hints(self.graph.builder.input_schema))

    @cached_property
    def _context(self) -> TypeAdapter[Any] | None:
        schema = getattr(self.graph, "context_schema", None)
        return _adapter(schema) if schema is not None else None

    @cached_property
    def _input(self) -> Any:
        """The graph's input model, or None where pydantic cannot make one (a `typing.TypedDict` on Python 3.11)."""
        try:
            model = self.graph.get_input_schema()
            model.model_json_schema()  # builds its validator now: a schema pydantic refuses fails here, once
            return model
        except PydanticUserError:
            return None

    def prepare(self) -> None:
        """Read the input's fields now, which every request's check needs (~8 ms for the built-in agent's: pydantic
        makes its JSON schema), not on the first request: a new AgentCore session's first turn is the one its user
        waits for. The input and context validators are left to the requests that send `input` or `context`."""
        _ = self._fields

    def check(self, request: RunRequest) -> None:
        """PayloadError if the graph cannot take the request's prompt, input, context or preferences."""
        if request.resume is None:
            if request.input is not None:
                self._check_input(request.input)
            elif "messages" not in self._fields:
                raise _refusal([{"field": "prompt", "message": "this graph's input has no `messages`: send its "
                                 f"`input` ({', '.join(sorted(self._fields)) or 'no fields'})"}])
        if request.preferences and not self.built_in:
            raise _refusal([{"field": "preferences", "message": "only the built-in agent reads preferences: give "
                             "your graph `context` (its context_schema) instead"}])
        if request.context is not None:
            self.context(request)

    def _check_input(self, value: dict[str, Any]) -> None:
        details = [{"field": f"input.{key}", "message": "not a field of this graph's input"}
                   for key in value if key not in self._fields]
        if "messages" in value and "messages" in self._fields:
            raw = value["messages"]
            try:
                convert_to_messages(raw if isinstance(raw, list) else [raw])
            except Exception:
                details.append({"field": "input.messages", "message": "must be messages, e.g. "
                                "[{\"role\": \"user\", \"content\": \"…\"}]"})
        rest = {key: item for key, item in value.items() if key != "messages" and key in self._fields}
        if rest and self._input is not None:
            try:
                self._input.model_validate(rest)
            except ValidationError as error:
                details += _details(error, "input", skip_missing=True)
        if details:
            raise _refusal(details)

    def context(self, request: RunRequest) -> Any:
        """The request's `context` as the graph's context_schema makes it (None without one)."""
        if request.context is None:
            return None
        if getattr(self.graph, "context_schema", None) is None:
            raise _refusal([{"field": "context", "message": "this graph has no context_schema"}])
        adapter = self._context
        if adapter is None:  # a schema pydantic cannot read: the graph gets the object as sent
            return request.context
        try:
            return adapter.validate_python(request.context)
        except ValidationError as error:
            raise _refusal(_details(error, "context")) from None
