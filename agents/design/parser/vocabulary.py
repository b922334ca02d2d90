"""The parser's vocabulary: words, synonyms, units, chain aliases and the regex fragments built from them.

Everything a rule matches on is named here, so a new synonym is a one-line change and every rule
that reads "a drop verb" or "a percent" agrees on what that is. Text is matched lower-cased
(see `scanner.Scanner`) unless a rule says otherwise.

The words below are English; every fragment then appends the other languages' words for the same
concept (`LANGUAGES`, see `lexicon`), after the English ones so English is matched as before.
"""

from __future__ import annotations

import re
from typing import Any

from agents.design.parser.languages import LANGUAGES

# An alternation that never matches: the slot of a concept no other language fills.
_NEVER = r"(?!)"


def _more(concept: str) -> str:
    """Every other language's alternatives for `concept`, each after a "|" ("" when none adds any)."""
    return "".join("|" + alt for lex in LANGUAGES if (alt := getattr(lex, concept)))


def _only(concept: str) -> str:
    """The other languages' alternatives for `concept` alone (for slots English does not have)."""
    return _more(concept)[1:] or _NEVER


def _phrase(text: str) -> str:
    return r"\s+".join(re.escape(w) for w in text.split())


def _more_keys(concept: str) -> str:
    """The other languages' dictionary keys for `concept` as alternatives (longest first), each after a "|"."""
    keys = sorted({k for lex in LANGUAGES for k in getattr(lex, concept)}, key=len, reverse=True)
    return "".join("|" + _phrase(k) for k in keys)


def _merged(concept: str, english: dict[str, Any]) -> dict[str, Any]:
    """English's dictionary for `concept` plus every other language's."""
    merged = dict(english)
    for lex in LANGUAGES:
        merged.update(getattr(lex, concept))
    return merged


def _union(concept: str, english: set[str]) -> set[str]:
    return english.union(*(getattr(lex, concept) for lex in LANGUAGES))

# Numbers above this are typos or attacks, never a usable threshold, price or amount.
MAX_NUMBER = 1e12

# -- numbers and percentages ---------------------------------------------------------------------

# A decimal comma ("2,5%", "0,001"): one or two digits after it, or four and more, or a leading 0;
# exactly three digits after a comma stay an English thousands separator ("3,500").
DECIMAL_COMMA = r"(?:0,\d+|\d+,(?:\d{1,2}|\d{4,})(?!\d))"
DECIMAL_COMMA_NUMBER = re.compile(DECIMAL_COMMA + r"(?:e[-+]?\d+)?")
# A comma that separates phrases ("drops 5%, stop loss 3%"), not the decimal comma of "2,5".
LIST_COMMA = r"(?!(?<=(?<![\w.])0),(?=\d)|(?<=\d),(?:\d{1,2}|\d{4,})(?!\d)),"
NUM_CORE = (
    r"(?:[-+−]\s?)?"  # a sign is captured so negatives can be rejected with a reason
    r"(?:nan|inf(?:inity)?|" + DECIMAL_COMMA + r"(?:e[-+]?\d+)?|"
    r"(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?(?:e[-+]?\d+)?|\.\d+(?:e[-+]?\d+)?)"
)
# A number that is not the start of a longer word ("5m" is a timeframe, not the number 5).
NUM = NUM_CORE + r"(?!\w|\.\d)"
PCT = r"\s*(?:%|percent\b|pct\b|per\s+cent\b" + _more("pct") + ")"
OPT_PCT = rf"(?:{PCT})?"
# Words that may sit between a verb and its number: "drops by more than 5%".
MODIFIER = r"(?:(?:by|more\s+than|over|at\s+least|about|around|roughly|another|of|a" + _more("modifiers") + r")\s+)*"
BALANCE = (
    r"(?:my\s+|the\s+|our\s+|of\s+)?(?:available\s+|total\s+|usdc\s+)?"
    r"(?:balance|equity|portfolio|capital|funds|money|account|wallet|bankroll|cash|usdc|stack)"
)
OF_BALANCE = rf"of\s+{BALANCE}" + _more("of_balance")
# What may follow a spelled-out amount ("half my balance", "setengah saldo", "metade do saldo").
AMOUNT_WORD_BALANCE = rf"(?:of\s+)?{BALANCE}" + _more("of_balance") + _more("balance_nouns")
# Spelled-out amounts of the balance.
AMOUNT_WORDS: dict[str, float] = _merged("amount_words", {"half": 50.0, "a quarter": 25.0, "a third": 100 / 3})
AMOUNT_WORD_ALT = r"half|a\s+quarter|a\s+third|everything|all" + _more_keys("amount_words")
BUY_VERBS = r"buy(?:ing)?|purchase|enter|go\s+long|long|ape\s+in(?:to)?" + _more("buy")
SELL_VERBS = r"sell(?:ing)?|exit|close(?:\s+(?:it|the\s+position))?|get\s+out|take\s+profits?" + _more("sell")
EXIT_VERBS = r"sell|exit|close" + _more("sell")
# Verbs whose amount is a buy ("buy 10%", "beli 10%"), and the other verbs an amount follows.
BUY_AMOUNT_VERBS = re.compile(r"buy|purchase" + _more("buy"))
AMOUNT_VERBS = r"buy|purchase|spend|invest|use|allocate|put|bet|risk|with" + _more("amount_verbs")
AMOUNT_WITH = r"with" + _more("with_words")
AMOUNT_WORD_VERBS = r"buy|spend|use|invest|put\s+in" + _more("amount_verbs")
FIXED_AMOUNT_VERBS = r"buy|spend|invest|use|put" + _more("amount_verbs")
CURRENCIES = r"\$|usd[ct]?|dollars?|bucks" + _more("currencies")
AMOUNT_FIELDS = (r"amount|size|position\s+size|position|allocation|order\s+size|trade\s+size|stake|buy\s+size"
                 + _more("amount_fields"))
FIELD_JOINERS = r"to|=|:|of|is|at|->" + _more("field_joiners")
# Languages where the amount may follow the token ("beli PEPE 10%"); English keeps "buy 10% PEPE".
BUY_TOKEN_AMOUNT_VERBS = _only("buy")
ALL_OF_IT = 100.0

# -- price moves ----------------------------------------------------------------------------------

DROP_VERBS = (
    r"drops?|dropped|dropping|dips?|dipped|dipping|falls?|fell|falling|declines?|declined|decreases?|"
    r"decreased|dumps?|dumped|crash(?:es|ed)?|tanks?|tanked|plunges?|plunged|slides?|slid|sinks?|sank|"
    r"goes\s+down|went\s+down|moves?\s+down|is\s+down|gets\s+down|loses|lost|corrects?|corrected"
    + _more("drop_verbs")
)
RISE_VERBS = (
    r"rises?|rose|risen|rising|pumps?|pumped|climbs?|climbed|gains?|gained|increases?|increased|jumps?|"
    r"jumped|surges?|surged|rall(?:y|ies|ied)|spikes?|spiked|moons?|mooned|goes\s+up|went\s+up|moves?\s+up|"
    r"is\s+up|soars?|soared|rockets?|rocketed|grows?|grew"
    + _more("rise_verbs")
)
DROP_NOUNS = (r"drop|dip|fall|decline|decrease|dump|crash|correction|pullback|down\s*move|downturn|sell-?off"
              + _more("drop_nouns"))
RISE_NOUNS = r"rise|pump|gain|increase|jump|surge|rally|spike|up\s*move|breakout|move\s+up" + _more("rise_nouns")
NOUN_JOINERS = r"of" + _more("noun_joiners")
# Between a percent and its noun ("5% de queda"): only other languages have one.
PCT_NOUN_JOINER = rf"(?:(?:{_only('noun_joiners')})\s+)?"
VOLUME_VERBS = (
    r"(?:spikes?|spiked|jumps?|jumped|surges?|surged|rises?|rose|increases?|increased|goes\s+up|is\s+up|"
    r"grows?|grew|explodes?|pumps?|is|gets|climbs?" + _more("volume_verbs") + ")"
)
# Volume nouns the number follows ("lonjakan volume 200%"), other languages only.
VOLUME_NOUNS = _only("volume_nouns")
VOLUME_TIMES = r"x|times" + _more("times")
VOLUME_MULTIPLE_ALT = r"doubles|doubled|triples|tripled|quadruples" + _more("multiple_words")
VOLUME_TO = r"to" + _more("to_words")
ABOVE_AVERAGE = r"above|over|more\s+than" + _more("above_average")
AVERAGES = r"average|avg|mean|normal|usual" + _more("averages")
AVERAGE_DETS = r"the|its" + _more("average_dets")
# Volume multiples spelled as words: "volume doubles" is a 2x volume.
VOLUME_MULTIPLE_WORDS = _merged("multiple_stems", {"doubl": 2, "tripl": 3})
VOLUME_MULTIPLE_OTHER = 4  # "quadruples"
LEVEL_VERBS = (
    r"crosses|cross|crossed|crossing|breaks|break|broke|breaking|goes|go|moves?|rises?|"
    r"climbs?|pushes|gets|trades?|is|closes?|jumps?|pumps?|falls?|drops?|dips?|sinks?|slides?|crashes|"
    r"comes"
    + _more("level_verbs")
)
ABOVE = r"above|over" + _more("above")
BELOW = r"below|under|beneath" + _more("below")
ABOVE_RX = re.compile(ABOVE)
# What a level's number must not be followed by (it would be a percent or a multiple, not a price).
LEVEL_NOT_AFTER = _more("pct") + _more("times")
PRICE_WORDS = r"price" + _more("price_words")
LEVEL_NOUNS = r"level\s+(?:of\s+)?|price\s+(?:of\s+)?" + "".join(
    rf"|(?:{lex.level_nouns})\s+" for lex in LANGUAGES if lex.level_nouns)
# Indicators whose levels cannot be expressed ("rsi below 30"): named so the refusal is clear.
INDICATORS = r"rsi|macd|ema|sma|ma|vwap|atr|stoch\w*|bollinger|volume|market\s+cap|mcap|tvl" + _more("indicators")

# -- stop-loss and take-profit ------------------------------------------------------------------

STOP_LOSS_WORDS = (r"(?:stop[\s-]*loss(?:es)?|stoploss|stop|sl|cut\s+(?:the\s+)?loss(?:es)?|max(?:imum)?\s+loss"
                   + _more("stop_loss") + ")")
TAKE_PROFIT_WORDS = (
    r"(?:take[\s-]*profits?|takeprofit|tp|profit\s+target|target|take\s+gains?|take\s+profit\s+target"
    + _more("take_profit") + ")"
)
# What may join a stop-loss/take-profit word to its number: "stop loss at 3%", "tp: 10".
RISK_JOINER = r"\s*(?:at|of|to|=|:|is|on|=>|->|around|about|set\s+to|@" + _more("risk_joiners") + r")?\s*"
REMOVE_VERBS = r"(?:no|without|remove|disable|delete|clear|drop|turn\s+off|cancel" + _more("remove_verbs") + ")"
DETERMINERS = r"the|my|a|any" + _more("determiners")
EXIT_PREPS = r"at|with|on|after|for" + _more("exit_preps")
PROFIT_WORDS = r"profit|gain|up" + _more("profit_words")
LOSS_WORDS = r"loss|down" + _more("loss_words")
# The same concepts in the other languages alone, for their own word orders ("jual saat untung 10%").
SELL_VERBS_MORE, SELL_VERBS_ONLY = _more("sell"), _only("sell")
EXIT_PREPS_ONLY, NOUN_JOINERS_ONLY = _only("exit_preps"), _only("noun_joiners")
PROFIT_WORDS_ONLY, LOSS_WORDS_ONLY = _only("profit_words"), _only("loss_words")

# -- timeframes -----------------------------------------------------------------------------------

# English units by their first letter; the other languages' unit words by name ("hari" is a day).
UNIT_MINUTES = {"m": 1, "h": 60, "d": 1440}
UNIT_WORDS: dict[str, int] = _merged("units", {})
# Timeframes given as one word (or phrase); "_" marks an unsupported one (reported, not used).
TIMEFRAME_WORDS: dict[str, str] = _merged(
    "tf_words", {"hourly": "1h", "hour": "1h", "daily": "1d", "day": "1d", "minute": "_1m"})
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
WORD_NUMBERS = _merged("word_numbers", WORD_NUMBERS)
_UNITS_MORE = _more_keys("units")
TF = (
    r"(?:(?:in|within|over|during|inside|across|on|per|every|for|of|at|using|a|an" + _more("tf_prefixes") + r")\s+)?"
    r"(?:(?:the|a|an)\s+)?(?:(?:last|past|same|next" + _more("tf_last") + r")\s+)?"
    r"(?:(?P<tfn>\d+(?:\.\d+|,\d{1,2}(?!\d))?)\s*"
    r"(?P<tfu>minutes?|mins?|m|hours?|hrs?|hr|h|days?|d" + _UNITS_MORE + r")\b"
    # Spelled-out counts need a space and a full unit word ("an hour"; never "and").
    r"|(?P<tfn2>an?|one|two|four|five|fifteen|thirty|sixty|twenty[-\s]four" + _more_keys("word_numbers") + r")\s+"
    r"(?P<tfu2>minutes?|mins?|hours?|hrs?|days?" + _UNITS_MORE + r")\b"
    r"|(?P<tfw>hourly|daily|hour|day|minute|(?:" + (_more_keys("tf_words")[1:] or _NEVER) + r")\b))"
    r"(?:\s+(?:timeframe|time\s*frame|candles?|chart|window|bars?|period|interval" + _more("tf_trailers") + r"))?"
)


def unit_minutes(unit: str) -> int:
    """Minutes in one `unit` as matched by `TF` ("h", "hours", "jam", "horas")."""
    return UNIT_WORDS.get(unit) or UNIT_MINUTES[unit[0]]

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
CHAIN_PREPS = r"on|via|using|at" + _more("chain_preps")
# "network" before the chain name ("na rede bsc"): only other languages put it there.
CHAIN_NOUN_BEFORE = rf"(?:(?:{_only('chain_nouns')})\s+)?"
CHAIN_FIELD_NOUNS = r"chain" + _more("chain_nouns")
# Words after which a lower-case word is a token ("buy pepe"), and what may sit between ("of").
TOKEN_LEADS = (r"buy|sell|token|coin|trade|trading|switch\s+to|change\s+(?:the\s+)?(?:token|coin)\s+to|use|into|in|of|"
               r"on|for" + _more("token_leads"))
TOKEN_FILLERS = r"of|in|into|some|more|the|token|coin" + _more("token_fillers")
# Other languages' "when": a lower-case word after one is a token only before a move verb
# ("quando sol cair 4%"), since their verbs and articles often sit there ("kalau ada ...").
WHEN_WORDS_MORE = _only("when")
MOVE_VERBS_MORE = "|".join((_only("drop_verbs"), _only("rise_verbs"), _only("level_verbs")))

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
NON_TOKEN_WORDS = _union("non_token", NON_TOKEN_WORDS)

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
FILLER = _union("filler", FILLER)
# Leftovers also ignore words that are filler in a language but may be a token in caps ("ada"/ADA).
LEFTOVER_FILLER = _union("soft_filler", FILLER)
# Leftover words that mean the user asked for something this parser could not represent.
BLOCKING_WORDS = set(
    """
trailing trail rsi macd ema sma ma bollinger leverage short shorts shorting limit dca grid stop loss profit
volume breakeven hedge margin futures fibonacci vwap atr stochastic ichimoku partial
""".split()
)
BLOCKING_WORDS = _union("blocking", BLOCKING_WORDS)

# -- structure ------------------------------------------------------------------------------------

# Between two entry conditions: "and" means all must hold, "or" any.
# "with" joins conditions too ("drops 5% with a volume spike"): both must hold.
AND_WORDS = r"\b(?:and|plus|with|along\s+with|together\s+with)\b|&" + _more("and_words")
OR_WORDS = r"\bor\b" + _more("or_words")
# The other languages' "and"/"or" are claimed by a rule rather than listed as filler: the
# Portuguese "e" is a word only where the English "e" of "e.g." is not.
CONNECTIVES_MORE = "|".join((_only("and_words"), _only("or_words")))
THEN_WORDS = r"then" + _more("then_words")
ADD_MARKERS_MORE = _only("add_markers")
# "Start over": the message describes a strategy from nothing (alone: the strategy is cleared).
RESET_WORDS = (r"start\s+(?:over|again|afresh|from\s+scratch)|from\s+scratch|begin\s+again|reset|"
               r"clear\s+(?:the\s+|my\s+)?strategy|forget\s+(?:the\s+|my\s+)?(?:old\s+)?strategy"
               + _more("reset"))

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
