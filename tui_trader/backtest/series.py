"""Candles as columns: what a backtest reads, aggregates and charts.

`Bars` holds one symbol's candles of one timeframe as numpy arrays (ts is the
open time in ms UTC). `aggregate` builds a higher timeframe exactly as the live
`CandleAggregator` does, and says at which base bar each candle is emitted: a
complete bucket with its last base candle, a bucket that a gap cut short with the
first base candle after it, the unfinished last bucket never.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from tui_trader.market.replay import read_csv_columns
from tui_trader.model import TIMEFRAME_MINUTES, Candle, timeframe_ms

FIELDS = ("ts", "open", "high", "low", "close", "volume")


@dataclass(frozen=True, slots=True)
class Bars:
    symbol: str
    timeframe: str
    ts: np.ndarray  # int64
    open: np.ndarray
    high: np.ndarray
    low: np.ndarray
    close: np.ndarray
    volume: np.ndarray

    def __len__(self) -> int:
        return len(self.ts)

    @classmethod
    def from_candles(cls, candles: Sequence[Candle], symbol: str, timeframe: str) -> Bars:
        n = len(candles)
        cols = [np.fromiter((getattr(c, f) for c in candles), dtype=np.int64 if f == "ts" else np.float64, count=n)
                for f in FIELDS]
        return cls(symbol, timeframe, *cols)

    @classmethod
    def from_csv(cls, path: Path, symbol: str, timeframe: str | None = None) -> Bars:
        """A checked CSV (see `load_csv`); the timeframe is inferred from the bar spacing when not given."""
        tf = timeframe or infer_timeframe(path)
        return cls(symbol, tf, *read_csv_columns(path, tf))

    def columns(self) -> dict[str, np.ndarray]:
        return {f: getattr(self, f) for f in FIELDS}

    def candle(self, i: int) -> Candle:
        return Candle(self.symbol, self.timeframe, int(self.ts[i]), float(self.open[i]), float(self.high[i]),
                      float(self.low[i]), float(self.close[i]), float(self.volume[i]))

    def candles(self, start: int = 0, stop: int | None = None) -> list[Candle]:
        sl = slice(start, stop)
        cols = (self.ts[sl].tolist(), self.open[sl].tolist(), self.high[sl].tolist(), self.low[sl].tolist(),
                self.close[sl].tolist(), self.volume[sl].tolist())
        return [Candle(self.symbol, self.timeframe, *row) for row in zip(*cols, strict=True)]

    def window(self, start_ts: int | None, end_ts: int | None) -> Bars:
        """The bars whose open time lies in [start_ts, end_ts)."""
        lo = 0 if start_ts is None else int(np.searchsorted(self.ts, start_ts, "left"))
        hi = len(self) if end_ts is None else int(np.searchsorted(self.ts, end_ts, "left"))
        return Bars(self.symbol, self.timeframe, *(getattr(self, f)[lo:hi] for f in FIELDS))


def infer_timeframe(path: Path) -> str:
    """The timeframe of a candle CSV: the smallest spacing of its first rows."""
    ts = _first_ts(path)
    if len(ts) < 2:
        raise ValueError(f"{path}: cannot tell the timeframe from fewer than two rows")
    step = int(np.diff(ts).min())
    for tf, minutes in TIMEFRAME_MINUTES.items():
        if step == minutes * 60_000:
            return tf
    raise ValueError(f"{path}: bars are {step} ms apart, which is no known timeframe ({', '.join(TIMEFRAME_MINUTES)})")


def _first_ts(path: Path, rows: int = 1000) -> np.ndarray:
    try:
        frame = pd.read_csv(path, compression="infer", usecols=["ts"], nrows=rows)
    except (ValueError, pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
        raise ValueError(f"{path}: no ts column to read: {exc}") from None
    values = pd.to_numeric(frame["ts"], errors="coerce").to_numpy(dtype=np.float64)
    values = values[np.isfinite(values)]
    return np.unique(values.astype(np.int64))


def aggregate(bars: Bars, timeframe: str) -> tuple[Bars, np.ndarray]:
    """(the `timeframe` candles, the index of the base bar at which each is emitted)."""
    tf_ms, base_ms = timeframe_ms(timeframe), timeframe_ms(bars.timeframe)
    if tf_ms < base_ms or tf_ms % base_ms:
        raise ValueError(f"cannot build {timeframe} candles from {bars.timeframe} candles")
    if tf_ms == base_ms:
        return bars, np.arange(len(bars))
    ts = bars.ts
    if not len(ts):
        return Bars(bars.symbol, timeframe, *(getattr(bars, f)[:0] for f in FIELDS)), np.empty(0, np.int64)
    bucket = ts - ts % tf_ms
    starts = np.flatnonzero(np.r_[True, bucket[1:] != bucket[:-1]])
    ends = np.r_[starts[1:], len(ts)]  # exclusive
    complete = ts[ends - 1] + base_ms == bucket[starts] + tf_ms
    emitted = np.where(complete, ends - 1, ends)  # a gap-cut bucket goes out with the next base candle
    high = np.maximum.reduceat(bars.high, starts)
    low = np.minimum.reduceat(bars.low, starts)
    keep = emitted < len(ts)  # the unfinished last bucket is never emitted
    starts, ends, emitted, high, low = starts[keep], ends[keep], emitted[keep], high[keep], low[keep]
    # Volume summed in order, one addition at a time, as the live aggregator does (numpy sums pairwise).
    vols = bars.volume.tolist()
    volume = np.empty(len(starts))
    for k, (s, e) in enumerate(zip(starts.tolist(), ends.tolist(), strict=True)):
        v = vols[s]
        for x in vols[s + 1:e]:
            v += x
        volume[k] = v
    out = Bars(bars.symbol, timeframe, bucket[starts], bars.open[starts], high, low, bars.close[ends - 1], volume)
    return out, emitted
