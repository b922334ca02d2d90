"""What one more language adds to the vocabulary: its synonyms for each concept the rules read.

English is the base vocabulary (`vocabulary`); a `Lexicon` (`indonesian`, `portuguese`) only *adds*
words. `vocabulary` appends them after the English alternatives of the same concept, so there is
still one rule table and a message may mix languages ("beli PEPE kalau turun 5%, stop loss 3%").
Appending keeps every English match as it was: an alternation tries the English words first and
reaches the added ones only where no English word fits.

Why synonyms and not a translation step that rewrites the message first: the scanner claims spans
of the user's own text, and what it echoes (the conditions understood, the leftovers) is quoted
from it; a rewritten text would need every offset mapped back, and it would echo English words
the user never wrote. The few word-order differences ("beli PEPE 10%", "jual saat untung 10%")
are small rules of their own instead.

Conventions: string fields are regex alternations over the lower-cased text, accents included
(input is NFKC-normalised); "" means the language adds nothing there. The rules put `\\b` or
`\\s+` around every slot, so a short word ("e", "em", "se", "di") only matches as a whole word;
`and_words`/`or_words` are whole patterns carrying their own guards.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Lexicon:
    """One language's words, by concept (see each field's comment for the slot it fills)."""

    name: str
    # -- orders and amounts --
    buy: str  # buy verbs: action words; an amount after one is a buy ("beli 10%")
    sell: str  # sell/exit verbs: action words, "jual 100%", "vender com 10% de lucro"
    amount_verbs: str  # verbs an amount follows, buy verbs included ("pakai 10%", "com 10%")
    with_words: str  # between such a verb and the amount ("beli dengan 10%")
    of_balance: str  # "of the balance", whole phrases ("dari saldo", "do saldo")
    balance_nouns: str  # the balance without "of" ("setengah saldo")
    amount_words: dict[str, float]  # spelled-out shares of the balance ("setengah": 50)
    amount_fields: str  # nouns naming the amount ("jumlah 20%")
    field_joiners: str  # between such a noun and its value ("jumlah jadi 20%")
    currencies: str  # fixed-sum units, refused ("50 dólares"); each ends in \b
    token_leads: str  # words after which a lower-case word is a token ("beli pepe")
    token_fillers: str  # between such a lead (and its amount) and the token ("10% de pepe")
    when: str  # "when"/"if": a lower-case word after one, before a move verb, is a token
    # -- price moves --
    drop_verbs: str  # a percent follows directly ("turun 5%"); nouns that work so included
    rise_verbs: str
    drop_nouns: str  # "queda de 5%", "5% de queda"
    rise_nouns: str
    noun_joiners: str  # between such a noun and its percent ("queda de 5%")
    modifiers: str  # between a verb and its number ("turun lebih dari 5%")
    pct: str  # percent words; each ends in \b
    # -- volume --
    volume_nouns: str  # volume-spike nouns before the number ("lonjakan volume 200%")
    volume_verbs: str  # "volume melonjak 200%"
    times: str  # multiple units ("3 vezes")
    multiple_words: str  # spelled multiples ("volume dobra")
    multiple_stems: dict[str, int]  # their stems and multiples ("dobr": 2)
    to_words: str  # "volume sobe para 3x"
    above_average: str  # "... acima da média"
    averages: str
    average_dets: str  # "3x a média"
    # -- price levels --
    level_verbs: str  # verbs before a level ("fica acima de 3500")
    above: str  # direction words; a level follows
    below: str
    price_words: str  # "price" before a level ("harga di atas 1")
    level_nouns: str  # between the direction and the number ("acima do nível de 3500")
    indicators: str  # indicators whose levels cannot be expressed ("ifr abaixo de 30")
    # -- stop-loss and take-profit --
    stop_loss: str
    take_profit: str
    risk_joiners: str  # between the word and its number ("stop loss de 3%")
    remove_verbs: str  # "tanpa stop loss"
    determiners: str  # "remova o stop"
    exit_preps: str  # "vender com 10% de lucro"
    profit_words: str
    loss_words: str
    # -- timeframes --
    tf_prefixes: str  # "dalam 1 jam", "em 4 horas"
    tf_last: str  # "nas últimas 4 horas"
    tf_trailers: str  # after the timeframe ("4 jam terakhir")
    units: dict[str, int]  # unit words and their minutes (a count comes first)
    tf_words: dict[str, str]  # whole timeframe phrases ("per jam": "1h"; "_": unsupported)
    word_numbers: dict[str, int]  # spelled-out counts before a unit ("uma hora")
    # -- chains --
    chain_preps: str  # "di bsc", "na solana"
    chain_nouns: str  # "na rede bsc", "rede: base"
    # -- structure --
    and_words: str  # between two entry conditions: all must hold
    or_words: str  # ... any is enough
    then_words: str  # clause breaks ("lalu jual kalau ...")
    add_markers: str  # edits: new conditions join the current ones ("juga")
    # -- leftovers --
    filler: frozenset[str]  # meaningless on their own; never tokens
    soft_filler: frozenset[str]  # meaningless in a leftover, but may be a token in caps ("ADA")
    non_token: frozenset[str]  # can sit where a token is expected but are not tokens
    blocking: frozenset[str]  # a leftover with one of these asked for something unsupported
    # -- conversation --
    reset: str = ""  # "start over": the message describes a strategy from nothing ("mulai ulang")


def words(text: str) -> frozenset[str]:
    """A word set written as whitespace-separated text."""
    return frozenset(text.split())
