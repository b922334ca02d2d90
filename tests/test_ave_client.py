"""AveClient against the offline AVE fake (tests/fakes/ave_api.py)."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator

import numpy as np
import pytest

from bot.messages import describe
from engine.http import CircuitBreaker
from engine.market.ave import AveClient, normalize_token_id, parse_points, split_token_id
from engine.market.base import (
    AuthError,
    MarketData,
    MarketDataError,
    MarketUnavailableError,
    PermanentMarketError,
    RateLimitedError,
    TemporaryMarketError,
    TokenNotFoundError,
)
from tests.fakes.ave_api import AveFake

PRO_KEY = "test-pro-key"
FREE_KEY = "test-free-key"
PEPE_BSC = "0x25d887ce7a35172c62febfd67a1856f20faebb00-bsc"
PEPE_ETH = "0x6982508145454ce325ddbe47a25d4ec3d2311933-eth"
WETH_MIXED = "0xC02aaA39b223FE8D0A0e5C4F27eAD9083C756Cc2-eth"
SOL = "So11111111111111111111111111111111111111112-solana"
TINY = "0x0000000000000000000000000000000000000abc-bsc"


class NoSleep:
    def __init__(self) -> None:
        self.delays: list[float] = []

    async def __call__(self, delay: float) -> None:
        self.delays.append(delay)


@pytest.fixture
def fake() -> Iterator[AveFake]:
    with AveFake() as server:
        yield server


@pytest.fixture
async def client(fake: AveFake) -> AsyncIterator[AveClient]:
    ave = AveClient(PRO_KEY, base_url=fake.base_url, plan="pro", sleep=NoSleep(), base_delay=0.01)
    yield ave
    await ave.aclose()


def assert_key_hidden(err: BaseException, key: str) -> None:
    assert key not in str(err)
    assert key not in repr(err)
    if isinstance(err, MarketDataError):
        assert key not in describe(err)


async def test_is_market_data(client: AveClient) -> None:
    assert isinstance(client, MarketData)
    assert client.is_demo is False
    assert PRO_KEY not in repr(client)


async def test_bad_key_is_auth_error_without_leaking_it(fake: AveFake) -> None:
    secret = "sk-very-secret-123"
    async with AveClient(secret, base_url=fake.base_url, plan="pro", sleep=NoSleep()) as ave:
        with pytest.raises(AuthError) as err:
            await ave.get_prices([PEPE_BSC])
    assert_key_hidden(err.value, secret)
    assert fake.request_log[-1].status == 401
    assert fake.request_log[-1].api_key == secret  # it was sent, as X-API-KEY


async def test_envelope_error_on_http_200(client: AveClient, fake: AveFake) -> None:
    fake.envelope_error_next(msg="token_ids invalid")
    with pytest.raises(PermanentMarketError, match="token_ids invalid") as err:
        await client.get_prices([PEPE_BSC])
    assert not isinstance(err.value, TemporaryMarketError)
    assert fake.calls("/v2/tokens/price") == 1  # not retried


async def test_envelope_message_echoing_the_key_is_scrubbed(client: AveClient, fake: AveFake) -> None:
    fake.envelope_error_next(msg=f"bad key {PRO_KEY}")
    with pytest.raises(PermanentMarketError) as err:
        await client.get_prices([PEPE_BSC])
    assert_key_hidden(err.value, PRO_KEY)


async def test_klines_parse_strings_ascending(client: AveClient, fake: AveFake) -> None:
    candles = await client.get_klines(PEPE_BSC, 60, limit=48)
    assert len(candles) == 48
    assert candles.close.dtype == np.float64 and candles.time.dtype == np.int64
    assert np.all(np.diff(candles.time) > 0)
    assert np.all(candles.time % 3600 == 0)
    assert np.all(candles.high >= candles.low) and np.all(candles.close > 0)
    request = fake.requests("/v2/klines/token/")[-1]
    assert request.query["interval"] == "60" and request.query["limit"] == "48"
    assert request.path == f"/v2/klines/token/{PEPE_BSC}"


async def test_latest_candle_follows_set_price(client: AveClient, fake: AveFake) -> None:
    fake.set_price(PEPE_BSC, 0.00002)
    candles = await client.get_klines(PEPE_BSC, 5, limit=10)
    quotes = await client.get_prices([PEPE_BSC])
    assert candles.close[-1] == pytest.approx(0.00002)
    assert quotes[PEPE_BSC].price_usd == pytest.approx(0.00002)


async def test_paging_over_1000_candles(client: AveClient, fake: AveFake) -> None:
    candles = await client.get_klines(PEPE_BSC, 5, limit=2500)
    assert len(candles) == 2500
    assert np.all(np.diff(candles.time) > 0)  # ascending, no duplicates across pages
    requests = fake.requests("/v2/klines/token/")
    assert len(requests) == 3
    assert all(int(r.query["limit"]) <= 1000 for r in requests)
    # each later page ends just before the earliest candle already held
    assert "to_time" not in requests[0].query
    assert int(requests[1].query["to_time"]) < int(requests[0].query.get("to_time", 10**12))
    assert int(requests[2].query["to_time"]) < int(requests[1].query["to_time"])


async def test_paging_stops_when_history_runs_out(fake: AveFake) -> None:
    fake.history_days = 5  # 5 days of hourly candles ≈ 102 after sparse gaps
    async with AveClient(PRO_KEY, base_url=fake.base_url, plan="pro", sleep=NoSleep()) as ave:
        candles = await ave.get_klines(PEPE_BSC, 60, limit=3000)
    assert 0 < len(candles) <= 121
    assert fake.calls("/v2/klines/token/") == 1


async def test_sparse_candles_stay_sparse(client: AveClient) -> None:
    candles = await client.get_klines(PEPE_BSC, 1, limit=500)
    gaps = np.diff(candles.time)
    assert np.all(gaps % 60 == 0)
    assert gaps.max() > 60  # minutes with no trades are missing, not invented
    assert len(candles) == 500


async def test_more_than_limit_is_trimmed_to_latest(client: AveClient, fake: AveFake) -> None:
    full = await client.get_klines(PEPE_BSC, 15, limit=50)
    fake.extra_points = 7
    trimmed = await client.get_klines(PEPE_BSC, 15, limit=40)
    assert len(trimmed) == 40
    assert trimmed.time[-1] == full.time[-1]
    assert np.array_equal(trimmed.time, full.time[-40:])


async def test_malformed_duplicate_and_unsorted_points(client: AveClient, fake: AveFake) -> None:
    fake.set_candles(PEPE_BSC, 60, [
        {"time": 7200, "open": "2", "high": "3", "low": "1", "close": "2.5", "volume": "10"},
        {"time": 3600, "open": "1", "high": "2", "low": "0.5", "close": "2", "volume": "5"},
        {"time": 10800, "open": "abc", "high": "3", "low": "1", "close": "2", "volume": "1"},
        {"open": "1", "high": "1", "low": "1", "close": "1", "volume": "1"},
        {"time": 14400, "open": "2.5", "high": "4", "low": "2", "close": "3", "volume": None},
        {"time": 7200, "open": "2", "high": "3.5", "low": "1", "close": "2.6", "volume": "11"},
        "garbage",
    ])
    candles = await client.get_klines(PEPE_BSC, 60, limit=10, to_time=20000)
    assert candles.time.tolist() == [3600, 7200, 14400]
    assert candles.close.tolist() == [2.0, 2.6, 3.0]
    assert candles.volume.tolist() == [5.0, 11.0, 0.0]


async def test_from_time_window(client: AveClient) -> None:
    latest = await client.get_klines(PEPE_BSC, 60, limit=3)
    start = int(latest.time[0]) - 24 * 3600
    candles = await client.get_klines(PEPE_BSC, 60, limit=1000, from_time=start, to_time=int(latest.time[0]))
    assert candles.time[0] >= start and candles.time[-1] <= latest.time[0]
    assert 15 <= len(candles) <= 25


async def test_invalid_interval_and_limit_rejected_locally(client: AveClient, fake: AveFake) -> None:
    with pytest.raises(PermanentMarketError, match="interval"):
        await client.get_klines(PEPE_BSC, 7)
    with pytest.raises(PermanentMarketError):
        await client.get_klines(PEPE_BSC, 5, limit=0)
    assert fake.calls() == 0


async def test_unknown_token_klines_are_empty(client: AveClient) -> None:
    candles = await client.get_klines("0x9999999999999999999999999999999999999999-bsc", 60)
    assert len(candles) == 0


async def test_prices_split_into_chunks_of_200_with_tvl_min_zero(client: AveClient, fake: AveFake) -> None:
    unknown = [f"0x{i:040x}-bsc" for i in range(1, 448)]
    ids = [PEPE_BSC, TINY, SOL, *unknown]
    quotes = await client.get_prices(ids)
    requests = fake.requests("/v2/tokens/price")
    assert len(requests) == 3  # ⌈450 / 200⌉
    assert [len(r.body["token_ids"]) for r in requests] == [200, 200, 50]
    assert all(r.body["tvl_min"] == 0 and r.body["tx_24h_volume_min"] == 0 for r in requests)
    assert set(quotes) == {PEPE_BSC, TINY, SOL}  # the tiny-TVL token is included thanks to tvl_min 0
    assert quotes[TINY].price_usd == pytest.approx(fake.current_price(TINY))
    assert isinstance(quotes[SOL].price_usd, float) and quotes[SOL].change_24h is not None
    assert quotes[SOL].extra["tvl"] == pytest.approx(300_000_000.0)
    assert client.stats()["calls_total"] == 3


async def test_prices_case_insensitive_mapping(client: AveClient, fake: AveFake) -> None:
    upper = PEPE_BSC.upper().replace("-BSC", "-bsc")
    quotes = await client.get_prices([WETH_MIXED, upper, SOL, SOL.lower()])
    assert set(quotes) == {WETH_MIXED, upper, SOL}  # keyed by the caller's own spelling
    assert quotes[WETH_MIXED].token_id == WETH_MIXED
    body = fake.requests("/v2/tokens/price")[-1].body
    assert WETH_MIXED.lower() in body["token_ids"] and PEPE_BSC in body["token_ids"]
    assert SOL in body["token_ids"]  # Solana ids keep their case
    assert len(body["token_ids"]) == 4


async def test_empty_price_request_makes_no_call(client: AveClient, fake: AveFake) -> None:
    assert await client.get_prices([]) == {}
    assert fake.calls() == 0


async def test_scripted_429_is_retried_then_succeeds(client: AveClient, fake: AveFake) -> None:
    fake.fail_next(count=2, status=429)
    quotes = await client.get_prices([PEPE_BSC])
    assert PEPE_BSC in quotes
    assert fake.calls("/v2/tokens/price") == 3
    assert client.stats()["calls_total"] == 3


async def test_persistent_429_is_rate_limited_error(client: AveClient, fake: AveFake) -> None:
    fake.fail_next(count=10, status=429)
    with pytest.raises(RateLimitedError):
        await client.get_prices([PEPE_BSC])
    assert fake.calls() == 4


async def test_real_rate_limit_by_plan_recovers(fake: AveFake) -> None:
    # a pro-speed client on a free key bursts past the fake's 1/s bucket and must back off
    async with AveClient(FREE_KEY, base_url=fake.base_url, plan="pro", base_delay=0.3, retries=5) as ave:
        results = [await ave.get_prices([PEPE_BSC]) for _ in range(3)]
    assert all(PEPE_BSC in r for r in results)
    statuses = [r.status for r in fake.request_log]
    assert 429 in statuses and statuses.count(200) == 3


async def test_persistent_5xx_then_breaker_open(fake: AveFake) -> None:
    breaker = CircuitBreaker(failure_threshold=4, reset_after=60.0)
    async with AveClient(PRO_KEY, base_url=fake.base_url, plan="pro", sleep=NoSleep(), retries=3,
                         breaker=breaker) as ave:
        fake.fail_next(count=100, status=503)
        with pytest.raises(TemporaryMarketError) as err:
            await ave.get_klines(PEPE_BSC, 60)
        assert not isinstance(err.value, MarketUnavailableError)
        assert fake.calls() == 4
        assert ave.stats()["breaker"] == "open"
        with pytest.raises(MarketUnavailableError):
            await ave.get_prices([PEPE_BSC])
        assert fake.calls() == 4  # refused without a request
        stats = ave.stats()
        assert stats["errors"] == 2 and stats["calls_total"] == 4


async def test_timeouts_become_temporary_errors(fake: AveFake) -> None:
    fake.slow_next(count=2, seconds=1.5)
    async with AveClient(PRO_KEY, base_url=fake.base_url, plan="pro", sleep=NoSleep(), timeout=0.4,
                         retries=1) as ave:
        with pytest.raises(TemporaryMarketError) as err:
            await ave.get_prices([PEPE_BSC])
    assert err.value.code == "market.temporary" and err.value.params == {"status": None}  # no response
    assert fake.calls() == 2
    assert_key_hidden(err.value, PRO_KEY)


async def test_timeout_then_success(fake: AveFake) -> None:
    fake.slow_next(count=1, seconds=1.5)
    async with AveClient(PRO_KEY, base_url=fake.base_url, plan="pro", sleep=NoSleep(), timeout=0.4,
                         retries=2) as ave:
        quotes = await ave.get_prices([PEPE_BSC])
    assert PEPE_BSC in quotes


async def test_errors_never_contain_the_key(fake: AveFake) -> None:
    secret = PRO_KEY
    caught: list[MarketDataError] = []
    async with AveClient(secret, base_url=fake.base_url, plan="pro", sleep=NoSleep(), retries=0,
                         breaker=CircuitBreaker(failure_threshold=2)) as ave:
        for setup in (lambda: fake.fail_next(1, 500), lambda: fake.envelope_error_next(1, secret),
                      lambda: fake.fail_next(1, 400), lambda: fake.fail_next(1, 502),
                      lambda: fake.fail_next(1, 500)):
            setup()
            try:
                await ave.get_prices([PEPE_BSC])
            except MarketDataError as exc:
                caught.append(exc)
        with pytest.raises(MarketUnavailableError) as err:
            await ave.get_prices([PEPE_BSC])  # 502 + 500 in a row opened the breaker
        caught.append(err.value)
    assert len(caught) == 6
    assert isinstance(caught[-1], MarketUnavailableError)
    for exc in caught:
        assert_key_hidden(exc, secret)


async def test_not_found_mode(client: AveClient, fake: AveFake) -> None:
    fake.not_found = True
    assert await client.get_prices([PEPE_BSC]) == {}
    assert len(await client.get_klines(PEPE_BSC, 60)) == 0
    assert await client.search_tokens("PEPE") == []


async def test_search_tokens(client: AveClient, fake: AveFake) -> None:
    found = await client.search_tokens("pepe", chain="bsc")
    assert {t.token_id for t in found} == {PEPE_BSC, "0x1111111111111111111111111111111111111111-bsc"}
    assert all(t.chain == "bsc" and t.symbol == "PEPE" for t in found)
    assert all(isinstance(t.price_usd, float) and t.tvl for t in found)
    query = fake.requests("/v2/tokens")[-1].query
    assert query == {"keyword": "pepe", "chain": "bsc", "limit": "20"}


async def test_search_empty_keyword(client: AveClient, fake: AveFake) -> None:
    with pytest.raises(PermanentMarketError):
        await client.search_tokens("   ")
    assert fake.calls() == 0


async def test_resolve_symbol_prefers_exact_match_on_chain_with_most_liquidity(client: AveClient) -> None:
    on_bsc = await client.resolve_token("pepe", chain="BSC")
    assert on_bsc.token_id == PEPE_BSC and on_bsc.symbol == "PEPE"
    anywhere = await client.resolve_token("PEPE")
    assert anywhere.token_id == PEPE_ETH


async def test_resolve_id_directly_and_enriched(client: AveClient, fake: AveFake) -> None:
    info = await client.resolve_token(WETH_MIXED)
    assert info.token_id == WETH_MIXED.lower() and info.symbol == "WETH" and info.chain == "eth"
    assert fake.calls("/v2/tokens/") == 1  # detail, no search

    unknown = "0x2222222222222222222222222222222222222222-base"
    bare = await client.resolve_token(unknown)
    assert bare.token_id == unknown and bare.chain == "base"


async def test_resolve_unknown_symbol(client: AveClient) -> None:
    with pytest.raises(TokenNotFoundError) as nope:
        await client.resolve_token("NOPE", chain="solana")
    assert describe(nope.value) == "No token called NOPE on solana"
    with pytest.raises(TokenNotFoundError) as weth:
        await client.resolve_token("WETH", chain="bsc")
    assert describe(weth.value) == "No token called WETH on bsc"


async def test_stats_window(client: AveClient) -> None:
    await client.get_prices([PEPE_BSC])
    await client.get_klines(PEPE_BSC, 60, limit=5)
    stats = client.stats()
    assert stats["calls_total"] == 2 and stats["calls_per_minute"] == 2
    assert stats["errors"] == 0 and stats["breaker"] == "closed" and stats["rate_per_second"] == 20.0


async def test_plan_sets_client_rate(fake: AveFake) -> None:
    rates = {}
    for plan in ("free", "normal", "pro"):
        ave = AveClient(PRO_KEY, base_url=fake.base_url, plan=plan)
        rates[plan] = ave.limiter.rate_per_second
        await ave.aclose()
    assert rates == {"free": 1.0, "normal": 5.0, "pro": 20.0}
    with pytest.raises(ValueError):
        AveClient(PRO_KEY, plan="gold")


async def test_concurrent_calls_respect_the_client_rate(fake: AveFake) -> None:
    # 5/s client against a 5/s key: concurrent callers queue instead of tripping the server's limit
    async with AveClient("test-normal-key", base_url=fake.base_url, plan="normal", sleep=NoSleep(),
                         retries=0) as ave:
        results = await asyncio.gather(*(ave.get_prices([PEPE_BSC]) for _ in range(8)))
    assert all(PEPE_BSC in r for r in results)
    assert all(r.status == 200 for r in fake.request_log)


def test_token_id_helpers() -> None:
    assert split_token_id("0xAbC-bsc") == ("0xAbC", "bsc")
    assert split_token_id("my-token-solana") == ("my-token", "solana")
    assert split_token_id("PEPE") is None
    assert split_token_id("abc-notachain") is None
    assert normalize_token_id("0xAbC-BSC") == "0xabc-bsc"
    assert normalize_token_id("AbC-solana") == "AbC-solana"


def test_parse_points_limit_keeps_latest() -> None:
    points = [{"time": t, "open": "1", "high": "1", "low": "1", "close": str(t), "volume": "1"}
              for t in (5, 1, 3, 2, 4)]
    rows = parse_points(points, limit=2)
    assert [r[0] for r in rows] == [4, 5]


def test_fake_is_reachable_from_a_subprocess(fake: AveFake) -> None:
    # the end-to-end tests run the bot as a child process pointed at AVE_BASE_URL
    script = (
        "import asyncio, os\n"
        "from engine.market.ave import AveClient\n"
        "async def main():\n"
        "    async with AveClient(os.environ['AVE_API_KEY'], base_url=os.environ['AVE_BASE_URL'],"
        " plan='pro') as ave:\n"
        "        quotes = await ave.get_prices([os.environ['TOKEN']])\n"
        "        print(quotes[os.environ['TOKEN']].price_usd)\n"
        "asyncio.run(main())\n"
    )
    fake.set_price(SOL, 123.5)
    env = {**os.environ, "AVE_API_KEY": PRO_KEY, "AVE_BASE_URL": fake.base_url, "TOKEN": SOL}
    out = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True,
                         timeout=60, check=True, cwd=os.path.dirname(os.path.dirname(__file__)))
    assert float(out.stdout.strip()) == 123.5
    assert fake.calls("/v2/tokens/price") == 1
