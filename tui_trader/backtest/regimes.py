"""The regime of every bar of a series at once, equal bar for bar to feeding a
`RegimeTracker` one candle at a time (a test holds them equal on real data).

The indicators come from TA-Lib's batch functions (equal to its stream handles);
the slow baselines and the hysteresis are the tracker's own recurrences, run in
one loop over plain floats.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import talib

from tui_trader.model import Regime
from tui_trader.regime import RegimeFeatures, RegimeSettings

NAN = math.nan


@dataclass(frozen=True, slots=True)
class RegimeSeries:
    regimes: list[Regime]  # after each bar's close
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

    regimes: list[Regime] = [Regime.UNKNOWN] * n
    natr_ratio = [NAN] * n
    width_ratio = [NAN] * n
    idx = np.flatnonzero(ready)
    if len(idx):
        a = s.baseline_alpha
        natr_l, width_l = natr.tolist(), width.tolist()
        adx_l, slope_l = adx.tolist(), slope.tolist()
        natr_base = width_base = 0.0
        regime = candidate = Regime.UNKNOWN
        candidate_bars = 0
        volatile, up, down, rng = Regime.VOLATILE, Regime.TREND_UP, Regime.TREND_DOWN, Regime.RANGE
        vol_ratio, calm, trend, exit_, min_slope, confirm = (s.volatile_ratio, s.calm_ratio, s.adx_trend, s.adx_exit,
                                                             s.min_slope_pct, s.confirm_bars)
        last = int(idx[0])
        for i in idx.tolist():
            for j in range(last, i):  # bars inside the warm-up keep the regime (UNKNOWN)
                regimes[j] = regime
            last = i + 1
            x, w = natr_l[i], width_l[i]
            if natr_base == 0.0:
                natr_base, width_base = x, w
            else:
                natr_base += a * (x - natr_base)
                width_base += a * (w - width_base)
            nr = x / natr_base if natr_base else 1.0
            wr = w / width_base if width_base else 1.0
            natr_ratio[i], width_ratio[i] = nr, wr
            d, sl = adx_l[i], slope_l[i]
            if nr >= (calm if regime is volatile else vol_ratio):
                observed = volatile
            elif regime is up and d >= exit_ and sl > 0:
                observed = up
            elif regime is down and d >= exit_ and sl < 0:
                observed = down
            elif d >= trend and sl >= min_slope:
                observed = up
            elif d >= trend and sl <= -min_slope:
                observed = down
            else:
                observed = rng
            if observed is regime:
                candidate_bars = 0
            else:
                if observed is candidate:
                    candidate_bars += 1
                else:
                    candidate, candidate_bars = observed, 1
                if candidate_bars >= confirm or regime is Regime.UNKNOWN:
                    regime = observed
                    candidate_bars = 0
            regimes[i] = regime
        for j in range(last, n):
            regimes[j] = regime
    return RegimeSeries(regimes, atr, adx, natr_ratio, width_ratio, slope)
