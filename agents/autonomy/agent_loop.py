"""The autonomous loop (SPEC §7 steps 1–3): every agent trades its strategy through the trading core.

One `tick()`:

1. **Read** what changed: the loop keeps every tradable agent and open position in memory
   (`agents.autonomy.loop_snapshot`) and reads only the agents stamped since the last tick (the
   change feed); the first tick loads them all, page by page (`forget()` makes the next do so).
   Agents without `strategy_json` use `default_strategy` on a token picked from `DEFAULT_TOKENS`
   by a hash of the agent id. Token symbols are resolved once (`market.resolve_token`), cached.
2. **Prices**: ONE `market.get_prices` call for every token needed (split into ⌈n/200⌉ upstream).
3. **Bars**: agents sharing a (token, timeframe) form a group; a strategy runs on its finest
   condition timeframe, whatever it is (no cap). When a bar of the group's timeframe has closed
   since the group last traded, the closed bars are read on the regular time grid
   (`engine.live.closed_bars`, cached per bar) and each distinct strategy's signals are
   evaluated on them (`engine.signals.evaluate`, the backtest's code). A quiet tick reads no bars.
4. **Trading core**: each agent's `engine.core.TradingCore` (its state kept in memory and in
   `agent_core_state`, its position in `positions`) consumes the new closed bars and, when it can
   settle something now, the forming bar: exactly the backtest's fills. Paused and dead agents
   keep their stops and targets, trade no signals; one decision per group, strategy and state.
   Fills are booked in a batch (`agents.autonomy.loop_orders`), keyed `open:<agent>:<token>:<bar>`
   and `close:<agent>:<position>`, so a tick replayed after a crash books nothing twice; the
   ledger's positions are the truth the core adopts at every tick.
5. The processed bars (`market_bars`, for the parity replay) and the changed core states are
   written in the same transaction as the tick's fills.

Failures: without prices the tick aborts before writing anything (`aborted`); a group whose bars
fail waits for the next tick. Ticks never overlap (a second one returns `skipped`).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from decimal import Decimal
from typing import Any

from agents.autonomy.loop_model import Group, LoopAgent, LoopPosition, Snapshot, TickError, TickReport, upstream_calls
from agents.autonomy.loop_orders import OrderDesk
from agents.autonomy.loop_snapshot import SnapshotReader
from agents.autonomy.stop_all import StopAllReport, stop_all
from agents.autonomy.watch import Watch, watch
from agents.ledger.manager import IsolatedAIManager
from engine.core import CoreState, Costs, Fill, TradingCore
from engine.events import EventSink
from engine.live import (
    FormingBar,
    advance,
    can_settle_now,
    closed_bars,
    forming_bar,
    new_bar_slice,
    settled_start,
    start_after,
    wants_forming_bar,
    warmup_bars,
)
from engine.market.base import CANDLE_FIELDS, Candles, MarketData, MarketDataError
from engine.parity import LiveTrade, Offload, ParityReport, replay_with
from engine.signals import evaluate
from engine.strategy import Strategy
from storage import Database, SyncTx
from storage.bars_repo import AgentCoreRepo, AgentCoreRow, BarRepo, save_bars, save_states
from storage.signals_repo import TradeRepo

__all__ = ["DEFAULT_TOKENS", "AgentLoop", "TickError", "TickReport"]  # TickReport/TickError: agents.autonomy.loop_model

logger = logging.getLogger(__name__)

# The documented default token list for agents without a strategy (all in the demo market).
DEFAULT_TOKENS: tuple[str, ...] = ("WETH", "SOL", "PEPE")
MAX_CATCH_UP_BARS = 500


class AgentLoop:
    """Runs SPEC §7 steps 1–3 for every active agent; see the module docstring."""

    def __init__(self, db: Database, manager: IsolatedAIManager, market: MarketData, events: EventSink, *,
                 default_tokens: Sequence[str] = DEFAULT_TOKENS, fee_bps: int = 30,
                 slippage_bps: int = 10, min_trade: Decimal = Decimal("1"),
                 clock: Callable[[], float] = time.time, kline_concurrency: int = 8,
                 offload: Offload | None = None) -> None:
        if not default_tokens:
            raise ValueError("default_tokens must not be empty")
        self.db = db
        self.manager = manager
        self.market = market
        self.events = events
        self.default_tokens = tuple(default_tokens)
        self.costs = Costs(fee_bps, slippage_bps)  # raises ValueError outside 0..9999
        self.min_trade = min_trade
        self._offload = offload  # where parity replays run (the backtest pool in production)
        self._clock = clock
        self._kline_gate = asyncio.Semaphore(max(1, kline_concurrency))
        self._lock = asyncio.Lock()
        self._reader = SnapshotReader(db, market, self.default_tokens, clock)
        self._symbols = self._reader.symbols
        self._cores = AgentCoreRepo(db)
        self._bars = BarRepo(db)
        self._trades = TradeRepo(db)
        self._states: dict[str, AgentCoreRow] | None = None  # loaded once, then kept in memory
        self._stored_until: dict[tuple[str, int], int] = {}
        self._desk = OrderDesk(manager, events, self.costs, min_trade=min_trade, demo=market.is_demo,
                               symbols=self._symbols)
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
                report.finished_at = self._clock()
                self.last_report = report
            if report.trades_opened or report.trades_closed:
                logger.info("tick: %d opened, %d closed over %d agents in %.3f s", report.trades_opened,
                            report.trades_closed, report.agents_evaluated, report.duration)
            if report.errors:
                logger.debug("tick problems: %s", "; ".join(report.errors))
            return report

    async def forget(self) -> None:
        """The next tick starts from the database (a replica taking over the workers from another)."""
        async with self._lock:
            self._reader.forget()
            self._states = None
            self._stored_until.clear()

    async def run(self) -> TickReport:
        """`tick()` for the coordinator: raises `TickError` when the tick aborted (so it backs off)."""
        report = await self.tick()
        if report.aborted:
            raise TickError("; ".join(report.errors[:3]) or "tick aborted")
        return report

    async def stop_all(self, user_id: int) -> StopAllReport:
        """Pause `user_id`'s agents, close their positions through this loop's desk, between ticks."""
        async with self._lock:
            return await stop_all(self.manager, self.market, self._desk, user_id, self._clock())

    async def watch(self, agent_id: str, strategy_json: str | None) -> Watch | None:
        """What the agent waits for now (`agents.autonomy.watch`); None when it cannot be read."""
        return await watch(self._reader, self.market, agent_id, strategy_json, self._clock())

    async def needed_token_ids(self) -> list[str]:
        """Every token id the active agents and open positions need (for the data worker)."""
        async with self._lock:  # the working set is the tick's; never change it under a running tick
            snap = await self._reader.read(TickReport())
        return sorted({g.token_id for g in snap.groups.values()} | {p.token_id for p in snap.positions})

    async def parity(self, agent_id: str) -> ParityReport | None:
        """Replay the bars the agent traded on (its current strategy) through the backtest;
        None when it has not traded on bars yet."""
        try:
            return await self._parity(agent_id)
        except Exception:  # a report must never break the agent's card
            logger.exception("agent %s: parity replay failed", agent_id)
            return None

    async def _parity(self, agent_id: str) -> ParityReport | None:
        row = await self._cores.get(agent_id)
        if row is None:
            return None
        raw = await self._cores.strategy_json(agent_id)
        _, strategy = self._reader.strategy_for(LoopAgent(agent_id, 0, "active", 0, 0, raw))
        state = CoreState.from_dict({**row.state, "position": None})
        if strategy is None or state.last_close is None:
            return None
        period = row.interval_minutes * 60
        first = row.since_time - warmup_bars(strategy, row.interval_minutes) * period
        bars = await self._bars.load(row.token_id, row.interval_minutes, first, state.last_close)
        live = [LiveTrade(t.entry_bar_time, t.entry_price, t.exit_bar_time, t.exit_price, t.exit_reason)
                for t in await self._trades.for_agent_since(agent_id, row.since_time) if t.entry_bar_time is not None]
        for pos in await self.manager.open_positions(agent_id):
            if pos.get("entry_bar_time") is not None and pos["entry_bar_time"] >= row.since_time:
                live.append(LiveTrade(int(pos["entry_bar_time"]), float(pos["entry_price"])))
        report = await replay_with(self._offload, strategy, bars, row.interval_minutes, row.since_time, live,
                                   self.costs)
        if report.first_difference:
            logger.warning("agent %s diverged from its backtest replay: %s", agent_id, report.first_difference)
        return report

    # --- the tick -----------------------------------------------------------------------------

    async def _tick(self, report: TickReport) -> None:
        snap = await self._reader.read(report)
        groups = snap.groups
        token_ids = sorted({g.token_id for g in groups.values()} | {p.token_id for p in snap.positions})
        report.tokens = len(token_ids)
        report.agents_evaluated = sum(1 for a in snap.agents.values() if a.status == "active")
        if not token_ids:
            return
        before = upstream_calls(self.market)
        try:
            quotes = await self.market.get_prices(token_ids)
        except MarketDataError as exc:
            report.aborted = True
            report.add_error(f"prices: {exc}")
            return
        report.price_calls = max(0, upstream_calls(self.market) - before)
        prices = {t: q.price_usd for t, q in quotes.items() if q.price_usd and q.price_usd > 0}
        if self._states is None:
            self._states = await self._cores.load_all()
        now = self._clock()
        for group in groups.values():
            group.start_tick()
        await asyncio.gather(*(self._load_bars(g, snap, now, report) for g in groups.values()))
        self._desk.begin()
        dirty: list[AgentCoreRow] = []
        for group in list(groups.values()):
            await self._trade_group(group, snap, prices.get(group.token_id), now, report, dirty)
        self._desk.protect_orphans(snap, prices, now)
        await self._desk.flush(report, self._writes(groups, dirty))

    async def _trade_group(self, group: Group, snap: Snapshot, price: float | None, now: float, report: TickReport,
                           dirty: list[AgentCoreRow]) -> None:
        """Advance the group's members: all of them after a new bar, else only the hot ones."""
        assert self._states is not None
        new_bar = group.bars is not None
        ids = list(group.members) if new_bar else [i for i in group.hot if i in group.members]
        synced: int | None = None
        complete = True
        for agent_id in ids:
            agent = group.members[agent_id]
            row, holding = await self._trade_agent(agent, group, snap, price, now, report)
            if row is not None:
                dirty.append(row)
            state = self._states.get(agent_id)
            if holding or (state is not None and state.state.get("pending")):
                group.hot.add(agent_id)
            else:
                group.hot.discard(agent_id)
            if new_bar:
                seen = self._last_close(state, agent)
                if seen is None:
                    complete = False
                elif synced is None or seen < synced:
                    synced = seen
        if new_bar:
            group.synced = synced if complete else None

    async def _load_bars(self, group: Group, snap: Snapshot, now: float, report: TickReport) -> None:
        """Closed bars and signals for the group, only when a bar closed that a member has not seen."""
        period = group.minutes * 60
        last_closed = settled_start(now, group.minutes) - period
        if group.synced is not None and group.synced >= last_closed:
            return  # the quiet tick: O(1) per group
        assert self._states is not None
        seen = [self._last_close(self._states.get(a.agent_id), a) for a in group.members.values()]
        if all(s is not None and s >= last_closed for s in seen):
            group.synced = min(seen, default=None)  # type: ignore[type-var]
            return
        known = [s for s in seen if s is not None]
        missed = 0 if not known else min(MAX_CATCH_UP_BARS, (last_closed - min(known)) // period)
        keys = sorted({k for k in group.keys if k in snap.strategies})
        need = max([warmup_bars(snap.strategies[k], group.minutes) for k in keys] or [2])
        try:
            async with self._kline_gate:
                group.bars = await closed_bars(self.market, group.token_id, group.minutes, need + missed, now)
        except MarketDataError as exc:
            report.add_error(f"candles {self._symbols.get(group.token_id, group.token_id)} {group.minutes}m: {exc}")
            return
        if len(group.bars) < 2:
            group.bars = None
            return
        for key in keys:
            sig = evaluate(snap.strategies[key], group.bars, group.minutes)
            group.signals[key] = (sig.buy, sig.sell)

    def _last_close(self, row: AgentCoreRow | None, agent: LoopAgent) -> int | None:
        if row is None or row.strategy_key != agent.strategy_key or row.token_id != agent.token_id:
            return None
        value = row.state.get("last_close")
        return None if value is None else int(value)

    async def _trade_agent(self, agent: LoopAgent, group: Group, snap: Snapshot, price: float | None, now: float,
                           report: TickReport) -> tuple[AgentCoreRow | None, bool]:
        """Advance one agent's core: (its row when the state changed, whether it now holds)."""
        assert self._states is not None and agent.strategy_key is not None
        strategy = snap.strategies[agent.strategy_key]
        row = self._states.get(agent.agent_id)
        held = agent.position if agent.position is not None and agent.position.token_id == group.token_id else None
        fresh = self._last_close(row, agent) is None or row is None or row.interval_minutes != group.minutes
        if fresh:
            if group.bars is None:
                return None, held is not None  # nothing to start from yet
            core = TradingCore.for_strategy(strategy, self.costs)
            start_after(core, group.bars)
            row = AgentCoreRow(agent.agent_id, agent.strategy_key, group.token_id, group.minutes,
                               int(group.bars.time[-1]) + group.minutes * 60, {})
            state, fills = await self._advance(core, agent, group, None, price, now)
        else:
            assert row is not None
            no_new_bar = group.bars is None or int(row.state.get("last_close") or 0) >= int(group.bars.time[-1])
            if no_new_bar and not can_settle_now(row.state.get("pending"), None if held is None else held.stop_loss,
                                                 None if held is None else held.take_profit, held is not None, price):
                return None, held is not None  # a quiet tick for this agent: nothing can happen, build nothing
            if held is None:
                # Cores with the same strategy and the same state, on the same bars, decide the same:
                # run one per distinct (strategy, state) and share its result (each agent still books
                # its own orders from its own balance).
                key = (agent.strategy_key, agent.status == "active", tuple(row.state.items()))
                decided = group.decided.get(key)
                if decided is None:
                    decided = group.decided[key] = await self._advance(
                        self._core(strategy, row.state), agent, group, None, price, now)
                state, fills = decided
            else:
                state, fills = await self._advance(self._core(strategy, row.state), agent, group, held, price, now)
        for fill in fills:
            held = self._book(agent, strategy, group, fill, held)
        if not fresh and state == row.state:
            return None, held is not None
        row = AgentCoreRow(row.agent_id, row.strategy_key, row.token_id, row.interval_minutes, row.since_time, state)
        self._states[agent.agent_id] = row
        return row, held is not None

    def _core(self, strategy: Strategy, state: dict[str, Any]) -> TradingCore:
        return TradingCore.for_strategy(strategy, self.costs, CoreState.from_dict({**state, "position": None}))

    async def _advance(self, core: TradingCore, agent: LoopAgent, group: Group, held: LoopPosition | None,
                       price: float | None, now: float) -> tuple[dict[str, Any], tuple[Fill, ...]]:
        """Feed the core the group's new closed bars and, when it can settle something, the forming
        bar; returns its new state (without the position, which lives in `positions`) and fills.
        The state dict may be shared by several agents: it is never changed in place."""
        core.adopt(None if held is None else held.core())
        fills: list[Fill] = []
        if group.bars is not None and new_bar_slice(core, group.bars) < len(group.bars):
            traded = agent.status == "active"
            buy, sell = group.signals.get(agent.strategy_key or "", (None, None)) if traded else (None, None)
            fills += advance(core, group.bars, buy, sell)
        if wants_forming_bar(core, price):
            forming = await self._forming(group, now)
            if forming is not None:
                fills += advance(core, Candles.empty(), None, None, forming)
        state = core.state.to_dict()
        state.pop("position", None)
        return state, tuple(fills)

    async def _forming(self, group: Group, now: float) -> FormingBar | None:
        if not group.forming_read:
            group.forming_read = True
            try:
                async with self._kline_gate:
                    group.forming = await forming_bar(self.market, group.token_id, group.minutes, now)
            except MarketDataError:
                group.forming = None  # nothing is decided without the bar; the next tick retries
        return group.forming

    def _book(self, agent: LoopAgent, strategy: Strategy, group: Group, fill: Fill,
              held: LoopPosition | None) -> LoopPosition | None:
        """Put one of the core's fills in the tick's batch; returns the position now held.

        An entry that is too small or not tradable is simply not booked: the core's position is
        never stored with its state, so the next tick adopts what the ledger holds."""
        if fill.side == "sell":
            if held is not None:
                self._desk.plan_close(held, fill)
            return None
        if agent.status != "active":
            return None
        return self._desk.plan_open(agent, strategy, group.token_id, fill)

    def _writes(self, groups: dict[tuple[str, int], Group], dirty: list[AgentCoreRow]
                ) -> Callable[[SyncTx], None] | None:
        """The tick's other writes, committed with its fills: new closed bars and changed core states."""
        fresh_bars: list[tuple[Group, Candles]] = []
        for key, group in groups.items():
            if group.bars is None:
                continue
            until = self._stored_until.get(key)
            start = 0 if until is None else int(group.bars.time.searchsorted(until, side="right"))
            if start < len(group.bars):
                fresh_bars.append((group, Candles(*(group.bars[f][start:] for f in CANDLE_FIELDS))))
        if not fresh_bars and not dirty:
            return None

        def write(tx: SyncTx) -> None:
            for group, bars in fresh_bars:
                save_bars(tx, group.token_id, group.minutes, bars)
            save_states(tx, dirty)

        def stored() -> None:
            for group, bars in fresh_bars:
                self._stored_until[(group.token_id, group.minutes)] = int(bars.time[-1])

        self._desk.after_commit(stored)
        return write
