"""The agent loop's working set: every tradable agent, kept in memory and refreshed incrementally.

The first read loads every agent; after that each tick reads only the agents stamped since the
last one (`storage.bars_repo.loop_changes`, the change feed of migration 004), so a quiet tick
costs the changes, not the population. An agent is in the set while it is active, or while it
is paused or dead and still holds a position (its stop and target keep running). Each distinct
strategy JSON is parsed once and each token resolved once; agents are grouped by
(token, timeframe) in persistent `Group`s.
"""

from __future__ import annotations

import asyncio
import hashlib
import zlib
from collections.abc import Callable, Sequence

from agents.autonomy.loop_model import Group, LoopAgent, LoopPosition, Snapshot, TickReport
from engine.market.base import MarketData, MarketDataError, TokenInfo, TokenNotFoundError
from engine.strategy import TIMEFRAME_MINUTES, Strategy, StrategyError, default_strategy, parse_strategy
from storage import Database
from storage.bars_repo import LOOP_PAGE, clock, loop_changes, loop_page

_NEGATIVE_RESOLVE_TTL = 3600.0


def _key_of(text: str) -> str:
    return hashlib.blake2b(text.encode(), digest_size=12).hexdigest()


class SnapshotReader:
    """Applies the change feed to the in-memory working set and assigns strategies and groups."""

    def __init__(self, db: Database, market: MarketData, default_tokens: Sequence[str],
                 clock: Callable[[], float]) -> None:
        self.db = db
        self.market = market
        self.default_tokens = tuple(default_tokens)
        self._clock = clock
        self._parsed: dict[str, Strategy | None] = {}
        self._resolved: dict[tuple[str, str], TokenInfo] = {}
        self._unresolvable: dict[tuple[str, str], tuple[float, str]] = {}
        self.symbols: dict[str, str] = {}
        self._seq = 0
        self.agents: dict[str, LoopAgent] = {}
        self.positions: dict[int, LoopPosition] = {}
        self.groups: dict[tuple[str, int], Group] = {}
        self._waiting: set[str] = set()  # agents whose token could not be resolved yet (retried)
        self._invalid: set[str] = set()
        self._texts: dict[str, str] = {}

    def forget(self) -> None:
        """Drop the working set: the next read loads everything again (another process may have
        traded these agents meanwhile)."""
        self._seq = 0
        self.agents.clear()
        self.positions.clear()
        self.groups.clear()
        self._waiting.clear()

    async def read(self, report: TickReport) -> Snapshot:
        """The working set after this tick's changes (see the module docstring)."""
        if self._seq == 0:
            changed = await self._load_all()
        else:
            rows, seq = await self.db.read(loop_changes, self._seq)
            changed = self._apply(rows)
            self._seq = seq
        await self._assign(changed | self._waiting, report)
        for agent_id in sorted(self._invalid)[:5]:
            report.add_error(f"{agent_id}: its strategy is invalid; skipped")
        strategies = {k: self._parsed[k] for g in self.groups.values() for k in g.keys}
        return Snapshot(self.agents, list(self.positions.values()), strategies, self.groups)  # type: ignore[arg-type]

    async def _load_all(self) -> set[str]:
        """The first read, in pages of agents (memory stays bounded at 100k agents)."""
        upto = await self.db.read(clock)
        changed: set[str] = set()
        after = ""
        while True:
            rows = await self.db.read(loop_page, after, upto, LOOP_PAGE)
            if not rows:
                break
            changed |= self._apply(rows)
            after = rows[-1][0]
        self._seq = upto
        return changed

    def _apply(self, rows: list) -> set[str]:
        """Replace every changed agent (and its positions) by its new row; drop the untradable."""
        changed: set[str] = set()
        fresh: dict[str, LoopAgent] = {}
        for r in rows:
            agent_id = r[0]
            if agent_id not in fresh:
                changed.add(agent_id)
                raw = r[5] if r[5] is None else self._texts.setdefault(r[5], r[5])  # one copy per distinct JSON
                fresh[agent_id] = LoopAgent(agent_id, r[1], r[2], r[3], r[4], raw)
            if r[6] is not None:
                pos = LoopPosition(r[6], agent_id, r[1], r[7], r[8], r[9], r[10], r[11], r[12], r[13], r[14])
                fresh[agent_id].positions += (pos,)
        for agent_id, agent in fresh.items():
            old = self.agents.get(agent_id)
            if old is not None and old.group is not None and (old.status, old.strategy_json) == (
                    agent.status, agent.strategy_json):
                self._refresh(old, agent)  # only money or positions moved: keep its strategy and group
                changed.discard(agent_id)
                continue
            self._drop(agent_id)
            if agent.status == "active" or (agent.status in ("paused", "dead") and agent.positions):
                agent.position = agent.positions[0] if agent.positions else None
                self.agents[agent_id] = agent
                for pos in agent.positions:
                    self.positions[pos.position_id] = pos
        return {a for a in changed if a in self.agents}

    def _refresh(self, old: LoopAgent, new: LoopAgent) -> None:
        for pos in old.positions:
            self.positions.pop(pos.position_id, None)
        old.balance, old.locked, old.positions = new.balance, new.locked, new.positions
        old.position = new.positions[0] if new.positions else None
        for pos in new.positions:
            self.positions[pos.position_id] = pos
        if old.status != "active" and not new.positions:
            self._drop(old.agent_id)  # a paused or dead agent without a position has nothing to run
            return
        group = self.groups.get(old.group)  # type: ignore[arg-type]
        if group is not None:
            group.hot.add(old.agent_id)  # its position changed: the next tick looks at it

    def _drop(self, agent_id: str) -> None:
        old = self.agents.pop(agent_id, None)
        self._waiting.discard(agent_id)
        self._invalid.discard(agent_id)
        if old is None:
            return
        for pos in old.positions:
            self.positions.pop(pos.position_id, None)
        if old.group is not None:
            group = self.groups.get(old.group)
            if group is not None:
                group.remove(old)
                if not group.members:
                    del self.groups[old.group]

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

    async def _assign(self, agent_ids: set[str], report: TickReport) -> None:
        """Strategy, token and group of each of `agent_ids` (changed or still waiting)."""
        keyed: dict[str, list[LoopAgent]] = {}
        for agent_id in agent_ids:
            agent = self.agents.get(agent_id)
            if agent is None:
                continue
            key, strategy = self.strategy_for(agent)
            if strategy is None:
                self._invalid.add(agent_id)
                continue
            keyed.setdefault(key, []).append(agent)
        wanted = {(self._parsed[k].token, self._parsed[k].chain or "") for k in keyed}  # type: ignore[union-attr]
        infos = dict(zip(wanted, await asyncio.gather(*(self._resolve(t, c, report) for t, c in wanted)),
                         strict=True))
        for key, members in keyed.items():
            strategy = self._parsed[key]
            assert strategy is not None
            info = infos[(strategy.token, strategy.chain or "")]
            for agent in members:
                if info is None:
                    self._waiting.add(agent.agent_id)
                    continue
                self._waiting.discard(agent.agent_id)
                self.symbols.setdefault(info.token_id, info.symbol)
                group_key = (info.token_id, TIMEFRAME_MINUTES[strategy.finest_timeframe])
                agent.strategy_key, agent.token_id, agent.group = key, info.token_id, group_key
                group = self.groups.get(group_key)
                if group is None:
                    group = self.groups[group_key] = Group(*group_key)
                group.add(agent)

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
