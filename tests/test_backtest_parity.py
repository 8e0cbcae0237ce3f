"""Parity with backtesting.py 0.6.6: with `--fill-model backtesting-py`, the sma_cross
bot and its mirror in backtesting.py (tests/btpy_mirror.py) give the same trade list
(entry and exit bars and prices, sizes) and the same return, within 1e-9, on
backtesting.py's GOOG sample and on real Bybit candles: market entries at the next
open with spread, commission on both legs, stops and targets on the bars' ranges
(gaps at the open, stop first), and the open trade closed at the last bar's open."""

from __future__ import annotations

import warnings
from decimal import Decimal
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tests.btpy_mirror import frame, mirror
from tui_trader.backtest.results import RunResult
from tui_trader.backtest.runner import Backtest
from tui_trader.backtest.session import FillSettings
from tui_trader.backtest.series import Bars
from tui_trader.config import RiskProfile
from tui_trader.engine.cycle import BotProfile
from tui_trader.model import Instrument, timeframe_ms
from tui_trader.setup import load_strategies

backtesting = pytest.importorskip("backtesting")
from backtesting import Backtest as BtBacktest  # noqa: E402
from backtesting.test import GOOG  # noqa: E402

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


def run_both(bars: Bars, instrument: Instrument, risk: RiskProfile, capital: Decimal, fee: Decimal,
             spread: Decimal) -> tuple[RunResult, pd.Series]:
    leverage = min(Decimal(repr(risk.max_leverage)), instrument.max_leverage)
    profile = BotProfile(1, "parity", instrument.symbol, bars.timeframe, capital, 0, risk, instrument, fee,
                         3 * timeframe_ms(bars.timeframe), timeframe_ms(bars.timeframe))
    strategy = load_strategies().make("sma_cross", {}, bars.timeframe)
    ours = Backtest(bars, profile, strategy, FillSettings("backtesting-py", fee, fee, spread * 10_000)).run()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        bt = BtBacktest(frame(bars), mirror(risk, instrument, capital, fee), cash=float(capital), commission=float(fee),
                        spread=float(spread), margin=float(1 / leverage), finalize_trades=True)
        stats = bt.run()
    return ours, stats


def assert_same(bars: Bars, ours: RunResult, stats: pd.Series, capital: Decimal) -> None:
    theirs = stats["_trades"]
    assert len(ours.trades) == len(theirs) > 30
    index = {int(ts): i for i, ts in enumerate(bars.ts)}
    mine = pd.DataFrame({
        "EntryBar": [index[t.entry_ts] for t in ours.trades],
        "ExitBar": [index[t.exit_ts] for t in ours.trades],
        "Size": [float(t.qty) * t.side.sign for t in ours.trades],
        "EntryPrice": [float(t.entry_price) for t in ours.trades],
        "ExitPrice": [float(t.exit_price) for t in ours.trades],
    })
    assert mine["EntryBar"].tolist() == theirs["EntryBar"].tolist()
    assert mine["ExitBar"].tolist() == theirs["ExitBar"].tolist()
    assert mine["Size"].tolist() == theirs["Size"].astype(float).tolist()
    np.testing.assert_allclose(mine["EntryPrice"], theirs["EntryPrice"], rtol=1e-9, atol=0)
    np.testing.assert_allclose(mine["ExitPrice"], theirs["ExitPrice"], rtol=1e-9, atol=0)
    net = [float(t.net_pnl) for t in ours.trades]
    np.testing.assert_allclose(net, theirs["PnL"], rtol=0, atol=1e-6)  # our ledger keeps 1e-8 USDT
    ret = (float(ours.final_equity) / float(capital) - 1) * 100
    assert ret == pytest.approx(stats["Return [%]"], abs=1e-9 * 100)  # within 1e-9 of capital


def test_goog_daily_matches_backtesting_py() -> None:
    bars = Bars("GOOGUSDT", "1d", (GOOG.index.astype("int64") // 1_000_000).to_numpy(), *(
        GOOG[c].to_numpy(dtype=float) for c in ("Open", "High", "Low", "Close", "Volume")))
    instrument = Instrument("GOOGUSDT", Decimal("0.01"), Decimal(1), Decimal(1), Decimal(0), Decimal(1))
    # Stops and targets near enough to be hit often, sized by risk on equity.
    risk = RiskProfile(risk_per_trade_pct=2, stop_atr_mult=1.5, take_profit_r=2, max_leverage=1, max_position_pct=100)
    ours, stats = run_both(bars, instrument, risk, Decimal(10_000), Decimal("0.002"), Decimal(0))
    reasons = {t.exit_reason for t in ours.trades}
    assert {"stop", "target", "reverse"} <= reasons, reasons
    assert_same(bars, ours, stats, Decimal(10_000))


def test_real_bybit_hours_with_spread_match_backtesting_py() -> None:
    path = DATA / "bybit_BTCUSDT_1h.csv.gz"
    if not path.exists():
        pytest.skip(f"{path} is missing")
    bars = Bars.from_csv(path, "BTCUSDT", "1h")
    bars = bars.window(int(bars.ts[-6_008]), int(bars.ts[-8]))  # ends with a trade open
    instrument = Instrument("BTCUSDT", Decimal("0.1"), Decimal(1), Decimal(1), Decimal(0), Decimal(100))
    risk = RiskProfile(risk_per_trade_pct=3, stop_atr_mult=2, take_profit_r=3, max_leverage=5, max_position_pct=500)
    capital = Decimal(1_000_000)
    ours, stats = run_both(bars, instrument, risk, capital, Decimal("0.0006"), Decimal("0.0002"))
    reasons = {t.exit_reason for t in ours.trades}
    assert {"stop", "target", "reverse"} <= reasons, reasons
    last = ours.trades[-1]  # finalize_trades: the open trade closes at the last bar's open
    assert (last.exit_ts, float(last.exit_price)) == (int(bars.ts[-1]), float(bars.open[-1]))
    assert_same(bars, ours, stats, capital)
