"""AVE's kline stream (Pro plan) against a strict WebSocket fake: the forming bar comes from the
stream while it is healthy, from REST when it drops, goes silent or refuses the key."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Sequence
from typing import Any

import pytest

from engine.live import forming_bar
from engine.market.ave_stream import KlineStream, StreamedMarketData, parse_kline_push
from engine.market.base import Candles, PriceQuote, TokenInfo
from tests.fakes.ave_ws import AveWsFake

H = 3600
NOW = 1_750_000_000 // H * H + 900
LIVE = NOW // H * H
TOKEN = "0x00000000000000000000000000000000000000aa-bsc"
PAIR = "0x00000000000000000000000000000000000000pp"


class RestMarket:
    """The REST side: its forming bar has other numbers than the stream's, so answers are told apart."""

    def __init__(self) -> None:
        self.kline_calls = 0

    @property
    def is_demo(self) -> bool:
        return False

    async def get_klines(self, token_id: str, interval_minutes: int, *, limit: int = 300,
                         from_time: int | None = None, to_time: int | None = None) -> Candles:
        self.kline_calls += 1
        return Candles.from_rows([(LIVE - H, 1.0, 1.0, 1.0, 1.0, 1.0), (LIVE, 2.0, 2.5, 1.5, 2.2, 1.0)][-limit:])

    async def get_prices(self, token_ids: Sequence[str]) -> dict[str, PriceQuote]:
        return {}

    async def search_tokens(self, keyword: str, chain: str | None = None, limit: int = 20) -> list[TokenInfo]:
        return []

    async def resolve_token(self, symbol_or_id: str, chain: str | None = None) -> TokenInfo:
        return TokenInfo(TOKEN, "GROW", "bsc")

    async def aclose(self) -> None:
        return None


async def main_pair(token_id: str) -> str | None:
    return PAIR if token_id == TOKEN else None


async def until(cond: Any, timeout: float = 5.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not cond():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.02)


@pytest.fixture
def ws() -> Any:
    with AveWsFake() as fake:
        yield fake


def streamed(url: str, key: str = "test-pro-key", **kw: Any) -> tuple[StreamedMarketData, RestMarket, KlineStream]:
    rest = RestMarket()
    stream = KlineStream(url, key, retry_delay=0.05, max_backoff=0.2, **kw)
    return StreamedMarketData(rest, stream, main_pair), rest, stream


async def test_forming_bar_from_the_stream_then_rest_when_it_drops_then_the_stream_again(ws: AveWsFake) -> None:
    market, rest, stream = streamed(ws.url)
    stream.start()
    try:
        await until(lambda: stream.healthy)
        assert await forming_bar(market, TOKEN, 60, NOW) is not None  # not pushed yet: REST answers
        assert rest.kline_calls == 1
        await until(lambda: ws.subscribed == 1)
        assert ws.subscriptions == [(PAIR, "k60", "bsc")]
        assert ws.push(PAIR, "k60", (LIVE, 3.0, 3.3, 2.9, 3.1, 50.0)) == 1
        await until(lambda: stream.bar(PAIR, 60, LIVE) is not None)
        bar = await forming_bar(market, TOKEN, 60, NOW)
        assert bar is not None and (bar.time, bar.open, bar.high, bar.low) == (LIVE, 3.0, 3.3, 2.9)
        assert rest.kline_calls == 1 and market.stream_answers == 1
        # closed bars always come from REST
        closed = await market.get_klines(TOKEN, 60, limit=50, to_time=LIVE - 1)
        assert len(closed) == 2 and rest.kline_calls == 2
        ws.drop()
        await until(lambda: not stream.healthy)
        fallback = await forming_bar(market, TOKEN, 60, NOW)
        assert fallback is not None and fallback.open == 2.0 and rest.kline_calls == 3
        await until(lambda: stream.healthy and ws.subscribed == 1)  # reconnected and subscribed again
        assert stream.connects == 2 and ws.subscriptions[-1] == (PAIR, "k60", "bsc")
        ws.push(PAIR, "k60", (LIVE, 3.0, 3.6, 2.8, 3.5, 80.0))
        await until(lambda: (b := stream.bar(PAIR, 60, LIVE)) is not None and b.high == 3.6)
        assert (await forming_bar(market, TOKEN, 60, NOW)).high == 3.6  # type: ignore[union-attr]
        assert market.stats()["stream"]["healthy"] is True
    finally:
        await market.aclose()


async def test_a_silent_stream_is_not_trusted(ws: AveWsFake) -> None:
    market, rest, stream = streamed(ws.url, silence=0.3)
    stream.start()
    try:
        await forming_bar(market, TOKEN, 60, NOW)
        await until(lambda: ws.subscribed == 1)
        ws.push(PAIR, "k60", (LIVE, 3.0, 3.3, 2.9, 3.1, 50.0))
        await until(lambda: stream.bar(PAIR, 60, LIVE) is not None)
        ws.silent = True
        await until(lambda: stream.bar(PAIR, 60, LIVE) is None, timeout=3)  # stale: REST again
        before = rest.kline_calls
        assert (await forming_bar(market, TOKEN, 60, NOW)).open == 2.0  # type: ignore[union-attr]
        assert rest.kline_calls == before + 1
    finally:
        await market.aclose()


async def test_a_refused_key_falls_back_to_rest(ws: AveWsFake) -> None:
    market, _rest, stream = streamed(ws.url, key="wrong")
    stream.start()
    try:
        await until(lambda: ws.rejected >= 2)  # it keeps retrying with backoff, never healthy
        assert not stream.healthy and ws.connections == 0
        assert (await forming_bar(market, TOKEN, 60, NOW)).open == 2.0  # type: ignore[union-attr]
    finally:
        await market.aclose()


async def test_the_fake_is_strict_about_json_rpc(ws: AveWsFake) -> None:
    from websockets.asyncio.client import connect
    async with connect(ws.url, additional_headers={"X-API-KEY": "test-pro-key"}) as conn:
        for raw, code in (("not json", -32700), (json.dumps({"jsonrpc": "2.0", "method": "nope", "id": 1}), -32601),
                          (json.dumps({"jsonrpc": "2.0", "method": "subscribe", "params": ["kline"], "id": 2}),
                           -32602)):
            await conn.send(raw)
            assert json.loads(await conn.recv())["error"]["code"] == code
        await conn.send(json.dumps({"jsonrpc": "2.0", "method": "subscribe",
                                    "params": ["kline", PAIR, "k60", "bsc"], "id": 3}))
        assert json.loads(await conn.recv()) == {"jsonrpc": "2.0", "id": 3, "result": "subscribed"}


@pytest.mark.parametrize("message", [
    None, [], {"result": "subscribed"}, {"result": {"topic": "price"}},
    {"result": {"topic": "kline", "pair": PAIR, "interval": "k60", "kline": {"usd": {"open": "x"}}}},
    {"result": {"topic": "kline", "pair": PAIR, "interval": "k7", "kline": {"usd": {}}}},
    {"result": {"topic": "kline", "pair": PAIR, "interval": "k60",  # high below the close
                "kline": {"usd": {"open": "1", "high": "1", "low": "0.5", "close": "2", "volume": "1",
                                  "time": LIVE}}}},
    {"result": {"topic": "kline", "pair": PAIR, "interval": "k60",
                "kline": {"usd": {"open": "nan", "high": "1", "low": "0.5", "close": "1", "volume": "1",
                                  "time": LIVE}}}},
])
def test_malformed_pushes_are_ignored(message: Any) -> None:
    assert parse_kline_push(message) is None


def test_a_good_push_parses() -> None:
    msg = {"result": {"topic": "kline", "pair": PAIR.upper(), "interval": "k240",
                      "kline": {"usd": {"open": "1", "high": "2", "low": "0.5", "close": "1.5", "volume": "10",
                                        "time": LIVE}}}}
    pair, interval, bar = parse_kline_push(msg)  # type: ignore[misc]
    assert (pair, interval, bar.time, bar.high) == (PAIR.lower(), 240, LIVE, 2.0)


async def test_only_the_pro_plan_streams() -> None:
    from engine.market.cache import CachedMarketData
    from engine.market.factory import build_market_data
    pro = build_market_data(api_key="k", plan="pro", wss_url="ws://127.0.0.1:9")
    normal = build_market_data(api_key="k", plan="normal")
    demo = build_market_data(api_key="", plan="pro")
    try:
        assert isinstance(pro, StreamedMarketData) and pro.stream.url == "ws://127.0.0.1:9"
        assert isinstance(normal, CachedMarketData) and isinstance(demo, CachedMarketData)
    finally:
        for m in (pro, normal, demo):
            await m.aclose()
