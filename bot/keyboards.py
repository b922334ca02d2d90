"""Inline keyboards: pure builders, no I/O."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from telegram import InlineKeyboardButton as Btn
from telegram import InlineKeyboardMarkup as Markup

from bot import callbacks as cb
from bot.render import PAGE_SIZE, page_count
from storage.notify import NotifyKind, NotifyLevel

PRESET_AMOUNTS = (50, 100, 500, 1000)


def main_menu() -> Markup:
    return Markup([
        [Btn("🤖 Automaton", callback_data=cb.MENU_AUTOMATON.build()),
         Btn("📊 Portfolio", callback_data=cb.MENU_PORTFOLIO.build())],
        [Btn("🧠 Strategy bots", callback_data=cb.MENU_BOTS.build()),
         Btn("📈 Backtest", callback_data=cb.MENU_BACKTEST.build())],
        [Btn("⚙️ Settings", callback_data=cb.MENU_SETTINGS.build()), Btn("❓ Help", callback_data=cb.MENU_HELP.build())],
    ])


def preset_amounts(kind: cb.CallbackKind) -> Markup:
    """Buttons with preset USDC amounts (`cb.CREATE` to create, `cb.DEPOSIT` to deposit)."""
    return Markup([[Btn(f"{a} USDC", callback_data=kind.build(a)) for a in PRESET_AMOUNTS]])


def automaton_menu(agent: dict[str, Any]) -> Markup:
    agent_id = agent["agent_id"]
    toggle = (Btn("⏸ Pause", callback_data=cb.PAUSE.build(agent_id)) if agent["status"] == "active"
              else Btn("▶️ Resume", callback_data=cb.RESUME.build(agent_id)))
    rows = [[Btn("📊 Portfolio", callback_data=cb.PORTFOLIO.build(0))]]
    if agent["status"] in ("active", "paused"):
        rows.append([toggle, Btn("🧠 Assign strategy", callback_data=cb.ASSIGN.build(agent_id))])
    rows.append([Btn(f"➕ Deposit {a}", callback_data=cb.DEPOSIT.build(a)) for a in PRESET_AMOUNTS[:3]])
    return Markup(rows)


def deposit_offer(amount: int) -> Markup:
    """One button: deposit the amount the user named (e.g. /automaton 100 with an agent)."""
    return Markup([[Btn(f"➕ Deposit {amount:,} USDC", callback_data=cb.DEPOSIT.build(amount))],
                   [Btn("📊 Portfolio", callback_data=cb.PORTFOLIO.build(0))]])


def portfolio(agents: Sequence[dict[str, Any]], page: int) -> Markup:
    pages = page_count(len(agents))
    page = min(max(page, 0), pages - 1)
    rows: list[list[Btn]] = []
    chunk = agents[page * PAGE_SIZE:(page + 1) * PAGE_SIZE]
    for i in range(0, len(chunk), 2):
        rows.append([Btn(f"G{a['generation']} {a['agent_id']}",
                         callback_data=cb.AGENT_DETAILS.build(a["agent_id"], page)) for a in chunk[i:i + 2]])
    nav: list[Btn] = []
    if page > 0:
        nav.append(Btn("◀️ Prev", callback_data=cb.PORTFOLIO.build(page - 1)))
    if page < pages - 1:
        nav.append(Btn("Next ▶️", callback_data=cb.PORTFOLIO.build(page + 1)))
    if nav:
        rows.append(nav)
    rows.append([Btn("🔄 Refresh", callback_data=cb.PORTFOLIO.build(page)),
                 Btn("💸 Withdraw", callback_data=cb.WITHDRAW_ASK.build())])
    return Markup(rows)


def agent_details(agent: dict[str, Any], page: int) -> Markup:
    agent_id = agent["agent_id"]
    rows = []
    if agent["status"] == "active":
        rows.append([Btn("⏸ Pause", callback_data=cb.PAUSE.build(agent_id))])
    elif agent["status"] == "paused":
        rows.append([Btn("▶️ Resume", callback_data=cb.RESUME.build(agent_id))])
    rows.append([Btn("🔄 Refresh", callback_data=cb.AGENT_DETAILS.build(agent_id, page)),
                 Btn("⬅️ Back", callback_data=cb.PORTFOLIO.build(page))])
    return Markup(rows)


def agent_list(agents: Sequence[dict[str, Any]], page: int = 0) -> Markup:
    """/ai_status without an argument: the user's agents as buttons."""
    return portfolio(agents, page)


def withdraw_confirm(nonce: str) -> Markup:
    return Markup([[Btn("✅ Confirm withdrawal", callback_data=cb.WITHDRAW_CONFIRM.build(nonce)),
                    Btn("✖️ Cancel", callback_data=cb.WITHDRAW_CANCEL.build(nonce))]])


def settings_menu(prefs: dict[str, str]) -> Markup:
    """One row per notification kind, one button per level; the current level is marked."""
    rows = []
    for kind in NotifyKind:
        current = prefs.get(kind, NotifyLevel.ON)
        rows.append([Btn(("• " if level == current else "") + f"{kind} {level}",
                         callback_data=cb.SETTING.build(kind, level)) for level in NotifyLevel])
    return Markup(rows)


def bots_to_assign(agent_id: str, bots: Sequence[Any]) -> Markup:
    rows = [[Btn(f"🧠 {b.name[:30]}", callback_data=cb.ASSIGN_BOT.build(agent_id, b.bot_id))] for b in bots]
    rows.append([Btn("Default strategy", callback_data=cb.ASSIGN_BOT.build(agent_id, 0))])
    return Markup(rows)


def bots_list(bots: Sequence[Any], selected_id: int | None, max_bots: int) -> Markup:
    rows = [[Btn(("✅ " if b.bot_id == selected_id else "🧠 ") + b.name[:30],
                 callback_data=cb.BOT_SHOW.build(b.bot_id))] for b in bots]
    if len(bots) < max_bots:
        rows.append([Btn("➕ New strategy bot", callback_data=cb.BOT_NEW.build())])
    return Markup(rows)


def bot_actions(bot_id: int, selected: bool) -> Markup:
    rows = [
        [Btn("📈 Backtest", callback_data=cb.BOT_BACKTEST.build(bot_id)),
         Btn("📡 Simulate", callback_data=cb.BOT_SIMULATE.build(bot_id))],
        [Btn("✏️ Rename", callback_data=cb.BOT_RENAME.build(bot_id)),
         Btn("🗑 Delete", callback_data=cb.BOT_DELETE.build(bot_id))],
        [Btn("⬅️ Back", callback_data=cb.BOT_LIST.build())],
    ]
    if not selected:
        rows.insert(0, [Btn("✅ Select (chat edits this bot)", callback_data=cb.BOT_SELECT.build(bot_id))])
    return Markup(rows)


def confirm_delete_bot(bot_id: int) -> Markup:
    return Markup([[Btn("🗑 Yes, delete", callback_data=cb.BOT_DELETE_OK.build(bot_id)),
                    Btn("✖️ Keep it", callback_data=cb.BOT_LIST.build())]])


def confirm_stop_simulation(sim_id: int) -> Markup:
    return Markup([[Btn("⏹ Stop simulation", callback_data=cb.SIM_STOP_OK.build(sim_id)),
                    Btn("✖️ Keep running", callback_data=cb.BOT_LIST.build())]])


def simulations(sims: Sequence[Any]) -> Markup | None:
    rows = [[Btn(f"⏹ Stop #{s.simulation_id}", callback_data=cb.SIM_STOP.build(s.simulation_id))] for s in sims]
    return Markup(rows) if rows else None
