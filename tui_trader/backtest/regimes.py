"""The regime of every bar of a series at once, equal bar for bar to feeding a
`RegimeTracker` one candle at a time (a test holds them equal on real data).

The indicators come from TA-Lib's batch functions (equal to its stream handles);
the slow baselines are the tracker's recurrence in one loop over plain floats;
the classification is computed for each regime the tracker may be in, and its
hysteresis jumps from one change of regime to the next.
"""

from __future__ import annotations

import math
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
    regimes: list[Regime]  # after each bar's close
    codes: np.ndarray  # the same as indexes into REGIMES
    atr: list[float]  # the tracker's `atr` after each bar (NaN while NATR warms up)
    adx: np.ndarray
    natr_ratio: list[float]
    width_ratio: list[float]
    slope: np.ndarray

    def features(self, i: int) -> dict[str, float] | None:
        """The tracker's `features_dict` after bar i (None before its first features)."""
        if self.natr_ratio[i] != self.natr_ratio[i]:
            return None
        return RegimeFeatures(float(self.adx[i]), self.natr_ratio[i], self.width_ratio[i], float(self.slope[i])).as_dict()


def regime_series(high: np.ndarray, low: np.ndarray, close: np.ndarray,
                  settings: RegimeSettings | None = None) -> RegimeSeries:
    s = settings or RegimeSettings()
    h, lo, c = (np.asarray(x, dtype=np.float64) for x in (high, low, close))
    n = len(c)
    adx = talib.ADX(h, lo, c, timeperiod=14)
    natr = talib.NATR(h, lo, c, timeperiod=14)
    upper, middle, lower = talib.BBANDS(c, timeperiod=20, nbdevup=2.0, nbdevdn=2.0, matype=0)
    ema = talib.EMA(c, timeperiod=50)
    atr = (natr * c / 100).tolist()

    # The tracker keeps the last slope_bars + 1 valid EMA values; EMA is valid from its lookback on.
    valid_ema = np.flatnonzero(~np.isnan(ema))
    slope = np.full(n, NAN)
    k = s.slope_bars
    if len(valid_ema) > k:
        first = int(valid_ema[0])
        base = ema[first:n - k]
        head = ema[first + k:]
        with np.errstate(divide="ignore", invalid="ignore"):
            slope[first + k:] = np.where(base != 0, (head - base) / base * 100, 0.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        width = np.where(middle != 0, (upper - lower) / middle, 0.0)
    ready = ~(np.isnan(adx) | np.isnan(natr) | np.isnan(upper) | np.isnan(slope))

    full = np.full(n, UNKNOWN, dtype=np.int64)
    natr_ratio, width_ratio = np.full(n, NAN), np.full(n, NAN)
    idx = np.flatnonzero(ready)
    if len(idx):
        # The slow baselines: the tracker's recurrence, in order (it re-seeds whenever the NATR base is 0).
        a = s.baseline_alpha
        natr_base, width_base = [], []
        nb = wb = 0.0
        for x, w in zip(natr[idx].tolist(), width[idx].tolist(), strict=True):
            if nb == 0.0:
                nb, wb = x, w
            else:
                nb += a * (x - nb)
                wb += a * (w - wb)
            natr_base.append(nb)
            width_base.append(wb)
        nbs, wbs = np.array(natr_base), np.array(width_base)
        with np.errstate(divide="ignore", invalid="ignore"):
            natr_ratio[idx] = np.where(nbs != 0, natr[idx] / nbs, 1.0)
            width_ratio[idx] = np.where(wbs != 0, width[idx] / wbs, 1.0)
        codes = _settle(_observed(natr_ratio[idx], adx[idx], slope[idx], s), s.confirm_bars)
        full[idx] = codes
        last = np.maximum.accumulate(np.where(ready, np.arange(n), -1))  # a bar not ready keeps the last regime
        full = np.where(last >= 0, full[np.maximum(last, 0)], UNKNOWN)
    return RegimeSeries([REGIMES[c] for c in full.tolist()], full, atr, adx, natr_ratio.tolist(), width_ratio.tolist(),
                        slope)



def _observed(natr_ratio: np.ndarray, adx: np.ndarray, slope: np.ndarray, s: RegimeSettings) -> np.ndarray:
    """The tracker's classification of each bar, for each regime it may be in (rows by code):
    the thresholds differ (hysteresis), the features do not."""
    enter = np.full(len(adx), RANGE, dtype=np.int64)
    enter[(adx >= s.adx_trend) & (slope <= -s.min_slope_pct)] = DOWN
    enter[(adx >= s.adx_trend) & (slope >= s.min_slope_pct)] = UP  # checked before the down rule
    obs = np.empty((5, len(adx)), dtype=np.int64)
    for current in (UNKNOWN, RANGE, UP, DOWN, VOLATILE):
        row = enter.copy()
        if current == UP:
            row[(adx >= s.adx_exit) & (slope > 0)] = UP
        elif current == DOWN:
            row[(adx >= s.adx_exit) & (slope < 0)] = DOWN
        row[natr_ratio >= (s.calm_ratio if current == VOLATILE else s.volatile_ratio)] = VOLATILE
        obs[current] = row
    return obs


def _settle(obs: np.ndarray, confirm: int) -> np.ndarray:
    """The tracker's hysteresis over the observed classes: a new regime must be observed on
    `confirm` consecutive bars (counted from the bar after the last change) to replace the
    current one; the first observation replaces UNKNOWN at once. Jumps from change to change."""
    n = obs.shape[1]
    # For each current regime: the bars where a different class has been observed `confirm` times in a row.
    candidates = []
    for current in range(5):
        row = obs[current]
        starts = np.flatnonzero(np.r_[True, row[1:] != row[:-1]])
        run = np.arange(n) - np.repeat(starts, np.diff(np.r_[starts, n])) + 1
        candidates.append(np.flatnonzero((row != current) & (run >= confirm)))
    codes = np.empty(n, dtype=np.int64)
    regime = int(obs[UNKNOWN][0])  # the first observation replaces UNKNOWN
    codes[0] = regime
    i = 1
    while i < n:
        found = candidates[regime]
        at = int(np.searchsorted(found, i + confirm - 1))
        j = int(found[at]) if at < len(found) else n
        codes[i:j] = regime
        if j < n:
            regime = int(obs[regime][j])
            codes[j] = regime
        i = j + 1
    return codes

