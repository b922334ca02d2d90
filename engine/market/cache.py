"""One shared TTL cache in front of any `MarketData`, so no price is fetched twice in one tick.

* prices: per token id, TTL `price_ttl` (default 10 s); a batch asks upstream only for the ids
  that are missing, in a single call (the AVE client splits it into ⌈n/200⌉ HTTP calls);
  ids the provider does not know are remembered as absent for the same TTL.
* klines: keyed by (token, interval, limit, from, to rounded to the minute). A live window
  (no `to_time`, or one inside the current candle) lives about one interval, capped at 15 min
  so the newest candle does not go stale for hours; a window wholly in the past lives 1 h.
* search and resolve results: 1 h.

Concurrent identical requests coalesce onto one in-flight upstream task. Errors are not cached.
Cached candle arrays are shared, so they are made read-only (copy before editing in place).
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict, deque
from collections.abc import Awaitable, Callable, Hashable, Sequence
from dataclasses import replace
from typing import Any, TypeVar

from engine.market.ave_protocol import normalize_token_id, split_token_id
from engine.market.base import Candles, MarketData, PriceQuote, TokenInfo

T = TypeVar("T")

LIVE_KLINE_TTL_CAP = 900.0
HISTORICAL_TTL = 3600.0
_ABSENT = object()


class CachedMarketData:
    """`MarketData` wrapper with TTL caching, request coalescing and hit/miss statistics."""

    def __init__(self, inner: MarketData, *, price_ttl: float = 10.0, search_ttl: float = 3600.0,
                 clock: Callable[[], float] = time.monotonic, wall_clock: Callable[[], float] = time.time,
                 max_entries: int = 20_000) -> None:
        self.inner = inner
        self.price_ttl = float(price_ttl)
        self.search_ttl = float(search_ttl)
        self._clock = clock
        self._wall = wall_clock
        self._max_entries = max_entries
        self._store: OrderedDict[Hashable, tuple[float, Any]] = OrderedDict()
        self._inflight: dict[Hashable, asyncio.Task[Any]] = {}
        self._hits = 0
        self._misses = 0
        self._upstream_total = 0
        self._upstream_recent: deque[float] = deque()

    def __repr__(self) -> str:
        return f"CachedMarketData({self.inner!r})"

    @property
    def is_demo(self) -> bool:
        return self.inner.is_demo

    async def aclose(self) -> None:
        """Cancel in-flight fetches and close the wrapped source."""
        for task in list(self._inflight.values()):
            task.cancel()
        await self.inner.aclose()

    def clear(self) -> None:
        """Forget every cached entry (in-flight fetches continue)."""
        self._store.clear()

    # --- storage ------------------------------------------------------------------------------

    def _get(self, key: Hashable) -> Any:
        entry = self._store.get(key)
        if entry is None:
            return None
        expires = entry[0]
        if self._clock() >= expires:
            del self._store[key]
            return None
        self._store.move_to_end(key)
        return entry

    def _put(self, key: Hashable, value: Any, ttl: float) -> None:
        self._store[key] = (self._clock() + ttl, value)
        self._store.move_to_end(key)
        if len(self._store) > self._max_entries:
            now = self._clock()
            for stale in [k for k, (exp, _) in self._store.items() if exp <= now]:
                del self._store[stale]
            while len(self._store) > self._max_entries:
                self._store.popitem(last=False)

    def _note_upstream(self) -> None:
        now = self._clock()
        self._upstream_total += 1
        self._upstream_recent.append(now)
        self._prune(now)

    def _prune(self, now: float) -> None:
        while self._upstream_recent and now - self._upstream_recent[0] > 60.0:
            self._upstream_recent.popleft()

    def stats(self) -> dict[str, Any]:
        """Hits, misses, hit rate, upstream calls (total / last 60 s), entries, the provider's stats."""
        now = self._clock()
        self._prune(now)
        looked_up = self._hits + self._misses
        out: dict[str, Any] = {
            "hits": self._hits, "misses": self._misses,
            "hit_rate": (self._hits / looked_up) if looked_up else 0.0,
            "upstream_calls_total": self._upstream_total,
            "upstream_calls_per_minute": len(self._upstream_recent),
            "size": len(self._store), "in_flight": len(self._inflight), "demo": self.is_demo,
        }
        provider_stats = getattr(self.inner, "stats", None)
        if callable(provider_stats):
            out["provider"] = provider_stats()
        return out

    async def _cached(self, key: Hashable, ttl: float,
                      fetch: Callable[[], Awaitable[T]]) -> T:
        """The cached value for `key`, or one shared upstream fetch for all concurrent callers."""
        entry = self._get(key)
        if entry is not None:
            self._hits += 1
            return entry[1]
        task = self._inflight.get(key)
        if task is not None:
            self._hits += 1  # coalesced: served without another upstream call
            return await asyncio.shield(task)
        self._misses += 1
        self._note_upstream()

        async def run() -> T:
            value = await fetch()
            self._put(key, value, ttl)
            return value

        task = asyncio.ensure_future(run())
        self._inflight[key] = task
        task.add_done_callback(lambda t, k=key: self._finish(k, t))
        # shield: one impatient caller cancelling must not cancel the fetch the others wait on
        return await asyncio.shield(task)

    def _finish(self, key: Hashable, task: asyncio.Task[Any]) -> None:
        if self._inflight.get(key) is task:
            del self._inflight[key]
        if not task.cancelled():
            task.exception()  # mark retrieved; waiting callers get it re-raised anyway

    # --- MarketData -----------------------------------------------------------------------------

    async def get_klines(self, token_id: str, interval_minutes: int, *, limit: int = 300,
                         from_time: int | None = None, to_time: int | None = None) -> Candles:
        """Cached candles; see the module docstring for the TTLs."""
        norm = normalize_token_id(token_id)
        key = ("klines", norm, interval_minutes, limit, from_time,
               None if to_time is None else int(to_time) // 60)
        period = interval_minutes * 60.0
        live = to_time is None or to_time >= self._wall() - period
        ttl = min(max(period, 30.0), LIVE_KLINE_TTL_CAP) if live else HISTORICAL_TTL

        async def fetch() -> Candles:
            candles = await self.inner.get_klines(norm, interval_minutes, limit=limit,
                                                  from_time=from_time, to_time=to_time)
            for array in candles.values():
                array.flags.writeable = False  # shared by every caller: nobody may edit it in place
            return candles

        return await self._cached(key, ttl, fetch)

    async def get_prices(self, token_ids: Sequence[str]) -> dict[str, PriceQuote]:
        """Cached prices; only missing ids go upstream, all of them in one call."""
        norms: dict[str, str] = {tid: normalize_token_id(tid) for tid in token_ids if isinstance(tid, str)}
        results: dict[str, Any] = {}
        waits: dict[str, asyncio.Task[Any]] = {}
        missing: list[str] = []
        for norm in dict.fromkeys(norms.values()):
            entry = self._get(("price", norm))
            if entry is not None:
                self._hits += 1
                results[norm] = entry[1]
            elif (task := self._inflight.get(("price", norm))) is not None:
                self._hits += 1
                waits[norm] = task
            else:
                self._misses += 1
                missing.append(norm)
        if missing:
            self._note_upstream()
            batch = asyncio.ensure_future(self._fetch_prices(missing))
            for norm in missing:
                key = ("price", norm)
                self._inflight[key] = batch
                waits[norm] = batch
            keys = tuple(("price", n) for n in missing)
            batch.add_done_callback(lambda t, ks=keys: self._finish_many(ks, t))
        for norm, task in waits.items():
            fetched = await asyncio.shield(task)
            results[norm] = fetched.get(norm, _ABSENT)
        out: dict[str, PriceQuote] = {}
        for original, norm in norms.items():
            quote = results.get(norm, _ABSENT)
            if isinstance(quote, PriceQuote):
                out[original] = quote if quote.token_id == original else replace(quote, token_id=original)
        return out

    async def _fetch_prices(self, ids: list[str]) -> dict[str, Any]:
        quotes = await self.inner.get_prices(ids)
        found: dict[str, Any] = {}
        for norm in ids:
            value = quotes.get(norm, _ABSENT)
            found[norm] = value
            self._put(("price", norm), value, self.price_ttl)
        return found

    def _finish_many(self, keys: tuple[Hashable, ...], task: asyncio.Task[Any]) -> None:
        for key in keys:
            if self._inflight.get(key) is task:
                del self._inflight[key]
        if not task.cancelled():
            task.exception()

    async def search_tokens(self, keyword: str, chain: str | None = None, limit: int = 20) -> list[TokenInfo]:
        """Cached search (1 h)."""
        key = ("search", (keyword or "").strip().casefold(), (chain or "").strip().lower(), limit)
        found = await self._cached(key, self.search_ttl,
                                   lambda: self.inner.search_tokens(keyword, chain, limit))
        return list(found)

    async def resolve_token(self, symbol_or_id: str, chain: str | None = None) -> TokenInfo:
        """Cached resolution (1 h); ids keep their case where the chain is case-sensitive."""
        query = (symbol_or_id or "").strip()
        ident = normalize_token_id(query) if split_token_id(query) else query.casefold()
        key = ("resolve", ident, (chain or "").strip().lower())
        return await self._cached(key, self.search_ttl, lambda: self.inner.resolve_token(query, chain))
