import time

import pytest
from langchain_core.tools import ToolException

from bedrock.tools import calculator, evaluate, format_number


@pytest.mark.parametrize(
    "expression, expected",
    [("25 * 4", "100"), ("5+5", "10"), ("(2 + 3) ** 2", "25"), ("7 / 2", "3.5"), ("-3 + 1", "-2"),
     ("10 // 3", "3"), ("10 % 3", "1"), ("0.1 + 0.2", "0.3"), ("2 ** -1", "0.5")],
)
def test_arithmetic(expression, expected):
    assert calculator.invoke({"expression": expression}) == expected


@pytest.mark.parametrize(
    "expression, reason",
    [
        ("__import__('os')", "unsupported syntax"),
        ("x + 1", "unsupported syntax"),
        ("(1).real", "unsupported syntax"),
        ("abs(-1)", "unsupported syntax"),
        ("(lambda: 1)()", "unsupported syntax"),
        ("[i for i in range(9)]", "unsupported syntax"),
        ("9**9**9", "exponents are limited"),
        ("10 ** 200", "more than 100 digits"),
        ("99999999999 ** 99", "more than 100 digits"),
        ("1" * 300, "longer than 200"),
        ("1/0", "division by zero"),
        ("2 +", "not an arithmetic expression"),
        ("True + 1", "unsupported syntax"),
        ("1e308 * 10", "too large"),
    ],
)
def test_refusals_are_fast_and_clear(expression, reason):
    started = time.perf_counter()
    with pytest.raises(ToolException, match=reason):
        evaluate(expression)
    assert time.perf_counter() - started < 0.5  # refused without computing the huge value


def test_format_number():
    assert format_number(4.0) == "4" and format_number(1 / 3) == "0.333333333333"
