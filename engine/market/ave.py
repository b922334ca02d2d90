"""AVE Cloud data API client (`/v2/...`), implementing `MarketData`.

Protocol notes (see reference/apis.md PART 1): header `X-API-KEY`; envelope
`{"status": 1, "msg": ..., "data": ...}` where anything but `status == 1` is an error even on
HTTP 200; the batch price endpoint takes at most 200 ids and silently drops tokens under
`tvl_min` (default 1000) unless `tvl_min: 0` is sent. Ids, intervals and the parsing of the
replies are `engine.market.ave_protocol`. Failures raise `MarketDataError`s with codes.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections import deque
from collections.abc import Mapping, Sequence
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
from engine.market.ave_protocol import (
    AVE_INTERVALS,
    MAX_KLINE_LIMIT,
    MAX_PRICE_IDS,
    MAX_SEARCH_LIMIT,
    Row,
    error_text,
    index_prices,
    normalize_token_id,
    parse_points,
    parse_quote,
    parse_token,
    short_address,
    split_token_id,
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
            raise MarketUnavailableError("market.unavailable") from None
        except HttpTemporaryError as exc:
            if exc.status == 429:
                raise RateLimitedError("market.rate_limited") from None
            # status None: no response at all (a timeout or a connection error)
            raise TemporaryMarketError("market.temporary", status=exc.status) from None
        status = response.status_code
        if status in (401, 403):
            raise AuthError("market.auth_rejected", status=status)
        if status == 404:
            raise TokenNotFoundError("market.no_such_token")
        if status >= 400:
            raise PermanentMarketError("market.rejected", status=status, detail=self._scrub(error_text(response)))
        try:
            body = response.json()
        except ValueError:
            raise TemporaryMarketError("market.unreadable_response") from None
        if not isinstance(body, Mapping):
            raise TemporaryMarketError("market.unexpected_response")
        if body.get("status") != 1:
            detail = self._scrub(str(body.get("msg") or "unknown error"))
            raise PermanentMarketError("market.provider_error", detail=detail)
        return body.get("data")

    # --- klines -------------------------------------------------------------------------------

    async def get_klines(self, token_id: str, interval_minutes: int, *, limit: int = 300,
                         from_time: int | None = None, to_time: int | None = None) -> Candles:
        """Token candles (`/v2/klines/token/{id}`), ascending, at most `limit`, paging past 1000."""
        return await self._klines("token", token_id, interval_minutes, limit, from_time, to_time)

    async def _klines(self, kind: str, ident: str, interval: int, limit: int,
                      from_time: int | None, to_time: int | None) -> Candles:
        if interval not in AVE_INTERVALS:
            raise PermanentMarketError("market.bad_interval", interval=interval)
        if limit < 1:
            raise PermanentMarketError("market.bad_limit")
        ident = normalize_token_id(ident)
        if not ident:
            raise PermanentMarketError("market.bad_token_id")
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
            found = index_prices(data)
            for norm in chunk:
                item = found.get(norm)
                quote = parse_quote(item) if item is not None else None
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
            raise PermanentMarketError("market.empty_search")
        limit = max(1, min(int(limit), MAX_SEARCH_LIMIT))
        data = await self._call("GET", "/v2/tokens", params={
            "keyword": keyword, "chain": chain.strip().lower() if chain else None, "limit": limit})
        if not isinstance(data, list):
            return []
        out = [parsed for item in data if (parsed := parse_token(item)) is not None]
        return out[:limit]

    async def token_detail(self, token_id: str) -> TokenInfo | None:
        """`GET /v2/tokens/{id}` as a TokenInfo, or None when AVE does not know it."""
        data = await self._call("GET", f"/v2/tokens/{quote(normalize_token_id(token_id), safe='')}")
        token = data.get("token") if isinstance(data, Mapping) else None
        parsed = parse_token(token) if isinstance(token, Mapping) else None
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
            raise TokenNotFoundError("market.no_token_given")
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
            return TokenInfo(token_id=token_id, symbol=short_address(parts[0]), chain=parts[1])
        chain_norm = chain.strip().lower() if chain else None
        results = await self._search(query, chain_norm, 100)
        wanted = query.casefold().lstrip("$")
        matches = [(info, score) for info, score in results
                   if info.symbol.casefold() == wanted and (chain_norm is None or info.chain == chain_norm)]
        if not matches:
            if chain_norm:
                raise TokenNotFoundError("market.token_not_found", token=query, chain=chain_norm)
            raise TokenNotFoundError("market.token_not_found_anywhere", token=query)
        return max(matches, key=lambda m: m[1])[0]
