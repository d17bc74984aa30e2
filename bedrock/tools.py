"""The agent's tools. `calculator` evaluates arithmetic by walking its AST — never `eval`."""

from __future__ import annotations

import ast
import math
import operator
from typing import Any, Callable

from langchain_core.tools import BaseTool, ToolException, tool

MAX_EXPRESSION_CHARS = 200
MAX_EXPONENT = 1000
MAX_RESULT_DIGITS = 100

_BINARY: dict[type, Callable[[Any, Any], Any]] = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
    ast.FloorDiv: operator.floordiv,
    ast.Mod: operator.mod,
    ast.Pow: operator.pow,
}
_UNARY: dict[type, Callable[[Any], Any]] = {ast.UAdd: operator.pos, ast.USub: operator.neg}


def _check_size(value: int | float) -> int | float:
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ToolException("the result is too large to represent")
    elif abs(value) >= 10**MAX_RESULT_DIGITS:
        raise ToolException(f"the result has more than {MAX_RESULT_DIGITS} digits")
    return value


def _power(base: int | float, exponent: int | float) -> int | float:
    if abs(exponent) > MAX_EXPONENT:
        raise ToolException(f"exponents are limited to ±{MAX_EXPONENT}")
    # Bound the result before computing it: 9**999 is cheap, but its size says whether to refuse.
    if base not in (0, 1, -1) and abs(exponent) * math.log10(abs(base)) >= MAX_RESULT_DIGITS:
        raise ToolException(f"the result has more than {MAX_RESULT_DIGITS} digits")
    return base**exponent


def _eval(node: ast.AST) -> int | float:
    if isinstance(node, ast.Expression):
        return _eval(node.body)
    if isinstance(node, ast.Constant) and type(node.value) in (int, float):
        return _check_size(node.value)
    if isinstance(node, ast.UnaryOp) and type(node.op) in _UNARY:
        return _UNARY[type(node.op)](_eval(node.operand))
    if isinstance(node, ast.BinOp) and type(node.op) in _BINARY:
        left, right = _eval(node.left), _eval(node.right)
        if isinstance(node.op, ast.Pow):
            return _check_size(_power(left, right))
        try:
            return _check_size(_BINARY[type(node.op)](left, right))
        except ZeroDivisionError:
            raise ToolException("division by zero") from None
    raise ToolException(
        f"unsupported syntax ({type(node).__name__}): only numbers, + - * / // % ** and parentheses are allowed"
    )


def evaluate(expression: str) -> int | float:
    """Evaluate an arithmetic expression safely; raise ToolException with a clear reason otherwise."""
    if len(expression) > MAX_EXPRESSION_CHARS:
        raise ToolException(f"expression longer than {MAX_EXPRESSION_CHARS} characters")
    try:
        tree = ast.parse(expression.strip(), mode="eval")
    except SyntaxError:
        raise ToolException(f"not an arithmetic expression: {expression!r}") from None
    return _eval(tree)


def format_number(value: int | float) -> str:
    """Integers as integers; floats without a trailing `.0` and without float noise."""
    if isinstance(value, float):
        if value.is_integer() and abs(value) < 1e15:
            return str(int(value))
        return f"{value:.12g}"
    return str(value)


@tool
def calculator(expression: str) -> str:
    """Evaluate an arithmetic expression such as "25 * 4" or "(2 + 3) ** 2"."""
    return format_number(evaluate(expression))


def default_tools() -> list[BaseTool]:
    """The tools the agent is built with."""
    return [calculator]
