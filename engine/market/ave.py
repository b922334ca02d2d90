"""AVE Cloud data API client (`/v2/...`), implementing `MarketData`.

Protocol notes (see reference/apis.md PART 1): header `X-API-KEY`; envelope
`{"status": 1, "msg": ..., "data": ...}` where anything but `status == 1` is an error even on
HTTP 200; numbers arrive as strings; klines are ascending and sparse (no bar for a minute with
no trades) and may hold more points than asked for; the batch price endpoint takes at most 200
ids and silently drops tokens under `tvl_min` (default 1000) unless `tvl_min: 0` is sent.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections import deque
from collections.abc import Iterable, Mapping, Sequence
from typing import Any
from urllib.parse import quote

import httpx

from engine.http import (
    CircuitBreaker,
    HttpCircuitOpenError,
    HttpTemporaryError,
    RateLimiter,
    Sleep,
    request_with_retry,
)
from engine.market.base import (
    AuthError,
    Candles,
    MarketDataError,
    MarketUnavailableError,
    PermanentMarketError,
    PriceQuote,
    RateLimitedError,
    TemporaryMarketError,
    TokenInfo,
    TokenNotFoundError,
)

logger = logging.getLogger(__name__)

DEFAULT_BASE_URL = "https://data.ave-api.xyz"
PLAN_RATE: dict[str, float] = {"free": 1.0, "normal": 5.0, "pro": 20.0}
AVE_INTERVALS: tuple[int, ...] = (1, 5, 15, 30, 60, 120, 240, 1440, 4320, 10080, 43200, 525600, 2628000)
MAX_KLINE_LIMIT = 1000
MAX_PRICE_IDS = 200
MAX_SEARCH_LIMIT = 300
KNOWN_CHAINS: frozenset[str] = frozenset({
    "bsc", "eth", "base", "solana", "tron", "polygon", "arbitrum", "optimism", "avalanche", "avax",
    "sui", "ton", "aptos", "blast", "merlin",
})
# chains whose addresses are hex and case-insensitive; AVE wants them lowercased
EVM_CHAINS: frozenset[str] = frozenset({
    "bsc", "eth", "base", "polygon", "arbitrum", "optimism", "avalanche", "avax", "blast", "merlin",
})


def split_token_id(value: str) -> tuple[str, str] | None:
    """(`address`, `chain`) for an AVE `address-chain` id, else None (split on the LAST '-')."""
    address, sep, chain = value.strip().rpartition("-")
    chain = chain.lower()
    if not sep or not address or chain not in KNOWN_CHAINS or any(c.isspace() for c in address):
        return None
    return address, chain


def normalize_token_id(value: str) -> str:
    """Canonical form of a token/pair id: EVM ids lowercased, others kept (Solana is case-sensitive)."""
    value = value.strip()
    parts = split_token_id(value)
    if parts is None:
        return value
    address, chain = parts
    return f"{address.lower() if chain in EVM_CHAINS else address}-{chain}"


def _num(value: Any) -> float | None:
    """A finite float from AVE's string-or-number fields, else None."""
    if value is None or isinstance(value, bool):
        return None
    try:
        out = float(value)
    except (TypeError, ValueError):
        return None
    return out if math.isfinite(out) else None


def _short(address: str) -> str:
    return address if len(address) <= 12 else f"{address[:6]}…{address[-4:]}"


Row = tuple[int, float, float, float, float, float]


def parse_points(points: Any, limit: int | None = None) -> list[Row]:
    """Kline points to sorted, de-duplicated rows; malformed points are skipped, sparse gaps kept.

    When `limit` is given only the latest `limit` rows are kept (AVE may return more).
    """
    if not isinstance(points, list):
        return []
    by_time: dict[int, Row] = {}
    for point in points:
        if not isinstance(point, Mapping):
            continue
        t = _num(point.get("time"))
        o, h, lo, c = (_num(point.get(k)) for k in ("open", "high", "low", "close"))
        v = _num(point.get("volume"))
        if t is None or t <= 0 or o is None or h is None or lo is None or c is None:
            continue
        if min(o, h, lo, c) < 0:
            continue
        row = (int(t), o, max(h, o, c, lo), min(lo, o, c, h), c, v if v is not None and v >= 0 else 0.0)
        by_time[row[0]] = row  # a repeated time keeps the last (freshest) point
    rows = [by_time[t] for t in sorted(by_time)]
    if limit is not None and len(rows) > limit:
        rows = rows[-limit:]
    return rows


class AveClient:
    """`MarketData` over the AVE Cloud REST API, with client-side rate limit, retries and a breaker."""

    def __init__(
        self,
        api_key: str,
        *,
        base_url: str = DEFAULT_BASE_URL,
        plan: str = "free",
        client: httpx.AsyncClient | None = None,
        timeout: float = 10.0,
        retries: int = 3,
        sleep: Sleep = asyncio.sleep,
        base_delay: float = 0.5,
        max_delay: float = 8.0,
        breaker: CircuitBreaker | None = None,
        rate_per_second: float | None = None,
        clock: Any = time.monotonic,
    ) -> None:
        if plan not in PLAN_RATE:
            raise ValueError(f"unknown AVE plan {plan!r}; expected one of {', '.join(PLAN_RATE)}")
        if not api_key:
            raise ValueError("AVE API key is empty")
        self._key = api_key
        self.plan = plan
        self._base_url = base_url.rstrip("/")
        self._owns_client = client is None
        self._client = client if client is not None else httpx.AsyncClient(
            timeout=httpx.Timeout(timeout), headers={"Accept": "application/json"})
        self._timeout = timeout
        self._retries = retries
        self._sleep = sleep
        self._base_delay = base_delay
        self._max_delay = max_delay
        self._clock = clock
        self.breaker = breaker if breaker is not None else CircuitBreaker(clock=clock)
        self.limiter = RateLimiter(rate_per_second or PLAN_RATE[plan], clock=clock)
        self._calls_total = 0
        self._errors = 0
        self._recent: deque[float] = deque()

    def __repr__(self) -> str:  # never show the key
        return f"AveClient(base_url={self._base_url!r}, plan={self.plan!r})"

    @property
    def is_demo(self) -> bool:
        return False

    async def __aenter__(self) -> AveClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the HTTP client if this instance created it."""
        if self._owns_client:
            await self._client.aclose()

    # --- accounting -------------------------------------------------------------------------

    def _count_call(self) -> None:
        now = self._clock()
        self._calls_total += 1
        self._recent.append(now)
        self._prune(now)

    def _prune(self, now: float) -> None:
        while self._recent and now - self._recent[0] > 60.0:
            self._recent.popleft()

    def stats(self) -> dict[str, Any]:
        """HTTP calls made (total and in the last 60 s), failed calls and the breaker state."""
        self._prune(self._clock())
        return {"calls_total": self._calls_total, "calls_per_minute": len(self._recent),
                "errors": self._errors, "breaker": self.breaker.state, "plan": self.plan,
                "rate_per_second": self.limiter.rate_per_second}

    # --- transport ----------------------------------------------------------------------------

    def _scrub(self, text: str) -> str:
        text = str(text)[:300]
        return text.replace(self._key, "***") if self._key else text

    async def _call(self, method: str, path: str, *, params: Mapping[str, Any] | None = None,
                    json: Any = None) -> Any:
        """One API call; returns the envelope's `data` or raises a `MarketDataError`."""
        try:
            return await self._call_inner(method, path, params=params, json=json)
        except Exception:
            self._errors += 1
            raise

    async def _call_inner(self, method: str, path: str, *, params: Mapping[str, Any] | None,
                          json: Any) -> Any:
        kwargs: dict[str, Any] = {"headers": {"X-API-KEY": self._key, "Content-Type": "application/json"},
                                  "timeout": self._timeout}
        if params:
            kwargs["params"] = {k: v for k, v in params.items() if v is not None}
        if json is not None:
            kwargs["json"] = json
        try:
            response = await request_with_retry(
                self._client, method, f"{self._base_url}{path}", retries=self._retries,
                base_delay=self._base_delay, max_delay=self._max_delay, breaker=self.breaker,
                limiter=self.limiter, sleep=self._sleep, on_attempt=self._count_call, **kwargs)
        except HttpCircuitOpenError:
            raise MarketUnavailableError(
                "AVE market data is unavailable after repeated failures; trying again shortly") from None
        except HttpTemporaryError as exc:
            if exc.status == 429:
                raise RateLimitedError("AVE rate limit reached; try again in a moment") from None
            what = f"HTTP {exc.status}" if exc.status else "no response (timeout or connection error)"
            raise TemporaryMarketError(f"AVE market data is temporarily unavailable: {what}") from None
        status = response.status_code
        if status in (401, 403):
            raise AuthError(f"AVE rejected the API key (HTTP {status}); check AVE_API_KEY and plan")
        if status == 404:
            raise TokenNotFoundError("AVE has no such token or pair")
        if status >= 400:
            raise PermanentMarketError(
                f"AVE rejected the request (HTTP {status}): {self._scrub(_error_text(response))}")
        try:
            body = response.json()
        except ValueError:
            raise TemporaryMarketError("AVE returned an unreadable response") from None
        if not isinstance(body, Mapping):
            raise TemporaryMarketError("AVE returned an unexpected response shape")
        if body.get("status") != 1:
            msg = self._scrub(str(body.get("msg") or "unknown error"))
            raise PermanentMarketError(f"AVE error: {msg}")
        return body.get("data")

    # --- klines -------------------------------------------------------------------------------

    async def get_klines(self, token_id: str, interval_minutes: int, *, limit: int = 300,
                         from_time: int | None = None, to_time: int | None = None) -> Candles:
        """Token candles (`/v2/klines/token/{id}`), ascending, at most `limit`, paging past 1000."""
        return await self._klines("token", token_id, interval_minutes, limit, from_time, to_time)

    async def get_pair_klines(self, pair_id: str, interval_minutes: int, *, limit: int = 300,
                              from_time: int | None = None, to_time: int | None = None) -> Candles:
        """Pair candles (`/v2/klines/pair/{id}`), same semantics as `get_klines`."""
        return await self._klines("pair", pair_id, interval_minutes, limit, from_time, to_time)

    async def _klines(self, kind: str, ident: str, interval: int, limit: int,
                      from_time: int | None, to_time: int | None) -> Candles:
        if interval not in AVE_INTERVALS:
            raise PermanentMarketError(
                f"Unsupported candle interval {interval} min; "
                f"use one of {', '.join(map(str, AVE_INTERVALS))}")
        if limit < 1:
            raise PermanentMarketError("limit must be at least 1")
        ident = normalize_token_id(ident)
        if not ident:
            raise PermanentMarketError("invalid token id")
        rows: dict[int, Row] = {}
        cursor = to_time
        # AVE returns the latest `limit` points up to `to_time`: walk backwards page by page
        for _ in range(math.ceil(limit / MAX_KLINE_LIMIT) + 2):
            want = min(MAX_KLINE_LIMIT, limit - len(rows))
            data = await self._call("GET", f"/v2/klines/{kind}/{quote(ident, safe='')}", params={
                "interval": interval, "limit": want, "from_time": from_time, "to_time": cursor})
            page = parse_points(data.get("points") if isinstance(data, Mapping) else None, want)
            if cursor is not None:
                page = [r for r in page if r[0] <= cursor]
            new = [r for r in page if r[0] not in rows]
            for row in new:
                rows[row[0]] = row
            if len(page) < want or not new or len(rows) >= limit:
                break  # history exhausted, or the server ignored to_time
            cursor = page[0][0] - 1
            if from_time is not None and cursor < from_time:
                break
        ordered = [rows[t] for t in sorted(rows)]
        if from_time is not None:
            ordered = [r for r in ordered if r[0] >= from_time]
        return Candles.from_rows(ordered[-limit:])

    # --- prices -------------------------------------------------------------------------------

    async def get_prices(self, token_ids: Sequence[str]) -> dict[str, PriceQuote]:
        """Current prices via `POST /v2/tokens/price`, ≤200 ids per call, keyed by the caller's ids."""
        wanted: dict[str, list[str]] = {}
        for original in token_ids:
            if isinstance(original, str) and original.strip():
                wanted.setdefault(normalize_token_id(original), []).append(original)
        ids = list(wanted)
        out: dict[str, PriceQuote] = {}
        for start in range(0, len(ids), MAX_PRICE_IDS):
            chunk = ids[start:start + MAX_PRICE_IDS]
            data = await self._call("POST", "/v2/tokens/price", json={
                "token_ids": chunk, "tvl_min": 0, "tx_24h_volume_min": 0})
            found = _index_prices(data)
            for norm in chunk:
                item = found.get(norm)
                quote = _parse_quote(item) if item is not None else None
                if quote is None:
                    continue
                for original in wanted[norm]:
                    out[original] = PriceQuote(original, quote.price_usd, quote.updated_at,
                                               quote.change_24h, dict(quote.extra))
        return out

    # --- tokens -------------------------------------------------------------------------------

    async def search_tokens(self, keyword: str, chain: str | None = None, limit: int = 20) -> list[TokenInfo]:
        """Token search (`GET /v2/tokens?keyword=`)."""
        return [info for info, _ in await self._search(keyword, chain, limit)]

    async def _search(self, keyword: str, chain: str | None, limit: int) -> list[tuple[TokenInfo, float]]:
        keyword = (keyword or "").strip()
        if not keyword:
            raise PermanentMarketError("Type a token symbol or address to search for.")
        limit = max(1, min(int(limit), MAX_SEARCH_LIMIT))
        data = await self._call("GET", "/v2/tokens", params={
            "keyword": keyword, "chain": chain.strip().lower() if chain else None, "limit": limit})
        if not isinstance(data, list):
            return []
        out = [parsed for item in data if (parsed := _parse_token(item)) is not None]
        return out[:limit]

    async def token_detail(self, token_id: str) -> TokenInfo | None:
        """`GET /v2/tokens/{id}` as a TokenInfo, or None when AVE does not know it."""
        data = await self._call("GET", f"/v2/tokens/{quote(normalize_token_id(token_id), safe='')}")
        token = data.get("token") if isinstance(data, Mapping) else None
        parsed = _parse_token(token) if isinstance(token, Mapping) else None
        return parsed[0] if parsed else None

    async def main_pair(self, token_id: str) -> str | None:
        """The address of the token's main trading pair (what the kline stream subscribes to)."""
        try:
            data = await self._call("GET", f"/v2/tokens/{quote(normalize_token_id(token_id), safe='')}")
        except TokenNotFoundError:
            return None
        token = data.get("token") if isinstance(data, Mapping) else None
        pair = token.get("main_pair") if isinstance(token, Mapping) else None
        return str(pair).strip() or None if pair else None

    async def resolve_token(self, symbol_or_id: str, chain: str | None = None) -> TokenInfo:
        """An `address-chain` id (enriched when AVE knows it) or the best-matching symbol on `chain`."""
        query = (symbol_or_id or "").strip()
        if not query:
            raise TokenNotFoundError("No token given")
        parts = split_token_id(query)
        if parts is not None:
            token_id = normalize_token_id(query)
            try:
                detail = await self.token_detail(token_id)
            except AuthError:
                raise
            except MarketDataError:
                detail = None  # the id is well-formed; enrichment is optional
            if detail is not None and normalize_token_id(detail.token_id) == token_id:
                return detail
            return TokenInfo(token_id=token_id, symbol=_short(parts[0]), chain=parts[1])
        chain_norm = chain.strip().lower() if chain else None
        results = await self._search(query, chain_norm, 100)
        wanted = query.casefold().lstrip("$")
        matches = [(info, score) for info, score in results
                   if info.symbol.casefold() == wanted and (chain_norm is None or info.chain == chain_norm)]
        if not matches:
            where = chain_norm or "any supported chain"
            raise TokenNotFoundError(f"No token called {query} on {where}")
        return max(matches, key=lambda m: m[1])[0]


def _is_evm(token_id: str) -> bool:
    parts = split_token_id(token_id)
    return parts is not None and parts[1] in EVM_CHAINS


def _error_text(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return response.text[:200] or "no details"
    if isinstance(body, Mapping):
        return str(body.get("msg") or body.get("message") or body.get("error") or "no details")
    return "no details"


def _index_prices(data: Any) -> dict[str, Mapping[str, Any]]:
    """Price results by normalized id, plus lower-cased keys for the EVM fallback lookup."""
    index: dict[str, Mapping[str, Any]] = {}
    items: Iterable[tuple[Any, Any]]
    if isinstance(data, Mapping):
        items = data.items()
    elif isinstance(data, list):
        items = ((item.get("token_id") if isinstance(item, Mapping) else None, item) for item in data)
    else:
        return index
    for key, item in items:
        if not isinstance(item, Mapping):
            continue
        for raw in (key, item.get("token_id")):
            if isinstance(raw, str) and raw:
                norm = normalize_token_id(raw)
                index.setdefault(norm, item)
                if _is_evm(norm):
                    index.setdefault(norm.lower(), item)
    return index


def _parse_quote(item: Mapping[str, Any]) -> PriceQuote | None:
    price = _num(item.get("current_price_usd"))
    if price is None or price <= 0:
        return None
    updated = _num(item.get("updated_at"))
    extra = {k: v for k in ("tvl", "tx_volume_u_24h", "price_change_1d")
             if (v := _num(item.get(k))) is not None}
    return PriceQuote(token_id=str(item.get("token_id") or ""), price_usd=price,
                      updated_at=int(updated) if updated is not None else int(time.time()),
                      change_24h=_num(item.get("price_change_24h")), extra=extra)


def _parse_token(item: Any) -> tuple[TokenInfo, float] | None:
    """A search/detail token object to (TokenInfo, liquidity score for ranking)."""
    if not isinstance(item, Mapping):
        return None
    address = str(item.get("token") or item.get("address") or "").strip()
    chain = str(item.get("chain") or "").strip().lower()
    symbol = str(item.get("symbol") or "").strip()
    if not address or not chain or not symbol:
        return None
    token_id = address if address.lower().endswith(f"-{chain}") else f"{address}-{chain}"
    tvl = _num(item.get("tvl"))
    main_tvl = _num(item.get("main_pair_tvl"))
    info = TokenInfo(token_id=normalize_token_id(token_id), symbol=symbol, chain=chain,
                     name=str(item.get("name") or ""), price_usd=_num(item.get("current_price_usd")),
                     tvl=tvl if tvl is not None else main_tvl)
    return info, max(tvl or 0.0, main_tvl or 0.0)
