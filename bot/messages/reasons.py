"""Words for the stored reasons (`agents.ledger.reasons`): why an agent's status changed, why a
child was or was not spawned (see `bot.messages`; `bot.render.reason_text` renders a stored one).

A param that is itself a reason (the decision a refusal wraps, why the rule decided instead of
the AI, a typed error) is worded first, by its own code.
"""

from __future__ import annotations

from bot.i18n import N_

TEXTS: dict[str, str] = {
    "text.free": "{text}",  # text from outside (an AI's own words), stored wrapped
    # agents/ledger/rules.py, money_tx.py, manager.py: an agent's status reason
    "status.below_minimum": N_("balance below the minimum"),
    "status.balance_restored": N_("balance restored"),
    "status.revived_by_deposit": N_("revived by a deposit"),
    "status.emptied_by_withdrawal": N_("emptied by withdrawal"),
    "status.paused_by_you": N_("paused by you"),
    "status.stopped_by_you": N_("stopped by you (/stopall)"),
    "status.resumed": N_("resumed"),
    # agents/autonomy/risk.py
    "status.risk_drawdown": N_("risk: drawdown {drawdown_pct:.0f}% > {limit_pct:.0f}%"),
    # agents/ledger/manager.py: when the caller gave no reason
    "child.spawned": N_("spawned"),
    "child.spawned_remotely": N_("spawned by the remote automaton"),
    "decision.unexplained": "-",
    # agents/autonomy/spawn_policy.py: the deterministic rule (`decision`), and `why` it decided
    "spawn_rule.decided": N_("Rule-based decision: {decision}"),
    "spawn_rule.fallback": N_("Rule-based decision ({why}): {decision}"),
    "spawn_rule.ai_timeout": N_("the AI did not answer in time"),
    "spawn_rule.ai_malformed": N_("the AI answer was malformed"),
    "spawn_rule.ai_unavailable": N_("AI unavailable: {failure}"),
    "spawn_rule.no_full": N_("no spawn, already {live} live children (max {maximum})"),
    "spawn_rule.no_earnings": N_("no spawn, spawnable earnings below the {min_child} USDC minimum child balance"),
    "spawn_rule.no_drawdown": N_("no spawn, drawdown {drawdown_pct:.1f}% is at or above {limit_pct:g}%"),
    "spawn_rule.no_win_rate":
        N_("no spawn, win rate {win_rate_pct:.1f}% over {trades} trades is below {limit_pct:g}%"),
    "spawn_rule.yes": N_("spawn {amount} USDC: earnings {earnings} USDC, drawdown {drawdown_pct:.1f}%"),
    "spawn_rule.yes_win_rate": N_(
        "spawn {amount} USDC: earnings {earnings} USDC, drawdown {drawdown_pct:.1f}%, "
        "win rate {win_rate_pct:.0f}% over {trades} trades"
    ),
    # agents/autonomy/spawn_policy.py: the AI's answer bounded by the rules (`said`: its own words)
    "spawn_ai.no_reason": N_("no reason given"),
    "spawn_ai.full": N_("AI wanted to spawn, but the agent already has {live} live children (max {maximum})."),
    "spawn_ai.too_little": N_(
        "AI wanted to spawn, but at most {upper} USDC is spawnable, below the {min_child} USDC minimum."
    ),
    "spawn_ai.adjusted": N_("{said} (amount adjusted to {amount} USDC to fit the limits)"),
    # agents/autonomy/spawner.py: the worker refusing what the policy decided
    "spawn_worker.above_max_child": N_("{decision} (refused: at most {max_child:.6f} USDC may fund a child)"),
    "spawn_worker.refused": N_("{decision} (spawn refused: {error})"),
}

# How an LLM failure kind (`agents.llm_config.LlmErrorKind`) reads inside "AI unavailable: …".
LLM_FAILURES: dict[str, str] = {
    "rate_limited": N_("rate limited"), "overloaded": N_("overloaded"), "auth": N_("auth"), "timeout": N_("timeout"),
    "connection": N_("connection"), "bad_request": N_("bad request"), "server": N_("server"),
}

PARAM_WORDS: dict[str, dict[str, str]] = {"failure": LLM_FAILURES}
