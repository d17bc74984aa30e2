import time

import pytest
from langchain_core.tools import ToolException

from bedrock.core.tools import calculator, evaluate, format_number


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


@pytest.mark.parametrize(
    "expression, reason",
    [
        ("0.1 ** -1000", "too large"),  # was raw "(34, 'Numerical result out of range')"
        ("0.5 ** -1000", "too large"),  # was 1.07e301, past the bound (the size check ignored the sign)
        ("(-8) ** 0.5", "no real result"),  # was a complex number
        ("(-8) ** (1/3)", "no real result"),
        ("0 ** -1", "division by zero"),
        ("0.0 ** -2.5", "division by zero"),
        ("1e308 / 1e-10", "too large"),
        ("1e200 ** 2", "too large"),
        ("7.5 // 0.0", "division by zero"),
        ("10 % 0", "division by zero"),
        ("1e150", "too large"),
        ("(" * 150 + "1" + ")" * 150, "longer than 200"),
        ("(" * 99 + "1" + ")" * 99, ""),  # nested deep but within bounds: fine or a clear refusal
    ],
)
def test_every_operator_and_sign_is_bounded_with_a_fixed_message(expression, reason):
    try:
        result = evaluate(expression)
    except ToolException as refused:
        assert reason and reason in str(refused)
        return
    assert not reason and isinstance(result, (int, float))


@pytest.mark.parametrize("expression, expected", [("10 ** -1000 + 1", "1"), ("(-8) ** 2.0", "64"), ("(-2) ** 3", "-8"),
                                                  ("2 ** -1000", "9.33263618503e-302"), ("0.5 ** -100", "1.26765060023e+30")])
def test_tiny_and_negative_powers_that_have_real_bounded_results(expression, expected):
    assert calculator.invoke({"expression": expression}) == expected
