"""The parser's vocabulary: words, synonyms, units, chain aliases and the regex fragments built from them.

Everything a rule matches on is named here, so a new synonym is a one-line change and every rule
that reads "a drop verb" or "a percent" agrees on what that is. Text is matched lower-cased
(see `scanner.Scanner`) unless a rule says otherwise.
"""

from __future__ import annotations

import re

# Numbers above this are typos or attacks, never a usable threshold, price or amount.
MAX_NUMBER = 1e12

# -- numbers and percentages ---------------------------------------------------------------------

NUM_CORE = (
    r"(?:[-+−]\s?)?"  # a sign is captured so negatives can be rejected with a reason
    r"(?:nan|inf(?:inity)?|(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?(?:e[-+]?\d+)?|\.\d+(?:e[-+]?\d+)?)"
)
# A number that is not the start of a longer word ("5m" is a timeframe, not the number 5).
NUM = NUM_CORE + r"(?!\w|\.\d)"
PCT = r"\s*(?:%|percent\b|pct\b|per\s+cent\b)"
OPT_PCT = rf"(?:{PCT})?"
# Words that may sit between a verb and its number: "drops by more than 5%".
MODIFIER = r"(?:(?:by|more\s+than|over|at\s+least|about|around|roughly|another|of|a)\s+)*"
BALANCE = (
    r"(?:my\s+|the\s+|our\s+|of\s+)?(?:available\s+|total\s+|usdc\s+)?"
    r"(?:balance|equity|portfolio|capital|funds|money|account|wallet|bankroll|cash|usdc|stack)"
)
# Spelled-out amounts of the balance.
AMOUNT_WORDS: dict[str, float] = {"half": 50.0, "a quarter": 25.0, "a third": 100 / 3}
ALL_OF_IT = 100.0

# -- price moves ----------------------------------------------------------------------------------

DROP_VERBS = (
    r"drops?|dropped|dropping|dips?|dipped|dipping|falls?|fell|falling|declines?|declined|decreases?|"
    r"decreased|dumps?|dumped|crash(?:es|ed)?|tanks?|tanked|plunges?|plunged|slides?|slid|sinks?|sank|"
    r"goes\s+down|went\s+down|moves?\s+down|is\s+down|gets\s+down|loses|lost|corrects?|corrected"
)
RISE_VERBS = (
    r"rises?|rose|risen|rising|pumps?|pumped|climbs?|climbed|gains?|gained|increases?|increased|jumps?|"
    r"jumped|surges?|surged|rall(?:y|ies|ied)|spikes?|spiked|moons?|mooned|goes\s+up|went\s+up|moves?\s+up|"
    r"is\s+up|soars?|soared|rockets?|rocketed|grows?|grew"
)
DROP_NOUNS = r"drop|dip|fall|decline|decrease|dump|crash|correction|pullback|down\s*move|downturn|sell-?off"
RISE_NOUNS = r"rise|pump|gain|increase|jump|surge|rally|spike|up\s*move|breakout|move\s+up"
VOLUME_VERBS = (
    r"(?:spikes?|spiked|jumps?|jumped|surges?|surged|rises?|rose|increases?|increased|goes\s+up|is\s+up|"
    r"grows?|grew|explodes?|pumps?|is|gets|climbs?)"
)
# Volume multiples spelled as words: "volume doubles" is a 2x volume.
VOLUME_MULTIPLE_WORDS = {"doubl": 2, "tripl": 3}
VOLUME_MULTIPLE_OTHER = 4  # "quadruples"
LEVEL_VERBS = (
    r"crosses|cross|crossed|crossing|breaks|break|broke|breaking|goes|go|moves?|rises?|"
    r"climbs?|pushes|gets|trades?|is|closes?|jumps?|pumps?|falls?|drops?|dips?|sinks?|slides?|crashes|"
    r"comes"
)
# Indicators whose levels cannot be expressed ("rsi below 30"): named so the refusal is clear.
INDICATORS = r"rsi|macd|ema|sma|ma|vwap|atr|stoch\w*|bollinger|volume|market\s+cap|mcap|tvl"

# -- stop-loss and take-profit ------------------------------------------------------------------

STOP_LOSS_WORDS = r"(?:stop[\s-]*loss(?:es)?|stoploss|stop|sl|cut\s+(?:the\s+)?loss(?:es)?|max(?:imum)?\s+loss)"
TAKE_PROFIT_WORDS = (
    r"(?:take[\s-]*profits?|takeprofit|tp|profit\s+target|target|take\s+gains?|take\s+profit\s+target)"
)
# What may join a stop-loss/take-profit word to its number: "stop loss at 3%", "tp: 10".
RISK_JOINER = r"\s*(?:at|of|to|=|:|is|on|=>|->|around|about|set\s+to|@)?\s*"
REMOVE_VERBS = r"(?:no|without|remove|disable|delete|clear|drop|turn\s+off|cancel)"

# -- timeframes -----------------------------------------------------------------------------------

UNIT_MINUTES = {"m": 1, "h": 60, "d": 1440}
# Timeframes given as one word; "_" marks an unsupported one (reported, not used).
TIMEFRAME_WORDS = {"hourly": "1h", "hour": "1h", "daily": "1d", "day": "1d", "minute": "_1m"}
WORD_NUMBERS = {
    "a": 1,
    "an": 1,
    "one": 1,
    "two": 2,
    "four": 4,
    "five": 5,
    "fifteen": 15,
    "thirty": 30,
    "sixty": 60,
    "twenty four": 24,
}
TF = (
    r"(?:(?:in|within|over|during|inside|across|on|per|every|for|of|at|using|a|an)\s+)?"
    r"(?:(?:the|a|an)\s+)?(?:(?:last|past|same|next)\s+)?"
    r"(?:(?P<tfn>\d+(?:\.\d+)?)\s*(?P<tfu>minutes?|mins?|m|hours?|hrs?|hr|h|days?|d)\b"
    # Spelled-out counts need a space and a full unit word ("an hour"; never "and").
    r"|(?P<tfn2>an?|one|two|four|five|fifteen|thirty|sixty|twenty[-\s]four)\s+(?P<tfu2>minutes?|mins?|hours?|hrs?|days?)\b"
    r"|(?P<tfw>hourly|daily|hour|day|minute))"
    r"(?:\s+(?:timeframe|time\s*frame|candles?|chart|window|bars?|period|interval))?"
)

# -- chains and tokens ----------------------------------------------------------------------------

CHAINS: dict[str, str] = {
    "bsc": "bsc",
    "bnb": "bsc",
    "bnb chain": "bsc",
    "binance smart chain": "bsc",
    "bep20": "bsc",
    "eth": "eth",
    "ethereum": "eth",
    "erc20": "eth",
    "mainnet": "eth",
    "base": "base",
    "solana": "solana",
    "arbitrum": "arbitrum",
    "arb": "arbitrum",
    "polygon": "polygon",
    "matic": "polygon",
    "avalanche": "avalanche",
    "avax": "avalanche",
    "optimism": "optimism",
    "tron": "tron",
    "ton": "ton",
    "sui": "sui",
    "blast": "blast",
    "linea": "linea",
    "fantom": "fantom",
    "zksync": "zksync",
    "mantle": "mantle",
}
# Names that are only chains (ETH, SOL, ARB… are also tokens, so they are not here).
CHAIN_ONLY = {"bsc", "ethereum", "solana", "arbitrum", "polygon", "base", "optimism", "avalanche", "bep20", "erc20"}
CHAIN_ALT = "|".join(sorted((re.escape(c).replace(r"\ ", r"\s+") for c in CHAINS), key=len, reverse=True))

# Upper-case words that look like symbols but are not tokens.
RESERVED_SYMBOLS = set(
    """
AND OR IF WHEN THEN BUY SELL SL TP USD UTC RSI EMA SMA MACD ATH ATL AM PM OK PLS DCA TF I A AN THE IN ON OF AT
MY IT TO BY NO ANY ALL BOTH STOP LOSS TAKE PROFIT PRICE VOLUME ID AI API PNL ROI APY BOT DEX CEX LONG SHORT NOT
NEW MA
""".split()
)
# Lower-case words that can sit where a token is expected ("buy the dip") but are not tokens.
NON_TOKEN_WORDS = set(
    """
balance equity portfolio capital funds money account wallet bankroll cash stack price volume profit loss
stop target drop dip rise pump gain spike level threshold amount size market hour hours minute minutes day
days daily hourly average case total half everything all quarter third strategy percent value above below
over under it them me us that this what which dollars dollar usd usdt usdc bucks order orders limit
condition conditions rule rules signal signals trigger triggers timeframe instead
""".split()
)

# -- leftovers ------------------------------------------------------------------------------------

# Words that carry no meaning of their own here; leftovers made only of these are ignored.
FILLER = set(
    """
a an the i im i'm me my mine we our you your it its it's this that these those there here is are was be been
being am do does did to of in on at by for with from into onto as so and or but if when whenever once then
than while after before until till also just only please pls plz kindly ok okay thanks thank hi hello hey
want wanna would like let lets let's can could should shall will might must need needs go goes going get gets
make it's strategy bot trade trades trading token coin price prices its value some any more much very
set use using change update switch instead now new rule rules condition conditions trigger triggers
time timeframe frame candle candles chart average avg mean normal something whatever yes yeah sure new
position positions buy buys buying sell sells selling purchase enter exit close long entry order
automatically auto always every each per again both either all any percent pct level levels market
""".split()
)
# Leftover words that mean the user asked for something this parser could not represent.
BLOCKING_WORDS = set(
    """
trailing trail rsi macd ema sma ma bollinger leverage short shorts shorting limit dca grid stop loss profit
volume breakeven hedge margin futures fibonacci vwap atr stochastic ichimoku partial
""".split()
)

# -- edits ----------------------------------------------------------------------------------------

# What "change the <word> to …" / "remove the <word> condition" refers to: condition types.
EDIT_TARGETS: dict[str, tuple[str, ...]] = {
    "drop": ("price_drop",),
    "dip": ("price_drop",),
    "fall": ("price_drop",),
    "rise": ("price_rise",),
    "pump": ("price_rise",),
    "gain": ("price_rise",),
    "volume": ("volume_spike",),
    "volume spike": ("volume_spike",),
    "spike": ("volume_spike",),
    "level": ("price_level",),
    "price level": ("price_level",),
    "threshold": ("price_drop", "price_rise", "volume_spike"),
    "trigger": ("price_drop", "price_rise", "volume_spike"),
    "sell": (),
    "exit": (),
}
# Targets that name every thresholded condition, so they are ambiguous with several.
AMBIGUOUS_TARGETS = ("threshold", "trigger")
# Targets that remove the exit (signal "sell") conditions rather than a condition type.
EXIT_TARGETS = ("sell", "exit")
