"""What AVE Cloud's data API speaks: token ids, candle intervals and the parsing of its replies.

Pure functions, no I/O (the client is `engine.market.ave`). Numbers arrive as strings; klines
are ascending and sparse (no bar for a minute with no trades) and may hold more points than
asked for; ids are ``address-chain``, case-insensitive on EVM chains only.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterable, Mapping
from typing import Any

import httpx

from engine.market.base import PriceQuote, TokenInfo

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


def num(value: Any) -> float | None:
    """A finite float from AVE's string-or-number fields, else None."""
    if value is None or isinstance(value, bool):
        return None
    try:
        out = float(value)
    except (TypeError, ValueError):
        return None
    return out if math.isfinite(out) else None


def short_address(address: str) -> str:
    """A long address shortened for display as a symbol: ``0x514a…a2f5``."""
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
        t = num(point.get("time"))
        o, h, lo, c = (num(point.get(k)) for k in ("open", "high", "low", "close"))
        v = num(point.get("volume"))
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


def is_evm(token_id: str) -> bool:
    """True for an id on a chain whose addresses are case-insensitive hex."""
    parts = split_token_id(token_id)
    return parts is not None and parts[1] in EVM_CHAINS


def error_text(response: httpx.Response) -> str:
    """The provider's own words from an error response body (for logs and error params)."""
    try:
        body = response.json()
    except ValueError:
        return response.text[:200] or "no details"
    if isinstance(body, Mapping):
        return str(body.get("msg") or body.get("message") or body.get("error") or "no details")
    return "no details"


def index_prices(data: Any) -> dict[str, Mapping[str, Any]]:
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
                if is_evm(norm):
                    index.setdefault(norm.lower(), item)
    return index


def parse_quote(item: Mapping[str, Any]) -> PriceQuote | None:
    """One batch-price item as a `PriceQuote`; None without a positive price."""
    price = num(item.get("current_price_usd"))
    if price is None or price <= 0:
        return None
    updated = num(item.get("updated_at"))
    extra = {k: v for k in ("tvl", "tx_volume_u_24h", "price_change_1d")
             if (v := num(item.get(k))) is not None}
    return PriceQuote(token_id=str(item.get("token_id") or ""), price_usd=price,
                      updated_at=int(updated) if updated is not None else int(time.time()),
                      change_24h=num(item.get("price_change_24h")), extra=extra)


def parse_token(item: Any) -> tuple[TokenInfo, float] | None:
    """A search/detail token object to (TokenInfo, liquidity score for ranking)."""
    if not isinstance(item, Mapping):
        return None
    address = str(item.get("token") or item.get("address") or "").strip()
    chain = str(item.get("chain") or "").strip().lower()
    symbol = str(item.get("symbol") or "").strip()
    if not address or not chain or not symbol:
        return None
    token_id = address if address.lower().endswith(f"-{chain}") else f"{address}-{chain}"
    tvl = num(item.get("tvl"))
    main_tvl = num(item.get("main_pair_tvl"))
    info = TokenInfo(token_id=normalize_token_id(token_id), symbol=symbol, chain=chain,
                     name=str(item.get("name") or ""), price_usd=num(item.get("current_price_usd")),
                     tvl=tvl if tvl is not None else main_tvl)
    return info, max(tvl or 0.0, main_tvl or 0.0)
