"""The built-in demo market: a deterministic, seeded stand-in for AVE when no API key is set.

Every number is a pure function of (seed, token, minute), so any time range is reproducible and
all intervals agree with each other (a 1h candle is exactly the aggregate of its 5m candles):

* Day anchors: the log price at each UTC midnight is fractal value noise (per-day noise plus
  smooth 7/30/120-day trends), scaled by the token's daily volatility and a volatility regime
  (calm / normal / wild, held for 3-day blocks).
* Inside a day: per-minute Gaussian returns from a counter-based hash (splitmix64), turned into a
  Brownian bridge between the two midnight anchors, so a day can be generated on its own.
* Wicks and volume come from the same hash streams; volume rises with the size of the move.

No network, no state beyond the token table; `clock` (unix seconds) decides what "now" is.
"""

from __future__ import annotations

import asyncio
import hashlib
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from engine.market.ave_protocol import AVE_INTERVALS, normalize_token_id, split_token_id
from engine.market.base import (
    Candles,
    PermanentMarketError,
    PriceQuote,
    TokenInfo,
    TokenNotFoundError,
)

MINUTES_PER_DAY = 1440
_U64 = np.uint64
_GOLDEN = _U64(0x9E3779B97F4A7C15)
_M1 = _U64(0xBF58476D1CE4E5B9)
_M2 = _U64(0x94D049BB133111EB)
# (scale in days, amplitude in daily-volatility units) of the anchor's trend components
_TREND_SCALES: tuple[tuple[int, float], ...] = ((7, 2.5), (30, 5.0), (120, 8.0))
_REGIME_BLOCK_DAYS = 3
_INLINE_MINUTES = 60 * MINUTES_PER_DAY  # windows longer than this are generated in a worker thread


@dataclass(frozen=True)
class DemoToken:
    """One demo token: its id, display data and the parameters of its price process."""

    token_id: str
    symbol: str
    chain: str
    name: str
    base_price: float
    daily_vol: float
    volume_per_minute: float
    tvl: float


DEMO_TOKENS: tuple[DemoToken, ...] = (
    DemoToken("0x514ad355aec892241cbf8cb58844b7e352bea2f5-bsc", "PEPE", "bsc", "Pepe (demo)",
              0.0000125, 0.060, 900.0, 4_200_000.0),
    DemoToken("0x79d77e7271ce1e06641411b3d63e4d4ceb6524b8-eth", "WETH", "eth", "Wrapped Ether (demo)",
              3100.0, 0.025, 25_000.0, 850_000_000.0),
    DemoToken("Co3Fik9DypG8pJnKN1uRUxqEjmAx7Nbp3JsB58qESr7Q-solana", "SOL", "solana", "Solana (demo)",
              150.0, 0.035, 18_000.0, 320_000_000.0),
    DemoToken("4SFQHHAiiWGPUqSGUvkxMoE1QGQVHJdHSi3mS5aY7qvt-solana", "BONK", "solana", "Bonk (demo)",
              0.000022, 0.070, 1_500.0, 12_000_000.0),
    DemoToken("0x088b28fbea45a594cf1a7c16480bbc2a95a773aa-bsc", "DOGE", "bsc", "Dogecoin (demo)",
              0.16, 0.045, 4_000.0, 60_000_000.0),
    DemoToken("0xe23690337826b67eebab71698f67ca1b6710a955-arbitrum", "ARB", "arbitrum", "Arbitrum (demo)",
              0.85, 0.040, 2_500.0, 45_000_000.0),
)


def _key(*parts: object) -> int:
    """A stable 64-bit stream key (Python's hash() is salted per process, so use blake2b)."""
    digest = hashlib.blake2b(repr(parts).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little")


def _mix(x: np.ndarray) -> np.ndarray:
    """splitmix64 finaliser over a uint64 array (wrap-around arithmetic is intended)."""
    x = x + _GOLDEN
    x = (x ^ (x >> _U64(30))) * _M1
    x = (x ^ (x >> _U64(27))) * _M2
    return x ^ (x >> _U64(31))


def _hash(key: int, idx: np.ndarray) -> np.ndarray:
    """64 random bits per counter in `idx` for stream `key` (splitmix64 of key + idx * golden)."""
    state = np.asarray(idx, dtype=np.int64).astype(_U64) * _GOLDEN + _U64(key)
    return _mix(state)


def _to_unit(bits: np.ndarray) -> np.ndarray:
    """32 random bits (in a uint64) to a uniform float in (0, 1)."""
    return (bits.astype(np.float64) + 0.5) * (1.0 / 4294967296.0)


def _uniform(key: int, idx: np.ndarray) -> np.ndarray:
    """Uniform (0, 1) values, one per counter in `idx`, for stream `key`."""
    return _to_unit(_hash(key, idx) >> _U64(32))


def _normal_pair(key: int, idx: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Two independent standard normals per counter (Box-Muller on the two 32-bit halves of one hash)."""
    bits = _hash(key, idx)
    u1 = _to_unit(bits >> _U64(32))
    u2 = _to_unit(bits & _U64(0xFFFFFFFF))
    radius = np.sqrt(-2.0 * np.log(u1))
    angle = 2.0 * math.pi * u2
    return radius * np.cos(angle), radius * np.sin(angle)


class DemoMarket:
    """Deterministic offline `MarketData` over a few named tokens (see module docstring)."""

    def __init__(self, *, seed: int = 7, clock: Callable[[], float] = time.time,
                 tokens: Sequence[DemoToken] = DEMO_TOKENS, history_days: int = 730) -> None:
        self.seed = seed
        self._clock = clock
        self._tokens = tuple(tokens)
        self._by_id = {normalize_token_id(t.token_id): (i, t) for i, t in enumerate(self._tokens)}
        self._history_days = history_days
        # per-token cache of full-day (o, h, l, c, v) summaries; pure data, so caching is safe
        self._day_cache: dict[int, dict[int, tuple[float, ...]]] = {}
        self._day_cache_size = 4000

    def __repr__(self) -> str:
        return f"DemoMarket(seed={self.seed}, tokens={len(self._tokens)})"

    @property
    def is_demo(self) -> bool:
        return True

    @property
    def tokens(self) -> tuple[DemoToken, ...]:
        return self._tokens

    async def aclose(self) -> None:
        """Nothing to release."""

    # --- the price process --------------------------------------------------------------------

    def _anchor(self, index: int, token: DemoToken, days: np.ndarray) -> np.ndarray:
        """Log price at the start (UTC midnight) of each day in `days`."""
        days = np.asarray(days, dtype=np.int64)
        level = _normal_pair(_key(self.seed, index, "day"), days)[0] * self._regime(index, days)
        for scale, amp in _TREND_SCALES:
            lattice = days // scale
            frac = (days - lattice * scale) / scale
            weight = frac * frac * (3.0 - 2.0 * frac)  # smoothstep keeps the trend continuous
            key = _key(self.seed, index, "trend", scale)
            lo = _normal_pair(key, lattice)[0]
            hi = _normal_pair(key, lattice + 1)[0]
            level = level + amp * (lo * (1.0 - weight) + hi * weight)
        return math.log(token.base_price) + token.daily_vol * level

    def _regime(self, index: int, days: np.ndarray) -> np.ndarray:
        """Volatility multiplier per day: calm 0.6, normal 1.0, wild 2.2 (3-day blocks)."""
        u = _uniform(_key(self.seed, index, "regime"), np.asarray(days) // _REGIME_BLOCK_DAYS)
        return np.where(u < 0.45, 0.6, np.where(u < 0.85, 1.0, 2.2))

    def _minutes(self, index: int, token: DemoToken, first_day: int, last_day: int
                 ) -> tuple[np.ndarray, ...]:
        """Per-minute open/high/low/close/volume for whole days `first_day..last_day` (flat arrays)."""
        days = np.arange(first_day, last_day + 1, dtype=np.int64)
        anchors = self._anchor(index, token, np.arange(first_day, last_day + 2, dtype=np.int64))
        regime = self._regime(index, days)[:, None]
        step = np.arange(MINUTES_PER_DAY, dtype=np.int64)
        minute_idx = days[:, None] * MINUTES_PER_DAY + step[None, :]
        z_ret, z_wick = _normal_pair(_key(self.seed, index, "minute"), minute_idx)
        u = _uniform(_key(self.seed, index, "volume"), minute_idx)
        sigma = token.daily_vol / math.sqrt(MINUTES_PER_DAY) * regime
        walk = np.cumsum(z_ret * sigma, axis=1)
        frac = (step + 1.0) / MINUTES_PER_DAY
        # Brownian bridge: the walk is pinned to the next midnight's anchor
        bridge = walk - frac[None, :] * walk[:, -1:]
        log_close = anchors[:-1, None] + frac[None, :] * (anchors[1:] - anchors[:-1])[:, None] + bridge
        close = np.exp(log_close)
        open_ = np.empty_like(close)
        open_[:, 1:] = close[:, :-1]
        open_[:, 0] = np.exp(anchors[:-1])
        wick = np.abs(z_wick) * sigma * 0.5
        high = np.maximum(open_, close) * np.exp(wick * u)
        low = np.minimum(open_, close) * np.exp(wick * (u - 1.0))
        volume = token.volume_per_minute * regime * (0.3 + np.abs(z_ret)) * (0.5 + u)
        return tuple(a.ravel() for a in (open_, high, low, close, volume))

    def _window(self, index: int, token: DemoToken, m_start: int, m_end: int) -> tuple[np.ndarray, ...]:
        """Per-minute arrays for minutes `m_start..m_end` inclusive."""
        first_day, last_day = m_start // MINUTES_PER_DAY, m_end // MINUTES_PER_DAY
        arrays = self._minutes(index, token, first_day, last_day)
        offset = m_start - first_day * MINUTES_PER_DAY
        return tuple(a[offset:offset + (m_end - m_start + 1)] for a in arrays)

    # --- MarketData -----------------------------------------------------------------------------

    def _lookup(self, token_id: str) -> tuple[int, DemoToken]:
        found = self._by_id.get(normalize_token_id(token_id))
        if found is None:
            raise TokenNotFoundError("market.demo_unknown_id", token_id=token_id)
        return found

    async def get_klines(self, token_id: str, interval_minutes: int, *, limit: int = 300,
                         from_time: int | None = None, to_time: int | None = None) -> Candles:
        """Candles aggregated from the minute path; the newest may be the in-progress one."""
        if interval_minutes not in AVE_INTERVALS:
            raise PermanentMarketError("market.bad_interval", interval=interval_minutes)
        if limit < 1:
            raise PermanentMarketError("market.bad_limit")
        index, token = self._lookup(token_id)
        if interval_minutes * limit > _INLINE_MINUTES:
            # long histories take tens of ms of numpy: keep the event loop responsive meanwhile
            return await asyncio.to_thread(self._candles, index, token, interval_minutes, limit,
                                           from_time, to_time)
        return self._candles(index, token, interval_minutes, limit, from_time, to_time)

    def _candles(self, index: int, token: DemoToken, interval: int, limit: int,
                from_time: int | None, to_time: int | None) -> Candles:
        """Synchronous core of `get_klines`."""
        now = self._clock()
        end = now if to_time is None else min(to_time, now)
        history_start = math.ceil((now - self._history_days * 86400) / 60)
        # a candle's content depends only on its time and "now" (the live one is partial), never on
        # to_time: a candle starting at or before to_time is returned whole, as AVE does
        last_c = math.floor(end / 60) // interval
        m_end = min(math.floor(now / 60), (last_c + 1) * interval - 1)
        first_c = max(last_c - limit + 1, -(-history_start // interval))
        if from_time is not None:
            first_c = max(first_c, -(-int(from_time) // (interval * 60)))
        if first_c > last_c:
            return Candles.empty()
        if interval % MINUTES_PER_DAY == 0:
            # day-aligned intervals: aggregate cached per-day summaries instead of every minute
            per = interval // MINUTES_PER_DAY
            o, h, lo, c, v = self._daily(index, token, first_c * per, m_end)
            starts = np.arange(0, o.shape[0], per)
        else:
            m_start = first_c * interval
            o, h, lo, c, v = self._window(index, token, m_start, m_end)
            starts = np.arange(0, m_end - m_start + 1, interval)
        ends = np.minimum(starts + (interval if interval % MINUTES_PER_DAY else interval // MINUTES_PER_DAY),
                          c.shape[0]) - 1
        times = (first_c + np.arange(starts.shape[0], dtype=np.int64)) * interval * 60
        return Candles(times, o[starts], np.maximum.reduceat(h, starts), np.minimum.reduceat(lo, starts),
                       c[ends], np.add.reduceat(v, starts))

    def _daily(self, index: int, token: DemoToken, first_day: int, m_end: int) -> tuple[np.ndarray, ...]:
        """Per-day OHLCV from `first_day` to the day of minute `m_end` (that last day may be partial)."""
        last_day = m_end // MINUTES_PER_DAY
        last_full = last_day if (m_end + 1) % MINUTES_PER_DAY == 0 else last_day - 1
        cache = self._day_cache.setdefault(index, {})
        missing = [d for d in range(first_day, last_full + 1) if d not in cache]
        if missing:
            lo_day, hi_day = min(missing), max(missing)
            arrays = [a.reshape(-1, MINUTES_PER_DAY) for a in self._minutes(index, token, lo_day, hi_day)]
            o, h, lo, c, v = arrays
            rows = zip(o[:, 0], h.max(axis=1), lo.min(axis=1), c[:, -1], v.sum(axis=1), strict=True)
            for day, row in zip(range(lo_day, hi_day + 1), rows, strict=True):
                cache[day] = tuple(float(x) for x in row)
            if len(cache) > self._day_cache_size:
                for day in sorted(cache)[: len(cache) - self._day_cache_size]:
                    del cache[day]
        rows_out = [cache[d] for d in range(first_day, last_full + 1)]
        if last_full < last_day:
            o, h, lo, c, v = self._window(index, token, last_day * MINUTES_PER_DAY, m_end)
            rows_out.append((float(o[0]), float(h.max()), float(lo.min()), float(c[-1]), float(v.sum())))
        table = np.asarray(rows_out, dtype=np.float64).reshape(-1, 5)
        return tuple(table[:, k].copy() for k in range(5))

    def _quote(self, index: int, token: DemoToken, requested_id: str, now: float) -> PriceQuote:
        m_now = math.floor(now / 60)
        _, _, _, close, volume = self._window(index, token, m_now - MINUTES_PER_DAY, m_now)
        price = float(close[-1])
        return PriceQuote(token_id=requested_id, price_usd=price, updated_at=int(now),
                          change_24h=(price / float(close[0]) - 1.0) * 100.0,
                          extra={"tvl": token.tvl, "tx_volume_u_24h": float(volume[1:].sum())})

    async def get_prices(self, token_ids: Sequence[str]) -> dict[str, PriceQuote]:
        """Price at the current minute (equal to the latest candle's close); unknown ids are absent."""
        now = self._clock()
        out: dict[str, PriceQuote] = {}
        for requested in token_ids:
            found = self._by_id.get(normalize_token_id(requested)) if isinstance(requested, str) else None
            if found is not None:
                out[requested] = self._quote(found[0], found[1], requested, now)
        return out

    def _info(self, index: int, token: DemoToken) -> TokenInfo:
        price = self._quote(index, token, token.token_id, self._clock()).price_usd
        return TokenInfo(token_id=token.token_id, symbol=token.symbol, chain=token.chain,
                         name=token.name, price_usd=price, tvl=token.tvl)

    async def search_tokens(self, keyword: str, chain: str | None = None, limit: int = 20) -> list[TokenInfo]:
        """Demo tokens whose symbol, name or id contains `keyword`."""
        needle = (keyword or "").strip().casefold()
        if not needle:
            raise PermanentMarketError("market.empty_search")
        chain_norm = chain.strip().lower() if chain else None
        hits = [(i, t) for i, t in enumerate(self._tokens)
                if (chain_norm is None or t.chain == chain_norm)
                and (needle in t.symbol.casefold() or needle in t.name.casefold()
                     or needle in t.token_id.casefold())]
        hits.sort(key=lambda it: (it[1].symbol.casefold() != needle, -it[1].tvl))
        return [self._info(i, t) for i, t in hits[:max(1, limit)]]

    async def resolve_token(self, symbol_or_id: str, chain: str | None = None) -> TokenInfo:
        """A demo token by `address-chain` id or by symbol (+ chain)."""
        query = (symbol_or_id or "").strip()
        if not query:
            raise TokenNotFoundError("market.no_token_given")
        if split_token_id(query) is not None:
            return self._info(*self._lookup(query))
        chain_norm = chain.strip().lower() if chain else None
        wanted = query.casefold().lstrip("$")
        matches = [(i, t) for i, t in enumerate(self._tokens)
                   if t.symbol.casefold() == wanted and (chain_norm is None or t.chain == chain_norm)]
        if not matches:
            known = ", ".join(f"{t.symbol} ({t.chain})" for t in self._tokens)
            if chain_norm:
                raise TokenNotFoundError("market.demo_token_not_found", token=query, chain=chain_norm, known=known)
            raise TokenNotFoundError("market.demo_token_not_found_anywhere", token=query, known=known)
        return self._info(*max(matches, key=lambda it: it[1].tvl))
