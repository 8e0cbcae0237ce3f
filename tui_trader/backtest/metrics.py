"""Trading performance metrics for backtests and the live bot detail screen.

Pure functions, no I/O. Definitions follow backtesting.py 0.6.6 (`_stats.py`)
where it has one, except where noted:

* Money (net P&L, fees, averages) is summed exactly in `Decimal`, then converted to float.
* Per-trade return % = net_pnl / (|qty| * entry_price) * 100 (backtesting.py `Trade.pl_pct`).
* Win: net P&L > 0; loss: net P&L < 0; win rate = wins / all trades (scratch trades count).
* Drawdown = equity / running peak - 1 (<= 0); max drawdown % = min * 100 (negative).
* Max drawdown duration: the longest underwater period, from the peak to the first point
  back at (or above) that peak, or to the last point if never recovered (ms).
* Exposure % = share of equity-curve points whose time lies inside some trade's
  [entry_ts, exit_ts] (inclusive), as backtesting.py counts bars in [EntryBar, ExitBar].
* Total return % = (last equity / capital - 1) * 100 (capital + net P&L if no curve).
* CAGR % = ((last equity / capital) ** (1 / years) - 1) * 100, years = (last ts - first ts)
  / 365 days (crypto trades every day: backtesting.py's D = 365). NaN for a zero span.
  No minimum span: a curve shorter than a day annualises to a very large (or inf) number.
* Sharpe / Sortino (deviation from backtesting.py, which compounds *daily* returns):
  r = per-period simple returns of the equity curve, N = periods per year
  (default: 365 days / median index spacing, e.g. 1-minute bars -> 525600), rf = 0;
  Sharpe = mean(r) / std(r, ddof=1) * sqrt(N);
  Sortino = mean(r) / sqrt(mean(min(r, 0)**2)) * sqrt(N).
  NaN when there are < 2 returns or the denominator is (numerically) zero.
* Calmar = CAGR / |max drawdown| (both as fractions); NaN when the drawdown is 0.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from itertools import compress

import numpy as np
import pandas as pd

from tui_trader.model import ZERO, Trade

NAN = float("nan")
YEAR_MS = 365 * 86_400_000


@dataclass(frozen=True)
class Metrics:
    net_pnl: float  # sum of trades' net P&L (realized)
    total_return_pct: float
    cagr_pct: float
    trades: int
    win_rate_pct: float
    profit_factor: float  # sum of winners' net P&L / |sum of losers' net P&L|
    profit_factor_pct: float  # same on per-trade returns in %
    expectancy: float  # mean net P&L per trade
    avg_win: float  # mean net P&L of winners (NaN if none)
    avg_loss: float  # mean net P&L of losers, negative (NaN if none)
    largest_win: float
    largest_loss: float  # most negative net P&L (NaN if no losers)
    max_drawdown_pct: float  # <= 0
    max_drawdown_duration: int  # ms
    sharpe: float
    sortino: float
    calmar: float
    exposure_pct: float
    fees_paid: float
    buy_and_hold_pct: float


def _ratio(gains: float, losses: float, any_trades: bool) -> float:
    """gains / |losses|: inf with gains and no losses, NaN with neither or no trades."""
    if not any_trades or (gains == 0 and losses == 0):
        return NAN
    return math.inf if losses == 0 else gains / abs(losses)


def _clean(equity: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """Equity as (ms timestamps int64, values float64), sorted, NaNs dropped."""
    if len(equity) == 0:
        return np.empty(0, np.int64), np.empty(0, np.float64)
    idx, values = equity.index, equity.to_numpy()
    if not isinstance(idx, pd.DatetimeIndex) and values.dtype.kind in "iuf":
        # The usual curve (ms index, numbers, in order, no NaN) needs none of the conversions below.
        t, v = np.asarray(idx, dtype=np.int64), np.asarray(values, dtype=np.float64)
        if not np.isnan(v).any() and bool((t[1:] >= t[:-1]).all()):
            return t, v
    if not isinstance(idx, pd.DatetimeIndex):
        idx = pd.to_datetime(np.asarray(idx, dtype=np.int64), unit="ms", utc=True)
    idx = idx.tz_localize("UTC") if idx.tz is None else idx.tz_convert("UTC")
    s = pd.Series(pd.to_numeric(values, errors="coerce").astype(float), index=idx)
    s = s.dropna().sort_index()
    return s.index.as_unit("ms").asi8.astype(np.int64), s.to_numpy(np.float64)


def _drawdown(v: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        dd = v / np.maximum.accumulate(v) - 1.0 if len(v) else v
    return np.minimum(np.nan_to_num(dd, nan=0.0, posinf=0.0, neginf=-1.0), 0.0)


def drawdown_series(equity: pd.Series) -> pd.Series:
    """Fraction below the running peak, equity / cummax(equity) - 1 (<= 0), same index."""
    v = pd.to_numeric(pd.Series(equity.to_numpy()), errors="coerce").astype(float).to_numpy()
    return pd.Series(_drawdown(v), index=equity.index, name="drawdown")


def _max_dd_duration(t: np.ndarray, dd: np.ndarray) -> int:
    """Longest time from a peak to recovery (back at the peak) or to the last point."""
    n = len(t)
    if n < 2:
        return 0
    at_peak = dd >= 0
    last_peak = np.maximum.accumulate(np.where(at_peak, np.arange(n), 0))
    rec = np.flatnonzero(at_peak[1:] & ~at_peak[:-1]) + 1  # first point back at a peak
    ends = np.r_[rec, [n - 1] if not at_peak[-1] else []].astype(np.int64)
    starts = np.r_[last_peak[rec - 1], [last_peak[-1]] if not at_peak[-1] else []].astype(np.int64)
    return int((t[ends] - t[starts]).max()) if len(ends) else 0


def _exposure_pct(t: np.ndarray, entry: np.ndarray, exit_: np.ndarray) -> float:
    """% of curve points inside some trade's [entry, exit] (ms)."""
    if len(t) == 0:
        return NAN
    if not len(entry):
        return 0.0
    marks = np.bincount(np.searchsorted(t, entry, "left"), minlength=len(t) + 1)
    marks -= np.bincount(np.searchsorted(t, exit_, "right"), minlength=len(t) + 1)
    return float((np.cumsum(marks[:-1]) > 0).mean() * 100)


def _sharpe_sortino(v: np.ndarray, periods_per_year: float) -> tuple[float, float]:
    """Annualised Sharpe and Sortino of per-period simple returns, rf = 0 (see module doc)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        r = v[1:] / v[:-1] - 1.0
    r = r[np.isfinite(r)]
    if len(r) < 2 or not np.isfinite(periods_per_year) or periods_per_year <= 0:
        return NAN, NAN
    mean, std = r.mean(), r.std(ddof=1)
    down = math.sqrt(float(np.mean(np.minimum(r, 0.0) ** 2)))
    tol = 1e-12 * max(1.0, abs(mean))
    scale = math.sqrt(periods_per_year)
    sharpe = float(mean / std * scale) if std > tol else NAN
    sortino = float(mean / down * scale) if down > tol else NAN
    return sharpe, sortino


def compute_metrics(
    trades: Sequence[Trade],
    equity: pd.Series,
    capital: Decimal | float,
    periods_per_year: float | None = None,
    buy_and_hold_pct: float | None = None,
) -> Metrics:
    """Score closed trades and an equity curve (DatetimeIndex or int ms index) per the module doc."""
    n = len(trades)
    # One pass over the trades: each trade's objects are fetched from memory once (the passes after
    # this one run over fresh, compact lists, and C-level maps have no Python frame per item).
    nets: list[Decimal] = []
    notional: list[Decimal] = []
    entry_ts: list[int] = []
    exit_ts: list[int] = []
    add_net, add_notional, add_entry, add_exit = nets.append, notional.append, entry_ts.append, exit_ts.append
    fee_sum = ZERO
    for tr in trades:
        fee = tr.fees
        fee_sum += fee
        add_net(tr.pnl - fee)  # net_pnl, without a property call
        add_notional(tr.qty * tr.entry_price)
        add_entry(tr.entry_ts)
        add_exit(tr.exit_ts)
    nets_f = np.fromiter(map(float, nets), np.float64, n)
    win_mask, loss_mask = list(map(ZERO.__lt__, nets)), list(map(ZERO.__gt__, nets))
    wins, losses = win_mask.count(True), loss_mask.count(True)
    net_sum = sum(nets, ZERO)
    win_sum, loss_sum = sum(compress(nets, win_mask), ZERO), sum(compress(nets, loss_mask), ZERO)
    notional_f = np.abs(np.fromiter(map(float, notional), np.float64, n))  # |float(x)| == float(|x|)
    with np.errstate(divide="ignore", invalid="ignore"):
        ret_pct = nets_f / notional_f * 100
    ret_pct = ret_pct[np.isfinite(ret_pct)]

    t, v = _clean(equity)
    cap = float(capital)
    final = float(v[-1]) if len(v) else cap + float(net_sum)
    growth = final / cap if cap > 0 else NAN
    span = int(t[-1] - t[0]) if len(t) else 0
    cagr = NAN
    if span > 0 and growth > 0:
        with np.errstate(over="ignore"):
            cagr = float(np.power(growth, YEAR_MS / span) - 1.0)
    dd = _drawdown(v)
    max_dd = float(dd.min()) if len(dd) else 0.0
    if periods_per_year is None:
        step = float(np.median(np.diff(t))) if len(t) > 1 else 0.0
        periods_per_year = YEAR_MS / step if step > 0 else NAN
    sharpe, sortino = _sharpe_sortino(v, periods_per_year)

    return Metrics(
        net_pnl=float(net_sum),
        total_return_pct=(growth - 1.0) * 100,
        cagr_pct=cagr * 100,
        trades=n,
        win_rate_pct=wins / n * 100 if n else NAN,
        profit_factor=_ratio(float(win_sum), float(loss_sum), n > 0),
        profit_factor_pct=_ratio(float(ret_pct[ret_pct > 0].sum()), float(ret_pct[ret_pct < 0].sum()), n > 0),
        expectancy=float(net_sum / n) if n else NAN,
        avg_win=float(win_sum / wins) if wins else NAN,
        avg_loss=float(loss_sum / losses) if losses else NAN,
        # float() is monotonic: the largest float is the float of the largest Decimal.
        largest_win=float(nets_f[np.array(win_mask, bool)].max()) if wins else NAN,
        largest_loss=float(nets_f[np.array(loss_mask, bool)].min()) if losses else NAN,
        max_drawdown_pct=max_dd * 100,
        max_drawdown_duration=_max_dd_duration(t, dd),
        sharpe=sharpe,
        sortino=sortino,
        calmar=cagr / abs(max_dd) if max_dd < 0 else NAN,
        exposure_pct=_exposure_pct(t, np.array(entry_ts, np.int64), np.array(exit_ts, np.int64)),
        fees_paid=float(fee_sum),
        buy_and_hold_pct=NAN if buy_and_hold_pct is None else float(buy_and_hold_pct),
    )
