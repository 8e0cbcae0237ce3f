"""Indicators: TA-Lib batch functions for history and `talib.stream` handles for
O(1) updates on each closed candle. The streaming path equals the batch path bar
for bar: a handle is opened with `open_and_fill` on the first bars it needs and
then updated with TA-Lib's own recurrences.

TA-Lib 0.8 has every indicator the strategies need, HMA and DONCHIAN included
(`Stream("HMA", timeperiod=n)`, `Stream("DONCHIAN", timeperiod=n)`). What it lacks
is written here with the same streaming interface (`update`, `fill`, `value`,
`ready`, `lookback`) and a batch function that gives the same values bar for bar:
`Chop`/`chop` (Choppiness Index), `Vwap`/`vwap` (anchored to the UTC day) and
`Cvd`/`cvd` (cumulative volume delta). `talib.VWAP` is not day-anchored: it
accumulates from the first bar of the array.

Pure: no I/O, no clock.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from functools import cache
from operator import attrgetter
from typing import Protocol

import numpy as np
import talib
import talib.abstract
import talib.stream

from tui_trader.model import Candle

NAN = math.nan
DAY_MS = 86_400_000
Value = float | tuple[float, ...]

CANDLE_FIELDS = frozenset({"open", "high", "low", "close", "volume"})
# Which candle field feeds each TA-Lib input name.
_FIELDS = {"open": "open", "high": "high", "low": "low", "close": "close", "volume": "volume", "real": "close", "price": "close"}
_SINGLE = ("price", "real")  # the key of a function's one price-series input; `source` replaces its field


class Indicator(Protocol):
    """What every streaming indicator here offers."""

    @property
    def value(self) -> Value: ...

    @property
    def lookback(self) -> int: ...

    @property
    def ready(self) -> bool: ...

    def update(self, candle: Candle) -> Value: ...

    def fill(self, candles: Sequence[Candle]) -> None: ...


@cache
def _spec(name: str, params: tuple[tuple[str, float], ...], source: str | None) -> tuple[int, tuple[str, ...], int]:
    """(lookback, candle fields of the inputs, number of outputs) of a TA-Lib function."""
    fn = talib.abstract.Function(name, **dict(params))
    if source is not None and (source not in CANDLE_FIELDS or not any(k in _SINGLE for k in fn.input_names)):
        raise ValueError(f"{name}: source {source!r} must be a candle field of a function with one price input")
    fields: list[str] = []
    for key, value in fn.input_names.items():
        if source is not None and key in _SINGLE:
            fields.append(source)
            continue
        names = value if isinstance(value, list) else [value]
        fields.extend(_FIELDS[n] for n in names)
    return fn.lookback, tuple(fields), len(fn.output_names)


def batch(name: str, *inputs: np.ndarray, **params: float) -> np.ndarray | tuple[np.ndarray, ...]:
    """TA-Lib batch call with explicit parameters (TA-Lib's defaults are easy to get wrong)."""
    return getattr(talib, name)(*(np.asarray(x, dtype=np.float64) for x in inputs), **params)


def candle_arrays(candles: Sequence[Candle], fields: Sequence[str]) -> list[np.ndarray]:
    return [np.fromiter((getattr(c, f) for c in candles), dtype=np.float64, count=len(candles)) for f in fields]


class Stream:
    """One TA-Lib indicator updated a candle at a time.

    `update` returns NaN (or a tuple of NaNs) until the indicator has its lookback;
    from then on the value TA-Lib's batch function gives for that bar. `source` picks
    the candle field of a function's single price input (default close), e.g. a
    Donchian upper band is `Stream("MAX", source="high", timeperiod=20)`.
    """

    __slots__ = ("name", "params", "fields", "lookback", "outputs", "value", "_handle", "_buffer", "_inputs", "_spread")

    def __init__(self, name: str, *, source: str | None = None, **params: float) -> None:
        self.name = name
        self.params = params
        self.lookback, self.fields, self.outputs = _spec(name, tuple(sorted(params.items())), source)
        self._inputs = attrgetter(*self.fields)  # one field -> a value, several -> a tuple
        self._spread = len(self.fields) > 1
        self._reset()

    def _reset(self) -> None:
        self.value: Value = NAN if self.outputs == 1 else (NAN,) * self.outputs
        self._handle: talib.stream.Stream | None = None
        self._buffer: list[Candle] = []

    @property
    def ready(self) -> bool:
        return self._handle is not None

    def update(self, candle: Candle) -> Value:
        handle = self._handle
        if handle is not None:  # per indicator per bot per candle: locals, one attribute write
            value = handle.update(*self._inputs(candle)) if self._spread else handle.update(self._inputs(candle))
            self.value = value
            return value
        self._buffer.append(candle)
        if len(self._buffer) > self.lookback:
            self.fill(self._buffer)
        return self.value

    def fill(self, candles: Sequence[Candle]) -> None:
        """Warm up on history in one call (the state restarts from these candles)."""
        self._reset()
        if len(candles) <= self.lookback:
            self._buffer = list(candles)
            return
        handle, _ = getattr(talib.stream, self.name).open_and_fill(*candle_arrays(candles, self.fields), **self.params)
        self._handle = handle
        value = handle.value
        self.value = tuple(value) if isinstance(value, tuple) else value


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


class Chop:
    """Streaming Choppiness Index; equals `chop` bar for bar (TA-Lib SUM/MAX/MIN handles inside)."""

    __slots__ = ("lookback", "value", "_scale", "_sum", "_max", "_min", "_prev_close", "_buffer")

    def __init__(self, timeperiod: int = 14) -> None:
        self._scale = _chop_scale(timeperiod)
        self.lookback = timeperiod
        self._reset()

    def _reset(self) -> None:
        self.value = NAN
        self._sum: talib.stream.Stream | None = None
        self._max: talib.stream.Stream | None = None
        self._min: talib.stream.Stream | None = None
        self._prev_close = NAN
        self._buffer: list[Candle] = []

    @property
    def ready(self) -> bool:
        return self._sum is not None

    def update(self, candle: Candle) -> float:
        if self._sum is None:
            self._buffer.append(candle)
            if len(self._buffer) > self.lookback:
                self.fill(self._buffer)
            return self.value
        high, low, prev = candle.high, candle.low, self._prev_close
        self._prev_close = candle.close
        total = self._sum.update(max(high - low, abs(high - prev), abs(low - prev)))  # TRANGE's arithmetic
        return self._emit(total, self._max.update(high) - self._min.update(low))  # type: ignore[union-attr]

    def _emit(self, total: float, width: float) -> float:
        self.value = math.log10(total / width) * self._scale if width > 0 else 100.0
        return self.value

    def fill(self, candles: Sequence[Candle]) -> None:
        """Warm up on history in one call (the state restarts from these candles)."""
        self._reset()
        if len(candles) <= self.lookback:  # n true ranges need n + 1 candles
            self._buffer = list(candles)
            return
        high, low, close = candle_arrays(candles, ("high", "low", "close"))
        n = self.lookback
        self._sum, _ = talib.stream.SUM.open_and_fill(talib.TRANGE(high, low, close), timeperiod=n)  # bar 0's NaN is skipped
        self._max, _ = talib.stream.MAX.open_and_fill(high, timeperiod=n)
        self._min, _ = talib.stream.MIN.open_and_fill(low, timeperiod=n)
        self._prev_close = float(close[-1])
        self._emit(self._sum.value, self._max.value - self._min.value)


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


def is_nan(value: Value) -> bool:
    return math.isnan(value[0] if isinstance(value, tuple) else value)
