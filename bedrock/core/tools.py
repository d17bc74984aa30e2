"""The agent's tools. `calculator` evaluates arithmetic by walking its AST — never `eval`."""

from __future__ import annotations

import ast
import math
import operator
from collections.abc import Callable
from typing import Any

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


TOO_LARGE = f"the result is too large (more than {MAX_RESULT_DIGITS} digits)"


def _check_size(value: int | float) -> int | float:
    if isinstance(value, float):
        if not math.isfinite(value) or abs(value) >= 10.0**MAX_RESULT_DIGITS:
            raise ToolException(TOO_LARGE)
    elif abs(value) >= 10**MAX_RESULT_DIGITS:
        raise ToolException(TOO_LARGE)
    return value


def _power(base: int | float, exponent: int | float) -> int | float:
    """`base ** exponent`, refused before computing when it would be too large, complex, or undefined."""
    if abs(exponent) > MAX_EXPONENT:
        raise ToolException(f"exponents are limited to ±{MAX_EXPONENT}")
    if base == 0 and exponent < 0:
        raise ToolException("division by zero")
    if base < 0 and exponent != int(exponent):
        raise ToolException("a negative number to a fractional power has no real result")
    # The result has about exponent × log10|base| digits, signed: 0.5 ** -1000 is huge (301 digits) and
    # 10 ** -1000 tiny (it rounds to 0). Bound it before computing: 9 ** 999 is cheap, but too long to return.
    if base not in (0, 1, -1) and exponent * math.log10(abs(base)) >= MAX_RESULT_DIGITS:
        raise ToolException(TOO_LARGE)
    return base**exponent


def _eval(node: ast.AST) -> int | float:
    if isinstance(node, ast.Expression):
        return _eval(node.body)
    # A number: an int or a float, but not a bool (an int too).
    if isinstance(node, ast.Constant) and isinstance(node.value, int | float) and not isinstance(node.value, bool):
        return _check_size(node.value)
    if isinstance(node, ast.UnaryOp) and type(node.op) in _UNARY:
        return _UNARY[type(node.op)](_eval(node.operand))
    if isinstance(node, ast.BinOp) and type(node.op) in _BINARY:
        left, right = _eval(node.left), _eval(node.right)
        try:
            if isinstance(node.op, ast.Pow):
                return _check_size(_power(left, right))
            return _check_size(_BINARY[type(node.op)](left, right))
        except ZeroDivisionError:
            raise ToolException("division by zero") from None
        except OverflowError:  # float arithmetic past ~1.8e308 (int arithmetic is bounded by the checks)
            raise ToolException(TOO_LARGE) from None
    raise ToolException(
        f"unsupported syntax ({type(node).__name__}): only numbers, + - * / // % ** and parentheses are allowed"
    )


def evaluate(expression: str) -> int | float:
    """Evaluate an arithmetic expression safely; raise ToolException with a clear reason otherwise."""
    if len(expression) > MAX_EXPRESSION_CHARS:
        raise ToolException(f"expression longer than {MAX_EXPRESSION_CHARS} characters")
    try:
        tree = ast.parse(expression.strip(), mode="eval")
    except (SyntaxError, ValueError, RecursionError, MemoryError):  # ValueError: NUL bytes; deep nesting
        raise ToolException(f"not an arithmetic expression: {expression!r}") from None
    try:
        return _eval(tree)
    except RecursionError:
        raise ToolException("the expression is nested too deeply") from None


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
