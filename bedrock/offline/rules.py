"""The offline model: a deterministic, rule-based stand-in for an LLM (not an LLM).

Its rules are written once, over plain `Turn`s, so every front end (the local Bedrock-compatible endpoint,
`bedrock/offline/endpoint.py`; the test kit's scripted chat model) answers the same way:
- arithmetic in the last user message → a real `calculator` tool call; after the tool result → an answer
  built from that result;
- "my name is X" → acknowledged; "what's my name?" → recalled from the conversation's history;
- anything else → a plain reply that says it is offline (and echoes any preferences it was given).
"""

from __future__ import annotations

import json
import secrets
import re
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from typing import Any

CALCULATOR = "calculator"
# Runs of the characters arithmetic is written with. One greedy character class and nothing after it: it
# never backtracks. (The old `[-(\d][…]*[\d)]` did, from every start: 32,000 "(" took 6.6 s, holding the GIL.)
_ARITHMETIC_RUN = re.compile(r"[\d\s.+\-*/()%]+")
_STARTS = frozenset("-(0123456789")
_ENDS = frozenset(")0123456789")
_OPERATOR = re.compile(r"[\d)]\s*(\*\*|//|[+\-*/%])\s*[-(\d]")
_MY_NAME_IS = re.compile(r"\bmy name is\s+([A-Za-z][\w'-]{0,63})", re.IGNORECASE)
_ASK_NAME = re.compile(r"\bwhat(?:'s|\s+is)\s+my\s+name\b|\bwho\s+am\s+i\b", re.IGNORECASE)
_TOKEN = re.compile(r"\S+\s*|\s+")


@dataclass(frozen=True)
class Turn:
    """One message as the rules see it."""

    role: str  # "system" | "user" | "assistant" | "tool"
    text: str = ""
    tool_call: dict[str, Any] | None = None  # assistant: {"id", "name", "args"}
    is_error: bool = False  # tool: the tool failed


@dataclass(frozen=True)
class Reply:
    """What the offline model says: text, and possibly one tool call."""

    text: str
    tool_call: dict[str, Any] | None = None
    input_tokens: int = 0
    output_tokens: int = field(default=0)


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


def _count_tokens(turns: Sequence[Turn]) -> int:
    return sum(len(t.text.split()) + (len(json.dumps(t.tool_call["args"]).split()) if t.tool_call else 0)
               for t in turns)


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


def reply_to(turns: Sequence[Turn], offered: Collection[str] | None = None) -> Reply:
    """The offline model's answer to a conversation; `offered`: the tools it may call (None: any)."""
    reply = _rules(turns)
    if offered is not None and reply.tool_call and reply.tool_call["name"] not in offered:
        return Reply("I'd use the calculator for that, but it is not available.", None, reply.input_tokens, 10)
    return reply


def _rules(turns: Sequence[Turn]) -> Reply:
    if not turns:
        return Reply("I received no messages.")
    last = turns[-1]
    system = " ".join(t.text for t in turns if t.role == "system" and t.text)
    if last.role == "tool":
        call = next((t.tool_call for t in reversed(turns) if t.role == "assistant" and t.tool_call), None)
        expression = (call or {}).get("args", {}).get("expression", "that")
        if last.is_error:
            text = f"I couldn't calculate {expression}: {last.text}"
        else:
            text = f"The result of {expression} is {last.text}."
        return _with_usage(Reply(text), turns)
    prompt = last.text
    ask_name = _ASK_NAME.search(prompt)
    told_name = _MY_NAME_IS.search(prompt)
    expression = None if (ask_name or told_name) else find_expression(prompt)
    if expression:
        call = {"id": tool_use_id(), "name": CALCULATOR, "args": {"expression": expression}}
        return _with_usage(Reply("I'll calculate that for you.", call), turns)
    if told_name:
        return _with_usage(Reply(f"Nice to meet you, {told_name.group(1)}! I'll remember your name."), turns)
    if ask_name:
        name = _recall_name(turns[:-1])
        text = f"Your name is {name}." if name else "I don't know your name yet. Tell me with \"My name is ...\"."
        return _with_usage(Reply(text), turns)
    return _with_usage(Reply(_offline_text(system)), turns)


def tool_use_id() -> str:
    """A tool call id as Bedrock makes them (`tooluse_` and 22 random URL-safe characters): the approval a call waits
    for is named after it, so a fixed id would give every session's first approval the same, guessable, name."""
    return "tooluse_" + secrets.token_urlsafe(17)[:22]


def _with_usage(reply: Reply, turns: Sequence[Turn]) -> Reply:
    output = len(tokenize(reply.text)) + (len(json.dumps(reply.tool_call["args"]).split()) if reply.tool_call else 0)
    return Reply(reply.text, reply.tool_call, _count_tokens(turns), output)
