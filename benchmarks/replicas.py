"""Replicas benchmark: 1, 2 and 4 bot processes behind a loopback load balancer on one PostgreSQL.

What it measures. The real application (`build_application` + `bot.lifecycle.running`, this
script's `--serve` mode) runs as N replica processes in webhook mode, each on its own loopback
port, all on one embedded PostgreSQL 18 server (tests/pg_server.py, a fresh database per run,
migrated by the replicas themselves). The Telegram fake (tests/fakes/telegram_api.py) serves the
Bot API and delivers every update by webhook to a round-robin loopback balancer
(tests/fakes/balancer.py) that forwards it to the next replica. 200 simulated users (those of
benchmarks/bot_load.py, reused by import) all start at once and each sends `/start`,
`/automaton 100`, `/ai_portfolio`, then presses the agent button, each step waiting for the
reply to the previous one. Latency is the fake's clock, from the user's update being queued to
the fake answering the bot's reply call (webhook delivery, balancer hop, the replica storing
the update, processing it under the user's cluster lock, the outbox and the send). Runs:

* the floor: bot_load's trivial python-telegram-bot echo bot, one process, long polling (no
  database, no balancer), measured in this same run;
* 1, 2 and 4 replicas, same load;
* the kill run: 2 replicas, and once ~30 % of the expected replies have arrived one replica gets
  SIGKILL. The balancer skips it (connection refused), the fake retries failed deliveries, and
  the survivor adopts what the dead one left (stored updates: the inbox sweep; queued replies:
  the outbox replica sweep). Users wait up to `--kill-timeout` (90 s) per reply.

Checks after every run (on the run's database once the replicas are stopped): `answered`
(replies received within the timeout, of users x 4 expected), `lost` (expected - answered),
`double_booked` (users whose `/automaton 100` was applied more than once: more than one
`deposit` ledger row, more than one live root agent, or a root agent balance other than
100 USDC = 100_000_000 micro-USDC), the money invariants (tests/invariants.py), and
`duplicate_replies`: reply calls identical to an earlier one in the same chat (the same message
sent twice: the sender is at-least-once after kill -9, so a replica killed between a send and
recording it leaves the row pending and the adopter sends it again), plus replies beyond a
user's 4 steps. A repeated reply is not handed to the user as the answer to their next step (the
Waiter here skips it), so a duplicate never shows up as a lost or wrong answer.
In the RESULT line answered/lost/double_booked/duplicate_replies are the sums over the four bot
runs (1, 2 and 4 replicas and the kill run), so `answered=N/M` has M = 4 x 800.

Conditions, said out loud because they decide the numbers: everything runs on this one machine
(2 cores here): PostgreSQL, the fake and its webhook threads, the balancer, the simulated users
and every replica share those cores, so more replicas add parallel Python processes but no
hardware, and the 4-replica run has more processes than cores. The fake's flood limits are
raised and the replicas' outbox sender limit is lifted to 1000 messages/s (as bot_load's "bot
only" mode) so the numbers are the bot's latency, not Telegram's 30/s; the fake's one setWebhook
per second stays (replicas retry on 429). Background workers are paused (agent tick 1 h,
JobQueue jobs disabled). Targets: every message answered, 0 lost, 0 money effects applied twice
(and the invariants hold), p95 with 2 replicas <= 0.6x the p95 with one.

Run: `python benchmarks/replicas.py [--users 200] [--timeout 60] [--kill-timeout 90]
[--keep-logs]`; replica logs (WARNING and up, stderr) go to a temp folder, whose tail is printed
for a replica that fails. Each run's table also shows the CPU seconds of the replicas, of the
PostgreSQL server and of this process (fake, balancer, users) during the load, and how busy the
whole machine was (anything else running on it included). Ends with one line
`RESULT p95_echo=… p95_1=… p95_2=… p95_4=… ratio_2_vs_1=… answered=… lost=… double_booked=…
duplicate_replies=… kill_p95=…` (seconds, 3 decimals); exit code 0 only when every target passes.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
import socket
import sys
import tempfile
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))  # bot_load, which puts the repo root on the path

import bot_load
from bot_load import FIRST_USER, REPLY_METHODS, STEPS, Waiter, pct, simulated_user

from tests.fakes.balancer import LoopbackBalancer
from tests.fakes.telegram_api import SentCall, TelegramFake

SCRIPT = Path(__file__).resolve()
ROOT = SCRIPT.parents[1]
DEPOSIT = 100_000_000  # /automaton 100: 100 USDC in micro-USDC
KILL_AT = 0.30  # share of the expected replies received when one replica is killed
STOP_GRACE = 30.0  # seconds a replica gets to stop after SIGTERM


class TimedList(list):
    """A latency list that also notes when each value was added (the reply's arrival, about)."""

    def __init__(self) -> None:
        super().__init__()
        self.at: list[float] = []

    def append(self, value: float) -> None:  # type: ignore[override]
        super().append(value)
        self.at.append(time.monotonic())


@dataclass
class DedupWaiter(Waiter):
    """bot_load's Waiter, except that a reply call identical to one already made in the chat (same
    method and parameters: the same message sent twice, e.g. re-sent by the replica that adopted a
    dead one's outbox rows) is not handed to the user as the next step's reply: it goes to
    `repeats`. Otherwise a repeated answer to `/automaton 100` arriving while the user waits for
    `/ai_portfolio` would be taken for the portfolio (no agent button: the user stops)."""

    repeats: dict[int, list[tuple[SentCall, float]]] = field(default_factory=lambda: defaultdict(list))
    first: dict[int, dict[str, float]] = field(default_factory=lambda: defaultdict(dict))  # key -> first copy's time

    async def monitor(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            calls, self.seen = self.fake.sent_since(self.seen)
            for call in calls:
                chat = call.params.get("chat_id")
                if call.method in REPLY_METHODS and isinstance(chat, int):
                    key = call.method + json.dumps(call.params, sort_keys=True, default=str)
                    if key in self.first[chat]:
                        self.repeats[chat].append((call, self.first[chat][key]))  # with the first copy's time
                        continue
                    self.first[chat][key] = call.time
                    self.calls[chat].append(call)
                    self.events[chat].set()
            await asyncio.sleep(0.002)


def machine_busy() -> tuple[float, float]:
    """(busy, total) CPU seconds of the whole machine so far, every core (Linux /proc/stat)."""
    try:
        values = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    except (OSError, ValueError, IndexError):
        return 0.0, 0.0
    tick = os.sysconf("SC_CLK_TCK")
    total = sum(values[:8])  # user nice system idle iowait irq softirq steal
    return (total - values[3] - values[4]) / tick, total / tick


def postgres_cpu() -> float | None:
    """CPU seconds used so far by the PostgreSQL server: the postmaster and its live children."""
    from tests import pg_server

    folder = pg_server._state.get("folder")  # the embedded server's folder (pgdata/postmaster.pid)
    try:
        master = int(Path(str(folder), "pgdata", "postmaster.pid").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None
    total = bot_load._process_cpu(master) or 0.0
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, ValueError, IndexError):
                continue
            if ppid == master:
                total += bot_load._process_cpu(int(entry.name)) or 0.0
    return total


@dataclass
class ReplicaProc:
    index: int
    port: int
    log: Path
    proc: asyncio.subprocess.Process
    killed: bool = False
    cpu_start: float | None = None
    cpu_used: float | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def summary(self, shown: int = 4) -> str:
        """How many WARNING/ERROR lines the replica logged, and the first few distinct ones."""
        try:
            lines = self.log.read_text(errors="replace").splitlines()
        except OSError:
            return "(no log)"
        flagged = [line for line in lines if " WARNING " in line or " ERROR " in line or " CRITICAL " in line]
        distinct: dict[str, None] = {}
        for line in flagged:
            distinct.setdefault(line.split(" ", 2)[-1][:200], None)  # the date and time dropped
        head = "; ".join(list(distinct)[:shown])
        return f"{len(flagged)} warning/error line(s) of {len(lines)}" + (f": {head}" if head else "")

    def tail(self, lines: int = 40) -> str:
        try:
            text = self.log.read_text(errors="replace").splitlines()
        except OSError:
            return "(no log)"
        return "\n".join(text[-lines:]) or "(empty log)"


@dataclass
class RunResult:
    title: str
    replicas: int
    users: int
    latencies: dict[str, TimedList]
    missing: list[str]
    wall: float
    extra_replies: int = 0
    repeat_times: list[tuple[float, float]] = field(default_factory=list)  # (first copy, repeat) answered at
    late_replies: int = 0
    double_booked: int = 0
    no_deposit: int = 0
    invariants: str = "not checked"
    db_states: dict[str, dict[str, int]] = field(default_factory=dict)
    recovered_updates: int = 0
    transactions: tuple[int, int] | None = None  # (committed, rolled back) on the run's database
    forwarded: dict[str, int] = field(default_factory=dict)
    failures: dict[str, int] = field(default_factory=dict)
    webhook_errors: int = 0
    pending_at_fake: int = 0
    malformed: int = 0
    replica_cpu: list[float | None] = field(default_factory=list)
    own_cpu: float = 0.0
    pg_cpu: float | None = None
    machine: tuple[float, float] = (0.0, 0.0)  # busy, available CPU seconds during the load
    kill_at: float | None = None
    killed_url: str = ""
    errors: list[str] = field(default_factory=list)
    log_lines: list[str] = field(default_factory=list)

    @property
    def expected(self) -> int:
        return self.users * len(STEPS)

    @property
    def all(self) -> list[float]:
        return [v for values in self.latencies.values() for v in values]

    @property
    def answered(self) -> int:
        return len(self.all)

    def p95(self) -> float:
        values = self.all
        return pct(values, 95) if values else float("inf")

    def in_flight_at_kill(self) -> list[float]:
        """Latencies of the steps sent before the kill and answered after it."""
        if self.kill_at is None:
            return []
        return [v for values in self.latencies.values() for v, at in zip(values, values.at, strict=True)
                if at - v <= self.kill_at <= at]

    def after_kill(self) -> list[float]:
        if self.kill_at is None:
            return []
        return [v for values in self.latencies.values() for v, at in zip(values, values.at, strict=True)
                if at - v > self.kill_at]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# child ------------------------------------------------------------------------------------------

async def serve(base_url: str, token: str, database_url: str, webhook_url: str, port: int) -> None:
    """Child process: one replica of the real application in webhook mode until SIGTERM."""
    from bot.app import build_application
    from bot.lifecycle import running
    from bot.logging_setup import configure_logging
    from bot.settings import load_settings

    configure_logging("WARNING", "text", [token], stream=sys.stderr)
    settings = load_settings(_env_file=None, telegram_bot_token=token, telegram_base_url=base_url,
                             database_url=database_url, webhook_url=webhook_url, port=port,
                             agent_tick_seconds=3600, backtest_workers=1, log_level="WARNING",
                             send_rate_per_second=1000, user_burst=1000)
    app = build_application(settings)
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    async with running(app, poll_timeout=1):
        for job in app.job_queue.jobs():  # type: ignore[union-attr]
            job.enabled = False
        await stop.wait()


# parent -----------------------------------------------------------------------------------------

async def start_replica(index: int, fake: TelegramFake, database_url: str, webhook_url: str, logs: Path) -> ReplicaProc:
    port = free_port()
    log = logs / f"replica-{index}-{port}.log"
    cmd = [sys.executable, str(SCRIPT), "--serve", "--base-url", f"{fake.base_url}/bot",
           "--token", fake.token, "--database-url", database_url,
           "--webhook-url", webhook_url, "--port", str(port)]
    path = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
    with log.open("wb") as out:
        proc = await asyncio.create_subprocess_exec(*cmd, cwd=ROOT, env={**os.environ, "PYTHONPATH": path},
                                                    stdout=out, stderr=out)
    return ReplicaProc(index, port, log, proc)


async def wait_ready(replicas: list[ReplicaProc], fake: TelegramFake, webhook_url: str, timeout: float = 180.0) -> None:
    """Every replica's /healthz answers 200 and the fake's webhook points at the balancer."""
    import httpx

    deadline = time.monotonic() + timeout
    pending = {r.index: r for r in replicas}
    async with httpx.AsyncClient(timeout=5.0) as client:
        while pending or fake.webhook_url != webhook_url:
            for r in list(pending.values()):
                if r.proc.returncode is not None:
                    raise RuntimeError(f"replica {r.index} exited with {r.proc.returncode} before it was healthy:\n"
                                       f"{r.tail()}")
                with contextlib.suppress(httpx.HTTPError):
                    answer = await client.get(f"{r.url}/healthz")
                    if answer.status_code == 200 and answer.json().get("mode") == "webhook":
                        del pending[r.index]
            if time.monotonic() > deadline:
                details = "\n".join(f"--- replica {r.index} (port {r.port}) ---\n{r.tail()}" for r in pending.values())
                raise RuntimeError(f"not healthy after {timeout:.0f} s: replicas {sorted(pending)}; webhook "
                                   f"{fake.webhook_url!r}\n{details}")
            await asyncio.sleep(0.2)


async def stop_replicas(replicas: list[ReplicaProc]) -> list[str]:
    """SIGTERM, then SIGKILL after STOP_GRACE; returns complaints (a replica that had to be killed)."""
    complaints = []
    for r in replicas:
        if r.proc.returncode is None:
            r.proc.send_signal(signal.SIGTERM)

    async def one(r: ReplicaProc) -> None:
        try:
            await asyncio.wait_for(r.proc.wait(), STOP_GRACE)
        except TimeoutError:
            complaints.append(f"replica {r.index} did not stop within {STOP_GRACE:.0f} s of SIGTERM: killed")
            r.proc.kill()
            await r.proc.wait()
        if not r.killed and r.proc.returncode not in (0, None):
            complaints.append(f"replica {r.index} exited with {r.proc.returncode}")

    await asyncio.gather(*(one(r) for r in replicas))
    return complaints


async def quiet(waiter: Waiter, *, idle: float = 3.0, limit: float = 20.0) -> None:
    """Wait until no reply call arrived for `idle` seconds (late or repeated replies show up)."""
    deadline = time.monotonic() + limit
    last_count, last_change = waiter.seen, time.monotonic()
    while time.monotonic() < deadline:
        await asyncio.sleep(0.25)
        if waiter.seen != last_count:
            last_count, last_change = waiter.seen, time.monotonic()
        elif time.monotonic() - last_change >= idle:
            return


async def run_replicas(n: int, users: int, timeout: float, logs: Path, *, kill: bool = False) -> RunResult:
    """One measurement: a fresh database, the fake, the balancer, `n` replicas, the users."""
    from tests import pg_server

    title = f"{n} replica{'s' if n > 1 else ''}" + (", one killed with SIGKILL mid-load" if kill else "")
    database_url = pg_server.fresh_database_url(migrated=False)
    bot_load._raise_fake_backlog()
    fake = TelegramFake(per_chat_limit=10_000, global_limit=1_000_000).start()
    balancer = LoopbackBalancer([]).start()
    webhook_url = f"{balancer.base_url}/tg"
    replicas: list[ReplicaProc] = []
    latencies: dict[str, TimedList] = defaultdict(TimedList)
    missing: list[str] = []
    result = RunResult(title, n, users, latencies, missing, 0.0)
    waiter = DedupWaiter(fake)
    stop = asyncio.Event()
    monitor: asyncio.Task[None] | None = None
    try:
        for i in range(n):
            replicas.append(await start_replica(i, fake, database_url, webhook_url, logs))
        balancer.set_backends([r.url for r in replicas])
        await wait_ready(replicas, fake, webhook_url)
        balancer.reset_counts()
        monitor = asyncio.create_task(waiter.monitor(stop))
        for r in replicas:
            r.cpu_start = bot_load._process_cpu(r.proc.pid)
        own_cpu, pg_cpu, busy = time.process_time(), postgres_cpu(), machine_busy()
        started = time.monotonic()
        killer = asyncio.create_task(kill_one(replicas[0], result)) if kill else None
        await asyncio.gather(*(simulated_user(fake, waiter, FIRST_USER + i, timeout, latencies, missing)  # type: ignore[arg-type]
                               for i in range(users)))
        result.wall = time.monotonic() - started
        result.own_cpu = time.process_time() - own_cpu
        pg_end, busy_end = postgres_cpu(), machine_busy()
        result.pg_cpu = None if pg_cpu is None or pg_end is None else pg_end - pg_cpu
        result.machine = (busy_end[0] - busy[0], busy_end[1] - busy[1])
        if killer is not None:
            if not killer.done():
                result.errors.append("the load ended before the kill point: nobody was killed")
            killer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await killer
        for r in replicas:
            end = bot_load._process_cpu(r.proc.pid) if not r.killed else None
            r.cpu_used = None if r.cpu_start is None or end is None else end - r.cpu_start
        await quiet(waiter)
        stop.set()
        await monitor
        result.forwarded, result.failures = balancer.forwarded(), balancer.failures()
        result.webhook_errors = sum(1 for a in fake.webhook_attempts() if a.outcome != 200)
        result.pending_at_fake = fake.pending_updates
        result.malformed = len(fake.malformed_calls)
    except Exception as exc:
        result.errors.append(f"{type(exc).__name__}: {exc}")
    finally:
        stop.set()
        if monitor is not None and not monitor.done():
            monitor.cancel()
        result.errors.extend(await stop_replicas(replicas))
        balancer.stop()
        fake.stop()
    result.replica_cpu = [r.cpu_used for r in replicas]
    result.log_lines = [f"replica {r.index}{' (killed)' if r.killed else ''}: {r.summary()}" for r in replicas]
    count_replies(result, waiter)
    await check_database(result, database_url)
    failing = [r for r in replicas if r.proc.returncode not in (0, None) and not r.killed]
    if result.missing or result.errors:
        failing = failing or [r for r in replicas if not r.killed]
    for r in failing[:2]:
        result.errors.append(f"log tail of replica {r.index} (port {r.port}, {r.log}):\n{r.tail()}")
    return result


async def kill_one(victim: ReplicaProc, result: RunResult) -> None:
    """SIGKILL `victim` once KILL_AT of the expected replies have arrived."""
    goal = int(result.expected * KILL_AT)
    while True:
        if result.answered >= goal:
            break
        await asyncio.sleep(0.01)
    victim.killed = True
    end = bot_load._process_cpu(victim.proc.pid)
    victim.cpu_used = None if victim.cpu_start is None or end is None else end - victim.cpu_start
    victim.proc.send_signal(signal.SIGKILL)
    result.kill_at = time.monotonic()
    result.killed_url = victim.url
    await victim.proc.wait()


def count_replies(result: RunResult, waiter: DedupWaiter) -> None:
    """Reply calls beyond one per step (repeats of a reply, and replies beyond a user's 4 steps), and
    replies that came after a user had timed out (late, not counted as answered)."""
    stopped_at = {}
    for entry in result.missing:  # "<user>: <step>" or "<user>: /ai_portfolio showed no agent (...)"
        uid, _, what = entry.partition(": ")
        stopped_at[int(uid)] = STEPS.index(what) if what in STEPS else len(STEPS) - 1
    for i in range(result.users):
        uid = FIRST_USER + i
        calls = waiter.calls.get(uid, [])
        result.extra_replies += len(waiter.repeats.get(uid, []))
        result.repeat_times.extend((first, call.time) for call, first in waiter.repeats.get(uid, []))
        if uid in stopped_at:
            result.late_replies += max(0, len(calls) - stopped_at[uid])
        else:
            result.extra_replies += max(0, len(calls) - len(STEPS))


async def check_database(result: RunResult, database_url: str) -> None:
    """Money effects applied twice, the invariants, and what the inbox and the outbox hold."""
    from storage import open_database
    from tests.invariants import check_invariants

    try:
        db = await open_database(database_url)
    except Exception as exc:
        result.errors.append(f"could not open the database: {exc}")
        return
    try:
        deposits = {r["user_id"]: (r["n"], r["total"]) for r in await db.fetchall(
            "SELECT user_id, COUNT(*) AS n, SUM(amount) AS total FROM ledger_entries WHERE kind = 'deposit'"
            " GROUP BY user_id")}
        roots = {r["user_id"]: (r["n"], r["balance"]) for r in await db.fetchall(
            "SELECT user_id, COUNT(*) AS n, SUM(isolated_balance) AS balance FROM automaton_agents"
            " WHERE generation = 1 AND status <> 'closed' GROUP BY user_id")}
        for i in range(result.users):
            uid = FIRST_USER + i
            n_dep, _ = deposits.get(uid, (0, 0))
            n_root, balance = roots.get(uid, (0, 0))
            if n_dep > 1 or n_root > 1 or (n_root == 1 and balance != DEPOSIT):
                result.double_booked += 1
            elif n_dep == 0:
                result.no_deposit += 1
        try:
            await check_invariants(db)
            result.invariants = "hold"
        except AssertionError as exc:
            result.invariants = f"BROKEN: {exc}"
        for table in ("inbox_updates", "outbox_messages"):
            rows = await db.fetchall(f"SELECT state, COUNT(*) AS n FROM {table} GROUP BY state")
            result.db_states[table] = {r["state"]: r["n"] for r in rows}
        result.recovered_updates = await db.fetchval("SELECT COUNT(*) FROM inbox_updates WHERE recoveries > 0")
        # rolled back: mostly SERIALIZABLE conflicts between replicas, retried by storage.pg_db (other errors too)
        row = (await db.fetchall("SELECT xact_commit, xact_rollback FROM pg_stat_database"
                                 " WHERE datname = current_database()"))[0]
        result.transactions = (int(row["xact_commit"]), int(row["xact_rollback"]))
    except Exception as exc:
        result.errors.append(f"database check failed: {type(exc).__name__}: {exc}")
    finally:
        await db.close()


# report -----------------------------------------------------------------------------------------

def latency_table(values_by_step: dict[str, list[float]]) -> None:
    print(f"  {'step':<16}{'n':>6}{'p50 ms':>10}{'p95 ms':>10}{'p99 ms':>10}{'max ms':>10}")
    every = [v for values in values_by_step.values() for v in values]
    for step in (*STEPS, "all"):
        values = every if step == "all" else values_by_step.get(step, [])
        if values:
            print(f"  {step:<16}{len(values):>6}{pct(values, 50) * 1000:>10.1f}{pct(values, 95) * 1000:>10.1f}"
                  f"{pct(values, 99) * 1000:>10.1f}{max(values) * 1000:>10.1f}")


def report(result: RunResult) -> None:
    print(f"\n== {result.title}, {result.users} users ==")
    print(f"  replies received / expected: {result.answered} / {result.expected}   "
          f"lost {result.expected - result.answered}   wall {result.wall:.2f} s   "
          f"throughput {result.answered / max(result.wall, 1e-9):.0f} replies/s")
    cpu = ", ".join("-" if c is None else f"{c:.1f}" for c in result.replica_cpu)
    pg = "-" if result.pg_cpu is None else f"{result.pg_cpu:.1f}"
    busy, available = result.machine
    print(f"  CPU s during the load: replicas [{cpu}]   PostgreSQL {pg}   fake + balancer + users "
          f"{result.own_cpu:.1f}   machine busy {busy:.1f} of {available:.1f} ({busy / max(available, 1e-9):.0%}, "
          "everything on the machine)")
    print(f"  balancer forwarded {sorted(result.forwarded.values(), reverse=True)}   refused/failed "
          f"{sum(result.failures.values())}   webhook attempts not 200: {result.webhook_errors}   "
          f"updates left at the fake: {result.pending_at_fake}   malformed calls: {result.malformed}")
    print(f"  double booked users: {result.double_booked}   users without a deposit: {result.no_deposit}   "
          f"invariants: {result.invariants}")
    print(f"  duplicate replies (a reply call repeated, or beyond a user's 4 steps): {result.extra_replies}"
          f"   late replies to timed-out users: {result.late_replies}")
    states = "; ".join(f"{t}: {dict(sorted(s.items()))}" for t, s in result.db_states.items())
    tx = "" if result.transactions is None else (f"; transactions committed {result.transactions[0]}, rolled back "
                                                 f"{result.transactions[1]} (conflicts retried, other errors)")
    print(f"  database: {states}; updates recovered by a sweep: {result.recovered_updates}{tx}")
    if result.kill_at is not None:
        hit, after = result.in_flight_at_kill(), result.after_kill()
        print(f"  killed {result.killed_url} at {KILL_AT:.0%} of the replies; steps in flight then: {len(hit)}"
              + (f" (p50 {pct(hit, 50):.2f} s, p95 {pct(hit, 95):.2f} s, max {max(hit):.2f} s)" if hit else "")
              + (f"; steps sent after it: {len(after)} (p95 {pct(after, 95):.3f} s)" if after else ""))
    if result.repeat_times:
        kill = result.kill_at
        straddle = sum(1 for a, b in result.repeat_times if kill is not None and a <= kill < b)
        gaps = sorted(b - a for a, b in result.repeat_times)
        print(f"  repeated replies: {len(gaps)}; first copy before the kill and the repeat after it: {straddle}; "
              f"repeat came {gaps[0]:.2f}-{gaps[-1]:.2f} s after the first copy")
    if result.missing:
        print(f"  missing ({len(result.missing)}):", ", ".join(result.missing[:10]))
    if result.answered:
        latency_table(result.latencies)  # type: ignore[arg-type]
    for line in result.log_lines:
        print("  log of", line)
    for error in result.errors:
        print("  ERROR:", error)


async def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=200)
    parser.add_argument("--timeout", type=float, default=60.0, help="seconds to wait for one reply")
    parser.add_argument("--kill-timeout", type=float, default=90.0, help="the same in the kill run")
    parser.add_argument("--keep-logs", action="store_true", help="keep the replicas' log folder")
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)  # a replica child process
    parser.add_argument("--base-url", help=argparse.SUPPRESS)
    parser.add_argument("--token", help=argparse.SUPPRESS)
    parser.add_argument("--database-url", help=argparse.SUPPRESS)
    parser.add_argument("--webhook-url", help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        await serve(args.base_url, args.token, args.database_url, args.webhook_url, args.port)
        return 0
    from tests import pg_server

    sys.stdout.reconfigure(line_buffering=True)  # type: ignore[union-attr]  # in order with the fakes' stderr
    started = time.monotonic()
    logs = Path(tempfile.mkdtemp(prefix="replicas-bench-"))
    print(f"{args.users} users x {len(STEPS)} messages ({', '.join(STEPS)}); replicas in webhook mode behind a "
          f"round-robin loopback balancer, one PostgreSQL server; {os.cpu_count()} CPUs shared by everything; "
          f"fake flood limits raised, sender 1000/s, workers paused; replica logs in {logs}")
    runs: list[RunResult] = []
    try:
        echo = await bot_load.run(args.users, rate_limited=False, timeout=args.timeout, echo=True)
        bot_load.report("floor: echo bot, one process, long polling", args.users, echo)
        echo_p95 = pct(echo["all"], 95) if echo["all"] else float("inf")  # type: ignore[arg-type]
        for n in (1, 2, 4):
            runs.append(await run_replicas(n, args.users, args.timeout, logs))
            report(runs[-1])
        runs.append(await run_replicas(2, args.users, args.kill_timeout, logs, kill=True))
        report(runs[-1])
    finally:
        pg_server.stop()
    by_n = {r.replicas: r for r in runs[:3]}
    kill_run = runs[-1]
    p95 = {n: by_n[n].p95() for n in (1, 2, 4)}
    ratio = p95[2] / p95[1]
    expected = sum(r.expected for r in runs)
    answered = sum(r.answered for r in runs)
    lost = expected - answered
    double = sum(r.double_booked for r in runs)
    dups = sum(r.extra_replies for r in runs)
    invariants_ok = all(r.invariants == "hold" for r in runs)
    clean = all(not any(not e.startswith("log tail") for e in r.errors) for r in runs)

    print("\n== summary ==")
    print(f"  {'run':<44}{'answered':>12}{'p50 ms':>9}{'p95 ms':>9}{'x echo':>8}{'dup':>5}{'2x money':>9}")
    print(f"  {'echo bot floor (1 process, polling)':<44}{len(echo['all']):>7}/{args.users * len(STEPS):<4}"  # type: ignore[arg-type]
          f"{pct(echo['all'], 50) * 1000 if echo['all'] else 0:>9.0f}{echo_p95 * 1000:>9.0f}{1:>8.2f}")  # type: ignore[arg-type]
    for r in runs:
        print(f"  {r.title:<44}{r.answered:>7}/{r.expected:<4}{pct(r.all, 50) * 1000 if r.all else 0:>9.0f}"
              f"{r.p95() * 1000:>9.0f}{r.p95() / echo_p95:>8.2f}{r.extra_replies:>5}{r.double_booked:>9}")
    targets = [
        (f"every message answered ({answered}/{expected})", answered == expected),
        (f"0 lost ({lost})", lost == 0),
        (f"0 money effects applied twice ({double}), invariants hold in every run", double == 0 and invariants_ok),
        (f"p95 with 2 replicas <= 0.6x one replica ({ratio:.2f}x)", ratio <= 0.6),
    ]
    print("\n== targets ==")
    for text, ok in targets:
        print(f"  {'PASS' if ok else 'FAIL'}  {text}")
    print(f"  info: duplicate replies (a step answered more than once) {dups}; runs without errors: "
          f"{'yes' if clean else 'NO'}; total time {time.monotonic() - started:.0f} s")
    if not args.keep_logs and all(t[1] for t in targets) and clean:
        for log in logs.glob("*.log"):
            log.unlink()
        with contextlib.suppress(OSError):
            logs.rmdir()
    print(f"RESULT p95_echo={echo_p95:.3f} p95_1={p95[1]:.3f} p95_2={p95[2]:.3f} p95_4={p95[4]:.3f} "
          f"ratio_2_vs_1={ratio:.2f} answered={answered}/{expected} lost={lost} double_booked={double} "
          f"duplicate_replies={dups} kill_p95={kill_run.p95():.3f}")
    return 0 if all(ok for _, ok in targets) and clean else 1


if __name__ == "__main__":
    raise SystemExit(asyncio.run(main()))
