"""The backtest command's argument grammar (bot/backtest_args.py): shapes, defaults, refusals."""

from __future__ import annotations

import pytest

from bot.backtest_args import BacktestArgsError, parse_backtest_args
from bot.guards import refusal
from engine.backtest_service import BacktestRequest, BacktestRequestError

PEPE_ID = "0x514ad355aec892241cbf8cb58844b7e352bea2f5-bsc"


# -- grammar -----------------------------------------------------------------------------

@pytest.mark.parametrize("args, expected", [
    ([], BacktestRequest(None, None, "1h", 30)),
    (["PEPE"], BacktestRequest("PEPE", None, "1h", 30)),
    (["PEPE", "4h", "90"], BacktestRequest("PEPE", None, "4h", 90)),
    (["pepe:BSC", "15m", "7"], BacktestRequest("pepe", "bsc", "15m", 7)),
    (["$PEPE"], BacktestRequest("PEPE", None, "1h", 30)),
    ([PEPE_ID, "5m", "3"], BacktestRequest(PEPE_ID, None, "5m", 3)),
    (["7", "15m"], BacktestRequest(None, None, "15m", 7)),  # any order, recognised by shape
    (["1D", "365"], BacktestRequest(None, None, "1d", 365)),
    (["60m"], BacktestRequest(None, None, "1h", 30)),
    (["24h", "120"], BacktestRequest(None, None, "1d", 120)),
    (["1INCH"], BacktestRequest("1INCH", None, "1h", 30)),
    (["+45"], BacktestRequest(None, None, "1h", 45)),
    (["PEPE", "$500"], BacktestRequest("PEPE", None, "1h", 30, capital=500.0)),
    (["250usdc", "4h"], BacktestRequest(None, None, "4h", 30, capital=250.0)),
    (["1000.5usd"], BacktestRequest(None, None, "1h", 30, capital=1000.5)),
])
def test_good_arguments(args: list[str], expected: BacktestRequest) -> None:
    assert parse_backtest_args(args) == expected


@pytest.mark.parametrize("args, needle", [
    (["PEPE", "1h", "abc!"], "token"),            # two tokens
    (["PEPE", "1h", "-5"], "Days must be"),
    (["PEPE", "1h", "0"], "Days must be"),
    (["PEPE", "1h", "366"], "Days must be"),
    (["PEPE", "1h", "99999999999999999999"], "Days must be"),
    (["PEPE", "1h", "nan"], "Days must be"),
    (["PEPE", "1h", "inf"], "Days must be"),
    (["PEPE", "1h", "2.5"], "whole number"),
    (["PEPE", "1h", "1e3"], "whole number"),
    (["PEPE", "2h", "30"], "Unknown timeframe"),
    (["PEPE", "1m", "30"], "Unknown timeframe"),
    (["PEPE", "30d"], "just the number"),
    (["<b>PEPE</b>"], "A token is a symbol"),
    (["PE&PE"], "A token is a symbol"),
    (["P" * 101], "too long"),
    (["PEPE:b$c"], "chain name"),
    (["PEPE:"], "chain name"),
    ([":bsc"], "missing"),
    ([PEPE_ID + ":bsc"], "already names its chain"),
    (["PEPE", "1h", "30", "$500", "extra"], "Too many arguments"),
    (["PEPE", "1h", "30", "extra"], "Give only one token"),
    (["1h", "4h"], "only one timeframe"),
    (["10", "20"], "only one number of days"),
    (["1d", "30"], "Too short a range"),           # 30 candles < 50
    (["4h", "5"], "Too short a range"),            # 30 candles
    (["5m", "365"], "Too many candles"),           # 105,120 candles
])
def test_bad_arguments(args: list[str], needle: str) -> None:
    with pytest.raises((BacktestArgsError, BacktestRequestError)) as info:
        parse_backtest_args(args)
    text = refusal(info.value)
    assert needle in text
    assert "<" not in text  # the message never echoes markup


@pytest.mark.parametrize(("default", "args", "expected"), [
    ("5m", [], ("5m", 30)),           # a 5-minute strategy runs on 5-minute candles by default
    ("1d", [], ("1d", 100)),          # daily candles get enough days for ~100 bars
    ("4h", ["7"], None),              # explicit days too short for 4h candles: refused
    ("5m", ["1h", "10"], ("1h", 10)),  # explicit arguments win over the default
])
def test_default_timeframe_follows_the_strategy(default: str, args: list[str],
                                                expected: tuple[str, int] | None) -> None:
    if expected is None:
        with pytest.raises(BacktestRequestError) as info:
            parse_backtest_args(args, default)
        assert refusal(info.value).startswith("Too short")
        return
    request = parse_backtest_args(args, default)
    assert (request.timeframe, request.days) == expected
