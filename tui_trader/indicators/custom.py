"""Indicators TA-Lib lacks, with the streaming interface of `Stream` (`update`, `fill`,
`value`, `ready`, `lookback`) and a batch function that gives the same values bar for bar:
the Choppiness Index (`Chop`/`chop`), a VWAP anchored to the UTC day (`Vwap`/`vwap`; TA-Lib's
VWAP accumulates from the first bar of the array) and cumulative volume delta (`Cvd`/`cvd`,
volume signed by close versus open). TA-Lib 0.8 has Hull MA and the Donchian channel itself;
`hma` is here for its documentation.

Pure: no I/O, no clock.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import talib
import talib.stream

from tui_trader.indicators.streaming import DAY_MS, NAN, _State, _Streaming, candle_arrays
from tui_trader.model import Candle


def hma(real: np.ndarray, timeperiod: int) -> np.ndarray:
    """Hull moving average, TA-Lib's: WMA(2*WMA(x, n//2) - WMA(x, n), floor(sqrt(n))).

    Both periods round down (n=20 -> 10 and 4; n=21 -> 10 and 4); lookback
    n - 1 + floor(sqrt(n)) - 1. Stream it with `Stream("HMA", timeperiod=n)`.
    """
    return talib.HMA(np.asarray(real, dtype=np.float64), timeperiod=timeperiod)


def _chop_scale(timeperiod: int) -> float:
    if timeperiod < 2:
        raise ValueError(f"CHOP needs timeperiod >= 2, got {timeperiod}")
    return 100.0 / math.log10(timeperiod)


def chop(high: np.ndarray, low: np.ndarray, close: np.ndarray, timeperiod: int = 14) -> np.ndarray:
    """Choppiness Index: 100 * log10(sum(TR, n) / (max(high, n) - min(low, n))) / log10(n).

    TR is TA-Lib's TRANGE, which needs the previous close: bar 0 has none, so the
    first value is at bar n (lookback n, like ATR). All three windows are the same
    n bars. 100 = choppy range (every bar spans the whole window's range), 0 =
    one-way trend (the true ranges add up to the window's range); only a first
    true range reaching outside the window (from the close before it) can push it
    above 100. A window with no range (max == min) is 100.
    """
    h, lo, c = (np.asarray(x, dtype=np.float64) for x in (high, low, close))
    total = talib.SUM(talib.TRANGE(h, lo, c), timeperiod=timeperiod)  # leading NaN skipped: first sum at bar n
    width = talib.MAX(h, timeperiod=timeperiod) - talib.MIN(lo, timeperiod=timeperiod)
    with np.errstate(divide="ignore", invalid="ignore"):
        out = np.log10(total / width) * _chop_scale(timeperiod)
    return np.where(width > 0, out, np.where(np.isnan(total), NAN, 100.0))


class _ChopState:
    __slots__ = ("scale", "sum", "max", "min", "prev_close", "value")

    def __init__(self, scale: float, handles: tuple[talib.stream.Stream, ...], prev_close: float) -> None:
        self.scale = scale
        self.sum, self.max, self.min = handles
        self.prev_close = prev_close
        self.value = self._emit(self.sum.value, self.max.value - self.min.value)

    def _emit(self, total: float, width: float) -> float:
        return math.log10(total / width) * self.scale if width > 0 else 100.0

    def update(self, high: float, low: float, close: float) -> float:
        prev, self.prev_close = self.prev_close, close
        total = self.sum.update(max(high - low, abs(high - prev), abs(low - prev)))  # TRANGE's arithmetic
        self.value = self._emit(total, self.max.update(high) - self.min.update(low))
        return self.value

    def copy(self) -> _ChopState:
        return _ChopState(self.scale, (self.sum.copy(), self.max.copy(), self.min.copy()), self.prev_close)


class Chop(_Streaming):
    """Streaming Choppiness Index; equals `chop` bar for bar (TA-Lib SUM/MAX/MIN handles inside)."""

    __slots__ = ("_scale",)

    def __init__(self, timeperiod: int = 14) -> None:
        self._scale = _chop_scale(timeperiod)
        super().__init__(timeperiod, ("high", "low", "close"), ("CHOP", timeperiod))  # n true ranges need n + 1 candles

    def _open(self, candles: Sequence[Candle]) -> _State:
        high, low, close = candle_arrays(candles, ("high", "low", "close"))
        n = self.lookback
        handles = (talib.stream.SUM.open_and_fill(talib.TRANGE(high, low, close), timeperiod=n)[0],  # bar 0's NaN is skipped
                   talib.stream.MAX.open_and_fill(high, timeperiod=n)[0], talib.stream.MIN.open_and_fill(low, timeperiod=n)[0])
        return _ChopState(self._scale, handles, float(close[-1]))


def vwap(ts: np.ndarray, high: np.ndarray, low: np.ndarray, close: np.ndarray, volume: np.ndarray) -> np.ndarray:
    """VWAP anchored to the UTC day of each bar's open time `ts` (ms): the running
    sum(typical * volume) / sum(volume) since the first bar of that day, typical =
    (high + low + close) / 3; the typical price itself while the day has no volume."""
    typical = (np.asarray(high, dtype=np.float64) + np.asarray(low, dtype=np.float64) + np.asarray(close, dtype=np.float64)) / 3.0
    vol = np.asarray(volume, dtype=np.float64)
    starts = np.flatnonzero(np.diff(np.asarray(ts) // DAY_MS)) + 1
    pv = np.concatenate([np.cumsum(part) for part in np.split(typical * vol, starts)])
    cum_vol = np.concatenate([np.cumsum(part) for part in np.split(vol, starts)])
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(cum_vol > 0, pv / cum_vol, typical)


class Vwap:
    """Streaming UTC-day VWAP; equals `vwap` bar for bar. Ready from the first candle."""

    __slots__ = ("value", "_day", "_pv", "_volume")
    lookback = 0

    def __init__(self) -> None:
        self._reset()

    def _reset(self) -> None:
        self.value = NAN
        self._day = -1
        self._pv = 0.0
        self._volume = 0.0

    @property
    def ready(self) -> bool:
        return self.value == self.value

    def update(self, candle: Candle) -> float:
        day = candle.ts // DAY_MS
        if day != self._day:
            self._day, self._pv, self._volume = day, 0.0, 0.0
        typical = (candle.high + candle.low + candle.close) / 3.0
        self._pv += typical * candle.volume
        self._volume += candle.volume
        self.value = self._pv / self._volume if self._volume > 0 else typical
        return self.value

    def fill(self, candles: Sequence[Candle]) -> None:
        """Warm up on history: only the last candle's day counts."""
        self._reset()
        start = len(candles)
        if start:
            day = candles[-1].ts // DAY_MS
            while start and candles[start - 1].ts // DAY_MS == day:
                start -= 1
        for candle in candles[start:]:
            self.update(candle)


def cvd(open_: np.ndarray, close: np.ndarray, volume: np.ndarray) -> np.ndarray:
    """Cumulative volume delta from candles: running sum of volume * sign(close - open)
    (a candle with close == open adds 0), from the first bar of the arrays."""
    direction = np.sign(np.asarray(close, dtype=np.float64) - np.asarray(open_, dtype=np.float64))
    return np.cumsum(np.asarray(volume, dtype=np.float64) * direction)


class Cvd:
    """Streaming cumulative volume delta from the first candle seen; equals `cvd` bar for bar."""

    __slots__ = ("value", "_total")
    lookback = 0

    def __init__(self) -> None:
        self.value = NAN
        self._total = 0.0

    @property
    def ready(self) -> bool:
        return self.value == self.value

    def update(self, candle: Candle) -> float:
        move = candle.close - candle.open
        self._total += candle.volume if move > 0 else -candle.volume if move < 0 else 0.0
        self.value = self._total
        return self._total

    def fill(self, candles: Sequence[Candle]) -> None:
        """Warm up on history (the sum restarts from these candles)."""
        self._total = float(cvd(*candle_arrays(candles, ("open", "close", "volume")))[-1]) if candles else 0.0
        self.value = self._total if candles else NAN
