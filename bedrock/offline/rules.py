"""The offline model: a deterministic, rule-based stand-in for an LLM (not an LLM).

Its rules are written once, over plain `Turn`s, so every front end (the local Bedrock-compatible endpoint,
`bedrock/offline/endpoint.py`; the test kit's scripted chat model) answers the same way:
- `NAME({...})` in the last user message, NAME one of the tools offered and `{...}` one JSON object (strict: no
  NaN or Infinity; at most MAX_ARGS_CHARS, nested at most MAX_ARGS_DEPTH deep) → a call of NAME with those
  arguments; several in one message → several calls in one reply, in order (parallel tool calls, as Bedrock returns
  them). `NAME()` calls it with no arguments. A NAME not offered is just text; arguments that are not one JSON
  object → a plain reply that says so, and no call at all;
- otherwise, arithmetic in the last user message → a real `calculator` tool call;
- after tool results → an answer that quotes each result in order ("The result of 2+2 is 4." for the
  calculator, "NAME returned: …" for any other tool, "NAME failed: …" for an error);
- "my name is X" → acknowledged; "what's my name?" → recalled from the conversation's history;
- with a `remember` tool offered: "remember that X" or "I prefer X" → a `remember` call with the fact; "what do you
  remember about me?" → the memories listed in the system prompt after a line that ends "you remember this about
  the user (…):" (the runtime's recall), or that there are none;
- anything else → a plain reply that says it is offline (and echoes any preferences it was given).
"""

from __future__ import annotations

import json
import math
import re
import secrets
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from typing import Any

CALCULATOR = "calculator"
MAX_ARGS_CHARS = 4096  # one call's arguments, as written in the message
# Arrays and objects within one another in one call's arguments. The same bound on every Python: 3.11's and 3.12's
# json stop near 1,000 levels (RecursionError), 3.13's parse all 4,000 that fit in MAX_ARGS_CHARS, and what then
# handles such arguments (checkpoint serialisation, pydantic) recurses. No tool's arguments need 64.
MAX_ARGS_DEPTH = 64
TOO_DEEP = f"nested too deeply: more than {MAX_ARGS_DEPTH} levels"
MAX_CALLS = 16  # tool calls in one message
# Runs of the characters arithmetic is written with. One greedy character class and nothing after it: it
# never backtracks. (The old `[-(\d][…]*[\d)]` did, from every start: 32,000 "(" took 6.6 s, holding the GIL.)
_ARITHMETIC_RUN = re.compile(r"[\d\s.+\-*/()%]+")
_STARTS = frozenset("-(0123456789")
_ENDS = frozenset(")0123456789")
_OPERATOR = re.compile(r"[\d)]\s*(\*\*|//|[+\-*/%])\s*[-(\d]")
# A tool's name as Bedrock allows it (`[a-zA-Z0-9_-]{1,64}`), from the start of a run of such characters only
# (the lookbehind), then "(": tried once per run, at most 64 characters back, so linear in the text too.
_CALL = re.compile(r"(?<![A-Za-z0-9_-])([A-Za-z0-9_-]{1,64})\(\s*")
_CLOSE = re.compile(r"\s*\)")
_MY_NAME_IS = re.compile(r"\bmy name is\s+([A-Za-z][\w'-]{0,63})", re.IGNORECASE)
_ASK_NAME = re.compile(r"\bwhat(?:'s|\s+is)\s+my\s+name\b|\bwho\s+am\s+i\b", re.IGNORECASE)
_TOKEN = re.compile(r"\S+\s*|\s+")
REMEMBER = "remember"
# Bounded repetitions only (a prompt is up to 32,000 characters): none of these backtracks beyond a sentence.
_REMEMBER_THAT = re.compile(r"^\s*(?:please\s+)?remember\s+(?:that\s+)?([^\n]{1,1000})", re.IGNORECASE)
_I_PREFER = re.compile(r"\bI\s+prefer\s+[^.!?\n]{1,1000}", re.IGNORECASE)
_ASK_MEMORIES = re.compile(r"\bwhat\s+do\s+you\s+(?:remember|know)\s+about\s+me\b", re.IGNORECASE)
_RECALLED = re.compile(r"you remember this about the user[^\n]*:\n((?:- [^\n]*\n?)+)")


def _normalized_calls(
    first: dict[str, Any] | None, calls: Sequence[dict[str, Any]]
) -> tuple[dict[str, Any] | None, tuple[dict[str, Any], ...]]:
    """(`tool_call`, `tool_calls`) made consistent: the first is always the list's first (or None)."""
    every = tuple(calls) or ((first,) if first else ())
    if first and calls and first != every[0]:
        raise ValueError("tool_call must be tool_calls[0] when both are given")
    return (every[0] if every else None), every


@dataclass(frozen=True)
class Turn:
    """One message as the rules see it."""

    role: str  # "system" | "user" | "assistant" | "tool"
    text: str = ""
    tool_call: dict[str, Any] | None = None  # assistant: its first call, {"id", "name", "args"} (see tool_calls)
    is_error: bool = False  # tool: the tool failed
    tool_calls: Sequence[dict[str, Any]] = ()  # assistant: every call, in order (a tuple)
    tool_call_id: str | None = None  # tool: the id of the call this result answers

    def __post_init__(self) -> None:
        first, calls = _normalized_calls(self.tool_call, self.tool_calls)
        object.__setattr__(self, "tool_call", first)
        object.__setattr__(self, "tool_calls", calls)


@dataclass(frozen=True)
class Reply:
    """What the offline model says: text, and any number of tool calls (in one assistant message).

    Each call is `{"id", "name", "args"}` (LangChain's ToolCall shape); one made without an "id" is given a fresh
    one (`tool_use_id()`). `tool_call` is the first call (or None): `Reply(text, call)` still makes a one-call
    reply, `Reply(text, tool_calls=[a, b])` a parallel one.
    """

    text: str
    tool_call: dict[str, Any] | None = None
    input_tokens: int = 0
    output_tokens: int = field(default=0)
    tool_calls: Sequence[dict[str, Any]] = ()  # every call, in order (a tuple)

    def __post_init__(self) -> None:
        _, calls = _normalized_calls(self.tool_call, self.tool_calls)
        calls = tuple(call if "id" in call else {"id": tool_use_id(), **call} for call in calls)
        object.__setattr__(self, "tool_call", calls[0] if calls else None)
        object.__setattr__(self, "tool_calls", calls)


def new_tool_call(name: str, args: dict[str, Any] | None = None) -> dict[str, Any]:
    """A tool call for a `Reply`, with a fresh Bedrock-like id: `Reply("", tool_calls=[new_tool_call("f", {})])`."""
    return {"id": tool_use_id(), "name": name, "args": dict(args or {})}


class ToolCallError(ValueError):
    """The message names an offered tool, but its call cannot be made (the text says why, to the user)."""


def _finite_float(literal: str) -> float:
    value = float(literal)
    if not math.isfinite(value):
        raise ValueError(f"{literal} is out of range for a JSON number")
    return value


def _no_constant(literal: str) -> Any:
    raise ValueError(f"{literal} is not JSON")


# Strict JSON: no NaN, Infinity or -Infinity, and no number past a double (1e400 would be inf).
_STRICT_JSON = json.JSONDecoder(parse_float=_finite_float, parse_constant=_no_constant)


def _malformed(name: str, reason: str) -> ToolCallError:
    return ToolCallError(
        f"I didn't call {name}: its arguments are not valid JSON ({reason}). Write them as one JSON object, "
        f'e.g. {name}({{"key": "value"}}).'
    )


def _why(error: Exception) -> str:
    if isinstance(error, json.JSONDecodeError):
        return f"{error.msg.removesuffix(' at')} at character {error.pos + 1}"  # "… starting at" names a place
    if isinstance(error, RecursionError):
        return TOO_DEEP
    return str(error)


def _arguments(text: str, start: int, name: str) -> tuple[dict[str, Any], int]:
    """The JSON object at `text[start]` ("{") and where it ends. At most MAX_ARGS_CHARS are parsed, plus once,
    when that fails (the caller then stops), the rest of the text to tell "too long" from "malformed"."""
    window = text[start:start + MAX_ARGS_CHARS]
    try:
        args, end = _STRICT_JSON.raw_decode(window)
    except (ValueError, RecursionError) as error:
        if _depth(window) > MAX_ARGS_DEPTH:
            raise _malformed(name, TOO_DEEP) from None
        if len(text) - start > MAX_ARGS_CHARS:
            try:
                _STRICT_JSON.raw_decode(text, start)
            except (ValueError, RecursionError):
                pass
            else:
                raise _malformed(name, f"longer than {MAX_ARGS_CHARS} characters") from None
        raise _malformed(name, _why(error)) from None
    if _depth(window[:end]) > MAX_ARGS_DEPTH:
        raise _malformed(name, TOO_DEEP)
    try:
        json.dumps(args, ensure_ascii=False).encode()
    except UnicodeEncodeError:
        raise _malformed(name, "a string holds a lone surrogate, which UTF-8 cannot carry") from None
    return args, start + end


def _depth(json_text: str) -> int:
    """How deep arrays and objects nest in `json_text` (whole, cut short, or malformed): its brackets outside strings.
    Hand-written: json reports no depth, and a cut text is not JSON to any parser. Linear, ≤ MAX_ARGS_CHARS."""
    depth = deepest = 0
    in_string = escaped = False
    for char in json_text:
        if in_string:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                in_string = False
        elif char == '"':
            in_string = True
        elif char in "[{":
            depth += 1
            deepest = max(deepest, depth)
        elif char in "]}":
            depth -= 1
    return deepest


def find_tool_calls(text: str, offered: Collection[str]) -> list[tuple[str, dict[str, Any]]]:
    """Every `NAME({...})` (or `NAME()`) in `text` whose NAME is in `offered`: (name, args), in order.

    A NAME not offered is not a call. Raises ToolCallError when an offered NAME's "(" is not followed by one strict
    JSON object (or ")") and then ")", or when there are more than MAX_CALLS calls. Linear in `text`: the scan
    never goes back, each object is parsed once, and the first failure ends it.
    """
    calls: list[tuple[str, dict[str, Any]]] = []
    pos = 0
    while match := _CALL.search(text, pos):
        name, pos = match.group(1), match.end()
        if name not in offered:
            continue
        if len(calls) == MAX_CALLS:
            raise ToolCallError(f"That is more than {MAX_CALLS} tool calls in one message: I make at most "
                                f"{MAX_CALLS} at a time.")
        if text.startswith(")", pos):
            calls.append((name, {}))
            pos += 1
            continue
        if not text.startswith("{", pos):
            raise _malformed(name, "the arguments must be one JSON object")
        args, pos = _arguments(text, pos, name)
        close = _CLOSE.match(text, pos)
        if close is None:
            raise _malformed(name, "expected ')' after the object")
        calls.append((name, args))
        pos = close.end()
    return calls


def find_expression(text: str) -> str | None:
    """The first arithmetic expression in `text` that has an operator, e.g. "25 * 4". Linear in `text`."""
    for match in _ARITHMETIC_RUN.finditer(text):
        run = match.group(0)
        start = next((i for i, c in enumerate(run) if c in _STARTS), None)
        end = next((i for i in range(len(run) - 1, -1, -1) if run[i] in _ENDS), None)
        if start is None or end is None or end <= start:
            continue
        candidate = run[start:end + 1].strip()
        if _OPERATOR.search(candidate):
            return candidate
    return None


def tokenize(text: str) -> list[str]:
    """Split text into word-sized stream chunks that join back to exactly `text`."""
    return _TOKEN.findall(text)


def _args_tokens(calls: Sequence[dict[str, Any]]) -> int:
    return sum(len(json.dumps(call["args"]).split()) for call in calls)


def _count_tokens(turns: Sequence[Turn]) -> int:
    return sum(len(t.text.split()) + _args_tokens(t.tool_calls) for t in turns)


def _recall_name(turns: Sequence[Turn]) -> str | None:
    for turn in reversed(turns):
        if turn.role == "user":
            match = _MY_NAME_IS.search(turn.text)
            if match:
                return match.group(1)
    return None


def _offline_text(system: str) -> str:
    text = (
        "I'm the offline model, a rule-based stand-in rather than an LLM: I can do arithmetic with the "
        "calculator tool and remember your name. Set MODEL_PROVIDER=bedrock for real answers."
    )
    if system:
        text += f" Context I was given: {system}"
    return text


def _names(names: Sequence[str]) -> str:
    unique = list(dict.fromkeys(names))
    return unique[0] if len(unique) == 1 else ", ".join(unique[:-1]) + " and " + unique[-1]


def reply_to(turns: Sequence[Turn], offered: Collection[str] | None = None) -> Reply:
    """The offline model's answer to a conversation; `offered`: the names of the tools it may call (None: the
    calculator alone)."""
    return _with_usage(_rules(turns, frozenset({CALCULATOR}) if offered is None else offered), turns)


def _rules(turns: Sequence[Turn], offered: Collection[str]) -> Reply:
    if not turns:
        return Reply("I received no messages.")
    last = turns[-1]
    system = " ".join(t.text for t in turns if t.role == "system" and t.text)
    if last.role == "tool":
        return Reply(_quote_results(turns))
    prompt = last.text
    try:
        calls = find_tool_calls(prompt, offered)
    except ToolCallError as refused:
        return Reply(str(refused))
    if calls:
        return Reply(f"I'll call {_names([name for name, _ in calls])}.",
                     tool_calls=[new_tool_call(name, args) for name, args in calls])
    if REMEMBER in offered:
        memory_reply = _memory_rules(prompt, system)
        if memory_reply is not None:
            return memory_reply
    ask_name = _ASK_NAME.search(prompt)
    told_name = _MY_NAME_IS.search(prompt)
    expression = None if (ask_name or told_name) else find_expression(prompt)
    if expression:
        if CALCULATOR not in offered:
            return Reply("I'd use the calculator for that, but it is not available.")
        return Reply("I'll calculate that for you.", new_tool_call(CALCULATOR, {"expression": expression}))
    if told_name:
        return Reply(f"Nice to meet you, {told_name.group(1)}! I'll remember your name.")
    if ask_name:
        name = _recall_name(turns[:-1])
        if name:
            return Reply(f"Your name is {name}.")
        return Reply("I don't know your name yet. Tell me with \"My name is ...\".")
    return Reply(_offline_text(system))


def _memory_rules(prompt: str, system: str) -> Reply | None:
    """A fact to save (`remember`), or what the recalled memories in the system prompt say."""
    if _ASK_MEMORIES.search(prompt):
        recalled = _RECALLED.search(system)
        if recalled is None:
            return Reply("I don't remember anything about you yet. Tell me with \"Remember that ...\".")
        facts = [line[2:].strip() for line in recalled.group(1).splitlines() if line.startswith("- ")]
        return Reply("Here is what I remember about you: " + "; ".join(facts) + ".")
    told = _REMEMBER_THAT.search(prompt)
    prefers = None if told else _I_PREFER.search(prompt)
    fact = (told.group(1) if told else prefers.group(0) if prefers else "").strip().rstrip(".!")
    if not fact:
        return None
    return Reply("I'll remember that.", new_tool_call(REMEMBER, {"fact": fact}))


def _quote_results(turns: Sequence[Turn]) -> str:
    """The answer after the trailing tool results: one sentence per result, in order, each matched to its call by
    id (else by position) among the last assistant turn's calls."""
    first = len(turns)
    while first and turns[first - 1].role == "tool":
        first -= 1
    asked = next((t.tool_calls for t in reversed(turns[:first]) if t.role == "assistant" and t.tool_calls), ())
    by_id = {call.get("id"): call for call in asked}
    sentences = []
    for i, result in enumerate(turns[first:]):
        call = by_id.get(result.tool_call_id) if result.tool_call_id else None
        if call is None and i < len(asked):
            call = asked[i]
        sentences.append(_quote(call, result))
    return "\n".join(sentences)


def _quote(call: dict[str, Any] | None, result: Turn) -> str:
    if call is None or call.get("name") == CALCULATOR:
        args = (call or {}).get("args")
        expression = args.get("expression", "that") if isinstance(args, dict) else "that"
        if result.is_error:
            return f"I couldn't calculate {expression}: {result.text}"
        return f"The result of {expression} is {result.text}."
    if result.is_error:
        return f"{call.get('name')} failed: {result.text}"
    if call.get("name") == REMEMBER:
        return f"Got it: I'll remember that ({(call.get('args') or {}).get('fact', '')})."
    return f"{call.get('name')} returned: {result.text}" if result.text else f"{call.get('name')} returned nothing."


def tool_use_id() -> str:
    """A tool call id as Bedrock makes them (`tooluse_` and 22 random URL-safe characters): the approval a call waits
    for is named after it, so a fixed id would give every session's first approval the same, guessable, name."""
    return "tooluse_" + secrets.token_urlsafe(17)[:22]


def _with_usage(reply: Reply, turns: Sequence[Turn]) -> Reply:
    output = len(tokenize(reply.text)) + _args_tokens(reply.tool_calls)
    return Reply(reply.text, input_tokens=_count_tokens(turns), output_tokens=output, tool_calls=reply.tool_calls)
