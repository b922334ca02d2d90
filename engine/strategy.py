"""The strategy model: the one format used by the designer, backtest, simulate and the agents.

Semantics (documented for users in the README):

* Every condition is evaluated on a candle's close. A condition's `signal` says whether it
  is an entry (`buy`, the default) or an exit (`sell`) condition.
* Entry conditions combine with `match` (`any` / `all`); so do exit conditions.
* `buy` action: when the entry conditions fire and no position is open, buy
  `amount_percent` of equity at the next candle's open.
* `sell` action / exit conditions: when the exit conditions fire with a position open,
  the whole position is sold at the next candle's open (partial sells are not supported).
* `risk_management`: stop-loss and take-profit levels relative to the entry fill.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from engine.errors import CodedError

Timeframe = Literal["5m", "15m", "30m", "1h", "4h", "1d"]
TIMEFRAME_MINUTES: dict[str, int] = {"5m": 5, "15m": 15, "30m": 30, "1h": 60, "4h": 240, "1d": 1440}
TIMEFRAMES: tuple[str, ...] = tuple(TIMEFRAME_MINUTES)

MAX_CONDITIONS = 5
_SYMBOL_MAX = 64
_CHAIN_MAX = 16


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _clean_token(value: str) -> str:
    value = value.strip()
    if not value:
        raise ValueError("the token is empty")
    if len(value) > 120 or any(c.isspace() or c in "<>&\"'" for c in value):
        raise ValueError("the token must be a symbol like PEPE or an id like 0xabc…-bsc")
    return value


def _clean_chain(value: str | None) -> str | None:
    if value is None:
        return None
    value = value.strip().lower()
    if not value:
        return None
    if len(value) > _CHAIN_MAX or not value.replace("_", "").isalnum():
        raise ValueError("the chain must be a short name like bsc, eth, base or solana")
    return value


def _finite(value: float) -> float:
    if not math.isfinite(value):
        raise ValueError("the number must be finite")
    return value


class _TokenFields(_Strict):
    token: str = Field(max_length=120)
    chain: str | None = None

    _token = field_validator("token")(classmethod(lambda cls, v: _clean_token(v)))
    _chain = field_validator("chain")(classmethod(lambda cls, v: _clean_chain(v)))


class PriceChangeCondition(_TokenFields):
    """Close changed by ≤ −threshold% (`price_drop`) or ≥ +threshold% (`price_rise`) over `timeframe`."""

    type: Literal["price_drop", "price_rise"]
    threshold: float = Field(gt=0, le=1000)
    timeframe: Timeframe = "1h"
    signal: Literal["buy", "sell"] = "buy"

    @model_validator(mode="after")
    def _drop_below_100(self) -> PriceChangeCondition:
        _finite(self.threshold)
        if self.type == "price_drop" and self.threshold >= 100:
            raise ValueError("a price drop must be less than 100%")
        return self


class VolumeSpikeCondition(_TokenFields):
    """Volume ≥ (1 + threshold/100) × the mean volume of the previous `timeframe` window."""

    type: Literal["volume_spike"]
    threshold: float = Field(gt=0, le=10000)
    timeframe: Timeframe = "1h"
    signal: Literal["buy", "sell"] = "buy"

    _thr = field_validator("threshold")(classmethod(lambda cls, v: _finite(v)))


class PriceLevelCondition(_TokenFields):
    """Close crosses `price` upwards (`above`) or downwards (`below`)."""

    type: Literal["price_level"]
    price: float = Field(gt=0, le=1e12)
    direction: Literal["above", "below"]
    timeframe: Timeframe = "1h"
    signal: Literal["buy", "sell"] = "buy"

    _price = field_validator("price")(classmethod(lambda cls, v: _finite(v)))


Condition = Annotated[
    PriceChangeCondition | VolumeSpikeCondition | PriceLevelCondition, Field(discriminator="type")
]


class Action(_TokenFields):
    """`buy` spends `amount_percent` of equity; `sell` closes the whole position."""

    type: Literal["buy", "sell"]
    amount_percent: float = Field(default=100, gt=0, le=100)

    @model_validator(mode="after")
    def _whole_sells(self) -> Action:
        _finite(self.amount_percent)
        if self.type == "sell" and self.amount_percent != 100:
            raise ValueError("partial sells are not supported: a sell closes the whole position (100%)")
        return self


class RiskManagement(_Strict):
    """Stop-loss / take-profit in percent of the entry price; `None` disables one."""

    stop_loss_percent: float | None = Field(default=None, gt=0, lt=100)
    take_profit_percent: float | None = Field(default=None, gt=0, le=1000)

    @field_validator("stop_loss_percent", "take_profit_percent")
    @classmethod
    def _fin(cls, v: float | None) -> float | None:
        return None if v is None else _finite(v)


class Strategy(_Strict):
    """A complete, validated trading strategy on one token."""

    conditions: list[Condition] = Field(min_length=1, max_length=MAX_CONDITIONS)
    match: Literal["any", "all"] = "any"
    actions: list[Action] = Field(min_length=1, max_length=2)
    risk_management: RiskManagement = Field(default_factory=RiskManagement)

    @model_validator(mode="after")
    def _coherent(self) -> Strategy:
        buys = [a for a in self.actions if a.type == "buy"]
        sells = [a for a in self.actions if a.type == "sell"]
        if len(buys) != 1:
            raise ValueError("a strategy needs exactly one buy action")
        if len(sells) > 1:
            raise ValueError("a strategy can have at most one sell action")
        if not any(c.signal == "buy" for c in self.conditions):
            raise ValueError("at least one condition must trigger buying")
        if sells and not any(c.signal == "sell" for c in self.conditions):
            raise ValueError("a sell action needs at least one condition with signal 'sell'")
        tokens = {t.token.lower() for t in [*self.conditions, *self.actions]}
        if len(tokens) > 1:
            raise ValueError("a strategy trades one token: use the same token in every condition and action")
        return self

    # -- convenience -------------------------------------------------------------------------
    @property
    def token(self) -> str:
        return self.actions[0].token

    @property
    def chain(self) -> str | None:
        for item in [*self.actions, *self.conditions]:
            if item.chain:
                return item.chain
        return None

    @property
    def buy(self) -> Action:
        return next(a for a in self.actions if a.type == "buy")

    def entry_conditions(self) -> list[Any]:
        return [c for c in self.conditions if c.signal == "buy"]

    def exit_conditions(self) -> list[Any]:
        return [c for c in self.conditions if c.signal == "sell"]

    @property
    def finest_timeframe(self) -> str:
        """The shortest condition timeframe: the natural candle interval to run the strategy on."""
        return min((c.timeframe for c in self.conditions), key=TIMEFRAME_MINUTES.__getitem__)

    def with_token(self, token: str, chain: str | None = None) -> Strategy:
        """The same strategy on another token (a backtest on a token the user names).

        Raises `StrategyError` when `token` or `chain` is not a valid name."""
        data = self.model_dump()
        for item in [*data["conditions"], *data["actions"]]:
            item["token"] = token
            item["chain"] = chain
        return parse_strategy(data)

    def to_config(self) -> dict[str, Any]:
        """JSON-ready dict without unset optional noise."""
        return self.model_dump(mode="json", exclude_none=True)


def parse_strategy(data: Strategy | dict[str, Any] | str) -> Strategy:
    """Validate a dict / JSON string into a `Strategy` (raises `StrategyError` with plain words)."""
    if isinstance(data, Strategy):
        return data
    try:
        if isinstance(data, str):
            return Strategy.model_validate_json(data)
        return Strategy.model_validate(data)
    except ValidationError as exc:
        raise StrategyError("strategy.invalid", detail=explain_validation_error(exc)) from exc


class StrategyError(CodedError, ValueError):
    """A strategy failed validation: code ``strategy.invalid`` (``strategy.no_json`` when model
    output held no strategy at all) with the reasons in ``detail``.

    The reasons are pydantic's, put into plain words by `explain_validation_error`; `str()` is
    that detail, because model repair prompts and logs quote it.
    """

    @property
    def detail(self) -> str:
        """The plain-words reasons the strategy was refused."""
        return str(self.params.get("detail", ""))

    def __str__(self) -> str:
        return self.detail or self.code


_FIELD_WORDS = {
    "threshold": "threshold",
    "amount_percent": "amount (% of balance)",
    "stop_loss_percent": "stop-loss %",
    "take_profit_percent": "take-profit %",
    "timeframe": "timeframe",
    "conditions": "conditions",
    "actions": "actions",
    "price": "price level",
    "direction": "direction",
    "token": "token",
    "chain": "chain",
    "match": "match",
    "type": "type",
}


def explain_validation_error(exc: ValidationError, limit: int = 5) -> str:
    """Turn pydantic's errors into short plain sentences a user can act on."""
    lines: list[str] = []
    for err in exc.errors()[:limit]:
        loc = [str(p) for p in err.get("loc", ()) if not str(p).isdigit()]
        # Discriminated unions put the tag in the path ("price_drop"); keep only field names.
        names = [p for p in loc if p in _FIELD_WORDS]
        where = _FIELD_WORDS.get(names[-1], names[-1]) if names else "strategy"
        kind = err.get("type", "")
        ctx = err.get("ctx") or {}
        if kind == "extra_forbidden":
            msg = f"unknown field '{loc[-1] if loc else '?'}'"
        elif kind == "literal_error" and where == "timeframe":
            msg = f"timeframe must be one of {', '.join(TIMEFRAMES)}"
        elif kind in ("greater_than", "greater_than_equal"):
            msg = f"{where} must be more than {ctx.get('gt', ctx.get('ge'))}"
        elif kind in ("less_than", "less_than_equal"):
            msg = f"{where} must be at most {ctx.get('le', ctx.get('lt'))}"
        elif kind == "too_long":
            msg = f"too many {where} (at most {ctx.get('max_length')})"
        elif kind == "too_short":
            msg = f"{where}: at least {ctx.get('min_length')} needed"
        elif kind == "union_tag_invalid":
            msg = "condition type must be price_drop, price_rise, volume_spike or price_level"
        elif kind == "missing":
            msg = f"{where} is missing"
        else:
            text = str(err.get("msg", "invalid value"))
            msg = text.removeprefix("Value error, ")
            if where != "strategy" and not msg.startswith(where):
                msg = f"{where}: {msg}"
        if msg not in lines:
            lines.append(msg)
    more = len(exc.errors()) - limit
    if more > 0:
        lines.append(f"…and {more} more problem(s)")
    return "; ".join(lines)


def default_strategy(token: str = "WETH", chain: str | None = None) -> Strategy:
    """The documented default for agents without an assigned strategy bot:
    buy 20% on a 3% one-hour dip, stop-loss 5%, take-profit 8%."""
    return Strategy.model_validate({
        "conditions": [{"type": "price_drop", "token": token, "chain": chain, "threshold": 3, "timeframe": "1h"}],
        "match": "any",
        "actions": [{"type": "buy", "amount_percent": 20, "token": token, "chain": chain}],
        "risk_management": {"stop_loss_percent": 5, "take_profit_percent": 8},
    })


@dataclass(frozen=True)
class StrategyView:
    """A stored strategy read back: valid (`strategy`), none (an agent then trades the default), or one that no
    longer validates (`invalid`: the agent loop skips such an agent, a strategy bot cannot be
    backtested or assigned, and the screens say so instead of showing the default or nothing)."""

    strategy: Strategy | None = None
    invalid: bool = False

    @property
    def is_default(self) -> bool:
        return self.strategy is None and not self.invalid


def strategy_view(strategy_json: str | None) -> StrategyView:
    """The `StrategyView` of a stored strategy (an agent's snapshot, a strategy bot's)."""
    if not strategy_json:
        return StrategyView()
    try:
        return StrategyView(parse_strategy(strategy_json))
    except StrategyError:
        return StrategyView(invalid=True)
