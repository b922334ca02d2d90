"""Words for the engine's error codes (engine/market, engine/bars, engine/backtest, engine/pool,
engine/backtest_service, engine/simulate): see `bot.messages`.

Some refusals wrap another one (`reason`, `problem`): `bot.messages.describe` words the inner
error first, so e.g. a candle problem reads the same in a backtest and in a market refusal.
"""

from __future__ import annotations

from bot.i18n import N_
from engine.market.ave_protocol import AVE_INTERVALS
from engine.strategy import TIMEFRAMES

MARKET_DOWN = N_("The market data service is unavailable right now, try again in a minute.")
# Written out in the templates below (a catalog holds literal text): kept in step at import.
_TIMEFRAMES = " ".join(TIMEFRAMES)
_INTERVALS = ", ".join(map(str, AVE_INTERVALS))

# Temporary failures and a rejected key (an operator problem): users only need to know the
# data is unavailable. Permanent refusals say what the provider refused.
MARKET: dict[str, str] = {
    **dict.fromkeys(("market.unavailable", "market.rate_limited", "market.temporary", "market.unreadable_response",
                     "market.unexpected_response", "market.auth_rejected"), MARKET_DOWN),
    "market.no_such_token": N_("The market data service refused the request: AVE has no such token or pair"),
    "market.rejected":
        N_("The market data service refused the request: AVE rejected the request (HTTP {status}): {detail}"),
    "market.provider_error": N_("The market data service refused the request: AVE error: {detail}"),
    "market.bad_interval": N_(
        "The market data service refused the request: Unsupported candle interval {interval} min; use one of "
        "1, 5, 15, 30, 60, 120, 240, 1440, 4320, 10080, 43200, 525600, 2628000"
    ),
    "market.bad_limit": N_("The market data service refused the request: limit must be at least 1"),
    "market.bad_token_id": N_("The market data service refused the request: invalid token id"),
    "market.empty_search":
        N_("The market data service refused the request: Type a token symbol or address to search for."),
    "market.no_token_given": N_("The market data service refused the request: No token given"),
    "market.demo_unknown_id":
        N_("The market data service refused the request: No token with id {token_id} in the demo market"),
    "market.bad_candles": N_(
        "The market data service refused the request: the market's {interval}-minute candles are unusable: {problem}"
    ),
    # "no token called …": the start of a sentence the simulate and backtest refusals complete
    "market.token_not_found": N_("No token called {token} on {chain}"),
    "market.token_not_found_anywhere": N_("No token called {token} on any supported chain"),
    "market.token_unknown": N_("No token called {token}"),
    "market.demo_token_not_found": N_("No token called {token} on {chain} in the demo market (it has {known})"),
    "market.demo_token_not_found_anywhere":
        N_("No token called {token} on any chain in the demo market (it has {known})"),
}

# What is wrong with a series of candles: a clause, completed by the refusal that wraps it.
CANDLES: dict[str, str] = {
    "candles.missing_column": N_("the candles have no '{column}' column"),
    "candles.ragged": N_("the candle columns have different lengths"),
    "candles.too_few": N_("at least {minimum} candles are needed"),
    "candles.too_few_for_interval": N_("at least 2 candles are needed to tell their interval"),
    "candles.not_numbers": N_("the candles contain values that are not numbers"),
    "candles.not_finite": N_("the candles contain missing or infinite {column} values"),
    "candles.not_positive": N_("the candles contain zero or negative {column} prices"),
    "candles.negative_volume": N_("the candles contain negative volume"),
    "candles.milliseconds": N_("candle times look like milliseconds: give unix seconds"),
    "candles.not_increasing": N_("candle times must be strictly increasing"),
    "candles.high_below_body": N_("candle {number}: its high is below its open or close"),
    "candles.low_above_body": N_("candle {number}: its low is above its open or close"),
    "candles.bad_interval": N_("the candle interval must be positive"),
    "candles.off_grid": N_("candle times do not fit a {minutes}-minute interval"),
    "candles.too_sparse": N_("the candles are too sparse to put on a regular time grid"),
    "backtest.bad_interval_minutes": N_("interval_minutes must be a whole number of seconds"),
    "backtest.history_too_short": N_("the {timeframe} condition needs more than {need} candles of {interval} history "
                                     "and there are only {bars}: use a longer period or a shorter timeframe"),
    "backtest.bad_setting": N_("{name} must be between {low:g} and {high:g}"),
}

BACKTEST: dict[str, str] = {
    "backtest.no_strategy": N_("This bot has no valid strategy to backtest."),
    "backtest.busy": N_("You already have a backtest running; wait for it to finish."),
    "backtest.queue_full": N_("Too many backtests are queued right now; try again in a minute."),
    "backtest.timeout": N_("The backtest took longer than {seconds:g} s and was stopped. "
                           "Try fewer days or a longer timeframe."),
    "backtest.replay_timeout": N_("The replay took longer than {seconds:g} s."),
    "backtest.worker_stopped": N_("the backtest worker stopped unexpectedly; please try again"),
    "backtest.token_not_found": N_("{reason}. Try a symbol like PEPE, PEPE:bsc or an id like 0xabc…-bsc."),
    "backtest.bad_candles": N_("These candles can't be backtested: {problem}."),
    "backtest.too_little_history": N_("Too short a range: {symbol} has only {candles} {timeframe} candles in the last "
                                      "{days} days; a backtest needs at least {minimum}. Try a shorter timeframe."),
    "backtest.invalid_strategy": N_("The strategy is not valid: {problem}."),
    "backtest.unexpected": N_("The backtest failed unexpectedly; please try again later."),
    "backtest.unknown_timeframe": N_("Unknown timeframe {timeframe}. Use one of 5m 15m 30m 1h 4h 1d."),
    "backtest.days_out_of_range": N_("Days must be from {minimum} to {maximum}."),
    "backtest.capital_out_of_range": N_("The capital must be from {minimum:,} to {maximum:,} USDC."),
    "simulate.capital_out_of_range": N_("The capital must be from {minimum:,} to {maximum:,} USDC."),
    "backtest.range_too_short": N_("Too short a range: {days} day(s) of {timeframe} candles is only {count} candles; "
                                   "a backtest needs at least {minimum}. Use more days or a shorter timeframe."),
    "backtest.range_too_long": N_("Too many candles: {days} days of {timeframe} candles is {count:,}; the limit is "
                                  "{maximum:,}. Use fewer days or a longer timeframe."),
}

SIMULATE: dict[str, str] = {
    "simulate.bot_not_found": N_("Strategy bot not found. Use /bots to see yours."),
    "simulate.no_strategy": N_("This bot has no valid strategy to simulate yet."),
    "simulate.unknown_timeframe": N_("Unknown timeframe {timeframe:.10}. Use one of 5m 15m 30m 1h 4h 1d."),
    "simulate.no_candles": N_("No recent {timeframe} candles for {symbol}; try another timeframe."),
    "simulate.exists": N_("This bot is already being simulated. Use /simulate stop first."),
    "simulate.limit": N_("You can run at most {maximum} simulations at once. Stop one first."),
    "simulate.not_found": N_("Simulation not found. Use /simulate status to see yours."),
    "simulate.already_ended": N_("Simulation #{simulation_id} is already {status}."),
    "simulate.bot_not_running": N_("This bot has no running simulation."),
    "simulate.which": N_("Say which simulation to stop."),
    "simulate.token_not_found": "{reason}.",
}

TEXTS: dict[str, str] = {**MARKET, **CANDLES, **BACKTEST, **SIMULATE}

if not all(lists in TEXTS[code] for code, lists in (
        ("market.bad_interval", _INTERVALS), ("backtest.unknown_timeframe", _TIMEFRAMES),
        ("simulate.unknown_timeframe", _TIMEFRAMES))):
    raise RuntimeError("the timeframes or AVE intervals changed: update the lists written out in bot/messages")
