"""The rule table: every phrase kind the parser knows, in the order the rules run.

Order matters: a rule claims the characters it matched, so the specific rules come before the
looser ones that would otherwise misread their text ("stop loss 3%" must not become a 3% amount,
"volume spikes 200%" must not become a price rise, "5m" must not become the number 5).
"""

from __future__ import annotations

from agents.design.parser import rules_conditions as c
from agents.design.parser import rules_edits as e
from agents.design.parser import rules_orders as o
from agents.design.parser import rules_risk as r
from agents.design.parser.scanner import Rule, Scanner

RULES: tuple[Rule, ...] = (
    # 0. "Start over" first: its words ("reset", "clear") must not read as removals.
    Rule("start over", e.START_OVER, e.start_over),
    # 1. Token ids contain digits, so they go before any number rule.
    Rule("token id", o.TOKEN_ID, o.token_id, orig=True),
    # 2. What cannot be represented, refused with a reason.
    Rule("fixed amount", o.FIXED_AMOUNT, o.fixed_amount),
    Rule("partial sell", o.PARTIAL_SELL, o.partial_sell),
    # 3. Stop-loss / take-profit (removals first: "no stop loss" is not a level).
    Rule("remove stop-loss", r.REMOVE_STOP_LOSS, r.remove_stop_loss),
    Rule("remove take-profit", r.REMOVE_TAKE_PROFIT, r.remove_take_profit),
    Rule("stop-loss value", r.STOP_LOSS_THEN_NUMBER, r.set_stop_loss),
    Rule("take-profit value", r.TAKE_PROFIT_THEN_NUMBER, r.set_take_profit),
    Rule("percent stop-loss", r.PERCENT_STOP_LOSS, r.set_stop_loss),
    Rule("percent take-profit", r.PERCENT_TAKE_PROFIT, r.set_take_profit),
    Rule("sell at a profit", r.SELL_AT_PROFIT, r.set_take_profit),
    Rule("sell at a loss", r.SELL_AT_LOSS, r.set_stop_loss),
    Rule("sell at a profit, word first", r.SELL_AT_PROFIT_WORD_FIRST, r.set_take_profit),
    Rule("sell at a loss, word first", r.SELL_AT_LOSS_WORD_FIRST, r.set_stop_loss),
    # 4. Volume spikes, before price rises ("spikes" is shared).
    Rule("volume percent", c.VOLUME_PERCENT, c.volume_percent),
    Rule("percent volume", c.PERCENT_VOLUME, c.volume_percent),
    Rule("volume multiple", c.VOLUME_MULTIPLE, c.volume_multiple),
    Rule("multiple volume", c.MULTIPLE_VOLUME, c.volume_multiple),
    # 5. Percentage price moves.
    Rule("drop verb", c.DROP_VERB, c.price_drop),
    Rule("rise verb", c.RISE_VERB, c.price_rise),
    Rule("percent drop", c.PERCENT_DROP, c.price_drop),
    Rule("percent rise", c.PERCENT_RISE, c.price_rise),
    Rule("drop of", c.DROP_OF, c.price_drop),
    Rule("rise of", c.RISE_OF, c.price_rise),
    Rule("down by", c.DOWN_BY, c.price_drop),
    Rule("up by", c.UP_BY, c.price_rise),
    # 6. Price levels.
    Rule("price level", c.PRICE_LEVEL, c.price_level),
    # 7. Amount.
    Rule("amount verb", o.AMOUNT_VERB, o.amount),
    Rule("amount after token", o.AMOUNT_AFTER_TOKEN, o.amount_after_token, span=o.amount_span),
    Rule("percent of balance", o.PERCENT_OF_BALANCE, o.amount),
    Rule("amount field", o.AMOUNT_FIELD, o.amount),
    Rule("amount word", o.AMOUNT_WORD, o.amount_word),
    Rule("all-in", o.ALL_IN, o.all_in),
    # 8. Threshold edits and condition removals.
    Rule("change threshold", e.CHANGE_THRESHOLD, e.threshold_edit),
    Rule("named threshold", e.NAMED_THRESHOLD, e.threshold_edit),
    Rule("remove condition", e.REMOVE_CONDITION, e.condition_removal),
    # 9. Match mode.
    Rule("match all", e.MATCH_ALL, e.match_all),
    Rule("match any", e.MATCH_ANY, e.match_any),
    # 10. Add-mode markers.
    Rule("add marker", e.ADD_MARKER, e.add_mode),
    # 11. Chains.
    Rule("on chain", o.CHAIN_AFTER_PREPOSITION, o.chain),
    Rule("chain noun", o.CHAIN_BEFORE_NOUN, o.chain),
    Rule("chain field", o.CHAIN_FIELD, o.chain),
    # 12. Standalone timeframes ("use 4h instead", "daily").
    Rule("timeframe", c.TIMEFRAME, c.standalone_timeframe),
    # 13. Action words (their positions decide each condition's buy/sell signal).
    Rule("action word", o.ACTION_WORD, o.action),
    # 14. Tokens, in the original case: $CASHTAG, ALLCAPS, then a word where a token is expected.
    Rule("cashtag", o.CASHTAG, o.symbol, orig=True),
    Rule("caps symbol", o.CAPS_SYMBOL, o.symbol, orig=True),
    Rule("symbol in token position", o.SYMBOL_IN_TOKEN_POSITION, o.symbol_in_token_position, orig=True,
         span=o.symbol_span),
    # 15. Other languages' "and"/"or", last so they claim nothing another rule reads.
    Rule("connective", e.CONNECTIVE, e.connective),
)


def scan(scanner: Scanner) -> None:
    """Run every rule over the message in table order, filling `scanner.found`."""
    for rule in RULES:
        scanner.run(rule)
