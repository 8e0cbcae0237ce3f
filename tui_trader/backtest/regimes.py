"""The regime of every bar of a series at once, equal bar for bar to feeding a
`RegimeTracker` one candle at a time (a test holds them equal on real data).

The indicators come from TA-Lib's batch functions (equal to its stream handles);
the slow baselines are the tracker's recurrence, guessed by TA-Lib's EMA and
repaired to its exact rounding; the classification is computed for each regime
the tracker may be in, and its hysteresis jumps from one change of regime to the next.
"""

from __future__ import annotations

import math
from bisect import bisect_left
from dataclasses import dataclass

import numpy as np
import talib

from tui_trader.model import Regime
from tui_trader.regime import RegimeFeatures, RegimeSettings

NAN = math.nan
UNKNOWN, RANGE, UP, DOWN, VOLATILE = range(5)  # codes of the regimes, in REGIMES' order
REGIMES = (Regime.UNKNOWN, Regime.RANGE, Regime.TREND_UP, Regime.TREND_DOWN, Regime.VOLATILE)


@dataclass(frozen=True, slots=True)
class RegimeSeries:
    codes: np.ndarray  # the regime after each bar's close, as indexes into REGIMES (int8)
    atr: np.ndarray  # the tracker's `atr` after each bar (NaN while NATR warms up)
    adx: np.ndarray
    natr_ratio: np.ndarray
    width_ratio: np.ndarray
    slope: np.ndarray

    @property
    def regimes(self) -> list[Regime]:
        return np.array(REGIMES, dtype=object)[self.codes].tolist()

    def features(self, i: int) -> dict[str, float] | None:
        """The tracker's `features_dict` after bar i (None before its first features)."""
        natr_ratio = float(self.natr_ratio[i])
        if natr_ratio != natr_ratio:
            return None
        return RegimeFeatures(float(self.adx[i]), natr_ratio, float(self.width_ratio[i]), float(self.slope[i])).as_dict()


def regime_series(high: np.ndarray, low: np.ndarray, close: np.ndarray,
                  settings: RegimeSettings | None = None) -> RegimeSeries:
    s = settings or RegimeSettings()
    h, lo, c = (np.asarray(x, dtype=np.float64) for x in (high, low, close))
    n = len(c)
    adx = talib.ADX(h, lo, c, timeperiod=14)
    natr = talib.NATR(h, lo, c, timeperiod=14)
    upper, middle, lower = talib.BBANDS(c, timeperiod=20, nbdevup=2.0, nbdevdn=2.0, matype=0)
    ema = talib.EMA(c, timeperiod=50)
    atr = natr * c / 100

    # The tracker keeps the last slope_bars + 1 valid EMA values; EMA is valid from its lookback on.
    valid_ema = ~np.isnan(ema)
    slope = np.full(n, NAN)
    k = s.slope_bars
    with np.errstate(divide="ignore", invalid="ignore"):  # a zero divisor's quotient is replaced
        if np.count_nonzero(valid_ema) > k:
            first = int(np.argmax(valid_ema))
            base = ema[first:n - k]
            rel = slope[first + k:]
            np.subtract(ema[first + k:], base, out=rel)
            rel /= base
            rel *= 100
            rel[base == 0] = 0.0
        width = upper - lower
        width /= middle
        width[middle == 0] = 0.0
    ready = np.isnan(adx)
    for x in (natr, upper, slope):
        ready |= np.isnan(x)
    ready = ~ready

    full = np.full(n, UNKNOWN, dtype=np.int8)
    natr_ratio, width_ratio = np.full(n, NAN), np.full(n, NAN)
    idx = np.flatnonzero(ready)
    if len(idx):
        # Ready bars are normally every bar from the first ready one on: views then, no gathers.
        suffix = int(idx[0]) + len(idx) == n
        at: slice | np.ndarray = slice(int(idx[0]), n) if suffix else idx
        natr_ready, width_ready = natr[at], width[at]
        nbs, wbs = _baselines(natr_ready, width_ready, s.baseline_alpha)
        natr_ratio[at], width_ratio[at] = _ratio(natr_ready, nbs), _ratio(width_ready, wbs)
        full[at] = _settle(_observed(natr_ratio[at], adx[at], slope[at], s), s.confirm_bars)
        if not suffix:  # a bar not ready keeps the last regime
            last = np.maximum.accumulate(np.where(ready, np.arange(n), -1))
            full = np.where(last >= 0, full[np.maximum(last, 0)], np.int8(UNKNOWN))
    return RegimeSeries(full, atr, adx, natr_ratio, width_ratio, slope)


def _baselines(natr: np.ndarray, width: np.ndarray, a: float) -> tuple[np.ndarray, np.ndarray]:
    """The tracker's slow baselines of NATR and width over its ready bars: both re-seeded with the
    bar's values while the NATR base is 0, else moved by its recurrence."""
    nbs, wbs = natr.copy(), width.copy()  # the re-seeded bars keep their values
    m, start = len(natr), 0
    while start < m:
        z = start + int(np.argmax(natr[start:] != 0))  # NaN counts as not 0, as in the tracker
        if natr[z] == 0:
            break
        nbs[z:] = _slow_average(natr[z:], a)
        wbs[z:] = _slow_average(width[z:], a)
        zero = np.flatnonzero(nbs[z:m - 1] == 0)  # a base back at 0 re-seeds the next bar
        if not len(zero):
            break
        start = z + int(zero[0]) + 1
    return nbs, wbs


def _slow_average(x: np.ndarray, a: float) -> np.ndarray:
    """y[0] = x[0], y[i] = y[i-1] + a * (x[i] - y[i-1]), rounded as this Python expression rounds.

    TA-Lib's EMA cannot be used as is: its C code fuses the multiply-add (one rounding, not two), so
    it drifts by an ulp from time to time. It is a guess here, repaired: a value that is one exact
    step from its exact predecessor is exact, so each value that is not is recomputed, and then its
    successor, until the chain meets the guess again (some hundred bars on, as the drift decays).
    numpy advances all chains one step at a time while many are left, Python walks the last ones."""
    n = len(x)
    period = min(max(round(2 / a - 1), 2), 100_000) if 0 < a < 1 else 2
    y = talib.EMA(np.concatenate((np.full(period - 1, x[0]), x)), timeperiod=period)[period - 1:]
    y[0] = x[0]
    step = np.subtract(x[1:], y[:-1])
    step *= a
    step += y[:-1]
    chains = np.flatnonzero(step != y[1:]) + 1  # where each chain is, in order
    rounds = 0
    while 64 < len(chains) <= n // 64 and rounds < 1024:  # a poor guess (odd alpha, NaN) goes to Python
        prev = y[chains - 1]
        step = x[chains] - prev
        step *= a
        step += prev
        moved = step != y[chains]
        chains = chains[moved]  # the others met the guess
        y[chains] = step[moved]
        chains = chains[chains < n - 1] + 1
        rounds += 1
    exact_to = 0  # y[:exact_to] is exact
    xs, ys = memoryview(x), memoryview(y)
    for i in chains.tolist():
        if i < exact_to:
            continue
        v = ys[i - 1]
        fixed = []
        for xi, guess in zip(xs[i:], ys[i:]):
            v = v + a * (xi - v)
            if v == guess:  # -0.0 meets 0.0: a zero base re-seeds and has ratio 1 either way
                break
            fixed.append(v)
        exact_to = i + len(fixed) + 1
        y[i:exact_to - 1] = fixed
    return y


def _ratio(x: np.ndarray, base: np.ndarray) -> np.ndarray:
    """The tracker's ratio to a baseline, 1 where the base is 0, written over the base."""
    zero = base == 0
    with np.errstate(divide="ignore", invalid="ignore"):
        np.divide(x, base, out=base)
    base[zero] = 1.0
    return base


def _observed(natr_ratio: np.ndarray, adx: np.ndarray, slope: np.ndarray, s: RegimeSettings) -> list[np.ndarray]:
    """The tracker's classification of each bar, for each regime it may be in (by code): the
    thresholds differ (hysteresis), the features do not."""
    trend = adx >= s.adx_trend
    enter = np.full(len(adx), RANGE, dtype=np.int8)
    enter[trend & (slope <= -s.min_slope_pct)] = DOWN
    enter[trend & (slope >= s.min_slope_pct)] = UP  # checked before the down rule
    keeps = adx >= s.adx_exit
    volatile, spikes = np.int8(VOLATILE), natr_ratio >= s.volatile_ratio
    fresh = np.where(spikes, volatile, enter)  # from UNKNOWN or RANGE
    up = np.where(keeps & (slope > 0), np.int8(UP), enter)
    down = np.where(keeps & (slope < 0), np.int8(DOWN), enter)
    return [fresh, fresh, np.where(spikes, volatile, up), np.where(spikes, volatile, down),
            np.where(natr_ratio >= s.calm_ratio, volatile, enter)]


def _settle(obs: list[np.ndarray], confirm: int) -> np.ndarray:
    """The tracker's hysteresis over the observed classes: a new regime must be observed on
    `confirm` consecutive bars (counted from the bar after the last change) to replace the
    current one; the first observation replaces UNKNOWN at once. Jumps from change to change."""
    n = len(obs[0])
    span = max(confirm, 1)  # the tracker changes on the first differing bar when confirm <= 1
    # For each current regime, the runs of another class long enough to replace it: where each ends,
    # its first bar observed `span` times in a row and its class (runs, not bars: fewer, searched in Python).
    runs: list[tuple[list[int], list[int], list[int]]] = []  # by current regime
    runs_of: dict[int, tuple[np.ndarray, np.ndarray, np.ndarray]] = {}  # rows shared by regimes
    for current, row in enumerate(obs):
        row_runs = runs_of.get(id(row))
        if row_runs is None:
            last = np.flatnonzero(row[1:] != row[:-1])
            first = np.concatenate(([0], last + 1))
            row_runs = runs_of[id(row)] = (np.append(last, n - 1), first + (span - 1), row[first])
        end, held, cls = row_runs
        keep = (held <= end) & (cls != current)
        runs.append((end[keep].tolist(), held[keep].tolist(), cls[keep].tolist()))
    regime = int(obs[UNKNOWN][0])  # the first observation replaces UNKNOWN
    starts, regimes = [0], [regime]
    i = 1
    while i < n:
        at = i + span - 1  # the first bar that can complete `span` observations since the last change
        end_of, held_from, cls_of = runs[regime]
        k = bisect_left(end_of, at)
        if k == len(end_of):
            break
        i = max(at, held_from[k])
        regime = cls_of[k]
        starts.append(i)
        regimes.append(regime)
        i += 1
    return np.repeat(np.array(regimes, dtype=np.int8), np.diff(starts, append=n))
