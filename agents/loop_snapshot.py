"""What the agent loop reads at the start of a tick: agents, open positions, strategies, groups."""

from __future__ import annotations

import asyncio
import hashlib
import zlib
from collections.abc import Callable, Sequence

from agents.loop_model import LoopAgent, LoopPosition, Snapshot, TickReport
from engine.market.base import MarketData, MarketDataError, TokenInfo, TokenNotFoundError
from engine.strategy import TIMEFRAME_MINUTES, Strategy, StrategyError, default_strategy, parse_strategy
from storage import Database
from storage.bars_repo import AgentCoreRepo

_NEGATIVE_RESOLVE_TTL = 3600.0

def _key_of(text: str) -> str:
    return hashlib.blake2b(text.encode(), digest_size=12).hexdigest()


class SnapshotReader:
    """Reads the tick's world in one query; parses each distinct strategy and resolves each token once."""

    def __init__(self, db: Database, market: MarketData, default_tokens: Sequence[str],
                 clock: Callable[[], float]) -> None:
        self._rows = AgentCoreRepo(db)
        self.market = market
        self.default_tokens = tuple(default_tokens)
        self._clock = clock
        self._parsed: dict[str, Strategy | None] = {}
        self._resolved: dict[tuple[str, str], TokenInfo] = {}
        self._unresolvable: dict[tuple[str, str], tuple[float, str]] = {}
        self.symbols: dict[str, str] = {}

    async def read(self, report: TickReport) -> Snapshot:
        """Every active agent (and paused/dead ones holding positions) with its strategy and group."""
        rows = await self._rows.loop_snapshot()
        agents: dict[str, LoopAgent] = {}
        positions: list[LoopPosition] = []
        for r in rows:
            agent_id = r[0]
            if agent_id not in agents:
                agents[agent_id] = LoopAgent(agent_id, r[1], r[2], r[3], r[4], r[5])
            if r[6] is not None:
                pos = LoopPosition(r[6], agent_id, r[1], r[7], r[8], r[9], r[10], r[11], r[12], r[13], r[14])
                positions.append(pos)
                agents[agent_id].position = pos
        strategies: dict[str, Strategy] = {}
        for agent in agents.values():
            key, strategy = self.strategy_for(agent)
            if strategy is None:
                report.add_error(f"{agent.agent_id}: its strategy is invalid; skipped")
                continue
            agent.strategy_key = key
            strategies[key] = strategy
        await self._resolve_strategies(agents, strategies, report)
        return Snapshot(agents, positions, strategies)

    def strategy_for(self, agent: LoopAgent) -> tuple[str, Strategy | None]:
        """The agent's strategy (parsed once per distinct JSON) or the rotated default."""
        raw = agent.strategy_json
        if not raw:
            symbol = self.default_tokens[zlib.crc32(agent.agent_id.encode()) % len(self.default_tokens)]
            key = f"default:{symbol}"
            if key not in self._parsed:
                self._parsed[key] = default_strategy(symbol)
            return key, self._parsed[key]
        key = _key_of(raw)
        if key not in self._parsed:
            try:
                self._parsed[key] = parse_strategy(raw)
            except StrategyError:
                self._parsed[key] = None
        return key, self._parsed[key]

    async def _resolve_strategies(self, agents: dict[str, LoopAgent], strategies: dict[str, Strategy],
                                  report: TickReport) -> None:
        wanted = {(s.token, s.chain or "") for s in strategies.values()}
        infos = dict(zip(wanted, await asyncio.gather(*(self._resolve(t, c, report) for t, c in wanted)),
                         strict=True))
        groups: dict[str, tuple[str, int]] = {}
        for key, strategy in strategies.items():
            info = infos[(strategy.token, strategy.chain or "")]
            if info is not None:
                self.symbols.setdefault(info.token_id, info.symbol)
                groups[key] = (info.token_id, TIMEFRAME_MINUTES[strategy.finest_timeframe])
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
