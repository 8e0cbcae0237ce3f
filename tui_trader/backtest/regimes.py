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
    # Temporaries are dropped as soon as they are spent: fresh memory costs page faults.
    adx = talib.ADX(h, lo, c, timeperiod=14)
    natr = talib.NATR(h, lo, c, timeperiod=14)
    upper, middle, lower = talib.BBANDS(c, timeperiod=20, nbdevup=2.0, nbdevdn=2.0, matype=0)
    ready, nan = np.isnan(adx), np.empty(n, dtype=bool)
    ready |= np.isnan(natr, out=nan)
    ready |= np.isnan(upper, out=nan)
    width = np.subtract(upper, lower, out=lower)
    with np.errstate(divide="ignore", invalid="ignore"):  # a zero divisor's quotient is replaced
        width /= middle
    width[middle == 0] = 0.0
    del upper, middle, lower
    atr = np.multiply(natr, c)
    atr /= 100
    slope = _slope(c, s.slope_bars)
    ready |= np.isnan(slope, out=nan)
    np.logical_not(ready, out=ready)

    full = np.full(n, UNKNOWN, dtype=np.int8)
    natr_ratio, width_ratio = natr, width  # turned into the ratios in place, NaN where not ready
    start = int(np.argmax(ready)) if ready.any() else n
    # Ready bars are normally every bar from the first ready one on: views then, no gathers.
    suffix = bool(ready[start:].all())
    natr_ratio[:start], width_ratio[:start] = NAN, NAN
    if start < n:
        at: slice | np.ndarray = slice(start, n) if suffix else np.flatnonzero(ready)
        natr_ready, width_ready = natr_ratio[at], width_ratio[at]
        _ratios(natr_ready, width_ready, s.baseline_alpha)
        if not suffix:
            natr_ratio[~ready], width_ratio[~ready] = NAN, NAN
            natr_ratio[at], width_ratio[at] = natr_ready, width_ready
        full[at] = _settle(_observed(natr_ready, adx[at], slope[at], s), s.confirm_bars)
        if not suffix:  # a bar not ready keeps the last regime
            last = np.maximum.accumulate(np.where(ready, np.arange(n), -1))
            full = np.where(last >= 0, full[np.maximum(last, 0)], np.int8(UNKNOWN))
    return RegimeSeries(full, atr, adx, natr_ratio, width_ratio, slope)


def _slope(close: np.ndarray, k: int) -> np.ndarray:
    """The tracker's slope: the EMA's move over its last k steps in % (0 from a zero EMA). The tracker
    keeps the last k + 1 valid EMA values; EMA is valid from its lookback on."""
    ema = talib.EMA(close, timeperiod=50)
    slope = np.full(len(close), NAN)
    valid = ~np.isnan(ema)
    if np.count_nonzero(valid) > k:
        first = int(np.argmax(valid))
        base = ema[first:len(close) - k]
        rel = slope[first + k:]
        np.subtract(ema[first + k:], base, out=rel)
        with np.errstate(divide="ignore", invalid="ignore"):  # a zero divisor's quotient is replaced
            rel /= base
        rel *= 100
        rel[base == 0] = 0.0
    return slope


def _ratios(natr: np.ndarray, width: np.ndarray, a: float) -> None:
    """NATR and width over the ready bars turned in place into their ratios to the tracker's slow
    baselines: both bases are re-seeded with the bar's values while the NATR base is 0, else moved
    by their recurrence."""
    m, start = len(natr), 0
    padded = np.empty(m + _period(a) - 1)  # the EMAs' input, shared: fresh memory costs page faults
    while start < m:
        z = start + int(np.argmax(natr[start:] != 0))  # NaN counts as not 0, as in the tracker
        if natr[z] == 0:
            z = m
        for x in (natr, width):  # the re-seeded bars are their own bases
            _ratio(x[start:z], x[start:z].copy())
        if z == m:
            break
        base = _slow_average(natr[z:], a, padded)
        zero = np.flatnonzero(base[:-1] == 0)  # a base back at 0 re-seeds the next bar
        start = z + int(zero[0]) + 1 if len(zero) else m
        _ratio(natr[z:start], base[:start - z])
        del base  # before the next: fresh memory costs page faults
        _ratio(width[z:start], _slow_average(width[z:start], a, padded))


def _ratio(x: np.ndarray, base: np.ndarray) -> None:
    """x turned in place into the tracker's ratio to its base, 1 where the base is 0."""
    zero = base == 0
    with np.errstate(divide="ignore", invalid="ignore"):
        x /= base
    x[zero] = 1.0


def _period(a: float) -> int:
    """The period of the TA-Lib EMA that guesses a slow average of alpha a."""
    return min(max(round(2 / a - 1), 2), 100_000) if 0 < a < 1 else 2


def _slow_average(x: np.ndarray, a: float, padded: np.ndarray) -> np.ndarray:
    """y[0] = x[0], y[i] = y[i-1] + a * (x[i] - y[i-1]), rounded as this Python expression rounds;
    padded is scratch space for len(x) + _period(a) - 1 values.

    TA-Lib's EMA cannot be used as is: its C code fuses the multiply-add (one rounding, not two), so
    it drifts by an ulp from time to time. It is a guess here, repaired: a value that is one exact
    step from its exact predecessor is exact, so each value that is not is recomputed, and then its
    successor, until the chain meets the guess again (some hundred bars on, as the drift decays).
    numpy advances all chains one step at a time while many are left, Python walks the last ones."""
    n = len(x)
    period = _period(a)
    padded = padded[:period - 1 + n]
    padded[:period - 1] = x[0]
    padded[period - 1:] = x
    y = talib.EMA(padded, timeperiod=period)[period - 1:]
    y[0] = x[0]
    step = np.subtract(x[1:], y[:-1], out=padded[:n - 1])  # the input is spent
    step *= a
    step += y[:-1]
    chains = np.flatnonzero(step != y[1:]) + 1  # where each chain is, in order
    prev, rounds = y[chains - 1], 0
    while 64 < len(chains) <= n // 64 and rounds < 1024:  # a poor guess (odd alpha, NaN) goes to Python
        step = x[chains] - prev
        step *= a
        step += prev
        moved = step != y[chains]
        chains, prev = chains[moved], step[moved]  # the others met the guess
        y[chains] = prev
        if len(chains) and chains[-1] == n - 1:
            chains, prev = chains[:-1], prev[:-1]
        chains += 1
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


def _observed(natr_ratio: np.ndarray, adx: np.ndarray, slope: np.ndarray, s: RegimeSettings) -> list[np.ndarray]:
    """The tracker's classification of each bar, for each regime it may be in (by code): the
    thresholds differ (hysteresis), the features do not."""
    trend = adx >= s.adx_trend
    enter = _pick(trend & (slope <= -s.min_slope_pct), DOWN, np.full(len(adx), RANGE, dtype=np.int8))
    enter = _pick(trend & (slope >= s.min_slope_pct), UP, enter)  # checked before the down rule
    keeps = adx >= s.adx_exit
    spikes = natr_ratio >= s.volatile_ratio
    fresh = _pick(spikes, VOLATILE, enter)  # from UNKNOWN or RANGE
    up = _pick(spikes, VOLATILE, _pick(keeps & (slope > 0), UP, enter))
    down = _pick(spikes, VOLATILE, _pick(keeps & (slope < 0), DOWN, enter))
    return [fresh, fresh, up, down, _pick(natr_ratio >= s.calm_ratio, VOLATILE, enter)]


def _pick(mask: np.ndarray, code: int, other: np.ndarray) -> np.ndarray:
    """np.where(mask, code, other) for int8 codes, by arithmetic: faster than a branch per bar."""
    out = np.subtract(np.int8(code), other)
    out *= mask
    out += other
    return out


def _settle(obs: list[np.ndarray], confirm: int) -> np.ndarray:
    """The tracker's hysteresis over the observed classes: a new regime must be observed on
    `confirm` consecutive bars (counted from the bar after the last change) to replace the
    current one; the first observation replaces UNKNOWN at once. Jumps from change to change."""
    n = len(obs[0])
    span = max(confirm, 1)  # the tracker changes on the first differing bar when confirm <= 1
    # For each regime after the first bar (not UNKNOWN: no bar is observed so), the runs of another class
    # long enough to replace it: where each ends, its first bar observed `span` times in a row and its
    # class (runs, not bars: fewer, searched in Python).
    ends: list[list[int]] = [[]]
    helds: list[list[int]] = [[]]
    classes: list[list[int]] = [[]]
    for current in range(RANGE, len(obs)):
        row = obs[current]
        last = np.flatnonzero(row[1:] != row[:-1])
        first = np.concatenate(([0], last + 1))
        end, cls = np.append(last, n - 1), row[first]
        keep = end - first >= span - 1
        keep &= cls != current
        ends.append(end[keep].tolist())
        helds.append((first[keep] + (span - 1)).tolist())
        classes.append(cls[keep].tolist())
    regime = int(obs[UNKNOWN][0])  # the first observation replaces UNKNOWN
    starts, regimes = [0], [regime]
    i = 0
    while True:
        at = i + span  # the first bar that can complete `span` observations since the change at i
        end_of = ends[regime]
        k = bisect_left(end_of, at)
        if k == len(end_of):
            break
        i = max(at, helds[regime][k])
        regime = classes[regime][k]
        starts.append(i)
        regimes.append(regime)
    return np.repeat(np.array(regimes, dtype=np.int8), np.diff(starts, append=n))
