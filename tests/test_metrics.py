"""Hand-computed checks of tui_trader.backtest.metrics."""

from __future__ import annotations

import math
from decimal import Decimal as D

import numpy as np
import pandas as pd
import pytest

from tui_trader.backtest.metrics import compute_metrics, drawdown_series
from tui_trader.model import Side, Trade

DAY, HOUR, MIN = 86_400_000, 3_600_000, 60_000
T0 = 1_704_067_200_000  # 2024-01-01 00:00 UTC


def trade(side: Side, qty: str, entry: str, pnl: str, fees: str, t_in: int, t_out: int) -> Trade:
    return Trade(1, "BTCUSDT", side, D(qty), D(entry), D(entry), t_in, t_out, D(pnl), D(fees), "test")


# net = pnl - fees: +30, -10, +20, -5; notional |qty|*entry: 100, 100, 100, 50 -> returns +30%, -10%, +20%, -10%
TRADES = [
    trade(Side.BUY, "1", "100", "30.1", "0.1", T0 + 1 * DAY, T0 + 2 * DAY),
    trade(Side.SELL, "2", "50", "-9.8", "0.2", T0 + 3 * DAY, T0 + 4 * DAY),
    trade(Side.BUY, "0.5", "200", "20.3", "0.3", T0 + 4 * DAY, T0 + 5 * DAY),
    trade(Side.BUY, "1", "50", "-4.9", "0.1", T0 + 5 * DAY + HOUR, T0 + 6 * DAY),
]
EQUITY = pd.Series([1000, 1010, 1030, 1020, 1020, 1040, 1035], index=[T0 + i * DAY for i in range(7)])


def test_every_field_on_hand_made_trades() -> None:
    m = compute_metrics(TRADES, EQUITY, D(1000), buy_and_hold_pct=12.5)
    assert m.trades == 4
    assert m.net_pnl == 35.0  # 30 - 10 + 20 - 5
    assert m.fees_paid == 0.7 and 0.1 + 0.2 + 0.3 + 0.1 != 0.7  # exact Decimal sum, not float sum
    assert m.win_rate_pct == 50.0  # 2 of 4
    assert m.profit_factor == pytest.approx(50 / 15)  # (30 + 20) / (10 + 5)
    assert m.profit_factor_pct == pytest.approx(50 / 20)  # (30% + 20%) / (10% + 10%)
    assert m.expectancy == 8.75  # 35 / 4
    assert (m.avg_win, m.avg_loss) == (25.0, -7.5)
    assert (m.largest_win, m.largest_loss) == (30.0, -10.0)
    assert m.total_return_pct == pytest.approx(3.5)  # 1035 / 1000 - 1
    cagr = 1.035 ** (365 / 6) - 1  # 6 days of a 365-day year
    assert m.cagr_pct == pytest.approx(cagr * 100)
    assert m.max_drawdown_pct == pytest.approx(-10 / 1030 * 100)  # 1030 -> 1020
    assert m.max_drawdown_duration == 3 * DAY  # peak day 2, back above it on day 5
    assert m.calmar == pytest.approx(cagr / (10 / 1030))
    assert m.exposure_pct == pytest.approx(6 / 7 * 100)  # days 1..6 inside a trade, day 0 not
    r = np.array([10 / 1000, 20 / 1010, -10 / 1030, 0, 20 / 1020, -5 / 1040])
    assert m.sharpe == pytest.approx(r.mean() / r.std(ddof=1) * math.sqrt(365))  # daily bars -> 365
    assert m.sortino == pytest.approx(r.mean() / math.sqrt((r.clip(max=0) ** 2).mean()) * math.sqrt(365))
    assert m.buy_and_hold_pct == 12.5


def test_datetime_index_matches_int_ms_index() -> None:
    naive = EQUITY.set_axis(pd.to_datetime(EQUITY.index, unit="ms"))
    a = compute_metrics(TRADES, EQUITY, 1000)
    for eq in (naive, naive.set_axis(naive.index.tz_localize("UTC").tz_convert("Asia/Tokyo"))):
        assert compute_metrics(TRADES, eq, 1000) == a


def test_sharpe_on_known_returns_and_inferred_minute_periods() -> None:
    r = np.array([0.01, -0.02, 0.03, 0.0, 0.01])
    values = 100 * np.cumprod(np.r_[1.0, 1 + r])
    eq = pd.Series(values, index=pd.date_range("2024-01-01", periods=6, freq="1min", tz="UTC"))
    m = compute_metrics([], eq, 100)
    # mean 0.006, sample std sqrt(sum((r - 0.006)^2) / 4); 1-minute bars -> 365 * 1440 = 525600 per year
    std = math.sqrt(sum((x - 0.006) ** 2 for x in r) / 4)
    assert m.sharpe == pytest.approx(0.006 / std * math.sqrt(525_600))
    assert m.sortino == pytest.approx(0.006 / math.sqrt(0.02**2 / 5) * math.sqrt(525_600))
    assert compute_metrics([], eq, 100, periods_per_year=252).sharpe == pytest.approx(0.006 / std * math.sqrt(252))


def test_drawdown_depth_and_duration() -> None:
    eq = pd.Series([100, 120, 90, 60, 110, 120, 130, 100], index=[T0 + i * HOUR for i in range(8)])
    dd = drawdown_series(eq)
    assert list(dd.index) == list(eq.index)
    assert dd.to_numpy() == pytest.approx([0, 0, -0.25, -0.5, -10 / 120, 0, 0, -30 / 130])
    m = compute_metrics([], eq, 100)
    assert m.max_drawdown_pct == pytest.approx(-50.0)  # 120 -> 60
    assert m.max_drawdown_duration == 4 * HOUR  # peak 120 at h1, back to 120 at h5 (h6 -> h7 is 1h)


def test_longest_drawdown_wins_and_runs_to_the_end() -> None:
    eq = pd.Series([100, 50, 100, 99, 99, 99, 99], index=[T0 + i * MIN for i in range(7)])
    m = compute_metrics([], eq, 100)
    assert m.max_drawdown_pct == pytest.approx(-50.0)
    assert m.max_drawdown_duration == 4 * MIN  # shallow, unrecovered: m2 -> end m6 (the -50% lasted 2)


def test_no_trades_flat_curve() -> None:
    eq = pd.Series([1000.0] * 5, index=[T0 + i * MIN for i in range(5)])
    m = compute_metrics([], eq, 1000)
    assert (m.trades, m.net_pnl, m.fees_paid, m.total_return_pct, m.cagr_pct) == (0, 0.0, 0.0, 0.0, 0.0)
    assert (m.max_drawdown_pct, m.max_drawdown_duration, m.exposure_pct) == (0.0, 0, 0.0)
    for name in ("win_rate_pct", "profit_factor", "profit_factor_pct", "expectancy", "avg_win", "avg_loss",
                 "largest_win", "largest_loss", "sharpe", "sortino", "calmar", "buy_and_hold_pct"):
        assert math.isnan(getattr(m, name)), name


def test_constant_growth_has_no_sharpe() -> None:
    eq = pd.Series(100 * 1.01 ** np.arange(10), index=[T0 + i * MIN for i in range(10)])
    m = compute_metrics([], eq, 100)
    assert math.isnan(m.sharpe) and math.isnan(m.sortino)  # zero std, no downside: NaN, not inf


@pytest.mark.parametrize("eq", [pd.Series([], dtype=float), pd.Series([1000.0], index=[T0])])
def test_empty_and_single_point_curves(eq: pd.Series) -> None:
    m = compute_metrics(TRADES, eq, 1000)
    assert m.trades == 4 and m.net_pnl == 35.0
    assert m.total_return_pct == pytest.approx(3.5 if eq.empty else 0.0)  # no curve: capital + net P&L
    assert (m.max_drawdown_pct, m.max_drawdown_duration) == (0.0, 0)
    assert all(math.isnan(x) for x in (m.cagr_pct, m.sharpe, m.sortino, m.calmar))


def test_all_winners_and_all_losers() -> None:
    wins, losses = [TRADES[0], TRADES[2]], [TRADES[1], TRADES[3]]
    w = compute_metrics(wins, EQUITY, 1000)
    assert (w.win_rate_pct, w.profit_factor, w.profit_factor_pct) == (100.0, math.inf, math.inf)
    assert math.isnan(w.avg_loss) and math.isnan(w.largest_loss) and w.avg_win == 25.0
    lo = compute_metrics(losses, EQUITY, 1000)
    assert (lo.win_rate_pct, lo.profit_factor, lo.expectancy, lo.avg_loss) == (0.0, 0.0, -7.5, -7.5)
    assert math.isnan(lo.avg_win) and math.isnan(lo.largest_win)
