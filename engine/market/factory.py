"""Builds the market-data stack from settings: AVE client (or the demo market) behind the shared cache."""

from __future__ import annotations

from engine.market.ave import DEFAULT_BASE_URL, PLAN_RATE, AveClient
from engine.market.cache import CachedMarketData
from engine.market.demo import DemoMarket

__all__ = ["PLAN_POLL_SECONDS", "PLAN_RATE", "build_market_data"]

# how often simulate polls prices per plan: a free key (1 req/s) cannot afford 5-second polling
PLAN_POLL_SECONDS: dict[str, int] = {"free": 60, "normal": 15, "pro": 5}


def build_market_data(*, api_key: str, base_url: str = DEFAULT_BASE_URL, plan: str = "free",
                      price_ttl: float = 10.0) -> CachedMarketData:
    """AveClient when `api_key` is set, else the deterministic DemoMarket; always wrapped in the cache."""
    if plan not in PLAN_RATE:
        raise ValueError(f"unknown AVE plan {plan!r}; expected one of {', '.join(PLAN_RATE)}")
    if api_key:
        return CachedMarketData(AveClient(api_key, base_url=base_url, plan=plan), price_ttl=price_ttl)
    return CachedMarketData(DemoMarket(), price_ttl=price_ttl)
