"""/health and /stats for ADMIN_USER_IDS only (others get the unknown-command reply)."""

from __future__ import annotations

import time

from telegram import Update
from telegram.ext import Application, CommandHandler, filters

from bot.context import AppContext
from bot.guards import command, reply
from bot.render import esc, usdc
from bot.wording import count
from storage.money import from_micro
from storage.stats_repo import overview

NOT_ALLOWED = "I don't know that command. Use /help to see what I can do."


def _is_admin(update: Update, context: AppContext) -> bool:
    return bool(update.effective_user and update.effective_user.id in context.services.settings.admin_user_ids)


@command
async def health_cmd(update: Update, context: AppContext) -> None:
    """Workers, last tick, cache hit rate, API calls per minute, queue sizes."""
    if not _is_admin(update, context):
        await reply(update, NOT_ALLOWED)
        return
    s = context.services
    lines = ["🩺 <b>Health</b>", f"Uptime: {int(time.monotonic() - s.started_at)} s",
             f"Market: {'demo' if s.market.is_demo else 'AVE (' + esc(s.settings.ave_api_plan) + ')'}", ""]
    for w in s.coordinator.health():
        age = "never" if w.heartbeat_age is None else f"{w.heartbeat_age:.0f}s ago"
        err = f" — {esc(w.last_error)}" if w.last_error else ""
        lines.append(f"• {esc(w.name)}: {esc(w.state)}, runs {w.runs}, last {age}{err}")
    last = s.agent_loop.last_report
    if last is not None:
        lines += ["", f"Last tick: {count(last.agents_evaluated, 'agent', 'agents')}, {last.trades_opened} opened, "
                      f"{last.trades_closed} closed, {last.price_calls} price calls, {last.duration * 1000:.0f} ms"
                      + (" (skipped)" if last.skipped else "") + (" (aborted)" if last.aborted else "")]
    stats = s.market.stats()
    hit = stats.get("hit_rate")
    lines += ["", f"Price cache hit rate: {hit * 100:.0f}%" if hit is not None else "Price cache: no requests yet",
              f"Market API calls/min: {stats.get('upstream_calls_per_minute', 0)}",
              f"Backtests: {s.pool.running()} running, {s.pool.queue_size()} queued",
              f"Notification queue: {s.notifier.queue_size()}", outbox_line(s.sender.counts, s.sender.queued())]
    await reply(update, "\n".join(lines))


def outbox_line(counts: dict[str, int], queued: int) -> str:
    """The sender's figures since start: what is waiting, delivered, retried, given up."""
    return (f"Outbox: {queued} waiting · sent {counts.get('sent', 0)} · digested {counts.get('digested', 0)} · "
            f"retries {counts.get('retries', 0)} · 429 waits {counts.get('waits', 0)} · "
            f"expired {counts.get('expired', 0)} · failed {counts.get('failed', 0)} · "
            f"unknown outcome {counts.get('unknown', 0)}")


@command
async def stats_cmd(update: Update, context: AppContext) -> None:
    """User and agent counts, total balances."""
    if not _is_admin(update, context):
        await reply(update, NOT_ALLOWED)
        return
    stats = await context.services.db.read(overview)
    lines = ["📈 <b>Stats</b>", f"Users: {stats.users}", f"Agents: {stats.agents}"]
    lines += [f"• {esc(s.status)}: {s.agents} ({usdc(from_micro(s.balance))})" for s in stats.by_status]
    lines.append(f"Total balances: {usdc(from_micro(stats.balance))}")
    lines += [f"Strategy bots: {stats.bots}", f"Running simulations: {stats.running_simulations}"]
    await reply(update, "\n".join(lines))


def register(app: Application) -> None:
    private = filters.ChatType.PRIVATE
    app.add_handler(CommandHandler("health", health_cmd, filters=private))
    app.add_handler(CommandHandler("stats", stats_cmd, filters=private))
