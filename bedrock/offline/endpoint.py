"""A local Bedrock Runtime–compatible endpoint (Converse and ConverseStream) in front of the offline rules, and
InvokeModel for Titan text embeddings v2 in front of the offline embeddings (`bedrock/offline/embeddings.py`).

`MODEL_PROVIDER=offline` points ChatBedrockConverse here, so offline runs and tests take the production
path — botocore signing, retries, event-stream decoding, usage — with only the endpoint swapped.
It is also scriptable, as the test fixture for that path: queue fixed replies (text, any number of tool calls),
HTTP errors, a stream that breaks mid-way or holds mid-way until a test lets it go on, replace the rules
altogether (`responder`), and read back every request it received (see `OfflineBedrockEndpoint`).
"""

from __future__ import annotations

import asyncio
import json
import re
import struct
import threading
import time
import zlib
from collections import deque
from collections.abc import AsyncIterator, Callable, Collection, Sequence
from dataclasses import dataclass
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from bedrock.offline import embeddings
from bedrock.offline.background import BackgroundServer
from bedrock.offline.rules import Reply, Turn, new_tool_call, reply_to, tokenize

__all__ = [
    "BreakStream", "ConverseValidationError", "Hold", "HttpError", "OfflineBedrockEndpoint", "Recorded", "Reply",
    "Responder", "Turn", "converse_usage", "event_frame", "exception_frame", "malformed_input", "new_tool_call",
    "offered_tools", "titan_embedding_violations", "turns_from_converse", "validate_converse",
]

EVENTSTREAM = "application/vnd.amazon.eventstream"


def encode_event(headers: dict[str, str], payload: bytes) -> bytes:
    """One AWS event-stream message (string headers only).

    Written by hand: botocore only decodes this framing, and no maintained library encodes it.
    Layout: total length, headers length, prelude CRC32, headers, payload, message CRC32.
    """
    encoded = b"".join(
        struct.pack(">B", len(name)) + name.encode() + b"\x07" + struct.pack(">H", len(value)) + value.encode()
        for name, value in headers.items()
    )
    total = 12 + len(encoded) + len(payload) + 4
    prelude = struct.pack(">II", total, len(encoded))
    message = prelude + struct.pack(">I", zlib.crc32(prelude)) + encoded + payload
    return message + struct.pack(">I", zlib.crc32(message))


def event_frame(event_type: str, body: dict[str, Any]) -> bytes:
    """A ConverseStream event (`messageStart`, `contentBlockDelta`, …)."""
    headers = {":event-type": event_type, ":content-type": "application/json", ":message-type": "event"}
    return encode_event(headers, json.dumps(body).encode())


def exception_frame(exception_type: str, message: str) -> bytes:
    """An in-stream exception (botocore raises it as EventStreamError)."""
    headers = {":exception-type": exception_type, ":content-type": "application/json", ":message-type": "exception"}
    return encode_event(headers, json.dumps({"message": message}).encode())


def turns_from_converse(body: dict[str, Any]) -> list[Turn]:
    """A Converse request body → Turns for the rules."""
    turns = [Turn("system", block["text"]) for block in body.get("system", []) if "text" in block]
    for message in body.get("messages", []):
        texts: list[str] = []
        calls: list[dict[str, Any]] = []
        for block in message.get("content", []):
            if "text" in block:
                texts.append(block["text"])
            elif "toolUse" in block:
                use = block["toolUse"]
                calls.append({"id": use["toolUseId"], "name": use["name"], "args": use.get("input", {})})
            elif "toolResult" in block:
                result = block["toolResult"]
                text = "".join(c.get("text", json.dumps(c.get("json"))) for c in result.get("content", []))
                turns.append(Turn("tool", text, is_error=result.get("status") == "error",
                                  tool_call_id=result.get("toolUseId")))
        if texts or calls:
            role = "assistant" if message["role"] == "assistant" else "user"
            turns.append(Turn(role, "".join(texts), tool_calls=calls))
    return turns


class ConverseValidationError(ValueError):
    """A request Bedrock's Converse API would refuse with ValidationException (HTTP 400)."""


def validate_converse(body: dict[str, Any]) -> None:
    """Refuse, as Converse does, a conversation the model cannot be given.

    The rules a stored history can break: it starts with a user message; roles alternate; each assistant
    `toolUse` is answered, id for id, by `toolResult` blocks in the next user message, and no `toolResult`
    answers a `toolUse` that was not made; no message is empty and no text block is blank. The messages
    follow Bedrock's own wording, so an offline run fails where a real one would.
    """
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise ConverseValidationError("The messages field is empty. Add at least one message and try again.")
    if messages[0].get("role") != "user":
        raise ConverseValidationError(
            "A conversation must start with a user message. "
            "Try again with a conversation that starts with a user message."
        )
    asked: list[str] = []  # toolUse ids of the previous assistant message, to be answered next
    for i, message in enumerate(messages):
        role, content = message.get("role"), message.get("content")
        if i and role == messages[i - 1].get("role"):
            raise ConverseValidationError(
                "A conversation must alternate between user and assistant roles. Make sure the conversation "
                "alternates between user and assistant roles and try again."
            )
        if not isinstance(content, list) or not content:
            raise ConverseValidationError(
                f"The content field in the Message object at messages.{i} is empty. Add a ContentBlock object to "
                "the content field and try again."
            )
        for j, block in enumerate(content):
            if "text" in block and not str(block["text"]).strip():
                raise ConverseValidationError(
                    f"The text field in the ContentBlock object at messages.{i}.content.{j} is blank. Add text to "
                    "the text field, and try again."
                )
        if role == "assistant":
            asked = [b["toolUse"]["toolUseId"] for b in content if "toolUse" in b]
            continue
        answered = [b["toolResult"]["toolUseId"] for b in content if "toolResult" in b]
        missing = [tool_use_id for tool_use_id in asked if tool_use_id not in answered]
        if missing:
            raise ConverseValidationError(
                f"Expected toolResult blocks at messages.{i}.content for the following Ids: {', '.join(missing)}"
            )
        if len(answered) > len(asked) or set(answered) - set(asked):
            raise ConverseValidationError(
                f"The number of toolResult blocks at messages.{i}.content exceeds the number of toolUse blocks "
                "of previous turn."
            )
        asked = []


def offered_tools(body: dict[str, Any]) -> set[str]:
    """The names of the tools a Converse request offers the model: `toolConfig.tools[].toolSpec.name`.

    Entries of other kinds (a `cachePoint`, a system tool) offer nothing the rules can call; no `toolConfig` (a
    model with no tools bound) offers none. Anything not shaped like Bedrock's request is skipped, not trusted.
    """
    config = body.get("toolConfig")
    tools = config.get("tools") if isinstance(config, dict) else None
    names = set()
    for tool in tools if isinstance(tools, list) else ():
        spec = tool.get("toolSpec") if isinstance(tool, dict) else None
        name = spec.get("name") if isinstance(spec, dict) else None
        if isinstance(name, str) and name:
            names.add(name)
    return names


# Titan text embeddings v2 (InvokeModel): its model ids (bare, versioned, or a foundation-model ARN), its request's
# fields, and its bounds (https://docs.aws.amazon.com/bedrock/latest/userguide/model-parameters-titan-embed-text.html).
TITAN_EMBED_V2 = re.compile(r"(^|/)amazon\.titan-embed-text-v2(:\d+)?$")
TITAN_FIELDS = ("inputText", "dimensions", "normalize", "embeddingTypes")
TITAN_DIMENSIONS = (256, 512, 1024)
TITAN_EMBEDDING_TYPES = ("float", "binary")
TITAN_MAX_CHARS = 50_000
INVALID_MODEL = "The provided model identifier is invalid."

# A JSON value's type as the schema validator behind Bedrock's "Malformed input request" messages names it (everit).
_JSON_TYPES = {str: "String", bool: "Boolean", int: "Integer", float: "BigDecimal", list: "JSONArray",
               dict: "JSONObject", type(None): "Null"}


def _json_type(value: Any) -> str:
    return _JSON_TYPES.get(type(value), type(value).__name__)


def _json_text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value)


def titan_embedding_violations(body: dict[str, Any]) -> list[str]:
    """What Titan text embeddings v2's request schema refuses in `body`, each in Bedrock's wording (e.g. "expected
    maxLength: 50000, actual: 52611"); none for a request it accepts."""
    violations = [] if "inputText" in body else ["required key [inputText] not found"]
    violations += [f"extraneous key [{key}] is not permitted" for key in body if key not in TITAN_FIELDS]
    text = body.get("inputText", "")
    if not isinstance(text, str):
        violations.append(f"expected type: String, found: {_json_type(text)}")
    elif "inputText" in body and not text:
        violations.append("expected minLength: 1, actual: 0")
    elif len(text) > TITAN_MAX_CHARS:
        violations.append(f"expected maxLength: {TITAN_MAX_CHARS}, actual: {len(text)}")
    dimensions = body.get("dimensions", TITAN_DIMENSIONS[-1])
    if type(dimensions) is not int or dimensions not in TITAN_DIMENSIONS:  # type(): True is not 1 here
        violations.append(f"{_json_text(dimensions)} is not a valid enum value")
    if not isinstance(body.get("normalize", True), bool):
        violations.append(f"expected type: Boolean, found: {_json_type(body['normalize'])}")
    types = body.get("embeddingTypes", ["float"])
    if not isinstance(types, list):
        violations.append(f"expected type: JSONArray, found: {_json_type(types)}")
    else:
        violations += [f"{_json_text(kind)} is not a valid enum value" for kind in types
                       if kind not in TITAN_EMBEDDING_TYPES]
    return violations


def malformed_input(violations: Sequence[str]) -> str:
    """InvokeModel's ValidationException message for a body its model's schema refuses: one violation is quoted,
    several are counted (as Bedrock answers, e.g. "Malformed input request: 2 schema violations found, …")."""
    what = violations[0] if len(violations) == 1 else f"{len(violations)} schema violations found"
    return f"Malformed input request: {what}, please reformat your input and try again."


@dataclass(frozen=True)
class HttpError:
    """Answer the next request with an AWS JSON error (e.g. 429 ThrottlingException)."""

    status: int
    code: str
    message: str = "scripted failure"


@dataclass(frozen=True)
class BreakStream:
    """Stream `after_tokens` text chunks of the reply, then an exception frame."""

    after_tokens: int
    exception_type: str = "modelStreamErrorException"
    message: str = "scripted stream failure"


@dataclass
class Hold:
    """Stream `after_tokens` text chunks of `reply`, then hold the rest until `until` is set (at most `timeout_s`).

    A causal test of streaming, with no clock in it: the client sets `until` when it sees a token, so a token
    that reached the client only after the model's stream ended would leave `released` False (the wait timed out).
    """

    reply: Reply
    after_tokens: int
    until: threading.Event
    timeout_s: float = 30.0
    released: bool | None = None  # set by the endpoint: True if `until` was set while it held


@dataclass(frozen=True)
class Recorded:
    """One request the endpoint received."""

    path: str
    model_id: str
    body: dict[str, Any]
    headers: dict[str, str]


Responder = Callable[[Sequence[Turn], Collection[str]], Reply]
"""The rules' signature: (the conversation as Turns, the names of the tools offered) → the Reply."""


class OfflineBedrockEndpoint:
    """Serves `POST /model/{modelId}/converse` and `/converse-stream` as Bedrock does; scriptable, and recording
    if asked; and `/invoke` for Titan text embeddings v2 (BedrockEmbeddings), unscripted. Its public API, for tests
    of any graph served on ChatBedrockConverse:

    - `start()` → itself, on 127.0.0.1 at a free port (`url`); `stop()`.
    - `then(*actions)`: the scripting hook. Each request takes the next action queued, in order: a `Reply`
      (text, tool calls, usage: served verbatim, tool calls whatever their names), an `HttpError`, a
      `BreakStream` or a `Hold`. Once the queue is empty, the `responder` answers. A request Converse would refuse
      (`validate_converse`) is refused first, and takes no action off the queue.
    - `responder`: the rules themselves, `(turns, offered tool names) → Reply`; `reply_to` (the offline rules,
      `bedrock/offline/rules.py`, with their `NAME({...})` convention) unless given.
    - `record(n)` (or `record=n`): keep the last n Converse requests (`requests`: path, model id, body, headers),
      usage reports (`usage_reported`) and InvokeModel requests (`invocations`, apart: a turn that recalls memories
      embeds between its model calls); 0, the default, keeps none, so a long-running `make run` does not grow.

    A test scripting the model's first answer (two parallel calls of the graph's own `lookup_order` tool), the
    rules answering the next request (they quote the tools' results)::

        endpoint = OfflineBedrockEndpoint(record=10).start()
        try:
            endpoint.then(Reply("Let me look.", tool_calls=[new_tool_call("lookup_order", {"order_id": "A1"}),
                                                            new_tool_call("lookup_order", {"order_id": "B2"})]))
            model = ChatBedrockConverse(model=DEFAULT_BEDROCK_MODEL_ID, endpoint_url=endpoint.url,
                                        region_name="us-east-1", aws_access_key_id="offline",
                                        aws_secret_access_key="offline")
            message = model.bind_tools([lookup_order]).invoke("Where are my orders?")
            assert [call["args"] for call in message.tool_calls] == [{"order_id": "A1"}, {"order_id": "B2"}]
            assert endpoint.requests[-1].body["toolConfig"]["tools"][0]["toolSpec"]["name"] == "lookup_order"
        finally:
            endpoint.stop()

    Likewise `endpoint.then(HttpError(429, "ThrottlingException"))` throttles the next request, and
    `endpoint.then(BreakStream(after_tokens=3))` breaks the next stream after three text chunks. (Any model id
    is served; but ChatBedrockConverse streams only for a provider it knows, e.g. `bedrock.config`'s
    `DEFAULT_BEDROCK_MODEL_ID`: for another id its `stream()` falls back to Converse.)

    InvokeModel answers Titan text embeddings v2 alone (`amazon.titan-embed-text-v2:0`, bare, versioned or as an ARN):
    `{"embedding", "inputTextTokenCount", "embeddingsByType"}` from `bedrock/offline/embeddings.py`, texts that share
    words near. Converse serves any model id because one request shape serves every model; InvokeModel's body is
    the model's own, so an id whose shape this endpoint does not know is refused as Bedrock refuses an unknown one
    (400 ValidationException, "The provided model identifier is invalid."), as is a body Titan's schema refuses
    (`titan_embedding_violations`). Invocations are recorded in `invocations`, and take nothing off the script.
    """

    def __init__(
        self,
        token_delay_ms: float = 0,
        responder: Responder = reply_to,
        *,
        record: int = 0,
    ) -> None:
        self.token_delay_s = token_delay_ms / 1000
        self.responder = responder
        self.requests: deque[Recorded]
        self.usage_reported: deque[dict[str, int]]
        self.invocations: deque[Recorded]
        self.record(record)
        self.script: deque[Reply | HttpError | BreakStream | Hold] = deque()
        self.app = Starlette(
            routes=[
                Route("/model/{model_id:path}/converse", self._converse, methods=["POST"]),
                Route("/model/{model_id:path}/converse-stream", self._converse_stream, methods=["POST"]),
                Route("/model/{model_id:path}/invoke", self._invoke, methods=["POST"]),
            ]
        )
        self._server = BackgroundServer(self.app)

    @property
    def url(self) -> str:
        return self._server.url

    def start(self) -> OfflineBedrockEndpoint:
        self._server.start()
        return self

    def stop(self) -> None:
        self._server.stop()

    def record(self, last: int) -> OfflineBedrockEndpoint:
        """Keep the `last` requests, usage reports and invocations from now on (0: keep none)."""
        self.requests = deque(maxlen=last)
        self.usage_reported = deque(maxlen=last)
        self.invocations = deque(maxlen=last)
        return self

    def then(self, *actions: Reply | HttpError | BreakStream | Hold) -> OfflineBedrockEndpoint:
        """Queue what the next requests get, in order (one action each); once the script is empty the responder
        answers. Returns the endpoint, so `OfflineBedrockEndpoint().start().then(...)` reads as one line."""
        self.script.extend(actions)
        return self

    async def _receive(self, request: Request) -> tuple[dict[str, Any], Reply | HttpError | BreakStream | Hold | None]:
        body = json.loads(await request.body())
        self._record(self.requests, request, body)
        try:
            validate_converse(body)
        except ConverseValidationError as invalid:
            return body, HttpError(400, "ValidationException", str(invalid))  # before any scripted action
        return body, self.script.popleft() if self.script else None

    @staticmethod
    def _record(log: deque[Recorded], request: Request, body: dict[str, Any]) -> None:
        if log.maxlen:
            log.append(Recorded(request.url.path, request.path_params["model_id"], body, dict(request.headers)))

    def _rules(self, body: dict[str, Any]) -> Reply:
        return self.responder(turns_from_converse(body), offered_tools(body))

    @staticmethod
    def _error(error: HttpError) -> Response:
        return JSONResponse(
            {"message": error.message}, status_code=error.status, headers={"x-amzn-ErrorType": error.code}
        )

    def _report(self, reply: Reply) -> dict[str, int]:
        usage = converse_usage(reply)
        if self.usage_reported.maxlen:
            self.usage_reported.append(usage)
        return usage

    async def _converse(self, request: Request) -> Response:
        started = time.perf_counter()
        body, action = await self._receive(request)
        if isinstance(action, HttpError):
            return self._error(action)
        # A Hold is for streams: a whole answer is sent at once.
        reply = action if isinstance(action, Reply) else action.reply if isinstance(action, Hold) else self._rules(body)
        if self.token_delay_s:  # a whole answer takes as long as streaming it would
            await asyncio.sleep(self.token_delay_s * max(0, len(tokenize(reply.text)) - 1))
        content: list[dict[str, Any]] = [{"text": reply.text}] if reply.text else []
        content += [{"toolUse": {"toolUseId": call["id"], "name": call["name"], "input": call["args"]}}
                    for call in reply.tool_calls]
        return JSONResponse(
            {
                "output": {"message": {"role": "assistant", "content": content}},
                "stopReason": "tool_use" if reply.tool_calls else "end_turn",
                "usage": self._report(reply),
                "metrics": {"latencyMs": int((time.perf_counter() - started) * 1000)},
            }
        )

    async def _converse_stream(self, request: Request) -> Response:
        body, action = await self._receive(request)
        if isinstance(action, HttpError):
            return self._error(action)
        hold = action if isinstance(action, Hold) else None
        reply = action if isinstance(action, Reply) else hold.reply if hold is not None else self._rules(body)
        breaks = action if isinstance(action, BreakStream) else None
        return StreamingResponse(self._frames(reply, breaks, hold), media_type=EVENTSTREAM)

    async def _frames(self, reply: Reply, breaks: BreakStream | None, hold: Hold | None = None) -> AsyncIterator[bytes]:
        started = time.perf_counter()
        yield event_frame("messageStart", {"role": "assistant"})
        for i, token in enumerate(tokenize(reply.text)):
            if breaks is not None and i == breaks.after_tokens:
                yield exception_frame(breaks.exception_type, breaks.message)
                return
            if hold is not None and i == hold.after_tokens:
                hold.released = await asyncio.to_thread(hold.until.wait, hold.timeout_s)
            if i and self.token_delay_s:
                await asyncio.sleep(self.token_delay_s)
            yield event_frame("contentBlockDelta", {"contentBlockIndex": 0, "delta": {"text": token}})
        if breaks is not None:
            yield exception_frame(breaks.exception_type, breaks.message)
            return
        if reply.text:
            yield event_frame("contentBlockStop", {"contentBlockIndex": 0})
        # Each call its own block, after the text's: a start naming it, its input as JSON text in pieces (as
        # Bedrock streams it: the client joins them before parsing), a stop.
        for index, call in enumerate(reply.tool_calls, start=1 if reply.text else 0):
            start = {"toolUse": {"toolUseId": call["id"], "name": call["name"]}}
            yield event_frame("contentBlockStart", {"contentBlockIndex": index, "start": start})
            for piece in tokenize(json.dumps(call["args"])):
                delta = {"toolUse": {"input": piece}}
                yield event_frame("contentBlockDelta", {"contentBlockIndex": index, "delta": delta})
            yield event_frame("contentBlockStop", {"contentBlockIndex": index})
        yield event_frame("messageStop", {"stopReason": "tool_use" if reply.tool_calls else "end_turn"})
        latency = int((time.perf_counter() - started) * 1000)
        yield event_frame("metadata", {"usage": self._report(reply), "metrics": {"latencyMs": latency}})

    async def _invoke(self, request: Request) -> Response:
        """InvokeModel, for Titan text embeddings v2: the model id first, then the body against Titan's schema."""
        started = time.perf_counter()
        try:
            body = json.loads(await request.body())
        except ValueError:  # not JSON, or not UTF-8
            body = None
        self._record(self.invocations, request, body if isinstance(body, dict) else {})
        if not TITAN_EMBED_V2.search(request.path_params["model_id"]):
            return self._error(HttpError(400, "ValidationException", INVALID_MODEL))
        if not isinstance(body, dict):
            return self._error(HttpError(400, "ValidationException",
                                         "Malformed input request, please reformat your input and try again."))
        violations = titan_embedding_violations(body)
        if violations:
            return self._error(HttpError(400, "ValidationException", malformed_input(violations)))
        text = body["inputText"]
        vector = embeddings.embed(text, body.get("dimensions", TITAN_DIMENSIONS[-1]), body.get("normalize", True))
        by_type = {kind: embeddings.binary(vector) if kind == "binary" else vector
                   for kind in body.get("embeddingTypes") or ["float"]}
        tokens = embeddings.count_tokens(text)
        # The headers Bedrock adds to an InvokeModel answer: the input's token count, the invocation's latency.
        headers = {"x-amzn-bedrock-input-token-count": str(tokens),
                   "x-amzn-bedrock-invocation-latency": str(int((time.perf_counter() - started) * 1000))}
        return JSONResponse({"embedding": vector, "inputTextTokenCount": tokens, "embeddingsByType": by_type},
                            headers=headers)


def converse_usage(reply: Reply) -> dict[str, int]:
    """A reply's token usage as Converse reports it (`inputTokens`, `outputTokens`, `totalTokens`)."""
    return {
        "inputTokens": reply.input_tokens,
        "outputTokens": reply.output_tokens,
        "totalTokens": reply.input_tokens + reply.output_tokens,
    }


if __name__ == "__main__":
    # A standalone endpoint, e.g. for benchmarks that keep the model out of the server's process:
    # `python -m bedrock.offline.endpoint` prints its URL; point AWS_ENDPOINT_URL_BEDROCK_RUNTIME at it.
    import threading

    from bedrock.config import Settings

    endpoint = OfflineBedrockEndpoint(Settings.from_env().offline_token_delay_ms).start()
    print(f"URL={endpoint.url}", flush=True)
    threading.Event().wait()
