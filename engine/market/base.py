"""The market-data port: value objects, the `MarketData` protocol and its typed errors.

Both the AVE Cloud client and the demo market implement `MarketData`; everything above
(backtest, simulate, the agent loop) depends only on this module.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

import numpy as np

from engine.errors import CodedError

CANDLE_FIELDS = ("time", "open", "high", "low", "close", "volume")


@dataclass(frozen=True)
class Candles(Mapping[str, np.ndarray]):
    """Equal-length OHLCV arrays in ascending time order (`time` in unix seconds).

    It is a read-only mapping so it can be passed straight to `engine.backtest.run_backtest`.
    """

    time: np.ndarray
    open: np.ndarray
    high: np.ndarray
    low: np.ndarray
    close: np.ndarray
    volume: np.ndarray

    def __getitem__(self, key: str) -> np.ndarray:
        if key not in CANDLE_FIELDS:
            raise KeyError(key)
        return getattr(self, key)

    def __iter__(self) -> Iterator[str]:
        return iter(CANDLE_FIELDS)

    def __len__(self) -> int:
        return int(self.time.shape[0])

    @classmethod
    def empty(cls) -> Candles:
        return cls(np.zeros(0, dtype=np.int64), *(np.zeros(0) for _ in range(5)))

    @classmethod
    def from_rows(cls, rows: Sequence[Sequence[float]]) -> Candles:
        """Build from rows of (time, open, high, low, close, volume)."""
        if not rows:
            return cls.empty()
        arr = np.asarray(rows, dtype=np.float64)
        return cls(arr[:, 0].astype(np.int64), arr[:, 1].copy(), arr[:, 2].copy(),
                   arr[:, 3].copy(), arr[:, 4].copy(), arr[:, 5].copy())

    def tail(self, n: int) -> Candles:
        """The last `n` candles."""
        return Candles(*(getattr(self, f)[-n:] for f in CANDLE_FIELDS)) if n < len(self) else self

    def as_dict(self) -> dict[str, np.ndarray]:
        return {f: getattr(self, f) for f in CANDLE_FIELDS}


@dataclass(frozen=True)
class TokenInfo:
    """A resolved token: `token_id` is AVE's `address-chain`."""

    token_id: str
    symbol: str
    chain: str
    name: str = ""
    price_usd: float | None = None
    tvl: float | None = None


@dataclass(frozen=True)
class PriceQuote:
    """A current price from the batch price endpoint."""

    token_id: str
    price_usd: float
    updated_at: int
    change_24h: float | None = None
    extra: dict[str, float] = field(default_factory=dict)


class MarketDataError(CodedError):
    """Base of every market-data failure: a `code` (``"market.…"``) and its params, worded in `bot/`."""


class TemporaryMarketError(MarketDataError):
    """Worth retrying later: timeouts, 5xx, rate limits."""


class RateLimitedError(TemporaryMarketError):
    """The provider answered 429 (or our own limiter refused)."""


class MarketUnavailableError(TemporaryMarketError):
    """The circuit breaker is open: the provider failed repeatedly, calls are refused for a while."""


class PermanentMarketError(MarketDataError):
    """Retrying will not help: bad request, bad key, envelope error."""


class AuthError(PermanentMarketError):
    """The API key is missing or rejected."""


class TokenNotFoundError(PermanentMarketError):
    """No token matches the symbol or id."""


# The codes that say "no token called …" (a symbol searched for); the other TokenNotFoundError
# codes are about an id or an empty request.
TOKEN_NOT_FOUND_CODES = frozenset({
    "market.token_not_found", "market.token_not_found_anywhere", "market.token_unknown",
    "market.demo_token_not_found", "market.demo_token_not_found_anywhere",
})


def no_token_called(exc: TokenNotFoundError, token: str, chain: str | None) -> TokenNotFoundError:
    """`exc` when it already says "no token called …", else a refusal naming what was asked for."""
    if exc.code in TOKEN_NOT_FOUND_CODES:
        return exc
    if chain:
        return TokenNotFoundError("market.token_not_found", token=token, chain=chain)
    return TokenNotFoundError("market.token_unknown", token=token)


@runtime_checkable
class MarketData(Protocol):
    """What backtest, simulate and the agent loop need from a market-data source."""

    @property
    def is_demo(self) -> bool:
        """True for the built-in demo market; replies label prices 'demo' when set."""
        ...

    async def get_klines(self, token_id: str, interval_minutes: int, *, limit: int = 300,
                         from_time: int | None = None, to_time: int | None = None) -> Candles:
        """Candles for a token, ascending, at most `limit` of them ending at `to_time` (default now)."""
        ...

    async def get_prices(self, token_ids: Sequence[str]) -> dict[str, PriceQuote]:
        """Current prices keyed by the requested token id; unknown ids are absent."""
        ...

    async def search_tokens(self, keyword: str, chain: str | None = None, limit: int = 20) -> list[TokenInfo]:
        """Tokens whose symbol/name/address match `keyword`."""
        ...

    async def resolve_token(self, symbol_or_id: str, chain: str | None = None) -> TokenInfo:
        """A symbol (+ chain) or an `address-chain` id to one token; raises TokenNotFoundError."""
        ...

    async def aclose(self) -> None:
        """Release connections."""
        ...


@runtime_checkable
class LiveBarSource(Protocol):
    """A market that can give the bar in progress without a candles request (AVE's kline stream)."""

    async def live_bar(self, token_id: str, interval_minutes: int, start: int
                       ) -> tuple[float, float, float] | None:
        """(open, high, low) of the bar starting at `start`, or None when it cannot say now."""
        ...
