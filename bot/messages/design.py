"""Words for the design room's codes: strategy bots, strategy validation, and the notes of the
parser, the crew and the designer (see `bot.messages`; `bot.design_text` assembles the replies).

A param that is a note is worded first; a sequence of notes is joined with "; " and a sequence of
words with ", " (see `bot.messages.word`).
"""

from __future__ import annotations

from engine.strategy import TIMEFRAMES

_EXAMPLE = "'buy 10% PEPE on bsc when it drops 5% in 1h, stop loss 3%'"
_TIMEFRAMES = ", ".join(TIMEFRAMES[:-1]) + " or " + TIMEFRAMES[-1]

TEXTS: dict[str, str] = {
    # agents/design/strategy_bots.py
    "design.bot_not_found": "Strategy bot not found. Use /bots to see yours.",
    "design.bot_limit": "You can have at most {max_bots} strategy bots. Delete one first.",
    "design.name_not_text": "The bot name must be text.",
    "design.name_too_long": "That name is too long: use at most {max_chars} characters.",
    "design.name_empty": "The bot name can't be empty.",
    "design.name_control_chars": "The bot name can't contain control characters.",
    "design.name_taken": "You already have a bot called {name}. Pick another name.",
    "design.strategy_not_validated": "Only a validated strategy can be saved.",
    "design.unknown_role": "Unknown message role.",
    # engine/strategy.py (`detail` is the validation's reasons, already in plain words)
    "strategy.invalid": "{detail}",
    # agents/design/crew (model output without a strategy; its `detail` is the model-facing wording)
    "strategy.no_json": "no strategy JSON object was found in the answer",
    # agents/design/designer.py
    "design.empty": f"Send a strategy in plain words, e.g. {_EXAMPLE}.",
    "design.too_long": "That message is too long ({chars} characters). Please keep it under {max_chars} characters.",
    "design.daily_limit": "You have used today's {limit} AI requests (the limit resets at 00:00 UTC).",
    "design.try_simple_phrasing": (
        "{reason} Simple phrasings still work without AI, e.g. 'buy 10% PEPE when it drops 5% in 1h, stop loss 3%'."
    ),
    "design.parser_instead": "{reason} I used the built-in parser instead.",
    "design.no_change": "No change: the strategy is the same as before.",
    "design.ai_timeout": "The AI took too long to answer. Please try again.",
    "design.ai_crashed": "The AI strategy designer failed unexpectedly.",
    "design.ai_no_strategy": "The AI could not design a strategy.",
    "design.no_strategy": "I couldn't turn that into a strategy.",
    "design.strategy_line": "Strategy: {description}",
    # agents/design/crew/run.py
    "crew.no_valid_strategy": "The AI did not return a valid strategy.",
    "crew.invalid_output": (
        "The AI could not produce a valid strategy ({error}). "
        "Try rephrasing, e.g. 'buy 10% PEPE on bsc when it drops 5% in 1h'."
    ),
    "crew.failed": "The AI strategy designer failed unexpectedly. Please try again.",
    # agents/llm_config.py (`llm.<kind>`)
    "llm.rate_limited": "The AI service is rate-limiting requests right now. Please try again in a minute.",
    "llm.overloaded": "The AI service is overloaded right now. Please try again in a few minutes.",
    "llm.auth": "The AI service rejected the bot's API key. Please tell the bot's operator.",
    "llm.timeout": "The AI service took too long to answer. Please try again.",
    "llm.connection": "The AI service could not be reached. Please try again later.",
    "llm.bad_request": "The AI service rejected the request.",
    "llm.server": "The AI service had an internal error. Please try again later.",
    # agents/design/parser: why nothing came out
    "parse.empty": f"Describe a strategy, e.g. {_EXAMPLE}.",
    "parse.too_long": "That message is too long ({chars} characters); please keep it under {max_chars}.",
    "parse.cannot_build": "I couldn't build a strategy: {reasons}.",
    "parse.nothing_changed": "Nothing was changed: {reasons}.",
    "parse.invalid": "That strategy isn't valid: {error}.",
    "parse.no_change": "I didn't find any change to make in that message.",
    # agents/design/parser: the reasons (`words` are the user's own)
    "parse.not_understood": "I didn't understand '{words}'",
    "parse.negative_number": "negative numbers are not allowed here ('{words}'): write the size without a minus sign",
    "parse.not_a_number": "'{words}' is not a number I can use",
    "parse.unusable_number": "'{words}' is not a usable number",
    "parse.volume_multiple_too_small": "a volume multiple must be more than 1x (got {multiple:g}x)",
    "parse.indicator_level": (
        "'{indicator}' levels are not supported: use a price drop/rise, a volume spike or a price level"
    ),
    "parse.fixed_amount": "'{words}' is a fixed amount: amounts are a percent of the balance (e.g. 'buy 10%')",
    "parse.partial_sell": "partial sells are not supported: a sell closes the whole position",
    "parse.unsupported_timeframe": "'{words}' is not a supported timeframe (use " + _TIMEFRAMES + ")",
    "parse.several_timeframes": "several timeframes given ({timeframes}): say which one",
    "parse.several_tokens": "a strategy trades one token, but I found {tokens}",
    "parse.no_token": "which token? e.g. 'buy 10% PEPE on bsc when it drops 5% in 1h'",
    "parse.no_buy_condition": "I need at least one buy condition, e.g. 'buy when it drops 5% in 1h'",
    "parse.too_many_conditions": "at most {maximum} conditions are allowed",
    "parse.nothing_to_change": "there is no {target} condition to change",
    "parse.ambiguous_target": "several conditions have a threshold: say which one (e.g. 'change the drop to 4%')",
    "parse.nothing_to_remove": "there is no {target} condition to remove",
    # agents/design/parser: the echo of what was understood, and the ignored leftovers
    "parse.understood": "Understood: {understood}.",
    "parse.understood_nothing": "Understood.",
    "parse.ignored": "I ignored: {pieces}.",
    "parse.ignored_piece": "'{words}'",
    "understood.token": "token: {token}",
    "understood.token_on_chain": "token: {token} on {chain}",
    "understood.buy_when": "buy when '{words}'",
    "understood.sell_when": "sell when '{words}'",
    "understood.timeframe": "timeframe: {timeframe}",
    "understood.percent_changed": "{target} changed to {value:g}%",
    "understood.price_changed": "{target} changed to {value:price}",
    "understood.removed": "removed the {target} condition(s)",
    "understood.amount": "amount: {percent:g}% of the balance",
    "understood.default_amount": "no amount given: using {percent:g}% of the balance",
    "understood.stop_loss": "stop-loss: {percent:g}%",
    "understood.take_profit": "take-profit: {percent:g}%",
    "understood.stop_loss_removed": "stop-loss removed",
    "understood.take_profit_removed": "take-profit removed",
    "understood.match_all": "match: all conditions",
    "understood.match_any": "match: any condition",
}
