"""DemoMarket: deterministic, consistent across calls and intervals, well-shaped."""

from __future__ import annotations

import numpy as np
import pytest

from bot.messages import describe
from engine.market.base import MarketData, PermanentMarketError, TokenNotFoundError
from engine.market.demo import DEMO_TOKENS, DemoMarket

NOW = 1_750_003_333  # an arbitrary, mid-candle moment
PEPE = DEMO_TOKENS[0].token_id
SOL = next(t.token_id for t in DEMO_TOKENS if t.symbol == "SOL")


def market(now: float = NOW, seed: int = 7) -> DemoMarket:
    return DemoMarket(seed=seed, clock=lambda: now)


def test_protocol_and_tokens() -> None:
    demo = market()
    assert isinstance(demo, MarketData) and demo.is_demo is True
    symbols = {t.symbol for t in demo.tokens}
    assert {"PEPE", "WETH", "SOL", "BONK", "DOGE", "ARB"} <= symbols
    for token in demo.tokens:
        address, _, chain = token.token_id.rpartition("-")
        assert address and chain == token.chain


async def test_deterministic_across_instances_and_seed_sensitive() -> None:
    a = await market().get_klines(PEPE, 5, limit=300)
    b = await market().get_klines(PEPE, 5, limit=300)
    c = await market(seed=8).get_klines(PEPE, 5, limit=300)
    for field in ("time", "open", "high", "low", "close", "volume"):
        assert np.array_equal(a[field], b[field])
    assert np.array_equal(a.time, c.time) and not np.allclose(a.close, c.close)


async def test_shape_alignment_and_ohlc_sanity() -> None:
    for interval in (1, 5, 15, 60, 240, 1440):
        candles = await market().get_klines(SOL, interval, limit=200)
        assert len(candles) == 200
        assert np.all(candles.time % (interval * 60) == 0)
        assert np.all(np.diff(candles.time) == interval * 60)
        assert candles.time[-1] <= NOW < candles.time[-1] + interval * 60  # newest is the live candle
        assert np.all(candles.high >= np.maximum(candles.open, candles.close))
        assert np.all(candles.low <= np.minimum(candles.open, candles.close))
        assert np.all(candles.low > 0) and np.all(candles.volume > 0)


async def test_any_range_is_reproducible_later() -> None:
    early = await market().get_klines(PEPE, 15, limit=100)
    later = await market(now=NOW + 5 * 86400).get_klines(PEPE, 15, limit=100, to_time=int(early.time[-2]) + 1)
    # the candles that were complete then are identical when asked for days later
    assert later.time[-1] == early.time[-2]
    for field in ("time", "open", "high", "low", "close", "volume"):
        assert np.array_equal(later[field][-99:], early[field][:-1])


async def test_intervals_agree_with_each_other() -> None:
    demo = market()
    hourly = await demo.get_klines(PEPE, 60, limit=48)
    five = await demo.get_klines(PEPE, 5, limit=48 * 12)
    daily = await demo.get_klines(PEPE, 1440, limit=3)
    for i in range(len(hourly)):
        start = hourly.time[i]
        inside = (five.time >= start) & (five.time < start + 3600)
        if not inside.any():
            continue
        assert hourly.open[i] == pytest.approx(five.open[inside][0])
        assert hourly.close[i] == pytest.approx(five.close[inside][-1])
        assert hourly.high[i] == pytest.approx(five.high[inside].max())
        assert hourly.low[i] == pytest.approx(five.low[inside].min())
        assert hourly.volume[i] == pytest.approx(five.volume[inside].sum())
    assert daily.close[-1] == pytest.approx(hourly.close[-1])
    day_start = daily.time[-2]
    inside = (hourly.time >= day_start) & (hourly.time < day_start + 86400)
    assert daily.high[-2] == pytest.approx(hourly.high[inside].max())


async def test_prices_match_latest_close_and_unknown_ids_are_absent() -> None:
    demo = market()
    quotes = await demo.get_prices([PEPE, SOL, "0xdead-bsc", PEPE.upper().replace("-BSC", "-bsc")])
    assert set(quotes) == {PEPE, SOL, PEPE.upper().replace("-BSC", "-bsc")}
    for token_id in (PEPE, SOL):
        for interval in (1, 5, 60):
            latest = await demo.get_klines(token_id, interval, limit=2)
            assert quotes[token_id].price_usd == pytest.approx(latest.close[-1])
    assert quotes[PEPE].updated_at == NOW
    assert quotes[PEPE].change_24h is not None


async def test_from_time_and_to_time_window() -> None:
    demo = market()
    start, end = NOW - 6 * 3600, NOW - 3600
    candles = await demo.get_klines(PEPE, 15, limit=1000, from_time=start, to_time=end)
    assert candles.time[0] >= start and candles.time[-1] <= end
    first, last = -(-start // 900) * 900, end // 900 * 900
    assert candles.time.tolist() == list(range(first, last + 1, 900))


async def test_history_limit_and_future_requests() -> None:
    demo = DemoMarket(clock=lambda: NOW, history_days=2)
    candles = await demo.get_klines(PEPE, 60, limit=1000)
    assert 47 <= len(candles) <= 49
    future = await demo.get_klines(PEPE, 60, limit=5, to_time=NOW + 86400)
    assert future.time[-1] <= NOW


async def test_the_price_path_moves_like_a_market() -> None:
    closes = (await market().get_klines(PEPE, 60, limit=24 * 60)).close
    returns = np.diff(np.log(closes))
    assert 0.003 < returns.std() < 0.05  # hourly volatility of a meme coin, give or take
    assert closes.max() / closes.min() > 1.2
    # volatility regimes: some days are much wilder than others
    daily_vol = returns[: 24 * 59].reshape(59, 24).std(axis=1)
    assert daily_vol.max() / daily_vol.min() > 2


async def test_thirty_days_of_5m_is_cheap_enough_to_generate() -> None:
    candles = await market().get_klines(SOL, 5, limit=30 * 288)
    assert len(candles) == 30 * 288


async def test_errors() -> None:
    demo = market()
    with pytest.raises(PermanentMarketError):
        await demo.get_klines(PEPE, 7)
    with pytest.raises(TokenNotFoundError):
        await demo.get_klines("0xdead-bsc", 60)
    with pytest.raises(PermanentMarketError):
        await demo.search_tokens("")


async def test_search_and_resolve() -> None:
    demo = market()
    found = await demo.search_tokens("pep")
    assert [t.symbol for t in found] == ["PEPE"]
    assert await demo.search_tokens("pepe", chain="solana") == []
    info = await demo.resolve_token("pepe", chain="BSC")
    assert info.token_id == PEPE and info.symbol == "PEPE" and info.price_usd and info.price_usd > 0
    assert (await demo.resolve_token("SOL")).token_id == SOL
    assert (await demo.resolve_token(PEPE.upper().replace("-BSC", "-bsc"))).token_id == PEPE
    with pytest.raises(TokenNotFoundError) as caught:
        await demo.resolve_token("PEPE", chain="eth")
    assert describe(caught.value).startswith("No token called PEPE on eth in the demo market (it has PEPE (bsc)")
    with pytest.raises(TokenNotFoundError):
        await demo.resolve_token("0x0000000000000000000000000000000000000001-bsc")
