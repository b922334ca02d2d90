"""What an agent is watching right now: its strategy's token, timeframe and how far each entry
condition is from firing (for the agent card; `engine.trigger` measures, the bot words it)."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from agents.autonomy.loop_model import LoopAgent, TickReport
from agents.autonomy.loop_snapshot import SnapshotReader
from engine.live import closed_bars, warmup_bars
from engine.market.base import MarketData, MarketDataError
from engine.strategy import TIMEFRAME_MINUTES, Strategy
from engine.trigger import Gauge, entry_gauges

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Watch:
    """The agent's strategy as the loop runs it (`default`: no bot assigned, the rotated default),
    the token's price now and each entry condition's gauge on the last closed bar."""

    strategy: Strategy
    default: bool
    symbol: str
    timeframe: str
    price: float | None
    gauges: tuple[Gauge, ...]


async def watch(reader: SnapshotReader, market: MarketData, agent_id: str, strategy_json: str | None,
                now: float) -> Watch | None:
    """The agent's `Watch`, or None when its strategy is invalid or its token cannot be read now."""
    try:
        return await _watch(reader, market, agent_id, strategy_json, now)
    except Exception:  # a report must never break the agent's card
        log.exception("agent %s: watch failed", agent_id)
        return None


async def _watch(reader: SnapshotReader, market: MarketData, agent_id: str, strategy_json: str | None,
                 now: float) -> Watch | None:
    key, strategy = reader.strategy_for(LoopAgent(agent_id, 0, "active", 0, 0, strategy_json))
    if strategy is None:
        return None
    info = await reader._resolve(strategy.token, strategy.chain or "", TickReport())
    if info is None:
        return None
    minutes = TIMEFRAME_MINUTES[strategy.finest_timeframe]
    try:
        bars = await closed_bars(market, info.token_id, minutes, warmup_bars(strategy, minutes) + 1, now)
        quotes = await market.get_prices([info.token_id])
    except MarketDataError as exc:
        log.info("agent %s: no watch data (%s)", agent_id, exc.code)
        return None
    quote = quotes.get(info.token_id)
    return Watch(strategy, key.startswith("default:"), info.symbol, strategy.finest_timeframe,
                 quote.price_usd if quote is not None else None, entry_gauges(strategy, bars, minutes))
