"""Words for the engine's error codes (engine/market, engine/bars, engine/backtest, engine/pool,
engine/backtest_service, engine/simulate): see `bot.messages`.

Some refusals wrap another one (`reason`, `problem`): `bot.messages.describe` words the inner
error first, so e.g. a candle problem reads the same in a backtest and in a market refusal.
"""

from __future__ import annotations

from engine.market.ave_protocol import AVE_INTERVALS
from engine.strategy import TIMEFRAMES

MARKET_DOWN = "The market data service is unavailable right now, try again in a minute."
_REFUSED = "The market data service refused the request: "
_TIMEFRAMES = " ".join(TIMEFRAMES)

# Temporary failures and a rejected key (an operator problem): users only need to know the
# data is unavailable. Permanent refusals say what the provider refused.
MARKET: dict[str, str] = {
    **dict.fromkeys(("market.unavailable", "market.rate_limited", "market.temporary", "market.unreadable_response",
                     "market.unexpected_response", "market.auth_rejected"), MARKET_DOWN),
    "market.no_such_token": _REFUSED + "AVE has no such token or pair",
    "market.rejected": _REFUSED + "AVE rejected the request (HTTP {status}): {detail}",
    "market.provider_error": _REFUSED + "AVE error: {detail}",
    "market.bad_interval": (_REFUSED + "Unsupported candle interval {interval} min; use one of "
                            + ", ".join(map(str, AVE_INTERVALS))),
    "market.bad_limit": _REFUSED + "limit must be at least 1",
    "market.bad_token_id": _REFUSED + "invalid token id",
    "market.empty_search": _REFUSED + "Type a token symbol or address to search for.",
    "market.no_token_given": _REFUSED + "No token given",
    "market.demo_unknown_id": _REFUSED + "No token with id {token_id} in the demo market",
    "market.bad_candles": _REFUSED + "the market's {interval}-minute candles are unusable: {problem}",
    # "no token called …": the start of a sentence the simulate and backtest refusals complete
    "market.token_not_found": "No token called {token} on {chain}",
    "market.token_not_found_anywhere": "No token called {token} on any supported chain",
    "market.token_unknown": "No token called {token}",
    "market.demo_token_not_found": "No token called {token} on {chain} in the demo market (it has {known})",
    "market.demo_token_not_found_anywhere": "No token called {token} on any chain in the demo market (it has {known})",
}

# What is wrong with a series of candles: a clause, completed by the refusal that wraps it.
CANDLES: dict[str, str] = {
    "candles.missing_column": "the candles have no '{column}' column",
    "candles.ragged": "the candle columns have different lengths",
    "candles.too_few": "at least {minimum} candles are needed",
    "candles.too_few_for_interval": "at least 2 candles are needed to tell their interval",
    "candles.not_numbers": "the candles contain values that are not numbers",
    "candles.not_finite": "the candles contain missing or infinite {column} values",
    "candles.not_positive": "the candles contain zero or negative {column} prices",
    "candles.negative_volume": "the candles contain negative volume",
    "candles.milliseconds": "candle times look like milliseconds: give unix seconds",
    "candles.not_increasing": "candle times must be strictly increasing",
    "candles.high_below_body": "candle {number}: its high is below its open or close",
    "candles.low_above_body": "candle {number}: its low is above its open or close",
    "candles.bad_interval": "the candle interval must be positive",
    "candles.off_grid": "candle times do not fit a {minutes}-minute interval",
    "candles.too_sparse": "the candles are too sparse to put on a regular time grid",
    "backtest.bad_interval_minutes": "interval_minutes must be a whole number of seconds",
    "backtest.history_too_short": ("the {timeframe} condition needs more than {need} candles of {interval} history "
                                   "and there are only {bars}: use a longer period or a shorter timeframe"),
    "backtest.bad_setting": "{name} must be between {low:g} and {high:g}",
}

BACKTEST: dict[str, str] = {
    "backtest.no_strategy": "This bot has no valid strategy to backtest.",
    "backtest.busy": "You already have a backtest running; wait for it to finish.",
    "backtest.queue_full": "Too many backtests are queued right now; try again in a minute.",
    "backtest.timeout": ("The backtest took longer than {seconds:g} s and was stopped. "
                         "Try fewer days or a longer timeframe."),
    "backtest.replay_timeout": "The replay took longer than {seconds:g} s.",
    "backtest.worker_stopped": "the backtest worker stopped unexpectedly; please try again",
    "backtest.token_not_found": "{reason}. Try a symbol like PEPE, PEPE:bsc or an id like 0xabc…-bsc.",
    "backtest.bad_candles": "These candles can't be backtested: {problem}.",
    "backtest.too_little_history": ("Too short a range: {symbol} has only {candles} {timeframe} candles in the last "
                                    "{days} days; a backtest needs at least {minimum}. Try a shorter timeframe."),
    "backtest.invalid_strategy": "The strategy is not valid: {problem}.",
    "backtest.unexpected": "The backtest failed unexpectedly; please try again later.",
    "backtest.unknown_timeframe": f"Unknown timeframe {{timeframe}}. Use one of {_TIMEFRAMES}.",
    "backtest.days_out_of_range": "Days must be from {minimum} to {maximum}.",
    "backtest.range_too_short": ("Too short a range: {days} day(s) of {timeframe} candles is only {count} candles; "
                                 "a backtest needs at least {minimum}. Use more days or a shorter timeframe."),
    "backtest.range_too_long": ("Too many candles: {days} days of {timeframe} candles is {count:,}; the limit is "
                                "{maximum:,}. Use fewer days or a longer timeframe."),
}

SIMULATE: dict[str, str] = {
    "simulate.bot_not_found": "Strategy bot not found. Use /bots to see yours.",
    "simulate.no_strategy": "This bot has no valid strategy to simulate yet.",
    "simulate.unknown_timeframe": f"Unknown timeframe {{timeframe:.10}}. Use one of {_TIMEFRAMES}.",
    "simulate.no_candles": "No recent {timeframe} candles for {symbol}; try another timeframe.",
    "simulate.exists": "This bot is already being simulated. Use /simulate stop first.",
    "simulate.limit": "You can run at most {maximum} simulations at once. Stop one first.",
    "simulate.not_found": "Simulation not found. Use /simulate status to see yours.",
    "simulate.already_ended": "Simulation #{simulation_id} is already {status}.",
    "simulate.bot_not_running": "This bot has no running simulation.",
    "simulate.which": "Say which simulation to stop.",
    "simulate.token_not_found": "{reason}.",
}

TEXTS: dict[str, str] = {**MARKET, **CANDLES, **BACKTEST, **SIMULATE}
