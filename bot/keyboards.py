"""Inline keyboards: pure builders, no I/O."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from telegram import InlineKeyboardButton as Btn
from telegram import InlineKeyboardMarkup as Markup

from bot.render import PAGE_SIZE, page_count

PRESET_AMOUNTS = (50, 100, 500, 1000)


def main_menu() -> Markup:
    return Markup([
        [Btn("🤖 Automaton", callback_data="m:automaton"), Btn("📊 Portfolio", callback_data="m:portfolio")],
        [Btn("🧠 Strategy bots", callback_data="m:bots"), Btn("📈 Backtest", callback_data="m:backtest")],
        [Btn("⚙️ Settings", callback_data="m:settings"), Btn("❓ Help", callback_data="m:help")],
    ])


def preset_amounts(prefix: str) -> Markup:
    """Buttons with preset USDC amounts (`new:` to create, `dep:` to deposit)."""
    return Markup([[Btn(f"{a} USDC", callback_data=f"{prefix}:{a}") for a in PRESET_AMOUNTS]])


def automaton_menu(agent: dict[str, Any]) -> Markup:
    toggle = (Btn("⏸ Pause", callback_data=f"ap:{agent['agent_id']}") if agent["status"] == "active"
              else Btn("▶️ Resume", callback_data=f"ar:{agent['agent_id']}"))
    rows = [[Btn("📊 Portfolio", callback_data="pf:0")]]
    if agent["status"] in ("active", "paused"):
        rows.append([toggle, Btn("🧠 Assign strategy", callback_data=f"as:{agent['agent_id']}")])
    rows.append([Btn(f"➕ Deposit {a}", callback_data=f"dep:{a}") for a in PRESET_AMOUNTS[:3]])
    return Markup(rows)


def portfolio(agents: Sequence[dict[str, Any]], page: int) -> Markup:
    pages = page_count(len(agents))
    page = min(max(page, 0), pages - 1)
    rows: list[list[Btn]] = []
    chunk = agents[page * PAGE_SIZE:(page + 1) * PAGE_SIZE]
    for i in range(0, len(chunk), 2):
        rows.append([Btn(f"G{a['generation']} {a['agent_id']}", callback_data=f"ag:{a['agent_id']}:{page}")
                     for a in chunk[i:i + 2]])
    nav: list[Btn] = []
    if page > 0:
        nav.append(Btn("◀️ Prev", callback_data=f"pf:{page - 1}"))
    if page < pages - 1:
        nav.append(Btn("Next ▶️", callback_data=f"pf:{page + 1}"))
    if nav:
        rows.append(nav)
    rows.append([Btn("🔄 Refresh", callback_data=f"pf:{page}"), Btn("💸 Withdraw", callback_data="wd:ask")])
    return Markup(rows)


def agent_details(agent: dict[str, Any], page: int) -> Markup:
    rows = []
    if agent["status"] == "active":
        rows.append([Btn("⏸ Pause", callback_data=f"ap:{agent['agent_id']}")])
    elif agent["status"] == "paused":
        rows.append([Btn("▶️ Resume", callback_data=f"ar:{agent['agent_id']}")])
    rows.append([Btn("🔄 Refresh", callback_data=f"ag:{agent['agent_id']}:{page}"),
                 Btn("⬅️ Back", callback_data=f"pf:{page}")])
    return Markup(rows)


def agent_list(agents: Sequence[dict[str, Any]], page: int = 0) -> Markup:
    """/ai_status without an argument: the user's agents as buttons."""
    return portfolio(agents, page)


def withdraw_confirm(nonce: str) -> Markup:
    return Markup([[Btn("✅ Confirm withdrawal", callback_data=f"wd:ok:{nonce}"),
                    Btn("✖️ Cancel", callback_data=f"wd:no:{nonce}")]])


def settings_menu(prefs: dict[str, str]) -> Markup:
    rows = []
    for kind in ("signals", "trades", "spawns", "risk"):
        current = prefs.get(kind, "on")
        rows.append([Btn(("• " if v == current else "") + f"{kind} {v}", callback_data=f"set:{kind}:{v}")
                     for v in ("on", "silent", "off")])
    return Markup(rows)


def bots_to_assign(agent_id: str, bots: Sequence[Any]) -> Markup:
    rows = [[Btn(f"🧠 {b.name[:30]}", callback_data=f"asb:{agent_id}:{b.bot_id}")] for b in bots]
    rows.append([Btn("Default strategy", callback_data=f"asb:{agent_id}:0")])
    return Markup(rows)


def bots_list(bots: Sequence[Any], selected_id: int | None, max_bots: int = 3) -> Markup:
    rows = [[Btn(("✅ " if b.bot_id == selected_id else "🧠 ") + b.name[:30], callback_data=f"b:{b.bot_id}")]
            for b in bots]
    if len(bots) < max_bots:
        rows.append([Btn("➕ New strategy bot", callback_data="bn")])
    return Markup(rows)


def bot_actions(bot_id: int, selected: bool) -> Markup:
    rows = [
        [Btn("📈 Backtest", callback_data=f"bb:{bot_id}"), Btn("📡 Simulate", callback_data=f"bsim:{bot_id}")],
        [Btn("✏️ Rename", callback_data=f"br:{bot_id}"), Btn("🗑 Delete", callback_data=f"bd:{bot_id}")],
        [Btn("⬅️ Back", callback_data="bl")],
    ]
    if not selected:
        rows.insert(0, [Btn("✅ Select (chat edits this bot)", callback_data=f"bs:{bot_id}")])
    return Markup(rows)


def confirm_delete_bot(bot_id: int) -> Markup:
    return Markup([[Btn("🗑 Yes, delete", callback_data=f"bdc:{bot_id}"), Btn("✖️ Keep it", callback_data="bl")]])


def confirm_stop_simulation(sim_id: int) -> Markup:
    return Markup([[Btn("⏹ Stop simulation", callback_data=f"ssc:{sim_id}"),
                     Btn("✖️ Keep running", callback_data="bl")]])


def simulations(sims: Sequence[Any]) -> Markup | None:
    rows = [[Btn(f"⏹ Stop #{s.simulation_id}", callback_data=f"ss:{s.simulation_id}")] for s in sims]
    return Markup(rows) if rows else None
