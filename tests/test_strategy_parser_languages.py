"""Indonesian and Portuguese phrasings of the rule-based parser (issue 13).

Each sentence is paired with its English twin and must give the same model; decimal commas,
leftovers and refusals work as in English; and English is unaffected: the parser gives the same
results as an English-only build of itself (the other languages' words not loaded at all).
"""

from __future__ import annotations

import json
import random
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from agents.design.notes import Note
from agents.design.parser import ParseResult, parse_strategy_text
from bot.design_text import parse_text
from engine.strategy import Strategy
from tests.test_strategy_parser import BASE, EDITS, FAILURES, NEW_STRATEGIES

# (Indonesian, English)
INDONESIAN: list[tuple[str, str]] = [
    ("beli PEPE 10% kalau turun 5% dalam 1 jam, stop loss 3%", "buy 10% PEPE when it drops 5% in 1 hour, stop loss 3%"),
    ("beli 20% SOL jika anjlok 8% dalam 4 jam", "buy 20% SOL if it drops 8% in 4 hours"),
    ("beli DOGE 15% ketika naik 12% dalam 5 menit", "buy 15% DOGE when it rises 12% in 5 minutes"),
    ("beli 10% PEPE saat jatuh 2,5% selama 15 menit, sl 1,5%",
     "buy 10% PEPE when it falls 2.5% within 15 minutes, sl 1.5%"),
    ("beli 25% dari saldo di SOL bila volume melonjak 200% dalam 15 menit",
     "buy 25% of my balance in SOL when volume spikes 200% in 15 minutes"),
    ("beli PEPE kalau ada lonjakan volume 150% dalam 1 jam", "buy PEPE when volume spikes 150% in 1 hour"),
    ("beli WETH jika harga di atas 3500", "buy WETH if price crosses above 3500"),
    ("beli 10% PEPE kalau turun 5% dan volume melonjak 100%, tp 12 sl 4",
     "buy 10% PEPE when it drops 5% and volume spikes 100%, tp 12 sl 4"),
    ("beli 10% pepe di bsc kalau turun 5% atau naik 10% dalam 30 menit",
     "buy 10% pepe on bsc when it dips 5% or rises 10% in 30 minutes"),
    ("beli 10% PEPE kalau turun 5% dalam 1 jam, jual kalau naik 8%",
     "buy 10% PEPE when it drops 5% in 1h, sell when it rises 8%"),
    ("beli 10% PEPE kalau turun 5%, jual kalau harga di bawah 0,001",
     "buy 10% PEPE when it drops 5%, sell if it falls below 0.001"),
    ("beli setengah saldo SOL di solana kalau turun 10% dalam 4 jam",
     "Buy half my balance in SOL on solana when it drops 10% in 4h"),
    ("beli PEPE 10% dari saldo kalau turun 5% per hari, batas rugi 3%, ambil untung 10%",
     "buy 10% PEPE when it drops 5% per day, stop loss 3%, take profit 10%"),
    ("beli 10% PEPE kalau turun 5 persen dalam 4 jam, cut loss 2%",
     "buy 10% PEPE when it drops 5% in 4h, stop loss 2%"),
    ("beli 10% PEPE kalau volume naik 3x dalam 1 jam", "buy 10% pepe when volume is 3x the average in 1h"),
    ("kalau SOL anjlok 8% dalam 4 jam, beli 30%", "if SOL dumps 8% in 4h, buy 30%"),
    ("BELI PEPE 10% KALAU TURUN 5% DALAM 1 JAM", "BUY 10% PEPE WHEN IT DROPS 5% IN 1H"),
    ("beli 10% PEPE saat turun 5% dalam sejam", "buy 10% PEPE when it drops 5% in an hour"),
    ("beli 10% PEPE kalau turun 5%, jual saat untung 15%", "buy 10% PEPE when it drops 5%, sell at 15% profit"),
    ("beli 10% PEPE kalau turun 5%, tanpa stop loss", "buy 10% PEPE when it drops 5%, no stop loss"),
    ("kalau harga pepe turun 5% dalam satu jam, beli 10%", "buy 10% pepe when it drops 5% in one hour"),
    ("beli 10% PEPE kalau turun lebih dari 5% dalam 1 hari", "buy 10% PEPE when it drops more than 5% in 1 day"),
]
# (Portuguese, English)
PORTUGUESE: list[tuple[str, str]] = [
    ("comprar SOL quando cair 4% em 4 horas", "buy SOL when it drops 4% in 4 hours"),
    ("comprar 10% de PEPE quando cair 5% em 1 hora, stop loss de 3%",
     "buy 10% PEPE when it drops 5% in 1 hour, stop loss 3%"),
    ("compre 20% do saldo em SOL se cair 8% em 4h", "buy 20% of my balance in SOL if it drops 8% in 4h"),
    ("comprar 15% de DOGE quando subir 12% em 5 minutos", "buy 15% DOGE when it rises 12% in 5 minutes"),
    ("comprar 10% de PEPE quando cair 2,5% em 15 minutos, stop 1,5%",
     "buy 10% PEPE when it falls 2.5% within 15 minutes, sl 1.5%"),
    ("comprar PEPE quando o volume disparar 200% em 15 minutos", "buy PEPE when volume spikes 200% in 15 minutes"),
    ("comprar PEPE quando houver um pico de volume de 150% em 1 hora", "buy PEPE when volume spikes 150% in 1 hour"),
    ("comprar WETH se o preço ficar acima de 3500", "buy WETH if price crosses above 3500"),
    ("comprar 10% de PEPE quando cair 5% e o volume disparar 100%, take profit 12, stop 4",
     "buy 10% PEPE when it drops 5% and volume spikes 100%, tp 12 sl 4"),
    ("comprar 10% de pepe na bsc quando cair 5% ou subir 10% em 30 minutos",
     "buy 10% pepe on bsc when it dips 5% or rises 10% in 30 minutes"),
    ("comprar 10% de PEPE quando cair 5% em 1 hora, vender quando subir 8%",
     "buy 10% PEPE when it drops 5% in 1h, sell when it rises 8%"),
    ("comprar 10% de PEPE quando cair 5% e vender se cair abaixo de 0,001",
     "buy 10% PEPE when it drops 5% and sell if it falls below 0.001"),
    ("comprar metade do saldo em SOL na solana quando cair 10% em 4 horas",
     "Buy half my balance in SOL on solana when it drops 10% in 4h"),
    ("comprar 10% de PEPE quando cair 5% por dia, parar perda em 3%, realizar lucro de 10%",
     "buy 10% PEPE when it drops 5% per day, stop loss 3%, take profit 10%"),
    ("comprar 10% de PEPE quando cair 5 por cento em 4 horas, alvo de 20%",
     "buy 10% PEPE when it drops 5% in 4h, take profit 20%"),
    ("comprar 10% de PEPE em uma queda de 7% em 30 minutos", "buy 10% PEPE on a 7% dip over 30 min"),
    ("se SOL despencar 8% em 4h, comprar 30%", "if SOL dumps 8% in 4h, buy 30%"),
    ("COMPRAR SOL QUANDO CAIR 4% EM 4 HORAS", "buy SOL when it drops 4% in 4 hours"),
    ("comprar 10% de PEPE quando cair 5%, vender com 15% de lucro",
     "buy 10% PEPE when it drops 5%, sell at 15% profit"),
    ("comprar PEPE quando o volume dobrar", "buy $PEPE when volume doubles"),
    ("comprar SOL 20% do saldo quando cair 4% em uma hora", "buy 20% of my balance in SOL when it drops 4% in an hour"),
    ("comprar 10% de PEPE quando cair 5%, sem stop loss", "buy 10% PEPE when it drops 5%, no stop loss"),
    ("quando o preço do sol cair 4% em 4 horas, comprar 10%", "buy 10% sol when it drops 4% in 4 hours"),
    ("comprar 10% de PEPE com uma queda de 5% nas últimas 4 horas",
     "buy 10% PEPE when it drops 5% in the last 4 hours"),
    ("comprar 10% de PEPE quando o volume for 3 vezes a média", "buy 10% pepe when volume is 3x the average in 1h"),
]
PAIRS = INDONESIAN + PORTUGUESE


def _ok(text: str, current: Strategy | None = None) -> Strategy:
    result = parse_strategy_text(text, current)
    assert result.strategy is not None, parse_text(result)
    return result.strategy


def _codes(result: ParseResult) -> tuple[str | None, list[str]]:
    """The failure and its reasons by code (their words are the user's own, so they differ by language)."""
    assert result.failure is not None
    return result.failure.code, [n.code for n in result.failure.params.get("reasons", ())]


@pytest.mark.parametrize(("text", "english"), PAIRS, ids=[t for t, _ in PAIRS])
def test_same_model_as_the_english_twin(text: str, english: str) -> None:
    got, want = parse_strategy_text(text), parse_strategy_text(english)
    assert want.fully_understood, parse_text(want)
    assert got.strategy == want.strategy, parse_text(got)
    assert got.fully_understood, got.not_understood


def test_the_issue_examples_read_every_field() -> None:
    # Beyond equality with English: the values themselves, so a shared misreading cannot pass.
    pepe = _ok("beli PEPE 10% kalau turun 5% dalam 1 jam, stop loss 3%").to_config()
    assert pepe["conditions"] == [{"token": "PEPE", "type": "price_drop", "threshold": 5.0, "timeframe": "1h",
                                   "signal": "buy"}]
    assert pepe["actions"] == [{"token": "PEPE", "type": "buy", "amount_percent": 10.0}]
    assert pepe["risk_management"] == {"stop_loss_percent": 3.0}
    sol = _ok("comprar SOL quando cair 4% em 4 horas").to_config()
    assert [(c["type"], c["threshold"], c["timeframe"]) for c in sol["conditions"]] == [("price_drop", 4.0, "4h")]
    assert sol["actions"][0]["token"] == "SOL"


def test_the_echo_quotes_the_users_own_words() -> None:
    result = parse_strategy_text("comprar SOL quando cair 4% em 4 horas")
    assert Note("understood.buy_when", words="cair 4% em 4 horas") in result.understood


@pytest.mark.parametrize(
    ("text", "path", "value"),
    [
        ("beli 10% PEPE kalau turun 2,5% dalam 1 jam", ("conditions", 0, "threshold"), 2.5),
        ("comprar 10% de PEPE quando cair 5%, stop loss de 1,25%", ("risk_management", "stop_loss_percent"), 1.25),
        ("comprar 2,5% do saldo em PEPE quando cair 5%", ("actions", 0, "amount_percent"), 2.5),
        ("beli PEPE kalau harga di bawah 0,00001", ("conditions", 0, "price"), 0.00001),
        ("beli PEPE kalau volume naik 2,5x", ("conditions", 0, "threshold"), 150.0),
        ("comprar PEPE quando cair 4,75 por cento", ("conditions", 0, "threshold"), 4.75),
        # Exactly three digits after a comma stay an English thousands separator.
        ("buy weth if price crosses above 3,500 usd", ("conditions", 0, "price"), 3500.0),
        ("beli WETH kalau harga di atas 3,500", ("conditions", 0, "price"), 3500.0),
    ],
)
def test_decimal_commas(text: str, path: tuple[Any, ...], value: float) -> None:
    got: Any = _ok(text).to_config()
    for key in path:
        got = got[key]
    assert got == pytest.approx(value)


@pytest.mark.parametrize(
    "text",
    ["buy 10% PEPE when it drops 5%, stop loss 3%", "buy 10% PEPE when it drops 5%,stop loss 3%",
     "beli 10% PEPE kalau turun 5%,sl 3%", "comprar 10% de PEPE quando cair 5%, stop 3%"],
)
def test_a_list_comma_still_separates_two_phrases(text: str) -> None:
    cfg = _ok(text).to_config()
    assert cfg["conditions"][0]["threshold"] == 5.0
    assert cfg["risk_management"]["stop_loss_percent"] == 3.0


def test_a_decimal_comma_does_not_end_a_clause() -> None:
    # Both exits follow "jual": a comma inside 2,5 must not cut the second one off from it.
    english = _ok("buy 10% PEPE when it drops 5%, sell if it rises 2.5% or drops 1.5%")
    indonesian = _ok("beli 10% PEPE kalau turun 5%, jual kalau naik 2,5% atau turun 1,5%")
    assert indonesian == english
    # both exits were read (with no window of their own they are a take-profit and a stop-loss)
    rm = indonesian.risk_management
    assert (rm.take_profit_percent, rm.stop_loss_percent) == (2.5, 1.5)


def test_a_leftover_keeps_its_decimal_comma() -> None:
    result = parse_strategy_text("beli 10% PEPE kalau turun 5%, tunggu 2,5 candle")
    assert result.strategy is None and result.not_understood == ["tunggu 2,5 candle"]


@pytest.mark.parametrize(
    ("text", "english"),
    [
        ("comprar 10% de PEPE se cair 5% em 1 hora, se subir 10% em 30 minutos",
         "buy 10% PEPE if it drops 5% in 1h, if it rises 10% in 30 minutes"),
        ("comprar 10% de PEPE se cair 5% em 1 hora e subir 10% em 30 minutos",
         "buy 10% PEPE if it drops 5% in 1h and rises 10% in 30 minutes"),
        ("comprar 10% de PEPE se cair 5% em 1 hora ou subir 10% em 30 minutos",
         "buy 10% PEPE if it drops 5% in 1h or rises 10% in 30 minutes"),
    ],
)
def test_short_words_are_whole_words(text: str, english: str) -> None:
    # "em"/"se"/"de" contain no "e" of their own: only the word "e" makes both conditions required.
    assert _ok(text) == _ok(english)


@pytest.mark.parametrize(
    ("text", "english", "ignored"),
    [
        ("beli 10% PEPE kalau turun 5% dalam 1 jam, sampai ke bulan wkwk",
         "buy 10% PEPE when it drops 5% in 1h, to the moon lol", "sampai ke bulan wkwk"),
        ("comprar 10% de PEPE quando cair 5% em 1 hora, rumo à lua",
         "buy 10% PEPE when it drops 5% in 1h, to the moon lol", "rumo à lua"),
    ],
)
def test_harmless_unknown_words_are_reported_not_blocking(text: str, english: str, ignored: str) -> None:
    result = parse_strategy_text(text)
    assert result.strategy == parse_strategy_text(english).strategy
    assert result.not_understood == [ignored] and not result.fully_understood
    assert parse_text(result).endswith(f" I ignored: '{ignored}'.")


@pytest.mark.parametrize(
    ("text", "english"),
    [
        ("beli 10% PEPE kalau turun 5% dalam 1 jam, dan tunggu 3 candle",
         "buy 10% PEPE when it drops 5% in 1h, and wait 3 candles"),
        ("comprar 10% de PEPE quando cair 5% em 1 hora, e espere 3 velas",
         "buy 10% PEPE when it drops 5% in 1h, and wait 3 candles"),
        ("beli 10% PEPE kalau turun 5%, trailing stop 3%", "buy 10% PEPE when it drops 5%, trailing stop 3%"),
        ("comprar 10% de PEPE quando cair 5%, stop móvel de 3%", "buy 10% PEPE when it drops 5%, trailing stop 3%"),
        ("beli 10% PEPE kalau turun 5% dalam 2 jam", "buy 10% PEPE when it drops 5% in 2 hours"),
        ("comprar 10% de PEPE quando cair 5% em 2 horas", "buy 10% PEPE when it drops 5% in 2 hours"),
        ("beli $50 PEPE kalau turun 5%", "buy $50 of PEPE when it drops 5%"),
        ("comprar 50 dólares de PEPE quando cair 5%", "buy $50 of PEPE when it drops 5%"),
        ("beli 10% PEPE kalau turun 5%, jual 50%", "buy 10% PEPE when it drops 5%, sell 50%"),
        ("comprar 10% de PEPE quando cair 5%, vender 50%", "buy 10% PEPE when it drops 5%, sell 50%"),
        ("beli 10% PEPE kalau turun -5%", "buy 10% PEPE when it drops -5%"),
        ("beli 10% PEPE dan SOL kalau turun 5%", "buy 10% PEPE and SOL when it drops 5%"),
        ("comprar PEPE", "buy PEPE"),
        ("olá, tudo bem?", "hello there"),
    ],
)
def test_refusals_and_blocking_leftovers_match_english(text: str, english: str) -> None:
    got, want = parse_strategy_text(text), parse_strategy_text(english)
    assert got.strategy is None and want.strategy is None
    assert _codes(got) == _codes(want), (parse_text(got), parse_text(want))


def test_a_week_is_named_but_not_a_supported_timeframe() -> None:
    for text in ("beli 10% PEPE kalau turun 5% dalam 1 minggu", "comprar 10% de PEPE quando cair 5% em 1 semana"):
        assert "not a supported timeframe" in parse_text(parse_strategy_text(text))


def test_indicator_levels_are_refused_in_each_language() -> None:
    for text in ("beli 10% PEPE kalau rsi di bawah 30", "comprar 10% de PEPE quando o ifr estiver abaixo de 30"):
        result = parse_strategy_text(text)
        assert result.strategy is None
        assert "levels are not supported" in parse_text(result)


@pytest.mark.parametrize(
    ("text", "english"),
    [
        ("ubah stop loss jadi 5%", "change stop loss to 5%"),
        ("mude o stop para 5%", "change stop loss to 5%"),
        ("tanpa take profit", "remove take profit"),
        ("sem take profit", "remove take profit"),
        ("pakai 4 jam", "use 4h instead"),
        ("usar 4 horas", "use 4h instead"),
        ("ganti ke SOL", "switch to SOL"),
        ("trocar para SOL", "switch to SOL"),
        ("di base", "on base"),
        ("na base", "on base"),
        ("juga beli kalau volume melonjak 100%", "also buy when volume spikes 100%"),
        ("também comprar quando o volume disparar 100%", "also buy when volume spikes 100%"),
    ],
)
def test_simple_edits(text: str, english: str) -> None:
    current = _ok(BASE)
    result = parse_strategy_text(text, current)
    assert result.strategy == _ok(english, current) and result.fully_understood, parse_text(result)


_ENGLISH_ONLY = r"""
import json, sys, types
languages = types.ModuleType("agents.design.parser.languages")
languages.LANGUAGES = ()
sys.modules["agents.design.parser.languages"] = languages
from agents.design.parser import parse_strategy_text
from agents.design.parser import vocabulary
assert vocabulary.LANGUAGES == () and "beli" not in vocabulary.BUY_VERBS
from engine.strategy import parse_strategy
texts, base = json.load(sys.stdin)
current = parse_strategy(base)
print(json.dumps([[repr(parse_strategy_text(t)), repr(parse_strategy_text(t, current))] for t in texts]))
"""
_SOUP = (
    "buy sell 10% 2.5% PEPE pepe $PEPE SOL when if it drops rises dips falls pumps 5% in within 1h 4h 15m an hour "
    "4 hours 30 minutes a day per day daily and or , ; . stop loss tp sl take profit 3 volume spikes doubles 3x 200% "
    "above below crosses 3500 0.001 3,500 on bsc base solana eth - no remove half of my balance the then at 15% with "
    "use spend trailing rsi 1e309 nan % $ all-in also match all any either price level to moon lol wait candles"
).split()


def test_english_is_unaffected_by_the_other_languages() -> None:
    # The English phrasing tables, the English twins above and a seeded soup of English words, each
    # as a new strategy and as an edit of BASE: identical results with the other languages' words
    # loaded and without them.
    rng = random.Random(13)
    soup = [" ".join(rng.choice(_SOUP) for _ in range(rng.randint(1, 16))) for _ in range(600)]
    texts = sorted({t for t, _ in NEW_STRATEGIES + EDITS + FAILURES} | {en for _, en in PAIRS} | set(soup))
    base = _ok(BASE)
    payload = json.dumps([texts, base.to_config()])
    root = Path(__file__).resolve().parent.parent
    run = subprocess.run([sys.executable, "-c", _ENGLISH_ONLY], input=payload, capture_output=True, text=True,
                         cwd=root, check=True, timeout=120)
    english_only = json.loads(run.stdout)
    assert len(english_only) == len(texts)
    differ = [t for t, want in zip(texts, english_only, strict=True)
              if [repr(parse_strategy_text(t)), repr(parse_strategy_text(t, base))] != want]
    assert differ == []
