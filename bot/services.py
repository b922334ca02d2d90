"""The composition root's object graph: built once per process, passed to handlers via bot_data."""

from __future__ import annotations

import contextlib
import logging
import time
from dataclasses import dataclass, field

from telegram import Bot

from agents import IsolatedAIManager, get_isolated_ai_manager
from agents.autonomy.agent_loop import AgentLoop
from agents.autonomy.automaton.client import AutomatonClient
from agents.autonomy.automaton.sync import AutomatonSync
from agents.autonomy.coordinator import Coordinator, DataWorker
from agents.autonomy.risk import RiskWorker
from agents.autonomy.spawn_policy import SpawnPolicy
from agents.autonomy.spawner import Spawner
from agents.design.designer import StrategyDesigner
from agents.design.strategy_bots import StrategyBots
from agents.events import WorkerCrashed
from agents.llm_config import llm_settings_from
from agents.screens import Screens
from bot.delivery import defaults_of
from bot.delivery.background import Background
from bot.delivery.outbox import Outbox
from bot.delivery.replica import Replica, new_replica_id
from bot.delivery.sender import Sender
from bot.language import Languages
from bot.leader import Leadership
from bot.notifier import Notifier
from bot.settings import Settings
from engine.backtest_service import BacktestService
from engine.market.base import MarketData
from engine.market.factory import PLAN_POLL_SECONDS, build_market_data
from engine.pool import BacktestPool
from engine.simulate.simulations import SimulationService
from storage import Database, open_database
from storage.bots_repo import LlmUsageRepo
from storage.outbox_repo import OutboxRepo
from storage.pg_locks import AdvisoryLocks
from storage.shared_state_repo import SharedStateRepo
from storage.users_repo import UserRepo

log = logging.getLogger(__name__)
ALERT_EVERY = 600.0


@dataclass
class Services:
    """Everything the handlers and workers use. Built by `open_services`, closed by `close`."""

    settings: Settings
    db: Database
    manager: IsolatedAIManager
    users: UserRepo
    market: MarketData
    pool: BacktestPool
    bots: StrategyBots
    designer: StrategyDesigner
    backtests: BacktestService
    simulations: SimulationService
    notifier: Notifier
    outbox: Outbox
    sender: Sender
    background: Background
    agent_loop: AgentLoop
    risk: RiskWorker
    spawner: Spawner
    sync: AutomatonSync | None
    coordinator: Coordinator
    screens: Screens
    languages: Languages
    shared: SharedStateRepo  # open prompts and agreed values, shared by every replica
    locks: AdvisoryLocks | None = None  # PostgreSQL: cluster-wide locks (users' inbox order, liveness)
    replica: Replica | None = None  # PostgreSQL: this process among the replicas
    leader: Leadership | None = None  # PostgreSQL: whether this replica runs the background workers
    interrupted_backtests: list[tuple[int, int]] = field(default_factory=list)  # told on start
    started_at: float = field(default_factory=time.monotonic)
    known_users: set[int] = field(default_factory=set)

    def worker_schedule(self) -> list[tuple[str, float, float]]:
        """(worker name, interval seconds, first delay) for the JobQueue; staggered so the data
        worker warms the price cache just before the agent loop reads it."""
        firsts = {"data": 0.5, "agent_loop": 1.0, "risk": 2.0, "simulations": 1.5, "automaton_sync": 3.0}
        return [(name, self.coordinator.period(name), firsts.get(name, 1.0)) for name in self.coordinator.names]

    def runs_workers(self) -> bool:
        """True when this process's scheduled worker runs should do their work (see bot.leader)."""
        return self.leader is None or self.leader.is_leader

    async def close(self) -> None:
        """Stop background pieces, then close resources in reverse order of opening."""
        if self.leader is not None:
            with contextlib.suppress(Exception):
                await self.leader.stop()  # another replica takes the workers over at once
        with contextlib.suppress(Exception):
            await self.notifier.stop()  # buffered events into the outbox first
        await self.background.cancel()
        with contextlib.suppress(Exception):
            await self.sender.stop(drain_seconds=self.settings.shutdown_drain_seconds / 2)
        if self.replica is not None:
            await self.replica.stop()
        self.pool.shutdown()
        if self.sync is not None:
            with contextlib.suppress(Exception):
                await self.sync.aclose()
        with contextlib.suppress(Exception):
            await self.market.aclose()
        if self.locks is not None:  # last: the liveness lock outlives the sender's drain
            await self.locks.close()
        await self.db.close()


async def open_services(settings: Settings, bot: Bot) -> Services:
    """Open the database (migrating it), the market, the pool and the workers."""
    db = await open_database(settings.database_url)
    try:
        return await _build(settings, bot, db)
    except BaseException:
        await db.close()  # a half-built graph must not leave the database's threads running
        raise


async def _build(settings: Settings, bot: Bot, db: Database) -> Services:
    users = UserRepo(db)
    # replicas (webhook mode on PostgreSQL): a choice made on another replica must show
    languages = Languages(users, cache=not (db.dialect == "postgresql" and settings.webhook_url))

    async def get_pref(user_id: int, kind: str) -> str:
        return (await users.get_prefs(user_id)).level(kind)

    async def mark_blocked(user_id: int) -> None:
        await users.mark_blocked(user_id, True)

    locks, replica_id = None, None
    if db.dialect == "postgresql":  # replicas may share it: each sends what it queued (bot.delivery.replica)
        locks, replica_id = AdvisoryLocks(settings.database_url), new_replica_id()
    outbox_repo = OutboxRepo(db, owner=replica_id)
    sender = Sender(bot, outbox_repo, on_blocked=mark_blocked, language_of=languages.cached,
                    global_rate=settings.send_rate_per_second)
    outbox = Outbox(outbox_repo, sender.add, defaults=defaults_of(bot))
    replica = None if locks is None or replica_id is None else Replica(replica_id, locks, outbox_repo, sender.add)
    notifier = Notifier(outbox, get_pref=get_pref, is_blocked=users.is_blocked, languages=languages.of_users,
                        ttl=settings.notify_ttl_minutes * 60, signal_ttl=settings.signal_ttl_minutes * 60)
    manager = get_isolated_ai_manager(db, settings.money_rules(), notifier)
    market = build_market_data(api_key=settings.ave_api_key.get_secret_value(), base_url=settings.ave_base_url,
                               plan=settings.ave_api_plan, wss_url=settings.ave_wss_url)
    pool = BacktestPool(settings.backtest_workers, max_queue=settings.backtest_queue_size)
    llm = llm_settings_from(settings.anthropic_api_key.get_secret_value(), settings.anthropic_base_url or None,
                            settings.llm_model)
    bots = StrategyBots(db)
    designer = StrategyDesigner(llm=llm, daily_limit=settings.llm_daily_limit, timeout=settings.llm_timeout_seconds,
                                usage_store=LlmUsageRepo(db), resolve_token=market.resolve_token)
    backtests = BacktestService(db, market, pool, timeout=settings.backtest_timeout_seconds)
    simulations = SimulationService(db, market, notifier, poll_seconds=PLAN_POLL_SECONDS[settings.ave_api_plan],
                                    max_duration_hours=settings.simulate_max_hours, offload=pool.call)
    agent_loop = AgentLoop(db, manager, market, notifier, offload=pool.call)
    risk = RiskWorker(db, manager, market, notifier)
    spawner = Spawner(db, manager, SpawnPolicy(llm))
    sync = None
    if settings.automaton_enabled:
        client = AutomatonClient(settings.automaton_base_url, settings.automaton_api_key.get_secret_value())
        sync = AutomatonSync(db, manager, client)

    async def agent_step() -> None:
        # SPEC §7 steps 1-5 in order: prices, evaluation, fills, then spawn decisions
        # (risk runs as its own worker right after, on the same period).
        await agent_loop.run()
        await spawner.run_once()
        await notifier.flush()  # the tick's pushes into the outbox now, not at the next timer

    tick = settings.agent_tick_seconds

    last_alert: dict[str, float] = {}

    async def report_crash(name: str, error: BaseException) -> None:
        log.error("worker %s crashed: %s (restarting with backoff)", name, error)
        now = time.monotonic()
        if now - last_alert.get(name, -1e9) < ALERT_EVERY:  # one alert per worker per 10 minutes
            return
        last_alert[name] = now
        for admin in settings.admin_user_ids:
            await notifier.publish(WorkerCrashed(user_id=admin, worker=name, error=str(error)[:300]))

    coordinator = Coordinator(on_crash=report_crash, max_backoff=max(900.0, tick * 8))
    coordinator.register("data", DataWorker(market, agent_loop.needed_token_ids).run_once, period=tick)
    coordinator.register("agent_loop", agent_step, period=tick)
    coordinator.register("risk", risk.run_once, period=tick)
    coordinator.register("simulations", simulations.poll_once, period=float(PLAN_POLL_SECONDS[settings.ave_api_plan]))
    if sync is not None:
        coordinator.register("automaton_sync", sync.run_once, period=tick)
    await simulations.resume_all()
    interrupted = await backtests.recover_interrupted(shared=locks is not None)
    return Services(settings=settings, db=db, manager=manager, users=users, market=market, pool=pool, bots=bots,
                    designer=designer, backtests=backtests, simulations=simulations, notifier=notifier,
                    outbox=outbox, sender=sender, background=Background(),
                    agent_loop=agent_loop, risk=risk, spawner=spawner, sync=sync, coordinator=coordinator,
                    screens=Screens(manager, risk, agent_loop, bots, remote_enabled=sync is not None),
                    languages=languages, shared=SharedStateRepo(db, time.time), locks=locks, replica=replica,
                    leader=None if locks is None else Leadership(locks, on_gain=agent_loop.forget),
                    interrupted_backtests=interrupted)
