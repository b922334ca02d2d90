"""Rules for stop-loss and take-profit: set a level ("stop loss 3%", "sell at 10% profit") or remove one."""

from __future__ import annotations

import re

from agents.design.parser import vocabulary as v
from agents.design.parser.scanner import Scanner, number, rx

_SL, _TP, _NUM, _PCT, _OPT_PCT = v.STOP_LOSS_WORDS, v.TAKE_PROFIT_WORDS, v.NUM, v.PCT, v.OPT_PCT
_EXIT_AT = (
    rf"\b(?:sell|exit|close(?:\s+it){v.SELL_VERBS_MORE})\s+(?:{v.EXIT_PREPS})\s+(?:a\s+)?(?P<n>{_NUM}){_PCT}\s+"
    + v.PCT_NOUN_JOINER
)
# "jual saat untung 10%", "vender com lucro de 10%": the word before the number (other languages only).
_EXIT_WORD_FIRST = rf"\b(?:{v.SELL_VERBS_ONLY})\s+(?:(?:{v.EXIT_PREPS_ONLY})\s+)?"
_THEN_NUMBER = rf"\s+(?:(?:{v.NOUN_JOINERS_ONLY})\s+)?(?P<n>{_NUM}){_PCT}"
_DET = rf"(?:(?:{v.DETERMINERS})\s+)?"

REMOVE_STOP_LOSS = rx(rf"\b{v.REMOVE_VERBS}\s+{_DET}{_SL}\b")
REMOVE_TAKE_PROFIT = rx(rf"\b{v.REMOVE_VERBS}\s+{_DET}{_TP}\b")
STOP_LOSS_THEN_NUMBER = rx(rf"\b{_SL}\b{v.RISK_JOINER}(?P<n>{_NUM}){_OPT_PCT}")
TAKE_PROFIT_THEN_NUMBER = rx(rf"\b{_TP}\b{v.RISK_JOINER}(?P<n>{_NUM}){_OPT_PCT}")
PERCENT_STOP_LOSS = rx(rf"(?<![\w.])(?P<n>{_NUM}){_PCT}\s+{v.PCT_NOUN_JOINER}{_SL}\b")
PERCENT_TAKE_PROFIT = rx(rf"(?<![\w.])(?P<n>{_NUM}){_PCT}\s+{v.PCT_NOUN_JOINER}{_TP}\b")
SELL_AT_PROFIT = rx(_EXIT_AT + rf"(?:{v.PROFIT_WORDS})\b")
SELL_AT_LOSS = rx(_EXIT_AT + rf"(?:{v.LOSS_WORDS})\b")
SELL_AT_PROFIT_WORD_FIRST = rx(_EXIT_WORD_FIRST + rf"(?:{v.PROFIT_WORDS_ONLY})" + _THEN_NUMBER)
SELL_AT_LOSS_WORD_FIRST = rx(_EXIT_WORD_FIRST + rf"(?:{v.LOSS_WORDS_ONLY})" + _THEN_NUMBER)


def set_stop_loss(s: Scanner, m: re.Match[str]) -> None:
    """"stop loss 3%", "3% stop loss", "exit at 4% loss"."""
    s.found.stop_loss = number(m.group("n"))


def set_take_profit(s: Scanner, m: re.Match[str]) -> None:
    """"take profit 10%", "10% take profit", "sell at 10% profit"."""
    s.found.take_profit = number(m.group("n"))


def remove_stop_loss(s: Scanner, m: re.Match[str]) -> None:
    """"no stop loss", "remove the stop-loss"."""
    s.found.remove_sl = True


def remove_take_profit(s: Scanner, m: re.Match[str]) -> None:
    """"without take profit", "disable the tp"."""
    s.found.remove_tp = True
