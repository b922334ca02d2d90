"""Stored reasons: one encoding (agents/ledger/reasons.py), worded only by the bot (bot.render.reason_text)."""

from __future__ import annotations

from decimal import Decimal

import pytest

from agents.errors import SpawnNotAllowedError
from agents.ledger.reasons import Reason, clip_reason, free_text, nested, parse_reason, reason
from bot.messages import CATALOG, design, engine, ledger
from bot.messages import reasons as reason_words
from bot.render import reason_text


def test_a_reason_is_compact_json_and_reads_back_with_its_types() -> None:
    stored = reason("status.risk_drawdown", drawdown_pct=52.4, limit_pct=50.0)
    assert stored == '{"code":"status.risk_drawdown","drawdown_pct":52.4,"limit_pct":50.0}'
    assert parse_reason(stored) == Reason("status.risk_drawdown", {"drawdown_pct": 52.4, "limit_pct": 50.0})
    assert reason("status.resumed") == '{"code":"status.resumed"}'
    # a Decimal is stored as its value and comes back a Decimal; text and ints keep their types
    found = parse_reason(reason("spawn_rule.yes", amount=Decimal("12.500000"), earnings=Decimal("1E+2"), n=3,
                                text="007", plain="12"))
    assert found is not None
    assert found.params == {"amount": Decimal("12.5"), "earnings": Decimal("100"), "n": 3, "text": "007",
                            "plain": "12"}  # text that looks like a number stays text
    assert isinstance(found.params["amount"], Decimal)
    assert '"amount":{"dec":"12.5"}' in reason("spawn_rule.yes", amount=Decimal("12.500000"))


def test_reasons_nest_and_typed_errors_are_stored_by_code() -> None:
    inner = reason("spawn_rule.no_full", live=3, maximum=3)
    outer = reason("spawn_worker.refused", decision=nested(inner), error=SpawnNotAllowedError(
        "spawn.child_below_minimum", minimum=Decimal(10)))
    assert '"decision":{"code":"spawn_rule.no_full"' in outer  # nested, not quoted
    found = parse_reason(outer)
    assert found is not None and found.params["decision"] == Reason("spawn_rule.no_full", {"live": 3, "maximum": 3})
    assert found.params["error"] == Reason("spawn.child_below_minimum", {"minimum": Decimal(10)})
    assert reason_text(outer) == ("no spawn, already 3 live children (max 3) (spawn refused: "
                                  "A child needs at least 10 USDC.)")


@pytest.mark.parametrize("text", [
    "balance below the minimum", "risk: drawdown 52% > 50%", "", "{", "{not json}", "[1, 2]", '"x.y"',
    '{"code": "NoCode"}', '{"code": 3}', '{"reason": "x"}', '{"code": "a.b", "list": [1]}',
    '{"code": "a.b", "inner": {"no": "code"}}',
])
def test_free_text_and_anything_else_is_not_a_reason(text: str) -> None:
    assert parse_reason(text) is None
    assert reason_text(text) == text  # older rows and the AI's words are shown as they are


def test_an_unknown_code_is_shown_as_stored() -> None:
    stored = reason("from.a_newer_version", x=1)
    assert reason_text(stored) == "from.a_newer_version"  # its code, not raw JSON


def test_text_from_outside_is_never_read_as_a_code() -> None:
    forged = '{"code":"status.resumed"}'  # e.g. an LLM's "reason"
    stored = free_text(forged)
    assert parse_reason(stored) == Reason("text.free", {"text": forged}) and reason_text(stored) == forged
    assert free_text("grow the tree") == "grow the tree"  # plain text stays plain
    # a string param is never parsed as a nested reason either
    outer = parse_reason(reason("spawn_worker.refused", decision=forged, error="x"))
    assert outer is not None and outer.params["decision"] == forged


def test_a_missing_figure_never_breaks_a_screen() -> None:
    stored = '{"code":"status.risk_drawdown","drawdown_pct":null,"limit_pct":50}'
    assert reason_text(stored)  # the fallback sentence, not a TypeError


def test_bad_codes_and_params_are_refused() -> None:
    with pytest.raises(ValueError):
        reason("Not a code")
    with pytest.raises(ValueError):
        reason("a.b", **{"code": "x"})


def test_clip_keeps_a_reason_whole_and_clips_free_text() -> None:
    long = "word  " * 100
    assert clip_reason(long, 20) == "word word word word "  # as the ledger always trimmed free text
    stored = reason("spawn_ai.adjusted", said=long, amount=Decimal(10))
    clipped = clip_reason(stored, 20)
    found = parse_reason(clipped)
    assert found is not None and found.params == {"said": " ".join(long.split())[:20], "amount": Decimal(10)}
    assert reason_text(clipped).endswith(" (amount adjusted to 10 USDC to fit the limits)")


def test_the_words_are_as_before() -> None:
    cases = {
        reason("status.below_minimum"): "balance below the minimum",
        reason("status.balance_restored"): "balance restored",
        reason("status.revived_by_deposit"): "revived by a deposit",
        reason("status.emptied_by_withdrawal"): "emptied by withdrawal",
        reason("status.paused_by_you"): "paused by you",
        reason("status.resumed"): "resumed",
        reason("status.risk_drawdown", drawdown_pct=52.5, limit_pct=50.0): "risk: drawdown 52% > 50%",
        reason("child.spawned"): "spawned",
        reason("child.spawned_remotely"): "spawned by the remote automaton",
        reason("spawn_rule.fallback", decision=Reason("spawn_rule.no_earnings", {"min_child": Decimal("10.000000")}),
               why=Reason("spawn_rule.ai_unavailable", {"failure": "rate_limited"})):
            "Rule-based decision (AI unavailable: rate limited): no spawn, spawnable earnings below the 10 USDC "
            "minimum child balance",
        reason("spawn_ai.no_reason"): "no reason given",
        reason("spawn_worker.above_max_child", decision="go", max_child=Decimal("12.000000")):
            "go (refused: at most 12.000000 USDC may fund a child)",
    }
    for stored, words in cases.items():
        assert reason_text(stored) == words


def test_reason_codes_are_their_own() -> None:
    others = {**ledger.TEXTS, **design.TEXTS, **engine.TEXTS}
    assert not set(reason_words.TEXTS) & set(others)
    assert all(code in CATALOG for code in reason_words.TEXTS)
