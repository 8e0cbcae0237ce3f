"""Stop and target inside one bar: with finer candles underneath, the backtest
follows their path (the exchange matches each 1m bar while the 1h bot sees the
aggregated candle, as live); without them the bar is ambiguous: the run assumes
the stop, a second run the target, and both totals and the count are reported."""

from __future__ import annotations

from decimal import Decimal

import numpy as np
import pytest

from tests.engine_harness import SYMBOL, make_config, registry
from tui_trader.backtest.results import RunResult
from tui_trader.backtest.runner import Backtest, run_backtest
from tui_trader.backtest.session import FillSettings
from tui_trader.backtest.series import Bars, aggregate
from tui_trader.engine.warmup import bot_profile
from tui_trader.setup import instruments

H = 3_600_000
T0 = 1_700_002_800_000  # an hour boundary
HISTORY = 3  # the scripted strategy warms up on two bars
FLAT = [1000.0] * 61


def hour_paths(ambiguous: list[float]) -> list[list[float]]:
    """Minute-by-minute prices (61 points per hour: open to close) of history, the entry
    hour, the hour that reaches both levels along `ambiguous`, and two quiet hours."""
    return [FLAT] * (HISTORY + 2) + [ambiguous] + [FLAT] * 2


def path(*legs: tuple[float, int]) -> list[float]:
    """Straight legs from 1000: (to price, minutes); 60 minutes in all."""
    out, price = [1000.0], 1000.0
    for to, minutes in legs:
        out += list(np.linspace(price, to, minutes + 1)[1:])
        price = to
    assert len(out) == 61
    return out


UP_FIRST = path((1050.0, 10), (970.0, 30), (1000.0, 20))  # target 1040 at minute ~8, stop 980 at ~34
DOWN_FIRST = path((970.0, 10), (1050.0, 30), (1000.0, 20))


def minute_bars(hours: list[list[float]]) -> Bars:
    ts, o, h, lo, c = [], [], [], [], []
    for n, prices in enumerate(hours):
        for m in range(60):
            a, b = prices[m], prices[m + 1]
            ts.append(T0 + n * H + m * 60_000)
            o.append(a), c.append(b), h.append(max(a, b) + 0.5), lo.append(min(a, b) - 0.5)
    return Bars(SYMBOL, "1m", np.array(ts, dtype=np.int64), *(np.array(x) for x in (o, h, lo, c, [1.0] * len(ts))))


def hour_bars(minutes: Bars) -> Bars:
    return aggregate(minutes, "1h")[0]


def run(bars: Bars) -> tuple[RunResult, RunResult | None]:
    config = make_config([{"name": "intrabar", "symbol": SYMBOL, "timeframe": "1h", "capital": "10000",
                           "risk_profile": "exact", "strategy": "scripted",
                           "params": {"long_at": str(T0 + HISTORY * H), "atr": 10.0}}])
    spec = config.bots[0]
    profile = bot_profile(config, spec, 1, instruments(config, [SYMBOL])[SYMBOL])
    fills = FillSettings("paper", config.exchange.taker_fee, config.exchange.maker_fee, Decimal(0))
    start = int(np.searchsorted(bars.ts, T0 + HISTORY * H))
    return run_backtest(bars, profile, lambda: registry().make("scripted", spec.params, "1h"), fills, start=start)


def only_trade(result: RunResult) -> tuple[str, Decimal]:
    (trade,) = result.trades
    assert (trade.entry_price, trade.qty) == (Decimal(1000), Decimal(5))  # stop 980 (2 ATR), target 1040 (2R)
    return trade.exit_reason, trade.exit_price


@pytest.mark.parametrize(("hour", "expected"), [(UP_FIRST, ("target", Decimal(1040))),
                                                (DOWN_FIRST, ("stop", Decimal(980)))])
def test_with_minute_bars_the_path_decides(hour: list[float], expected: tuple[str, Decimal]) -> None:
    result, optimistic = run(minute_bars(hour_paths(hour)))
    assert only_trade(result) == expected
    assert result.ambiguous_bars == 0 and optimistic is None  # no 1m bar holds both levels


def test_the_hour_alone_is_ambiguous_pessimistic_and_optimistic_totals() -> None:
    for hour in (UP_FIRST, DOWN_FIRST):  # the same hourly candle either way
        bars = hour_bars(minute_bars(hour_paths(hour)))
        assert bars.timeframe == "1h"
        result, optimistic = run(bars)
        assert result.ambiguous_bars == 1
        assert only_trade(result) == ("stop", Decimal(980))
        assert optimistic is not None and only_trade(optimistic) == ("target", Decimal(1040))
        fees = lambda r: sum((f.fee for f in r.fills), Decimal(0))  # noqa: E731
        assert result.final_equity == 10_000 - 5 * 20 - fees(result)
        assert optimistic.final_equity == 10_000 + 5 * 40 - fees(optimistic)


def test_the_backtesting_py_model_assumes_the_stop_and_counts_the_bar() -> None:
    bars = hour_bars(minute_bars(hour_paths(UP_FIRST)))
    config = make_config([{"name": "b", "symbol": SYMBOL, "timeframe": "1h", "capital": "10000", "risk_profile": "exact",
                           "strategy": "scripted", "params": {"long_at": str(T0 + HISTORY * H), "atr": 10.0}}])
    spec = config.bots[0]
    profile = bot_profile(config, spec, 1, instruments(config, [SYMBOL])[SYMBOL])
    start = int(np.searchsorted(bars.ts, T0 + HISTORY * H))
    fills = FillSettings("backtesting-py", Decimal("0.001"), Decimal("0.001"), Decimal(0))
    result = Backtest(bars, profile, registry().make("scripted", spec.params, "1h"), fills, start=start).run()
    assert result.ambiguous_bars == 1
    assert only_trade(result) == ("stop", Decimal(980))
