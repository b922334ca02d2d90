"""AVE's WebSocket kline stream (Pro plan) behind the `MarketData` interface, with fallback to REST.

On the Pro plan AVE pushes live candles over `wss` (JSON-RPC: `{"method": "subscribe", "params":
["kline", <pair address>, "k60", <chain>]}`; pushes carry `result.topic == "kline"` and the OHLCV
under `result.kline.usd`). `KlineStream` keeps one connection, subscribes to the main pair of
every token whose forming bar the trading core asks for, keeps the newest bar per (pair,
interval) and reconnects with backoff, subscribing again. `StreamedMarketData` is a
`LiveBarSource`: `engine.live.forming_bar` takes the bar in progress from the stream while it is
healthy (connected and heard from within `silence` seconds) and from REST otherwise, so a dropped or
silent stream costs latency, never a decision. Closed bars always come from REST (AVE's stored
candles), so the bars a live path trades on are those a backtest would fetch.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import math
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

from engine.market.base import Candles, MarketData, MarketDataError, PriceQuote, TokenInfo

log = logging.getLogger(__name__)

DEFAULT_WSS_URL = "wss://wss.ave-api.xyz"
_INTERVALS = {1: "k1", 5: "k5", 15: "k15", 30: "k30", 60: "k60", 120: "k120", 240: "k240", 1440: "k1440"}
_BY_NAME = {v: k for k, v in _INTERVALS.items()}


@dataclass(frozen=True)
class StreamBar:
    time: int
    open: float
    high: float
    low: float
    close: float
    volume: float


def parse_kline_push(message: Any) -> tuple[str, int, StreamBar] | None:
    """(pair address, interval minutes, bar) of a kline push, or None for anything else."""
    if not isinstance(message, dict):
        return None
    result = message.get("result")
    if not isinstance(result, dict) or result.get("topic") != "kline":
        return None
    kline = result.get("kline")
    usd = kline.get("usd") if isinstance(kline, dict) else None
    pair, interval = result.get("pair"), _BY_NAME.get(str(result.get("interval")))
    if not isinstance(usd, dict) or not isinstance(pair, str) or interval is None:
        return None
    try:
        values = [float(usd[k]) for k in ("open", "high", "low", "close", "volume")]
        stamp = int(usd["time"])
    except (KeyError, TypeError, ValueError):
        return None
    if not all(math.isfinite(v) for v in values) or min(values[:4]) <= 0 or values[4] < 0:
        return None
    if values[1] < max(values[0], values[3]) or values[2] > min(values[0], values[3]):
        return None
    return pair.lower(), interval, StreamBar(stamp, *values)


Connect = Callable[..., Any]


class KlineStream:
    """One WebSocket connection to AVE's kline topic; see the module docstring."""

    def __init__(self, url: str, api_key: str, *, silence: float = 30.0, retry_delay: float = 1.0,
                 max_backoff: float = 60.0, connect: Connect | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.url = url
        self._key = api_key
        self.silence = float(silence)
        self.retry_delay = float(retry_delay)
        self.max_backoff = float(max_backoff)
        self._connect = connect
        self._clock = clock
        self._subs: dict[tuple[str, int], str] = {}  # (pair, interval) -> chain
        self._bars: dict[tuple[str, int], StreamBar] = {}
        self._ws: Any = None
        self._last_message = -math.inf
        self._task: asyncio.Task[None] | None = None
        self._ids = 0
        self.connects = 0

    @property
    def healthy(self) -> bool:
        """Connected and heard from recently: its bars can be trusted now."""
        return self._ws is not None and self._clock() - self._last_message <= self.silence

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run(), name="ave-kline-stream")

    async def aclose(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        ws, self._ws = self._ws, None
        if ws is not None:
            with contextlib.suppress(Exception):
                await ws.close()

    async def watch(self, pair: str, chain: str, interval_minutes: int) -> None:
        """Subscribe to the pair's candles of `interval_minutes` (kept across reconnects)."""
        key = (pair.lower(), int(interval_minutes))
        if key in self._subs or interval_minutes not in _INTERVALS:
            return
        self._subs[key] = chain
        if self._ws is not None:
            with contextlib.suppress(Exception):
                await self._subscribe(self._ws, key, chain)

    def bar(self, pair: str, interval_minutes: int, start: int) -> StreamBar | None:
        """The pushed bar starting at `start`, while the stream is healthy."""
        if not self.healthy:
            return None
        bar = self._bars.get((pair.lower(), int(interval_minutes)))
        return bar if bar is not None and bar.time == start else None

    async def _subscribe(self, ws: Any, key: tuple[str, int], chain: str) -> None:
        self._ids += 1
        await ws.send(json.dumps({"jsonrpc": "2.0", "method": "subscribe",
                                  "params": ["kline", key[0], _INTERVALS[key[1]], chain], "id": self._ids}))

    async def _run(self) -> None:
        delay = self.retry_delay
        while True:
            try:
                await self._session()
                delay = self.retry_delay
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # every failure means: reconnect later, REST meanwhile
                log.info("AVE kline stream down (%s); REST until it is back, retry in %.0f s",
                         type(exc).__name__, delay)
            self._ws = None
            await asyncio.sleep(delay)
            delay = min(self.max_backoff, delay * 2)

    async def _session(self) -> None:
        connect = self._connect
        if connect is None:
            from websockets.asyncio.client import connect  # imported only where the stream is used
        async with connect(self.url, additional_headers={"X-API-KEY": self._key}, open_timeout=10) as ws:
            self.connects += 1
            for key, chain in list(self._subs.items()):
                await self._subscribe(ws, key, chain)
            self._ws = ws
            self._last_message = self._clock()
            log.info("AVE kline stream connected (%d subscriptions)", len(self._subs))
            while True:
                try:
                    raw = await asyncio.wait_for(ws.recv(), timeout=self.silence)
                except TimeoutError:
                    raise ConnectionError("the stream went silent") from None
                self._last_message = self._clock()
                try:
                    parsed = parse_kline_push(json.loads(raw))
                except ValueError:
                    continue
                if parsed is not None:
                    pair, interval, bar = parsed
                    old = self._bars.get((pair, interval))
                    if old is None or bar.time >= old.time:
                        self._bars[(pair, interval)] = bar


class StreamedMarketData:
    """`MarketData` that answers forming-bar requests from a `KlineStream` when it can."""

    def __init__(self, inner: MarketData, stream: KlineStream,
                 main_pair: Callable[[str], Awaitable[str | None]]) -> None:
        self.inner = inner
        self.stream = stream
        self._main_pair = main_pair
        self._pairs: dict[str, str | None] = {}
        self.stream_answers = 0

    @property
    def is_demo(self) -> bool:
        return self.inner.is_demo

    def stats(self) -> dict[str, Any]:
        inner = getattr(self.inner, "stats", None)
        base = inner() if callable(inner) else {}
        return {**base, "stream": {"healthy": self.stream.healthy, "answers": self.stream_answers,
                                   "connects": self.stream.connects}}

    async def get_klines(self, token_id: str, interval_minutes: int, *, limit: int = 300,
                         from_time: int | None = None, to_time: int | None = None) -> Candles:
        return await self.inner.get_klines(token_id, interval_minutes, limit=limit, from_time=from_time,
                                           to_time=to_time)

    async def live_bar(self, token_id: str, interval_minutes: int, start: int
                       ) -> tuple[float, float, float] | None:
        """`LiveBarSource`: the pushed bar starting at `start` while the stream is healthy."""
        bar = await self._stream_bar(token_id, interval_minutes, start)
        if bar is None:
            return None
        self.stream_answers += 1
        return bar.open, bar.high, bar.low

    async def _stream_bar(self, token_id: str, interval_minutes: int, live: int) -> StreamBar | None:
        if token_id not in self._pairs:
            try:
                self._pairs[token_id] = await self._main_pair(token_id)
            except MarketDataError:
                return None  # try again next time
        pair = self._pairs[token_id]
        if not pair:
            return None
        chain = token_id.rpartition("-")[2]
        await self.stream.watch(pair, chain, interval_minutes)
        return self.stream.bar(pair, interval_minutes, live)

    async def get_prices(self, token_ids: Sequence[str]) -> dict[str, PriceQuote]:
        return await self.inner.get_prices(token_ids)

    async def search_tokens(self, keyword: str, chain: str | None = None, limit: int = 20) -> list[TokenInfo]:
        return await self.inner.search_tokens(keyword, chain, limit)

    async def resolve_token(self, symbol_or_id: str, chain: str | None = None) -> TokenInfo:
        return await self.inner.resolve_token(symbol_or_id, chain)

    def clear(self) -> None:
        clear = getattr(self.inner, "clear", None)
        if callable(clear):
            clear()

    async def aclose(self) -> None:
        await self.stream.aclose()
        await self.inner.aclose()
