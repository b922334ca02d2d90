"""The words drawn on a backtest chart, in the reader's language (`engine.charts.ChartWords`)."""

from __future__ import annotations

from bot.i18n import t
from engine.charts import ChartWords


def chart_words() -> ChartWords:
    """Every label of the chart in the current language (the worker draws them as given)."""
    return ChartWords(
        price=t("price"), buy=t("buy"), sell=t("sell: {reason}", reason="{reason}"),
        take_profit=t("take-profit"), stop_loss=t("stop-loss"), signal=t("sell signal"), exit=t("exit"),
        no_trades=t("no trades in this period"), volume=t("volume"), equity=t("equity"),
        strategy=t("strategy"), buy_hold=t("buy & hold"), drawdown=t("drawdown %"),
        title=t("{bot}{symbol} {timeframe} · {days}d · {capital} USDC · fee {fee}% + slippage {slippage}% per fill",
                bot="{bot}", symbol="{symbol}", timeframe="{timeframe}", days="{days}", capital="{capital}",
                fee="{fee}", slippage="{slippage}"),
        demo=t(" (demo data)"))
