"""Words for the design room's codes: strategy bots, strategy validation, and the notes of the
parser, the crew and the designer (see `bot.messages`; `bot.design_text` assembles the replies).

A param that is a note is worded first; a sequence of notes is joined with "; " and a sequence of
words with ", " (see `bot.messages.word`).
"""

from __future__ import annotations

from bot.i18n import N_
from engine.strategy import TIMEFRAMES

# Written out in the templates below (a catalog holds literal text): kept in step at import.
_TIMEFRAMES = ", ".join(TIMEFRAMES[:-1]) + " or " + TIMEFRAMES[-1]

TEXTS: dict[str, str] = {
    # agents/design/strategy_bots.py
    "design.bot_not_found": N_("Strategy bot not found. Use /bots to see yours."),
    "design.bot_limit": N_("You can have at most {max_bots} strategy bots. Delete one first."),
    "design.name_not_text": N_("The bot name must be text."),
    "design.name_too_long": N_("That name is too long: use at most {max_chars} characters."),
    "design.name_empty": N_("The bot name can't be empty."),
    "design.name_control_chars": N_("The bot name can't contain control characters."),
    "design.name_taken": N_("You already have a bot called {name}. Pick another name."),
    "design.strategy_not_validated": N_("Only a validated strategy can be saved."),
    "design.unknown_role": N_("Unknown message role."),
    # engine/strategy.py (`detail` is the validation's reasons, already in plain words)
    "strategy.invalid": "{detail}",
    # agents/design/crew (model output without a strategy; its `detail` is the model-facing wording)
    "strategy.no_json": N_("no strategy JSON object was found in the answer"),
    # agents/design/designer.py
    "design.empty":
        N_("Send a strategy in plain words, e.g. 'buy 10% PEPE on bsc when it drops 5% in 1h, stop loss 3%'."),
    "design.too_long":
        N_("That message is too long ({chars} characters). Please keep it under {max_chars} characters."),
    "design.daily_limit": N_("You have used today's {limit} AI requests (the limit resets at 00:00 UTC)."),
    "design.try_simple_phrasing": N_(
        "{reason} Simple phrasings still work without AI, e.g. 'buy 10% PEPE when it drops 5% in 1h, stop loss 3%'."
    ),
    "design.parser_instead": N_("{reason} I used the built-in parser instead."),
    "design.no_change": N_("No change: the strategy is the same as before."),
    "design.ai_timeout": N_("The AI took too long to answer. Please try again."),
    "design.ai_crashed": N_("The AI strategy designer failed unexpectedly."),
    "design.ai_no_strategy": N_("The AI could not design a strategy."),
    "design.no_strategy": N_("I couldn't turn that into a strategy."),
    "design.strategy_line": N_("Strategy: {description}"),
    # the token check against the market (`error`: the market's refusal, a sentence without its full stop)
    "design.unknown_token": N_("{error}. Check the token's symbol, or say its chain (e.g. 'PEPE on bsc')."),
    "design.replaced": N_("A new strategy: it replaces the previous one (nothing of the old one is kept)."),
    "design.started_over": N_("Started over: the previous strategy is gone."),
    "design.token_unchecked":
        N_("I couldn't check {token} with the market data service right now; the strategy keeps it as written."),
    # agents/design/crew/run.py
    "crew.no_valid_strategy": N_("The AI did not return a valid strategy."),
    "crew.invalid_output": N_(
        "The AI could not produce a valid strategy ({error}). "
        "Try rephrasing, e.g. 'buy 10% PEPE on bsc when it drops 5% in 1h'."
    ),
    "crew.failed": N_("The AI strategy designer failed unexpectedly. Please try again."),
    # agents/llm_config.py (`llm.<kind>`)
    "llm.rate_limited": N_("The AI service is rate-limiting requests right now. Please try again in a minute."),
    "llm.overloaded": N_("The AI service is overloaded right now. Please try again in a few minutes."),
    "llm.auth": N_("The AI service rejected the bot's API key. Please tell the bot's operator."),
    "llm.timeout": N_("The AI service took too long to answer. Please try again."),
    "llm.connection": N_("The AI service could not be reached. Please try again later."),
    "llm.bad_request": N_("The AI service rejected the request."),
    "llm.server": N_("The AI service had an internal error. Please try again later."),
    # agents/design/parser: why nothing came out
    "parse.empty": N_("Describe a strategy, e.g. 'buy 10% PEPE on bsc when it drops 5% in 1h, stop loss 3%'."),
    "parse.too_long": N_("That message is too long ({chars} characters); please keep it under {max_chars}."),
    "parse.cannot_build": N_("I couldn't build a strategy: {reasons}."),
    "parse.nothing_changed": N_("Nothing was changed: {reasons}."),
    "parse.invalid": N_("That strategy isn't valid: {error}."),
    "parse.no_change": N_("I didn't find any change to make in that message."),
    # agents/design/parser: the reasons (`words` are the user's own)
    "parse.not_understood": N_("I didn't understand '{words}'"),
    "parse.negative_number":
        N_("negative numbers are not allowed here ('{words}'): write the size without a minus sign"),
    "parse.not_a_number": N_("'{words}' is not a number I can use"),
    "parse.unusable_number": N_("'{words}' is not a usable number"),
    "parse.volume_multiple_too_small": N_("a volume multiple must be more than 1x (got {multiple:g}x)"),
    "parse.indicator_level": N_(
        "'{indicator}' levels are not supported: use a price drop/rise, a volume spike or a price level"
    ),
    "parse.fixed_amount": N_("'{words}' is a fixed amount: amounts are a percent of the balance (e.g. 'buy 10%')"),
    "parse.partial_sell": N_("partial sells are not supported: a sell closes the whole position"),
    "parse.unsupported_timeframe": N_("'{words}' is not a supported timeframe (use 5m, 15m, 30m, 1h, 4h or 1d)"),
    "parse.several_timeframes": N_("several timeframes given ({timeframes}): say which one"),
    "parse.several_tokens": N_("a strategy trades one token, but I found {tokens}"),
    "parse.no_token": N_("which token? e.g. 'buy 10% PEPE on bsc when it drops 5% in 1h'"),
    "parse.no_buy_condition": N_("I need at least one buy condition, e.g. 'buy when it drops 5% in 1h'"),
    "parse.too_many_conditions": N_("at most {maximum} conditions are allowed"),
    "parse.nothing_to_change": N_("there is no {target} condition to change"),
    "parse.ambiguous_target":
        N_("several conditions have a threshold: say which one (e.g. 'change the drop to 4%')"),
    "parse.which_side": N_(
        "both a buy and a sell condition have a {target} threshold: say which one "
        "(e.g. 'change the buy {target} to 4%')"
    ),
    "parse.nothing_to_remove": N_("there is no {target} condition to remove"),
    # agents/design/parser: the echo of what was understood, and the ignored leftovers
    "parse.understood": N_("Understood: {understood}."),
    "parse.understood_nothing": N_("Understood."),
    "parse.ignored": N_("I ignored: {pieces}."),
    "parse.ignored_piece": "'{words}'",
    "understood.token": N_("token: {token}"),
    "understood.token_on_chain": N_("token: {token} on {chain}"),
    "understood.buy_when": N_("buy when '{words}'"),
    "understood.sell_when": N_("sell when '{words}'"),
    "understood.timeframe": N_("timeframe: {timeframe}"),
    "understood.percent_changed": N_("{target} changed to {value:g}%"),
    "understood.price_changed": N_("{target} changed to {value:price}"),
    "understood.removed": N_("removed the {target} condition(s)"),
    "understood.amount": N_("amount: {percent:g}% of the balance"),
    "understood.default_amount": N_("no amount given: using {percent:g}% of the balance"),
    "understood.stop_loss": N_("stop-loss: {percent:g}%"),
    "understood.take_profit": N_("take-profit: {percent:g}%"),
    "understood.stop_loss_removed": N_("stop-loss removed"),
    "understood.take_profit_removed": N_("take-profit removed"),
    "understood.match_all": N_("match: all conditions"),
    "understood.match_any": N_("match: any condition"),
    "understood.cleared": N_("strategy cleared"),
    "understood.replaced": N_("a new strategy (it replaces the current one)"),
    "understood.started_over": N_("starting over from scratch"),
}

if _TIMEFRAMES not in TEXTS["parse.unsupported_timeframe"]:
    raise RuntimeError("engine.strategy.TIMEFRAMES changed: update the timeframes written out in bot/messages")
