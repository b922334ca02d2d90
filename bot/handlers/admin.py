"""/health and /stats for ADMIN_USER_IDS only (others get the unknown-command reply)."""

from __future__ import annotations

import time
from typing import Any

from telegram import Update
from telegram.ext import Application, CommandHandler, filters

from bot.context import AppContext
from bot.guards import command, reply
from bot.i18n import N_, t, tn
from bot.render import esc, usdc
from storage.money import from_micro
from storage.stats_repo import overview

NOT_ALLOWED = N_("I don't know that command. Use /help to see what I can do.")


def _is_admin(update: Update, context: AppContext) -> bool:
    return bool(update.effective_user and update.effective_user.id in context.services.settings.admin_user_ids)


@command
async def health_cmd(update: Update, context: AppContext) -> None:
    """Workers, last tick, cache hit rate, API calls per minute, queue sizes."""
    if not _is_admin(update, context):
        await reply(update, t(NOT_ALLOWED))
        return
    s = context.services
    market = t("Market: demo") if s.market.is_demo else t("Market: AVE ({plan})", plan=esc(s.settings.ave_api_plan))
    lines = [t("🩺 <b>Health</b>"), t("Uptime: {seconds} s", seconds=int(time.monotonic() - s.started_at)), market, ""]
    for w in s.coordinator.health():
        age = t("never") if w.heartbeat_age is None else t("{seconds}s ago", seconds=format(w.heartbeat_age, ".0f"))
        err = f" — {esc(w.last_error)}" if w.last_error else ""
        lines.append(t("• {name}: {state}, runs {runs}, last {age}", name=esc(w.name), state=esc(w.state), runs=w.runs,
                       age=age) + err)
    last = s.agent_loop.last_report
    if last is not None:
        lines += ["", _tick_line(last)]
    stats = s.market.stats()
    hit = stats.get("hit_rate")
    lines += ["", t("Price cache hit rate: {rate}%", rate=format(hit * 100, ".0f")) if hit is not None
              else t("Price cache: no requests yet"),
              t("Market API calls/min: {calls}", calls=stats.get("upstream_calls_per_minute", 0)),
              t("Backtests: {running} running, {queued} queued", running=s.pool.running(), queued=s.pool.queue_size()),
              t("Notification queue: {size}", size=s.notifier.queue_size()),
              outbox_line(s.sender.counts, s.sender.queued())]
    await reply(update, "\n".join(lines))


def _tick_line(last: Any) -> str:
    """The agent loop's last tick: agents, trades, price calls, time (and whether it was cut short)."""
    line = tn("Last tick: {n} agent, {opened} opened, {closed} closed, {calls} price calls, {ms} ms",
              "Last tick: {n} agents, {opened} opened, {closed} closed, {calls} price calls, {ms} ms",
              last.agents_evaluated, opened=last.trades_opened, closed=last.trades_closed, calls=last.price_calls,
              ms=format(last.duration * 1000, ".0f"))
    return line + (" " + t("(skipped)") if last.skipped else "") + (" " + t("(aborted)") if last.aborted else "")


def outbox_line(counts: dict[str, int], queued: int) -> str:
    """The sender's figures since start: what is waiting, delivered, retried, given up."""
    return t("Outbox: {queued} waiting · sent {sent} · digested {digested} · retries {retries} · 429 waits {waits} · "
             "expired {expired} · failed {failed} · unknown outcome {unknown}", queued=queued,
             **{k: counts.get(k, 0) for k in ("sent", "digested", "retries", "waits", "expired", "failed", "unknown")})


@command
async def stats_cmd(update: Update, context: AppContext) -> None:
    """User and agent counts, total balances."""
    if not _is_admin(update, context):
        await reply(update, t(NOT_ALLOWED))
        return
    stats = await context.services.db.read(overview)
    lines = [t("📈 <b>Stats</b>"), t("Users: {users}", users=stats.users), t("Agents: {agents}", agents=stats.agents)]
    lines += [f"• {esc(s.status)}: {s.agents} ({usdc(from_micro(s.balance))})" for s in stats.by_status]
    lines.append(t("Total balances: {balance}", balance=usdc(from_micro(stats.balance))))
    lines += [t("Strategy bots: {bots}", bots=stats.bots),
              t("Running simulations: {simulations}", simulations=stats.running_simulations)]
    await reply(update, "\n".join(lines))


def register(app: Application) -> None:
    private = filters.ChatType.PRIVATE
    app.add_handler(CommandHandler("health", health_cmd, filters=private))
    app.add_handler(CommandHandler("stats", stats_cmd, filters=private))
