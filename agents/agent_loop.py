"""The autonomous loop (SPEC §7 steps 1–3): evaluate every active agent and paper-trade.

One `tick()`:

1. **Read** every active agent with its strategy and every open position in ONE SQL query.
   Agents without `strategy_json` use `default_strategy` on a default token picked
   deterministically from `DEFAULT_TOKENS` by a hash of the agent id. Token symbols are
   resolved once through `market.resolve_token` and cached.
2. **Fetch** the current prices of every token needed in ONE `market.get_prices` call (the
   cache / AVE client split it into ⌈n/200⌉ upstream calls), and the closed candles of each
   distinct (token, candle interval) through the cache. A strategy's candle interval is its
   finest condition timeframe, capped at the loop's `interval` (default 1h).
3. **Evaluate** vectorised: agents sharing a (token, interval) form one group; the group's
   distinct strategies are compiled once (`engine.signals.compile_batch`, cached) and evaluated
   on the last CLOSED candle (conditions are judged on bar close, as in the backtest).
4. **Paper fills** at the current price:
   * exits first — stop-loss when the price is at or below the stop, then take-profit at or above
     the target, then a sell signal. Positions of paused/dead agents still get their protective
     stop-loss / take-profit exits; they open nothing new;
   * entry when the buy side fires and the agent has no open position in that token (and closed
     none this tick): cost = `amount_percent`% of available, fee included; the fill is the price
     plus slippage; SL/TP levels come from the strategy.
   Every write goes through the manager: an open is keyed `open:<agent>:<token>:<bar time>` and a
   close `close:<agent>:<position>`, so a tick replayed after a crash opens and books nothing twice.

Failures: if prices cannot be fetched the tick aborts before writing anything (`aborted`); a
group whose candles fail skips its entries (its stops still run). Each agent's trade is one
manager transaction, so no agent is ever half-applied. Ticks never overlap: a tick that finds
the previous one running returns a `skipped` report at once.
"""

from __future__ import annotations

import asyncio
import logging
import time
import zlib
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from decimal import ROUND_DOWN, Decimal
from typing import Any

import numpy as np

from agents.errors import AgentError
from agents.events import Event, EventSink, TradeClosed, TradeOpened
from agents.manager import IsolatedAIManager
from agents.money import from_micro
from engine.market.base import Candles, MarketData, MarketDataError, PriceQuote, TokenInfo, TokenNotFoundError
from engine.signals import StrategyBatch, compile_batch, evaluate_latest_compiled
from engine.strategy import TIMEFRAME_MINUTES, Strategy, StrategyError, default_strategy, parse_strategy
from storage import Database

__all__ = ["DEFAULT_TOKENS", "AgentLoop", "TickError", "TickReport"]

logger = logging.getLogger(__name__)

# The documented default token list for agents without a strategy (all in the demo market).
DEFAULT_TOKENS: tuple[str, ...] = ("WETH", "SOL", "PEPE")
MAX_REPORTED_ERRORS = 20
_Q6 = Decimal("0.000001")
_BATCH_CACHE_MAX = 512
_NEGATIVE_RESOLVE_TTL = 3600.0

_SNAPSHOT_SQL = (
    "SELECT a.agent_id, a.user_id, a.status, a.isolated_balance, a.locked_balance, a.strategy_json,"
    " p.position_id, p.token_id, p.symbol, p.size, p.entry_price, p.cost, p.stop_loss, p.take_profit"
    " FROM automaton_agents a"
    " LEFT JOIN positions p ON p.agent_id = a.agent_id AND p.status = 'open'"
    " WHERE a.status = 'active'"
    "    OR (a.status IN ('paused', 'dead') AND p.position_id IS NOT NULL)"
)


class TickError(Exception):
    """A tick aborted before changing anything (market data unavailable)."""


@dataclass
class TickReport:
    """What one tick did. `price_calls` is the upstream price-call delta seen in `market.stats()`."""

    agents_evaluated: int = 0
    price_calls: int = 0
    trades_opened: int = 0
    trades_closed: int = 0
    errors: list[str] = field(default_factory=list)
    duration: float = 0.0
    skipped: bool = False
    aborted: bool = False
    tokens: int = 0

    @property
    def ok(self) -> bool:
        """True unless the tick aborted."""
        return not self.aborted

    def add_error(self, text: str) -> None:
        if len(self.errors) < MAX_REPORTED_ERRORS:
            self.errors.append(text)
        elif len(self.errors) == MAX_REPORTED_ERRORS:
            self.errors.append("…more errors not shown")


@dataclass
class _Agent:
    agent_id: str
    user_id: int
    status: str
    balance: int
    locked: int
    strategy_json: str | None
    strategy_key: str | None = None
    token_id: str | None = None
    group: tuple[str, int] | None = None
    slot: int = -1


@dataclass
class _Position:
    position_id: int
    agent_id: str
    user_id: int
    token_id: str
    symbol: str
    size: float
    entry_price: float
    cost: int
    stop_loss: float | None
    take_profit: float | None


@dataclass
class _GroupSignal:
    """One (token, interval) group's agents and its strategies' signals on the last closed bar."""

    members: list[_Agent]
    buy: np.ndarray
    sell: np.ndarray
    bar_time: int


@dataclass
class _Snapshot:
    agents: dict[str, _Agent]
    positions: list[_Position]
    strategies: dict[str, Strategy]


def _dec(value: float) -> Decimal:
    return Decimal(repr(float(value)))


class AgentLoop:
    """Runs SPEC §7 steps 1–3 for every active agent; see the module docstring."""

    def __init__(self, db: Database, manager: IsolatedAIManager, market: MarketData, events: EventSink, *,
                 interval: str = "1h", default_tokens: Sequence[str] = DEFAULT_TOKENS, fee_bps: int = 30,
                 slippage_bps: int = 10, min_trade: Decimal = Decimal("1"),
                 clock: Callable[[], float] = time.time, kline_concurrency: int = 8) -> None:
        if interval not in TIMEFRAME_MINUTES:
            raise ValueError(f"interval must be one of {', '.join(TIMEFRAME_MINUTES)}")
        if not default_tokens:
            raise ValueError("default_tokens must not be empty")
        if not (0 <= fee_bps < 10_000 and 0 <= slippage_bps < 10_000):
            raise ValueError("fee_bps and slippage_bps must be in 0..9999")
        self.db = db
        self.manager = manager
        self.market = market
        self.events = events
        self.interval_minutes = TIMEFRAME_MINUTES[interval]
        self.default_tokens = tuple(default_tokens)
        self.fee = Decimal(fee_bps) / 10_000
        self.slippage = slippage_bps / 10_000
        self.min_trade = min_trade
        self._clock = clock
        self._kline_gate = asyncio.Semaphore(max(1, kline_concurrency))
        self._lock = asyncio.Lock()
        self._parsed: dict[str, Strategy | None] = {}
        self._resolved: dict[tuple[str, str], TokenInfo] = {}
        self._unresolvable: dict[tuple[str, str], tuple[float, str]] = {}
        self._batches: dict[tuple[int, tuple[str, ...]], StrategyBatch] = {}
        self._symbols: dict[str, str] = {}
        self.last_report: TickReport | None = None

    # --- public -------------------------------------------------------------------------------

    async def tick(self) -> TickReport:
        """One pass over every active agent; never raises for market or per-agent trouble."""
        if self._lock.locked():
            return TickReport(skipped=True)
        async with self._lock:
            started = time.perf_counter()
            report = TickReport()
            try:
                await self._tick(report)
            finally:
                report.duration = time.perf_counter() - started
                self.last_report = report
            return report

    async def run(self) -> TickReport:
        """`tick()` for the coordinator: raises `TickError` when the tick aborted (so it backs off)."""
        report = await self.tick()
        if report.aborted:
            raise TickError("; ".join(report.errors[:3]) or "tick aborted")
        return report

    async def needed_token_ids(self) -> list[str]:
        """Every token id the active agents and open positions need (for the data worker)."""
        snap = await self._snapshot(TickReport())
        ids = {a.token_id for a in snap.agents.values() if a.token_id} | {p.token_id for p in snap.positions}
        return sorted(ids)

    # --- the tick -----------------------------------------------------------------------------

    async def _tick(self, report: TickReport) -> None:
        snap = await self._snapshot(report)
        active = [a for a in snap.agents.values() if a.status == "active"]
        token_ids = sorted({a.token_id for a in active if a.token_id} | {p.token_id for p in snap.positions})
        report.tokens = len(token_ids)
        if not token_ids:
            report.agents_evaluated = len(active)
            return
        before = _upstream_calls(self.market)
        try:
            prices = await self.market.get_prices(token_ids)
        except MarketDataError as exc:
            report.aborted = True
            report.add_error(f"prices: {exc}")
            return
        report.price_calls = max(0, _upstream_calls(self.market) - before)
        signals = await self._evaluate(snap, active, report)
        report.agents_evaluated = len(active)
        await self._trade(snap, prices, signals, report)

    async def _snapshot(self, report: TickReport) -> _Snapshot:
        rows = await self.db.fetchall(_SNAPSHOT_SQL)
        agents: dict[str, _Agent] = {}
        positions: list[_Position] = []
        for r in rows:
            agent_id = r[0]
            if agent_id not in agents:
                agents[agent_id] = _Agent(agent_id, r[1], r[2], r[3], r[4], r[5])
            if r[6] is not None:
                positions.append(_Position(r[6], agent_id, r[1], r[7], r[8], r[9], r[10], r[11], r[12],
                                           r[13]))
        strategies: dict[str, Strategy] = {}
        for agent in agents.values():
            if agent.status != "active":
                continue
            key, strategy = self._strategy_for(agent)
            if strategy is None:
                report.add_error(f"{agent.agent_id}: its strategy is invalid; skipped")
                continue
            agent.strategy_key = key
            strategies[key] = strategy
        await self._resolve_strategies(agents, strategies, report)
        return _Snapshot(agents, positions, strategies)

    def _strategy_for(self, agent: _Agent) -> tuple[str, Strategy | None]:
        """The agent's strategy (parsed once per distinct JSON) or the rotated default."""
        raw = agent.strategy_json
        if not raw:
            symbol = self.default_tokens[zlib.crc32(agent.agent_id.encode()) % len(self.default_tokens)]
            key = f"default:{symbol}"
            if key not in self._parsed:
                self._parsed[key] = default_strategy(symbol)
            return key, self._parsed[key]
        if raw not in self._parsed:
            try:
                self._parsed[raw] = parse_strategy(raw)
            except StrategyError:
                self._parsed[raw] = None
        return raw, self._parsed[raw]

    async def _resolve_strategies(self, agents: dict[str, _Agent], strategies: dict[str, Strategy],
                                  report: TickReport) -> None:
        wanted = {(s.token, s.chain or "") for s in strategies.values()}
        infos = dict(zip(wanted, await asyncio.gather(*(self._resolve(t, c, report) for t, c in wanted)),
                         strict=True))
        groups: dict[str, tuple[str, int]] = {}
        for key, strategy in strategies.items():
            info = infos[(strategy.token, strategy.chain or "")]
            if info is not None:
                self._symbols.setdefault(info.token_id, info.symbol)
                finest = min(TIMEFRAME_MINUTES[c.timeframe] for c in strategy.conditions)
                groups[key] = (info.token_id, min(finest, self.interval_minutes))
        for agent in agents.values():
            group = groups.get(agent.strategy_key or "")
            if group is None:
                agent.strategy_key = None  # invalid strategy or unresolvable token: nothing to evaluate
            else:
                agent.token_id, agent.group = group[0], group

    async def _resolve(self, token: str, chain: str, report: TickReport) -> TokenInfo | None:
        key = (token.casefold(), chain)
        info = self._resolved.get(key)
        if info is not None:
            return info
        failed = self._unresolvable.get(key)
        if failed is not None and self._clock() < failed[0]:
            report.add_error(f"token {token}: {failed[1]}")
            return None
        try:
            info = await self.market.resolve_token(token, chain or None)
        except TokenNotFoundError as exc:
            self._unresolvable[key] = (self._clock() + _NEGATIVE_RESOLVE_TTL, str(exc))
            report.add_error(f"token {token}: {exc}")
            return None
        except MarketDataError as exc:
            report.add_error(f"token {token}: {exc}")
            return None
        self._resolved[key] = info
        return info

    # --- evaluation ---------------------------------------------------------------------------

    async def _evaluate(self, snap: _Snapshot, active: list[_Agent], report: TickReport
                        ) -> dict[tuple[str, int], _GroupSignal]:
        """Signals per group; each agent carries its strategy's slot in the group's batch."""
        members: dict[tuple[str, int], list[_Agent]] = defaultdict(list)
        for agent in active:
            if agent.group is not None and agent.strategy_key is not None:
                members[agent.group].append(agent)
        batches: dict[tuple[str, int], StrategyBatch] = {}
        for group, agents in members.items():
            keys = tuple(sorted({a.strategy_key for a in agents if a.strategy_key}))
            slot = {k: i for i, k in enumerate(keys)}
            for agent in agents:
                agent.slot = slot[agent.strategy_key]  # type: ignore[index]
            cache_key = (group[1], keys)
            batch = self._batches.get(cache_key)
            if batch is None:
                if len(self._batches) >= _BATCH_CACHE_MAX:
                    self._batches.clear()
                batch = self._batches[cache_key] = compile_batch([snap.strategies[k] for k in keys], group[1])
            batches[group] = batch
        candles = await asyncio.gather(*(self._closed_candles(g, b, report) for g, b in batches.items()))
        out: dict[tuple[str, int], _GroupSignal] = {}
        for (group, batch), bars in zip(batches.items(), candles, strict=True):
            if bars is None or len(bars) < 2:
                continue
            buy, sell = evaluate_latest_compiled(batch, bars)
            out[group] = _GroupSignal(members[group], buy, sell, int(bars.time[-1]))
        return out

    async def _closed_candles(self, group: tuple[str, int], batch: StrategyBatch, report: TickReport
                              ) -> Candles | None:
        token_id, minutes = group
        period = minutes * 60
        now = self._clock()
        boundary = int(now // period) * period
        limit = int(batch.lookback.max(initial=1)) + 2
        try:
            async with self._kline_gate:
                bars = await self.market.get_klines(token_id, minutes, limit=limit, to_time=boundary - 1)
        except MarketDataError as exc:
            report.add_error(f"candles {self._symbols.get(token_id, token_id)} {minutes}m: {exc}")
            return None
        closed = int(np.searchsorted(bars.time, boundary - period, side="right"))
        if closed < len(bars):  # a provider that ignored to_time: drop the still-forming bar(s)
            bars = Candles(*(bars[f][:closed] for f in ("time", "open", "high", "low", "close", "volume")))
        return bars

    # --- trading ------------------------------------------------------------------------------

    async def _trade(self, snap: _Snapshot, prices: dict[str, PriceQuote],
                     signals: dict[tuple[str, int], _GroupSignal], report: TickReport) -> None:
        held: dict[str, set[str]] = defaultdict(set)
        for pos in snap.positions:
            held[pos.agent_id].add(pos.token_id)
        closed_agents: set[str] = set()
        for pos in snap.positions:
            quote = prices.get(pos.token_id)
            if quote is None:
                continue
            agent = snap.agents[pos.agent_id]
            price = quote.price_usd
            reason = None
            if pos.stop_loss is not None and price <= pos.stop_loss:
                reason = "stop-loss"
            elif pos.take_profit is not None and price >= pos.take_profit:
                reason = "take-profit"
            elif agent.status == "active" and agent.group is not None and agent.token_id == pos.token_id:
                sig = signals.get(agent.group)
                if sig is not None and bool(sig.sell[agent.slot]):
                    reason = "sell signal"
            if reason is not None and await self._close(pos, price, reason, report):
                closed_agents.add(pos.agent_id)
        for group, sig in signals.items():
            if not sig.buy.any():
                continue
            quote = prices.get(group[0])
            if quote is None:
                report.add_error(f"no price for {self._symbols.get(group[0], group[0])}")
                continue
            slots = np.fromiter((a.slot for a in sig.members), dtype=np.int64, count=len(sig.members))
            for i in np.flatnonzero(sig.buy[slots]):
                agent = sig.members[i]
                if group[0] in held[agent.agent_id] or agent.agent_id in closed_agents:
                    continue
                strategy = snap.strategies[agent.strategy_key or ""]
                await self._open(agent, strategy, quote.price_usd, sig.bar_time, report)

    async def _open(self, agent: _Agent, strategy: Strategy, price: float, bar_time: int,
                    report: TickReport) -> None:
        available = from_micro(agent.balance - agent.locked)
        cost = (available * _dec(strategy.buy.amount_percent) / 100).quantize(_Q6, rounding=ROUND_DOWN)
        if cost < self.min_trade or price <= 0:
            return
        fill = price * (1 + self.slippage)
        size = float(cost / (1 + self.fee) / _dec(fill))
        rm = strategy.risk_management
        stop = fill * (1 - rm.stop_loss_percent / 100) if rm.stop_loss_percent is not None else None
        target = fill * (1 + rm.take_profit_percent / 100) if rm.take_profit_percent is not None else None
        symbol = self._symbols.get(agent.token_id or "", strategy.token)
        try:
            opened = await self.manager.open_position(
                agent.agent_id, token_id=agent.token_id or "", symbol=symbol, size=size, price=fill,
                cost=cost, stop_loss=stop, take_profit=target,
                idempotency_key=f"open:{agent.agent_id}:{agent.token_id}:{bar_time}")
        except AgentError as exc:
            report.add_error(f"{agent.agent_id}: open refused: {exc}")
            return
        if opened is None:
            return  # this bar's entry was already made (a replayed tick)
        report.trades_opened += 1
        await self._publish(TradeOpened(user_id=agent.user_id, agent_id=agent.agent_id, symbol=symbol,
                                        price=fill, cost=cost, demo=self.market.is_demo))

    async def _close(self, pos: _Position, price: float, reason: str, report: TickReport) -> bool:
        fill = price * (1 - self.slippage)
        proceeds = (_dec(pos.size) * _dec(fill) * (1 - self.fee)).quantize(_Q6, rounding=ROUND_DOWN)
        try:
            result = await self.manager.close_position(
                pos.position_id, exit_price=fill, proceeds=max(proceeds, Decimal(0)), reason=reason,
                idempotency_key=f"close:{pos.agent_id}:{pos.position_id}")
        except AgentError as exc:
            report.add_error(f"{pos.agent_id}: close refused: {exc}")
            return False
        if result is None:
            return False  # already closed (a replayed tick)
        report.trades_closed += 1
        await self._publish(TradeClosed(user_id=pos.user_id, agent_id=pos.agent_id, symbol=pos.symbol,
                                        entry_price=pos.entry_price, exit_price=fill, pnl=result["pnl"],
                                        reason=reason, demo=self.market.is_demo))
        return True

    async def _publish(self, event: Event) -> None:
        try:
            await self.events.publish(event)
        except Exception:  # a notification failure never breaks the loop
            logger.exception("event sink failed for %s", type(event).__name__)


def _upstream_calls(market: Any) -> int:
    """Upstream calls so far: the provider's HTTP count when known, else the cache's miss count."""
    stats_fn = getattr(market, "stats", None)
    if not callable(stats_fn):
        return 0
    stats = stats_fn()
    provider = stats.get("provider") if isinstance(stats, dict) else None
    if isinstance(provider, dict) and isinstance(provider.get("calls_total"), int):
        return int(provider["calls_total"])
    value = stats.get("upstream_calls_total", stats.get("calls_total", 0)) if isinstance(stats, dict) else 0
    return int(value) if isinstance(value, int) else 0
