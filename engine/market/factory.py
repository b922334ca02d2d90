"""Builds the market-data stack from settings: AVE client (or the demo market) behind the shared cache."""

from __future__ import annotations

from engine.market.ave import DEFAULT_BASE_URL, PLAN_RATE, AveClient
from engine.market.ave_stream import DEFAULT_WSS_URL, KlineStream, StreamedMarketData
from engine.market.base import MarketData
from engine.market.cache import CachedMarketData
from engine.market.demo import DemoMarket

__all__ = ["PLAN_POLL_SECONDS", "PLAN_RATE", "build_market_data", "start_streams"]

# how often simulate polls prices per plan: a free key (1 req/s) cannot afford 5-second polling
PLAN_POLL_SECONDS: dict[str, int] = {"free": 60, "normal": 15, "pro": 5}


def build_market_data(*, api_key: str, base_url: str = DEFAULT_BASE_URL, plan: str = "free",
                      price_ttl: float = 10.0, wss_url: str = DEFAULT_WSS_URL) -> MarketData:
    """AveClient when `api_key` is set, else the deterministic DemoMarket; always behind the cache.

    On the pro plan the forming bar comes from AVE's kline stream (`StreamedMarketData`); call
    `start_streams` once the event loop runs.
    """
    if plan not in PLAN_RATE:
        raise ValueError(f"unknown AVE plan {plan!r}; expected one of {', '.join(PLAN_RATE)}")
    if not api_key:
        return CachedMarketData(DemoMarket(), price_ttl=price_ttl)
    client = AveClient(api_key, base_url=base_url, plan=plan)
    cached = CachedMarketData(client, price_ttl=price_ttl)
    if plan != "pro":
        return cached
    return StreamedMarketData(cached, KlineStream(wss_url, api_key), client.main_pair)


def start_streams(market: MarketData) -> None:
    """Start the kline stream of a pro-plan market (no-op otherwise)."""
    if isinstance(market, StreamedMarketData):
        market.stream.start()
