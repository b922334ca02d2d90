"""The parser's rule table and result, beyond the phrasing tables of test_strategy_parser."""

from __future__ import annotations

import pytest

from agents.design.notes import Note
from agents.design.parser import parse_strategy_text
from agents.design.parser.table import RULES
from bot.design_text import ignored_text, parse_text

BASE = "buy 10% PEPE on bsc when it drops 5% in an hour, stop loss 3%, take profit 10%"


def test_rule_names_are_unique_and_every_rule_has_a_handler() -> None:
    names = [rule.name for rule in RULES]
    assert len(names) == len(set(names))
    assert all(callable(rule.handler) and rule.pattern.pattern for rule in RULES)


@pytest.mark.parametrize(
    ("text", "threshold"),
    [
        ("buy 10% PEPE when 3x volume", 200),
        ("buy 10% PEPE when 3x the average volume", 200),
        ("buy 10% PEPE when volume doubles", 100),
        ("buy 10% PEPE when volume 4 times the average", 300),
    ],
)
def test_volume_multiples_become_volume_spikes(text: str, threshold: float) -> None:
    # "3x volume" used to raise IndexError (the pattern has no spelled-out multiple group).
    result = parse_strategy_text(text)
    assert result.strategy is not None, parse_text(result)
    cond = result.strategy.to_config()["conditions"][0]
    assert cond["type"] == "volume_spike" and cond["threshold"] == pytest.approx(threshold)


def test_volume_multiple_of_one_is_refused() -> None:
    result = parse_strategy_text("buy 10% PEPE when 1x volume")
    assert result.strategy is None
    assert result.failure == Note("parse.cannot_build", reasons=[Note("parse.volume_multiple_too_small", multiple=1.0)])
    assert parse_text(result) == "I couldn't build a strategy: a volume multiple must be more than 1x (got 1x)."


def test_success_message_echoes_what_was_understood() -> None:
    result = parse_strategy_text("buy 10% PEPE on bsc when it drops 5% in an hour, stop loss 3%, to the moon")
    assert result.strategy is not None
    assert result.understood == [Note("understood.token_on_chain", token="PEPE", chain="bsc"),
                                 Note("understood.buy_when", words="drops 5% in an hour"),
                                 Note("understood.amount", percent=10.0), Note("understood.stop_loss", percent=3.0)]
    assert result.not_understood == ["to the moon"] and result.failure is None
    assert parse_text(result) == ("Understood: token: PEPE on bsc; buy when 'drops 5% in an hour'; "
                                  "amount: 10% of the balance; stop-loss: 3%. I ignored: 'to the moon'.")


def test_sell_conditions_are_echoed_as_sells() -> None:
    result = parse_strategy_text("buy 10% PEPE when it drops 5%, sell when it rises 8% in 4h")
    assert result.strategy is not None
    assert Note("understood.buy_when", words="drops 5%") in result.understood
    assert Note("understood.sell_when", words="rises 8% in 4h") in result.understood
    assert result.not_understood == [] and ignored_text(result.not_understood) == ""
    assert "buy when 'drops 5%'" in parse_text(result) and "sell when 'rises 8% in 4h'" in parse_text(result)


@pytest.mark.parametrize(
    ("text", "edit", "failure", "words"),
    [
        ("hello there", False, Note("parse.cannot_build", reasons=[Note("parse.no_token")]),
         "I couldn't build a strategy: which token? e.g. 'buy 10% PEPE on bsc when it drops 5% in 1h'."),
        ("buy 10% PEPE and SOL when it drops 5%", False,
         Note("parse.cannot_build", reasons=[Note("parse.several_tokens", tokens=["PEPE", "SOL"])]),
         "I couldn't build a strategy: a strategy trades one token, but I found PEPE, SOL."),
        ("change the level to 5, trailing 3", True,
         Note("parse.nothing_changed", reasons=[Note("parse.nothing_to_change", target="level"),
                                                Note("parse.not_understood", words="trailing 3")]),
         "Nothing was changed: there is no level condition to change; I didn't understand 'trailing 3'."),
        ("stop loss 3%", True, Note("parse.no_change"), "I didn't find any change to make in that message."),
        ("", False, Note("parse.empty"),
         "Describe a strategy, e.g. 'buy 10% PEPE on bsc when it drops 5% in 1h, stop loss 3%'."),
    ],
)
def test_failures_are_coded_and_worded_by_the_bot(text: str, edit: bool, failure: Note, words: str) -> None:
    current = parse_strategy_text(BASE).strategy if edit else None
    result = parse_strategy_text(text, current)
    assert result.strategy is None and result.failure == failure
    assert parse_text(result) == words


def test_an_invalid_strategy_carries_the_validation_error() -> None:
    result = parse_strategy_text("buy 500% PEPE when it drops 5%")
    assert result.failure is not None and result.failure.code == "parse.invalid"
    assert result.failure.params["error"].code == "strategy.invalid"
    assert parse_text(result) == "That strategy isn't valid: amount (% of balance) must be at most 100.0."


def test_every_code_the_design_room_writes_has_words_in_the_bot() -> None:
    import pathlib
    import re

    from bot.messages.design import TEXTS

    root = pathlib.Path(__file__).resolve().parents[1] / "agents" / "design"
    source = "\n".join(p.read_text() for p in root.rglob("*.py"))
    codes = set(re.findall(r"""(?:Note|Reject)\(\s*"([a-z_]+\.[a-z_.]+)\"""", source))
    codes |= set(re.findall(r'"((?:understood|parse|design|crew)\.[a-z_]+)"', source))
    codes |= {"understood.buy_when", "understood.sell_when"}  # built as f"understood.{signal}_when"
    assert len(codes) > 40
    assert sorted(c for c in codes if c not in TEXTS) == []
