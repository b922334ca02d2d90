"""The build step: turn what the rules found (and the current strategy, for edits) into a strategy dict.

A full description (a token and an entry condition, no edit words) replaces the current strategy,
as does anything after "start over". Otherwise the message edits: fields it does not mention keep
their current values. New buy conditions replace the current entry conditions unless the message
says "add"/"also"; the same holds for sell conditions. A bare timeframe ("use 4h instead") applies
to every condition that did not name its own; "change the drop to 4%" edits the matching
condition's threshold, and asks which one when both a buy and a sell condition match. A sell "when
it goes up 4%" with no timeframe of its own is a take-profit (a drop: a stop-loss): a move over
some window is a signal only when the window is said.

What was understood and what blocks the build are `Note`s (``understood.…`` / ``parse.…``).
"""

from __future__ import annotations

import itertools
import re
from dataclasses import dataclass, field
from typing import Any

from agents.design.notes import Note
from agents.design.parser import vocabulary as v
from agents.design.parser.scanner import Cond, Found
from engine.strategy import MAX_CONDITIONS, Strategy

DEFAULT_AMOUNT_PERCENT = 10.0
DEFAULT_TIMEFRAME = "1h"
_CLAUSE_END = re.compile(rf"{v.LIST_COMMA}|[;\n]|\.(?!\d)|\b(?:{v.THEN_WORDS})\b")
_AND = re.compile(v.AND_WORDS)
_OR = re.compile(v.OR_WORDS)


@dataclass
class Notes:
    """What the build understood (echoed to the user) and the problems that block it."""

    understood: list[Note] = field(default_factory=list)
    problems: list[Note] = field(default_factory=list)


@dataclass
class Edit:
    """The inputs of one build: the scan, the strategy being edited (as JSON) and the lower-cased text."""

    found: Found
    current: Strategy | None
    text: str
    cur: dict[str, Any] | None


def build(found: Found, current: Strategy | None, text: str) -> tuple[dict[str, Any] | None, list[Note], list[Note]]:
    """Merge what was found with `current` into a strategy dict; returns (dict or None, understood, problems)."""
    notes = Notes(problems=list(found.problems))
    edit = Edit(found, current, text, current.model_dump(mode="json") if current is not None else None)
    standalone_tf = _timeframes(found, notes)
    new_token = _new_token(found, notes)
    found.conditions.sort(key=lambda c: c.pos)
    for c in found.conditions:
        c.signal = _signal_of(c, found, text)
    if current is not None and (found.reset or _describes_whole(found, new_token)):
        notes.understood.append(Note("understood.started_over" if found.reset else "understood.replaced"))
        edit = Edit(found, None, text, None)
    _exits_as_risk(found, standalone_tf)
    place = _token_and_chain(edit, new_token, notes)
    if place is None:
        return None, notes.understood, notes.problems
    token, chain = place
    conds, new_buys = _conditions(edit, token, chain, standalone_tf, notes)
    if not any(c.get("signal", "buy") == "buy" for c in conds):
        notes.problems.append(Note("parse.no_buy_condition"))
        return None, notes.understood, notes.problems
    if len(conds) > MAX_CONDITIONS:
        notes.problems.append(Note("parse.too_many_conditions", maximum=MAX_CONDITIONS))
        return None, notes.understood, notes.problems
    data = {
        "conditions": conds,
        "match": None,
        "actions": _actions(edit, token, chain, conds, notes),
        "risk_management": _risk(edit, notes),
    }
    data["match"] = _match(edit, new_buys, notes)
    return data, notes.understood, notes.problems


def _describes_whole(found: Found, new_token: tuple[str, str | None] | None) -> bool:
    """A token and an entry condition with no edit words: a strategy of its own, not an edit."""
    return (new_token is not None and any(c.signal == "buy" for c in found.conditions) and not found.add_mode
            and not found.threshold_edits and not found.removals)


def _exits_as_risk(found: Found, standalone_tf: str | None) -> None:
    """"Sell when it goes up 4%" with no window of its own: a take-profit (a drop: a stop-loss)."""
    if standalone_tf is not None:
        return
    for c in list(found.conditions):
        if c.signal != "sell" or c.timeframe:
            continue
        if c.type == "price_rise" and found.take_profit is None:
            found.take_profit = c.threshold
        elif c.type == "price_drop" and found.stop_loss is None:
            found.stop_loss = c.threshold
        else:
            continue
        found.conditions.remove(c)


def _timeframes(found: Found, notes: Notes) -> str | None:
    """The one standalone timeframe (None if none); unsupported or conflicting ones are problems."""
    tf_values = [t for t in found.timeframes if not t.startswith("_")]
    notes.problems += [Note("parse.unsupported_timeframe", words=t[1:]) for t in found.timeframes if t.startswith("_")]
    for c in found.conditions:
        if c.timeframe and c.timeframe.startswith("_"):
            notes.problems.append(Note("parse.unsupported_timeframe", words=c.timeframe[1:]))
            c.timeframe = None
    if len(set(tf_values)) > 1:
        notes.problems.append(Note("parse.several_timeframes", timeframes=list(dict.fromkeys(tf_values))))
    return tf_values[0] if tf_values else None


def _new_token(found: Found, notes: Notes) -> tuple[str, str | None] | None:
    """The token the message names (a strategy trades one: several are a problem)."""
    distinct = list(dict.fromkeys(found.tokens))
    if len({t for t, _ in distinct}) > 1:
        notes.problems.append(Note("parse.several_tokens", tokens=list(dict.fromkeys(t for t, _ in distinct))))
    return distinct[0] if distinct else None


def _signal_of(cond: Cond, found: Found, text: str) -> str:
    """The nearest action word in the same clause: preceding first, else following; default buy."""
    clause_bounds = [0] + [m.end() for m in _CLAUSE_END.finditer(text)] + [len(text)]
    lo = max(b for b in clause_bounds if b <= cond.pos)
    hi = min(b for b in clause_bounds if b >= cond.end)
    before = [(p, a) for p, a in found.actions if lo <= p < cond.pos]
    if before:
        return max(before)[1]
    after = [(p, a) for p, a in found.actions if cond.end <= p < hi]
    if after:
        return min(after)[1]
    return "buy"


def _token_and_chain(edit: Edit, new_token: tuple[str, str | None] | None,
                     notes: Notes) -> tuple[str, str | None] | None:
    """The token and chain: named in the message, else kept from the current strategy."""
    found, current = edit.found, edit.current
    if new_token:
        token, id_chain = new_token
        chain = found.chain or id_chain
    elif current is not None:
        token, chain = current.token, found.chain or current.chain
    else:
        notes.problems.append(Note("parse.no_token"))
        return None
    if new_token or found.chain:
        notes.understood.append(Note("understood.token_on_chain", token=token, chain=chain) if chain
                                else Note("understood.token", token=token))
    return token, chain


def _cond_dict(c: Cond, token: str, chain: str | None, default_tf: str) -> dict[str, Any]:
    d: dict[str, Any] = {
        "type": c.type,
        "token": token,
        "chain": chain,
        "timeframe": c.timeframe or default_tf,
        "signal": c.signal,
    }
    if c.type == "price_level":
        d.update(price=c.price, direction=c.direction)
    else:
        d["threshold"] = c.threshold
    return d


def _conditions(edit: Edit, token: str, chain: str | None, standalone_tf: str | None,
                notes: Notes) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The merged condition list and the new entry conditions (for the match-mode note)."""
    pairs = [(c, _cond_dict(c, token, chain, standalone_tf or DEFAULT_TIMEFRAME)) for c in edit.found.conditions]
    new_buys = [d for c, d in pairs if c.signal == "buy"]
    new_sells = [d for c, d in pairs if c.signal == "sell"]
    explicit_tf = {id(d) for c, d in pairs if c.timeframe}
    for signal in ("buy", "sell"):
        notes.understood += [Note(f"understood.{signal}_when", words=_words(edit.text, c))
                             for c, _ in pairs if c.signal == signal]
    cur = edit.cur
    old_buys = [c for c in cur["conditions"] if c.get("signal", "buy") == "buy"] if cur else []
    old_sells = [c for c in cur["conditions"] if c.get("signal") == "sell"] if cur else []
    if edit.found.add_mode:
        buys, sells = old_buys + new_buys, old_sells + new_sells
    else:
        buys, sells = new_buys or old_buys, new_sells or old_sells
    conds = [*buys, *sells]
    if standalone_tf and cur is not None:
        # A bare timeframe in an edit applies to the conditions that did not name their own.
        for d in conds:
            if id(d) not in explicit_tf:
                d["timeframe"] = standalone_tf
        notes.understood.append(Note("understood.timeframe", timeframe=standalone_tf))
    _apply_edits(conds, edit.found, notes)
    for d in conds:
        d["token"], d["chain"] = token, chain
    return conds, new_buys


def _words(text: str, c: Cond) -> str:
    """The words a condition was read from, its timeframe included."""
    return " ".join(text[c.pos : max(c.end, c.reach)].split())


def _apply_edits(conds: list[dict[str, Any]], found: Found, notes: Notes) -> None:
    """Apply "change the X to N" and "remove the X condition" to the merged conditions."""
    for what, value, _pct, side in found.threshold_edits:
        key = " ".join(what.split())
        kinds = v.EDIT_TARGETS.get(key, ())
        targets = [c for c in conds if c["type"] in kinds and side in (None, c.get("signal", "buy"))]
        if not targets:
            notes.problems.append(Note("parse.nothing_to_change", target=key))
            continue
        if len(targets) > 1 and key in v.AMBIGUOUS_TARGETS:
            notes.problems.append(Note("parse.ambiguous_target"))
            continue
        if side is None and len({c.get("signal", "buy") for c in targets}) > 1:
            notes.problems.append(Note("parse.which_side", target=key))  # "the buy or the sell drop?"
            continue
        for c in targets:
            c["price" if c["type"] == "price_level" else "threshold"] = value
        changed = "understood.price_changed" if kinds == ("price_level",) else "understood.percent_changed"
        notes.understood.append(Note(changed, target=key, value=value))
    for what in found.removals:
        key = " ".join(what.split())
        before = len(conds)
        if key in v.EXIT_TARGETS:
            conds[:] = [c for c in conds if c.get("signal") != "sell"]
        else:
            kinds = v.EDIT_TARGETS.get(key, ())
            conds[:] = [c for c in conds if c["type"] not in kinds]
        if len(conds) == before:
            notes.problems.append(Note("parse.nothing_to_remove", target=key))
        else:
            notes.understood.append(Note("understood.removed", target=key))


def _actions(edit: Edit, token: str, chain: str | None, conds: list[dict[str, Any]],
             notes: Notes) -> list[dict[str, Any]]:
    """The buy action (amount: given, else current, else the default) and a sell when exits exist."""
    if edit.found.amount is not None:
        amount = edit.found.amount
        notes.understood.append(Note("understood.amount", percent=amount))
    elif edit.current is not None:
        amount = edit.current.buy.amount_percent
    else:
        amount = DEFAULT_AMOUNT_PERCENT
        notes.understood.append(Note("understood.default_amount", percent=DEFAULT_AMOUNT_PERCENT))
    actions: list[dict[str, Any]] = [{"type": "buy", "amount_percent": amount, "token": token, "chain": chain}]
    if any(c.get("signal") == "sell" for c in conds):
        actions.append({"type": "sell", "amount_percent": 100, "token": token, "chain": chain})
    return actions


def _risk(edit: Edit, notes: Notes) -> dict[str, Any]:
    """Stop-loss and take-profit: removed, set, or kept from the current strategy."""
    found = edit.found
    rm = dict(edit.cur["risk_management"]) if edit.cur else {"stop_loss_percent": None, "take_profit_percent": None}
    if found.remove_sl:
        rm["stop_loss_percent"] = None
        notes.understood.append(Note("understood.stop_loss_removed"))
    if found.remove_tp:
        rm["take_profit_percent"] = None
        notes.understood.append(Note("understood.take_profit_removed"))
    if found.stop_loss is not None:
        rm["stop_loss_percent"] = found.stop_loss
        notes.understood.append(Note("understood.stop_loss", percent=found.stop_loss))
    if found.take_profit is not None:
        rm["take_profit_percent"] = found.take_profit
        notes.understood.append(Note("understood.take_profit", percent=found.take_profit))
    return rm


def _match(edit: Edit, new_buys: list[dict[str, Any]], notes: Notes) -> str:
    """Match mode: said explicitly, else implied by "and"/"or" between new entries, else kept ("any")."""
    found = edit.found
    match = found.match or _implicit_match([c for c in found.conditions if c.signal == "buy"], edit.text)
    if match is None:
        return edit.cur["match"] if edit.cur else "any"
    if found.match or len(new_buys) > 1:
        notes.understood.append(Note("understood.match_all" if match == "all" else "understood.match_any"))
    return match


def _implicit_match(buys: list[Cond], text: str) -> str | None:
    votes: set[str] = set()
    for a, b in itertools.pairwise(sorted(buys, key=lambda c: c.pos)):
        between = text[a.end : b.pos]
        if _AND.search(between):
            votes.add("all")
        if _OR.search(between):
            votes.add("any")
    return votes.pop() if len(votes) == 1 else None
