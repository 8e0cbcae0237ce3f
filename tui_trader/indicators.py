"""Indicators: TA-Lib batch functions for history and `talib.stream` handles for
O(1) updates on each closed candle. The streaming path equals the batch path bar
for bar: a handle is opened with `open_and_fill` on the first bars it needs and
then updated with TA-Lib's own recurrences.

Pure: no I/O, no clock.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from functools import cache
from operator import attrgetter

import numpy as np
import talib
import talib.abstract
import talib.stream

from tui_trader.model import Candle

NAN = math.nan
Value = float | tuple[float, ...]

# Which candle field feeds each TA-Lib input name.
_FIELDS = {"open": "open", "high": "high", "low": "low", "close": "close", "volume": "volume", "real": "close", "price": "close"}


@cache
def _spec(name: str, params: tuple[tuple[str, float], ...]) -> tuple[int, tuple[str, ...], int]:
    """(lookback, candle fields of the inputs, number of outputs) of a TA-Lib function."""
    fn = talib.abstract.Function(name, **dict(params))
    fields: list[str] = []
    for value in fn.input_names.values():
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
    from then on the value TA-Lib's batch function gives for that bar.
    """

    __slots__ = ("name", "params", "fields", "lookback", "outputs", "value", "_handle", "_buffer", "_inputs", "_spread")

    def __init__(self, name: str, **params: float) -> None:
        self.name = name
        self.params = params
        self.lookback, self.fields, self.outputs = _spec(name, tuple(sorted(params.items())))
        self.value: Value = NAN if self.outputs == 1 else (NAN,) * self.outputs
        self._handle: talib.stream.Stream | None = None
        self._buffer: list[Candle] = []
        self._inputs = attrgetter(*self.fields)  # one field -> a value, several -> a tuple
        self._spread = len(self.fields) > 1

    @property
    def ready(self) -> bool:
        return self._handle is not None

    def update(self, candle: Candle) -> Value:
        if self._handle is not None:
            inputs = self._inputs(candle)
            self.value = self._handle.update(*inputs) if self._spread else self._handle.update(inputs)
            return self.value
        self._buffer.append(candle)
        if len(self._buffer) > self.lookback:
            self.fill(self._buffer)
        return self.value

    def fill(self, candles: Sequence[Candle]) -> None:
        """Warm up on history in one call (the handle is reopened over these candles)."""
        if len(candles) <= self.lookback:
            self._buffer = list(candles)
            return
        handle, _ = getattr(talib.stream, self.name).open_and_fill(*candle_arrays(candles, self.fields), **self.params)
        self._handle = handle
        self._buffer = []
        value = handle.value
        self.value = tuple(value) if isinstance(value, tuple) else value


def is_nan(value: Value) -> bool:
    return math.isnan(value[0] if isinstance(value, tuple) else value)
