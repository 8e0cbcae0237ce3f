"""The textbook SMA crossover, always in the market: long when the fast SMA crosses
above the slow one (previous fast < previous slow, now fast > slow: backtesting.py's
`crossover`, strict on both bars), short when
it crosses below (previous fast > previous slow, now fast < slow). An opposite
cross reverses the position with one order; `exit` never closes it alone.

No confirmations. The stop and target are the bot's risk profile's (the setup
carries ATR for the stop; the engine always attaches one).

`precompute` gives backtests the same values from TA-Lib's batch functions.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Mapping, Sequence

import numpy as np
import talib
from pydantic import Field, model_validator

from tui_trader.indicators import Stream, is_nan
from tui_trader.model import BUY, SELL, Candle
from tui_trader.strategy import MarketContext, NoSetup, Setup, Strategy, StrategyParams

NAN = float("nan")


class SmaCrossParams(StrategyParams):
    fast: int = Field(default=10, ge=2, le=500, description="fast SMA period")
    slow: int = Field(default=20, ge=3, le=1000, description="slow SMA period")
    atr_period: int = Field(default=14, ge=2, le=100, description="ATR for the risk profile's stop")

    @model_validator(mode="after")
    def _fast_below_slow(self) -> SmaCrossParams:
        if self.fast >= self.slow:
            raise ValueError(f"fast ({self.fast}) must be below slow ({self.slow})")
        return self


class SmaCross(Strategy):
    name = "sma_cross"
    description = "Fast/slow SMA crossover, always in the market (reverses on the opposite cross)"
    Params = SmaCrossParams
    always_in_market = True
    shareable = True

    def __init__(self, params: StrategyParams, timeframe: str) -> None:
        super().__init__(params, timeframe)
        p: SmaCrossParams = params  # type: ignore[assignment]
        self.p = p
        self.fast = Stream("SMA", timeperiod=p.fast)
        self.slow = Stream("SMA", timeperiod=p.slow)
        self.atr = Stream("ATR", timeperiod=p.atr_period)
        self._streams = (self.fast, self.slow, self.atr)
        self.fast_now = self.slow_now = self.fast_prev = self.slow_prev = self.atr_now = NAN
        self._ready = False
        self._batch: tuple[memoryview, memoryview, memoryview, memoryview] | None = None
        self._step = 0  # the batch's first bar spacing in ms: where a candle's index is looked up first

    @property
    def warmup(self) -> int:
        return max(500, 2 * self.p.slow)

    def update(self, candle: Candle) -> None:
        if candle.timeframe != self.timeframe:
            return
        if self._batch is not None:
            times, fast, slow, atr = self._batch
            ts = candle.ts
            i = (ts - times[0]) // self._step if self._step > 0 else -1  # where evenly spaced bars put it
            if not (0 <= i < len(times) and times[i] == ts):
                i = bisect_left(times, ts)
            self.fast_prev, self.slow_prev = (fast[i - 1], slow[i - 1]) if i else (NAN, NAN)
            self.fast_now, self.slow_now, self.atr_now = fast[i], slow[i], atr[i]
            return
        self.fast_prev, self.slow_prev = self.fast_now, self.slow_now
        self.fast_now = self.fast.update(candle)  # type: ignore[assignment]
        self.slow_now = self.slow.update(candle)  # type: ignore[assignment]
        self.atr_now = self.atr.update(candle)  # type: ignore[assignment]

    def precompute(self, bars: Mapping[str, np.ndarray]) -> np.ndarray:
        close = np.asarray(bars["close"], dtype=np.float64)
        fast = talib.SMA(close, timeperiod=self.p.fast)
        slow = talib.SMA(close, timeperiod=self.p.slow)
        atr = talib.ATR(np.asarray(bars["high"], dtype=np.float64), np.asarray(bars["low"], dtype=np.float64), close,
                        timeperiod=self.p.atr_period)
        # Memoryviews: an item reads as a Python int or float, and nothing is converted up front.
        times = memoryview(np.ascontiguousarray(bars["ts"], np.int64))
        self._batch = (times, memoryview(fast), memoryview(slow), memoryview(atr))
        self._step = times[1] - times[0] if len(times) > 1 else 0
        fast_prev, slow_prev = np.r_[NAN, fast[:-1]], np.r_[NAN, slow[:-1]]
        return ((fast_prev < slow_prev) & (fast > slow)) | ((fast_prev > slow_prev) & (fast < slow))

    def warm_up(self, candles: Mapping[str, Sequence[Candle]]) -> None:
        history = candles.get(self.timeframe, [])
        for stream in self._streams:
            stream.fill(history[:-1])
        self.fast_now, self.slow_now = self.fast.value, self.slow.value  # type: ignore[assignment]
        self.atr_now = self.atr.value  # type: ignore[assignment]
        for candle in history[-1:]:  # sets the previous and the current values
            self.update(candle)

    def ready(self) -> bool:
        if not self._ready:
            self._ready = not is_nan(self.slow_prev) and not is_nan(self.atr_now)
        return self._ready

    def indicators(self) -> dict[str, float]:
        return {"sma_fast": self.fast_now, "sma_slow": self.slow_now, "atr": self.atr_now}

    def scan(self, ctx: MarketContext) -> Setup | NoSetup:
        fast, slow = self.fast_now, self.slow_now
        atr = self.atr_now
        if self.fast_prev < self.slow_prev and fast > slow:
            return Setup(BUY, "fast SMA %.6g crossed above slow %.6g", atr=atr, reason_args=(fast, slow))
        if self.fast_prev > self.slow_prev and fast < slow:
            return Setup(SELL, "fast SMA %.6g crossed below slow %.6g", atr=atr, reason_args=(fast, slow))
        side = "above" if fast > slow else "below" if fast < slow else "equal to"
        return NoSetup(f"no cross: fast SMA {fast:.6g} {side} slow {slow:.6g}")
