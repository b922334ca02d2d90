"""CachedMarketData: hits/misses, TTL expiry, coalescing, partial price fetches, and the factory."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import pytest

from engine.market.ave import AveClient
from engine.market.ave_stream import StreamedMarketData
from engine.market.base import (
    Candles,
    MarketData,
    PriceQuote,
    TemporaryMarketError,
    TokenInfo,
    TokenNotFoundError,
)
from engine.market.cache import CachedMarketData
from engine.market.demo import DemoMarket
from engine.market.factory import PLAN_POLL_SECONDS, PLAN_RATE, build_market_data
from tests.fakes.ave_api import AveFake

WALL_NOW = 1_750_000_000.0


class FakeClock:
    def __init__(self) -> None:
        self.now = 500.0

    def __call__(self) -> float:
        return self.now


class Upstream:
    """A scripted MarketData that counts calls; `gate` holds every call until set."""

    def __init__(self, known: Sequence[str] = ("a-solana", "b-solana", "0xabc-bsc")) -> None:
        self.known = set(known)
        self.price_calls: list[list[str]] = []
        self.kline_calls = 0
        self.search_calls = 0
        self.resolve_calls = 0
        self.gate: asyncio.Event | None = None
        self.fail: Exception | None = None
        self.closed = False

    @property
    def is_demo(self) -> bool:
        return True

    async def _wait(self) -> None:
        if self.gate is not None:
            await self.gate.wait()
        if self.fail is not None:
            raise self.fail

    async def get_klines(self, token_id: str, interval_minutes: int, *, limit: int = 300,
                         from_time: int | None = None, to_time: int | None = None) -> Candles:
        self.kline_calls += 1
        await self._wait()
        return Candles.from_rows([(60 * i, 1, 2, 0.5, 1.5, 10) for i in range(limit)])

    async def get_prices(self, token_ids: Sequence[str]) -> dict[str, PriceQuote]:
        self.price_calls.append(list(token_ids))
        await self._wait()
        return {t: PriceQuote(t, 1.0 + len(self.price_calls), 0) for t in token_ids if t in self.known}

    async def search_tokens(self, keyword: str, chain: str | None = None, limit: int = 20) -> list[TokenInfo]:
        self.search_calls += 1
        await self._wait()
        return [TokenInfo("a-solana", keyword.upper(), "solana")]

    async def resolve_token(self, symbol_or_id: str, chain: str | None = None) -> TokenInfo:
        self.resolve_calls += 1
        await self._wait()
        if symbol_or_id.casefold() == "nope":
            raise TokenNotFoundError("No token called nope on solana")
        return TokenInfo("a-solana", symbol_or_id.upper(), "solana")

    async def aclose(self) -> None:
        self.closed = True


def make(upstream: Upstream, clock: FakeClock, **kwargs: float) -> CachedMarketData:
    return CachedMarketData(upstream, clock=clock, wall_clock=lambda: WALL_NOW, **kwargs)


async def test_is_market_data_and_passes_is_demo_through() -> None:
    upstream = Upstream()
    cache = make(upstream, FakeClock())
    assert isinstance(cache, MarketData) and cache.is_demo is True
    await cache.aclose()
    assert upstream.closed


async def test_price_hits_misses_and_ttl_expiry() -> None:
    clock, upstream = FakeClock(), Upstream()
    cache = make(upstream, clock, price_ttl=10.0)
    first = await cache.get_prices(["a-solana", "b-solana"])
    second = await cache.get_prices(["a-solana", "b-solana"])
    assert first == second and len(upstream.price_calls) == 1
    stats = cache.stats()
    assert (stats["hits"], stats["misses"], stats["hit_rate"]) == (2, 2, 0.5)
    clock.now += 9.9
    await cache.get_prices(["a-solana"])
    assert len(upstream.price_calls) == 1
    clock.now += 0.1
    third = await cache.get_prices(["a-solana"])
    assert len(upstream.price_calls) == 2 and third["a-solana"].price_usd == 3.0


async def test_partial_price_fetch_asks_only_for_missing_ids_in_one_call() -> None:
    clock, upstream = FakeClock(), Upstream()
    cache = make(upstream, clock)
    await cache.get_prices(["a-solana"])
    result = await cache.get_prices(["a-solana", "b-solana", "0xABC-bsc", "zzz-solana"])
    assert upstream.price_calls == [["a-solana"], ["b-solana", "0xabc-bsc", "zzz-solana"]]
    assert set(result) == {"a-solana", "b-solana", "0xABC-bsc"}
    assert result["0xABC-bsc"].token_id == "0xABC-bsc"  # keyed and labelled with the caller's id
    # an unknown id is remembered as absent for the TTL: no upstream call for it next tick
    await cache.get_prices(["zzz-solana", "b-solana"])
    assert len(upstream.price_calls) == 2


async def test_concurrent_price_requests_coalesce() -> None:
    clock, upstream = FakeClock(), Upstream()
    upstream.gate = asyncio.Event()
    cache = make(upstream, clock)
    tasks = [asyncio.create_task(cache.get_prices(["a-solana", "b-solana"])) for _ in range(5)]
    tasks.append(asyncio.create_task(cache.get_prices(["b-solana", "0xabc-bsc"])))
    await asyncio.sleep(0)
    upstream.gate.set()
    results = await asyncio.gather(*tasks)
    assert upstream.price_calls == [["a-solana", "b-solana"], ["0xabc-bsc"]]
    assert all(r["b-solana"].price_usd == 2.0 for r in results)
    assert results[-1]["0xabc-bsc"].price_usd == 3.0


async def test_concurrent_kline_requests_coalesce_into_one_upstream_call() -> None:
    clock, upstream = FakeClock(), Upstream()
    upstream.gate = asyncio.Event()
    cache = make(upstream, clock)
    tasks = [asyncio.create_task(cache.get_klines("a-solana", 60, limit=50)) for _ in range(8)]
    await asyncio.sleep(0)
    upstream.gate.set()
    results = await asyncio.gather(*tasks)
    assert upstream.kline_calls == 1
    assert all(len(r) == 50 for r in results)
    with pytest.raises(ValueError):
        results[0].close[0] = 0.0  # shared arrays are read-only
    stats = cache.stats()
    assert stats["misses"] == 1 and stats["hits"] == 7 and stats["upstream_calls_total"] == 1


async def test_cancelled_caller_does_not_cancel_the_shared_fetch() -> None:
    clock, upstream = FakeClock(), Upstream()
    upstream.gate = asyncio.Event()
    cache = make(upstream, clock)
    impatient = asyncio.create_task(cache.get_klines("a-solana", 60, limit=5))
    patient = asyncio.create_task(cache.get_klines("a-solana", 60, limit=5))
    await asyncio.sleep(0)
    impatient.cancel()
    await asyncio.sleep(0)
    upstream.gate.set()
    assert len(await patient) == 5
    with pytest.raises(asyncio.CancelledError):
        await impatient
    assert upstream.kline_calls == 1


async def test_kline_keys_and_ttl_follow_the_interval() -> None:
    clock, upstream = FakeClock(), Upstream()
    cache = make(upstream, clock)
    await cache.get_klines("a-solana", 5, limit=10)
    await cache.get_klines("a-solana", 5, limit=10)
    await cache.get_klines("a-solana", 5, limit=11)
    await cache.get_klines("a-solana", 15, limit=10)
    assert upstream.kline_calls == 3
    clock.now += 299
    await cache.get_klines("a-solana", 5, limit=10)
    assert upstream.kline_calls == 3
    clock.now += 1  # a 5-minute window lives 5 minutes
    await cache.get_klines("a-solana", 5, limit=10)
    assert upstream.kline_calls == 4


async def test_to_time_is_rounded_to_the_minute_and_history_lives_longer() -> None:
    clock, upstream = FakeClock(), Upstream()
    cache = make(upstream, clock)
    past = int(WALL_NOW) - 30 * 86400
    await cache.get_klines("a-solana", 60, limit=10, to_time=past - past % 60 + 5)
    await cache.get_klines("a-solana", 60, limit=10, to_time=past - past % 60 + 50)
    assert upstream.kline_calls == 1
    clock.now += 3599
    await cache.get_klines("a-solana", 60, limit=10, to_time=past - past % 60)
    assert upstream.kline_calls == 1
    clock.now += 1
    await cache.get_klines("a-solana", 60, limit=10, to_time=past - past % 60)
    assert upstream.kline_calls == 2


async def test_live_daily_window_ttl_is_capped() -> None:
    clock, upstream = FakeClock(), Upstream()
    cache = make(upstream, clock)
    await cache.get_klines("a-solana", 1440, limit=10)
    clock.now += 900
    await cache.get_klines("a-solana", 1440, limit=10)
    assert upstream.kline_calls == 2


async def test_errors_are_not_cached() -> None:
    clock, upstream = FakeClock(), Upstream()
    upstream.fail = TemporaryMarketError("down")
    cache = make(upstream, clock)
    with pytest.raises(TemporaryMarketError):
        await cache.get_prices(["a-solana"])
    with pytest.raises(TemporaryMarketError):
        await cache.get_klines("a-solana", 60)
    upstream.fail = None
    assert "a-solana" in await cache.get_prices(["a-solana"])
    assert len(await cache.get_klines("a-solana", 60)) == 300
    assert len(upstream.price_calls) == 2 and upstream.kline_calls == 2


async def test_search_and_resolve_are_cached_for_an_hour() -> None:
    clock, upstream = FakeClock(), Upstream()
    cache = make(upstream, clock)
    await cache.search_tokens("pepe")
    await cache.search_tokens("PEPE ")
    await cache.resolve_token("pepe", "solana")
    await cache.resolve_token("PEPE", "SOLANA")
    assert upstream.search_calls == 1 and upstream.resolve_calls == 1
    with pytest.raises(TokenNotFoundError):
        await cache.resolve_token("nope", "solana")
    clock.now += 3600
    await cache.search_tokens("pepe")
    await cache.resolve_token("pepe", "solana")
    assert upstream.search_calls == 2 and upstream.resolve_calls == 3


async def test_stats_counts_upstream_calls_per_minute() -> None:
    clock, upstream = FakeClock(), Upstream()
    cache = make(upstream, clock, price_ttl=1.0)
    for _ in range(3):
        await cache.get_prices(["a-solana"])
        clock.now += 1.0
    assert cache.stats()["upstream_calls_per_minute"] == 3
    clock.now += 61
    stats = cache.stats()
    assert stats["upstream_calls_per_minute"] == 0 and stats["upstream_calls_total"] == 3
    assert stats["size"] >= 1


async def test_with_ave_client_a_tick_costs_ceil_n_over_200_calls() -> None:
    with AveFake() as fake:
        ids = [f"0x{i:040x}-bsc" for i in range(1, 451)]
        async with AveClient("test-pro-key", base_url=fake.base_url, plan="pro") as ave:
            cache = CachedMarketData(ave, price_ttl=10.0)
            await cache.get_prices(ids)
            assert fake.calls("/v2/tokens/price") == 3
            await cache.get_prices(ids)
            assert fake.calls("/v2/tokens/price") == 3
            assert cache.stats()["provider"]["calls_total"] == 3


async def test_factory_chooses_demo_or_ave() -> None:
    demo = build_market_data(api_key="", base_url="https://data.ave-api.xyz", plan="free")
    assert isinstance(demo, CachedMarketData) and isinstance(demo.inner, DemoMarket) and demo.is_demo
    live = build_market_data(api_key="k", base_url="http://127.0.0.1:9", plan="pro", price_ttl=3.0)
    assert isinstance(live, StreamedMarketData) and not live.is_demo  # pro: the kline stream in front
    cached = live.inner
    assert isinstance(cached, CachedMarketData) and isinstance(cached.inner, AveClient) and cached.price_ttl == 3.0
    assert cached.inner.limiter.rate_per_second == 20.0
    await live.aclose()
    normal = build_market_data(api_key="k", base_url="http://127.0.0.1:9", plan="normal")
    assert isinstance(normal, CachedMarketData) and isinstance(normal.inner, AveClient)
    await normal.aclose()
    with pytest.raises(ValueError):
        build_market_data(api_key="k", base_url="http://x", plan="gold")
    assert PLAN_RATE == {"free": 1.0, "normal": 5.0, "pro": 20.0}
    assert PLAN_POLL_SECONDS == {"free": 60, "normal": 15, "pro": 5}


async def test_demo_behind_cache_end_to_end() -> None:
    cache = CachedMarketData(DemoMarket(clock=lambda: WALL_NOW), wall_clock=lambda: WALL_NOW)
    token = await cache.resolve_token("SOL")
    candles = await cache.get_klines(token.token_id, 60, limit=24)
    quotes = await cache.get_prices([token.token_id])
    assert quotes[token.token_id].price_usd == pytest.approx(candles.close[-1])
