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
from itertools import chain

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

    full = np.full(n, UNKNOWN, dtype=np.int8)
    natr_ratio, width_ratio = np.full(n, NAN), np.full(n, NAN)
    idx = np.flatnonzero(ready)
    if len(idx):
        # The slow baselines: the tracker's recurrence, in order, in its float arithmetic (it re-seeds
        # both while the NATR base is 0).
        a, m = s.baseline_alpha, len(idx)
        natr_ready, width_ready = natr[idx], width[idx]
        nb = 0.0
        nbs = np.fromiter((nb := (x if nb == 0.0 else nb + a * (x - nb)) for x in memoryview(natr_ready)), float, m)
        wb = 0.0
        before = chain((0.0,), memoryview(nbs)[:-1])  # the NATR base before each bar
        wbs = np.fromiter((wb := (w if p == 0.0 else wb + a * (w - wb)) for w, p in zip(memoryview(width_ready), before)),
                          float, m)
        with np.errstate(divide="ignore", invalid="ignore"):
            natr_ratio[idx] = np.where(nbs != 0, natr_ready / nbs, 1.0)
            width_ratio[idx] = np.where(wbs != 0, width_ready / wbs, 1.0)
        full[idx] = _settle(_observed(natr_ratio[idx], adx[idx], slope[idx], s), s.confirm_bars)
        last = np.maximum.accumulate(np.where(ready, np.arange(n), -1))  # a bar not ready keeps the last regime
        full = np.where(last >= 0, full[np.maximum(last, 0)], np.int8(UNKNOWN))
    return RegimeSeries(full, atr, adx, natr_ratio, width_ratio, slope)


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
    # For each current regime: the bars where a different class has been observed `confirm` times in a row.
    candidates: list[np.ndarray] = []
    span = max(confirm, 1)
    held_of: dict[int, np.ndarray] = {}  # rows shared by several regimes are looked at once
    for current, row in enumerate(obs):
        held = held_of.get(id(row))
        if held is None:
            changes = np.zeros(n, dtype=np.int32)
            np.cumsum(row[1:] != row[:-1], out=changes[1:])  # changes[i]: class changes up to bar i
            held = held_of[id(row)] = np.zeros(n, dtype=bool)  # bar i's class observed on the `span` bars ending there
            held[span - 1:] = changes[span - 1:] == changes[:n - span + 1]
        candidates.append(np.flatnonzero(held & (row != current)))
    codes = np.empty(n, dtype=np.int8)
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
