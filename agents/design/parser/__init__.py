"""Deterministic natural-language strategy parser: the embedded default when no LLM is configured.

`parse_strategy_text("buy 10% PEPE on bsc when it drops 5% in an hour, stop loss 3%")` (or the same in
Indonesian, "beli 10% PEPE di bsc kalau turun 5% dalam 1 jam, stop loss 3%", or Portuguese) returns a
`ParseResult` with a validated `Strategy`, what was understood and what was not, all as data:
codes and params (`agents.design.notes.Note`) and the user's own leftover words. Only the bot
words them (`bot.design_text`).

Layout, one job per module:

* `vocabulary`: words, synonyms, units, chain aliases and the regex fragments made of them;
  English is the base, and each fragment appends the other languages' synonyms for the same
  concept: `lexicon` (what a language supplies), `indonesian`, `portuguese`, `languages` (the list);
* `scanner`: the message, which characters are claimed, what was found (`Found`), leftovers;
* `rules_orders`, `rules_risk`, `rules_conditions`, `rules_edits`: one small function per phrase
  kind, each with its pattern, recording what it recognised;
* `table`: the rules in the order they run (each match claims its span, so order matters);
* `build`: what was found (plus the current strategy, for edits) -> a strategy dict;
* `parse`: normalisation, the entry point and `ParseResult`.
"""

from __future__ import annotations

from agents.design.parser.build import DEFAULT_AMOUNT_PERCENT
from agents.design.parser.parse import MAX_TEXT_CHARS, ParseResult, parse_strategy_text

__all__ = ["DEFAULT_AMOUNT_PERCENT", "MAX_TEXT_CHARS", "ParseResult", "parse_strategy_text"]
