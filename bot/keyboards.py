"""Inline keyboards: pure builders, no I/O."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from telegram import InlineKeyboardButton as Btn
from telegram import InlineKeyboardMarkup as Markup

from bot import callbacks as cb
from bot import i18n
from bot.i18n import N_, t
from bot.render import PAGE_SIZE, page_count
from storage.notify import NotifyKind, NotifyLevel

PRESET_AMOUNTS = (50, 100, 500, 1000)


KIND_NAMES = {NotifyKind.SIGNALS: N_("signals"), NotifyKind.TRADES: N_("trades"), NotifyKind.SPAWNS: N_("spawns"),
              NotifyKind.RISK: N_("risk")}
LEVEL_NAMES = {NotifyLevel.ON: N_("on"), NotifyLevel.SILENT: N_("silent"), NotifyLevel.OFF: N_("off")}


def main_menu() -> Markup:
    return Markup([
        [Btn(t("🤖 Automaton"), callback_data=cb.MENU_AUTOMATON.build()),
         Btn(t("📊 Portfolio"), callback_data=cb.MENU_PORTFOLIO.build())],
        [Btn(t("🧠 Strategy bots"), callback_data=cb.MENU_BOTS.build()),
         Btn(t("📈 Backtest"), callback_data=cb.MENU_BACKTEST.build())],
        [Btn(t("⚙️ Settings"), callback_data=cb.MENU_SETTINGS.build()),
         Btn(t("❓ Help"), callback_data=cb.MENU_HELP.build())],
    ])


def home_button() -> Btn:
    """🏠 Menu: back to the main menu from any sub-screen."""
    return Btn(t("🏠 Menu"), callback_data=cb.MENU.build())


def report_refresh(report: str, n: int) -> Markup:
    """Refresh a report in place (its argument kept), and the way home."""
    return Markup([[Btn(t("🔄 Refresh"), callback_data=cb.REFRESH.build(report, n)), home_button()]])


def preset_amounts(kind: cb.CallbackKind) -> Markup:
    """Buttons with preset USDC amounts (`cb.CREATE` to create, `cb.DEPOSIT` to deposit)."""
    return Markup([[Btn(f"{a} USDC", callback_data=kind.build(a)) for a in PRESET_AMOUNTS]])


def automaton_menu(agent: dict[str, Any]) -> Markup:
    agent_id = agent["agent_id"]
    toggle = (Btn(t("⏸ Pause"), callback_data=cb.PAUSE.build(agent_id)) if agent["status"] == "active"
              else Btn(t("▶️ Resume"), callback_data=cb.RESUME.build(agent_id)))
    rows = [[Btn(t("📊 Portfolio"), callback_data=cb.PORTFOLIO.build(0))]]
    if agent["status"] in ("active", "paused"):
        rows.append([toggle, Btn(t("🧠 Assign strategy"), callback_data=cb.ASSIGN.build(agent_id))])
    rows.append([Btn(t("➕ Deposit {amount}", amount=a), callback_data=cb.DEPOSIT.build(a))
                 for a in PRESET_AMOUNTS[:3]])
    return Markup(rows)


def deposit_offer(amount: int) -> Markup:
    """One button: deposit the amount the user named (e.g. /automaton 100 with an agent)."""
    label = t("➕ Deposit {amount} USDC", amount=format(amount, ","))
    return Markup([[Btn(label, callback_data=cb.DEPOSIT.build(amount))],
                   [Btn(t("📊 Portfolio"), callback_data=cb.PORTFOLIO.build(0))]])


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
        nav.append(Btn(t("◀️ Prev"), callback_data=cb.PORTFOLIO.build(page - 1)))
    if page < pages - 1:
        nav.append(Btn(t("Next ▶️"), callback_data=cb.PORTFOLIO.build(page + 1)))
    if nav:
        rows.append(nav)
    rows.append([Btn(t("🔄 Refresh"), callback_data=cb.PORTFOLIO.build(page)),
                 Btn(t("💸 Withdraw"), callback_data=cb.WITHDRAW_ASK.build()), home_button()])
    return Markup(rows)


def agent_details(agent: dict[str, Any], page: int) -> Markup:
    agent_id = agent["agent_id"]
    rows = []
    if agent["status"] == "active":
        rows.append([Btn(t("⏸ Pause"), callback_data=cb.PAUSE.build(agent_id))])
    elif agent["status"] == "paused":
        rows.append([Btn(t("▶️ Resume"), callback_data=cb.RESUME.build(agent_id))])
    rows.append([Btn(t("🔄 Refresh"), callback_data=cb.AGENT_DETAILS.build(agent_id, page)),
                 Btn(t("⬅️ Back"), callback_data=cb.PORTFOLIO.build(page)), home_button()])
    return Markup(rows)


def agent_list(agents: Sequence[dict[str, Any]], page: int = 0) -> Markup:
    """/ai_status without an argument: the user's agents as buttons."""
    return portfolio(agents, page)


def withdraw_confirm(nonce: str, keep: str | None = None) -> Markup:
    """Confirm / cancel; with `keep` (an amount in words) also the offer to keep the agents alive."""
    rows = [[Btn(t("✅ Confirm withdrawal"), callback_data=cb.WITHDRAW_CONFIRM.build(nonce)),
             Btn(t("✖️ Cancel"), callback_data=cb.WITHDRAW_CANCEL.build(nonce))]]
    if keep is not None:
        rows.append([Btn(t("🌱 Keep {amount} so they keep trading", amount=keep),
                         callback_data=cb.WITHDRAW_KEEP.build())])
    return Markup(rows)


def settings_menu(prefs: dict[str, str], chosen_language: str | None) -> Markup:
    """One row per notification kind, one button per level; then the languages (and "automatic");
    the current choices are marked."""
    rows = []
    for kind in NotifyKind:
        current = prefs.get(kind, NotifyLevel.ON)
        rows.append([Btn(("• " if level == current else "") + t("{kind} {level}", kind=t(KIND_NAMES[kind]),
                                                                 level=t(LEVEL_NAMES[level])),
                         callback_data=cb.SETTING.build(kind, level)) for level in NotifyLevel])
    rows.append([Btn(("• " if code == chosen_language else "") + i18n.NATIVE_NAMES[code],
                     callback_data=cb.LANGUAGE.build(code)) for code in i18n.LANGUAGES])
    rows.append([Btn(("• " if chosen_language is None else "") + t("🌐 Automatic (as my Telegram app)"),
                     callback_data=cb.LANGUAGE.build("auto")), home_button()])
    return Markup(rows)


def bots_to_assign(agent_id: str, bots: Sequence[Any]) -> Markup:
    rows = [[Btn(f"🧠 {b.name[:30]}", callback_data=cb.ASSIGN_BOT.build(agent_id, b.bot_id))] for b in bots]
    rows.append([Btn(t("Default strategy"), callback_data=cb.ASSIGN_BOT.build(agent_id, 0))])
    return Markup(rows)


def bots_list(bots: Sequence[Any], selected_id: int | None, max_bots: int) -> Markup:
    rows = [[Btn(("✅ " if b.bot_id == selected_id else "🧠 ") + b.name[:30],
                 callback_data=cb.BOT_SHOW.build(b.bot_id))] for b in bots]
    if len(bots) < max_bots:
        rows.append([Btn(t("➕ New strategy bot"), callback_data=cb.BOT_NEW.build())])
    rows.append([home_button()])
    return Markup(rows)


def bot_actions(bot_id: int, selected: bool) -> Markup:
    rows = [
        [Btn(t("📈 Backtest"), callback_data=cb.BOT_BACKTEST.build(bot_id)),
         Btn(t("📡 Simulate"), callback_data=cb.BOT_SIMULATE.build(bot_id))],
        [Btn(t("✏️ Rename"), callback_data=cb.BOT_RENAME.build(bot_id)),
         Btn(t("🗑 Delete"), callback_data=cb.BOT_DELETE.build(bot_id))],
        [Btn(t("⬅️ Back"), callback_data=cb.BOT_LIST.build()), home_button()],
    ]
    if not selected:
        rows.insert(0, [Btn(t("✅ Select (chat edits this bot)"), callback_data=cb.BOT_SELECT.build(bot_id))])
    return Markup(rows)


def confirm_delete_bot(bot_id: int) -> Markup:
    return Markup([[Btn(t("🗑 Yes, delete"), callback_data=cb.BOT_DELETE_OK.build(bot_id)),
                    Btn(t("✖️ Keep it"), callback_data=cb.BOT_LIST.build())]])


def confirm_stop_simulation(sim_id: int) -> Markup:
    return Markup([[Btn(t("⏹ Stop simulation"), callback_data=cb.SIM_STOP_OK.build(sim_id)),
                    Btn(t("✖️ Keep running"), callback_data=cb.BOT_LIST.build())]])


def simulations(sims: Sequence[Any]) -> Markup:
    """A stop button per running simulation, then the way home."""
    rows = [[Btn(t("⏹ Stop #{simulation_id}", simulation_id=s.simulation_id),
                 callback_data=cb.SIM_STOP.build(s.simulation_id))] for s in sims]
    return Markup([*rows, [home_button()]])
