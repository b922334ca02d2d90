"""Money primitives: parse_amount (what people type), storage.money (to_micro / from_micro / the
named roundings / largest_remainder), fmt_usdc (the bot's formatting)."""

from __future__ import annotations

from decimal import Decimal
from fractions import Fraction

import pytest
from hypothesis import given
from hypothesis import strategies as st

from agents.errors import InvalidAmountError
from agents.ledger.amounts import parse_amount
from bot.messages import describe
from bot.render import fmt_usdc
from storage.money import MICRO, floor_usdc, from_micro, largest_remainder, nearest_usdc, to_micro

D = Decimal


@pytest.mark.parametrize(("value", "micro"), [
    (D("12.5"), 12_500_000),
    ("12.5", 12_500_000),
    (" 12.5 ", 12_500_000),
    ("1_000", 1_000_000_000),
    (25, 25_000_000),
    ("0.000001", 1),
    (D("1.0000000"), 1_000_000),        # extra zeros beyond 6 places are not extra precision
    ("1E+2", 100_000_000),
    (10.1, 10_100_000),                  # a float is read through its shortest repr
    (D("999999999999999.999999"), 999_999_999_999_999_999_999),
])
def test_parse_amount_accepts(value: object, micro: int) -> None:
    assert parse_amount(value) == micro
    assert isinstance(parse_amount(value), int)


@pytest.mark.parametrize("value", [
    0, "0", D(0), "-0", "0.0000001", -5, "-5", D("-0.01"),
    D("NaN"), "nan", "NaN", D("sNaN"), float("nan"), float("inf"), float("-inf"), "Infinity", "-Infinity",
    D("Infinity"), "1e309", "1E+16", D("1234567890123456789012345.1234567"), "10.0000001", D("10.1234567"),
    1e-7, "abc", "", "   ", "12abc", "0x10", "1,5", "1" * 41, None, True, False, [10], {"a": 1}, b"10",
])
def test_parse_amount_rejects(value: object) -> None:
    with pytest.raises(InvalidAmountError) as info:
        parse_amount(value)
    text = describe(info.value)  # a sentence the user can read, from the bot's words
    assert text.startswith("Amount ") and text.endswith(".")


def test_parse_amount_flags() -> None:
    assert parse_amount("-2.5", allow_negative=True) == -2_500_000
    assert parse_amount("0", allow_zero=True) == 0
    with pytest.raises(InvalidAmountError) as info:
        parse_amount("0", allow_negative=True)
    assert info.value.code == "amount.zero" and "zero" in describe(info.value)
    with pytest.raises(InvalidAmountError) as info:
        parse_amount("-1", allow_zero=True)
    assert info.value.code == "amount.negative" and "positive" in describe(info.value)
    with pytest.raises(InvalidAmountError) as info:
        parse_amount("x", what="withdrawal")
    assert describe(info.value) == "Withdrawal must be a number, like 25 or 12.5."


def test_to_micro_is_exact_and_the_roundings_are_named() -> None:
    assert to_micro(D("12.5")) == 12_500_000 and to_micro(3) == 3_000_000
    for bad in (D("0.0000005"), D("NaN")):
        with pytest.raises(ValueError):
            to_micro(bad)
    with pytest.raises(TypeError):
        to_micro(1.5)  # type: ignore[arg-type]
    assert floor_usdc(D("0.0000019")) == D("0.000001") and floor_usdc(D("-0.0000019")) == D("-0.000001")
    assert nearest_usdc(D("0.0000025")) == D("0.000002") and nearest_usdc(D("0.0000035")) == D("0.000004")


def test_from_micro_is_exact_decimal() -> None:
    assert from_micro(1) == D("0.000001")
    assert from_micro(12_500_000) == D("12.5")
    assert from_micro(-3) == D("-0.000003")
    assert from_micro(0).as_tuple().exponent == -6
    assert str(from_micro(10_000_000)) == "10.000000"
    assert fmt_usdc(1_234_500_000) == "1,234.50"
    assert fmt_usdc(D("0.5")) == "0.50"


@given(st.integers(min_value=-(10**21), max_value=10**21).filter(lambda n: n != 0))
def test_micro_round_trip(micro: int) -> None:
    assert to_micro(from_micro(micro)) == micro == parse_amount(from_micro(micro), allow_negative=True)
    assert parse_amount(str(from_micro(micro)), allow_negative=True) == micro


@given(st.decimals(allow_nan=False, allow_infinity=False, places=6,
                   min_value=D("0.000001"), max_value=D("999999999999999")))
def test_decimal_round_trip(value: Decimal) -> None:
    assert from_micro(to_micro(value)) == value


def test_largest_remainder_examples() -> None:
    assert largest_remainder(100, [150, 50]) == [75, 25]
    assert largest_remainder(2, [1, 1, 1]) == [1, 1, 0]          # ties go to the earlier index
    assert largest_remainder(0, [5, 7]) == [0, 0]
    assert largest_remainder(12, [5, 7]) == [5, 7]
    assert largest_remainder(1, [0, 3]) == [0, 1]


@pytest.mark.parametrize(("total", "weights"), [(-1, [1]), (1, []), (1, [0, 0]), (4, [1, 2])])
def test_largest_remainder_refuses(total: int, weights: list[int]) -> None:
    with pytest.raises(ValueError):
        largest_remainder(total, weights)


@st.composite
def splits(draw: st.DrawFn) -> tuple[int, list[int]]:
    weights = draw(st.lists(st.integers(min_value=0, max_value=10**15), min_size=1, max_size=12)
                   .filter(lambda ws: sum(ws) > 0))
    total = draw(st.integers(min_value=0, max_value=sum(weights)))
    return total, weights


@given(splits())
def test_largest_remainder_properties(case: tuple[int, list[int]]) -> None:
    total, weights = case
    parts = largest_remainder(total, weights)
    whole = sum(weights)
    assert len(parts) == len(weights)
    assert sum(parts) == total
    for part, weight in zip(parts, weights, strict=True):
        assert 0 <= part <= weight
        exact = Fraction(total * weight, whole)
        assert abs(part - exact) < 1          # proportional within one micro-unit
    if total == whole:
        assert parts == weights


def test_micro_constant() -> None:
    assert MICRO == 1_000_000
