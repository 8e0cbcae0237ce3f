"""Higher-timeframe candles from base candles, in batch and live.

Buckets are aligned on UTC: a bucket opens at ts // tf_ms * tf_ms, so 1d buckets
start at 00:00 UTC. A bucket is emitted once its time has fully passed, i.e. its
last base candle arrived or a base candle of a later bucket did. A bucket with
base candles missing (a gap in the data, including a series that starts inside
it) is therefore still emitted, made of the candles it has.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from tui_trader.model import Candle, timeframe_ms


def _check_timeframe(timeframe: str, base_timeframe: str) -> int:
    tf_ms, base_ms = timeframe_ms(timeframe), timeframe_ms(base_timeframe)
    if tf_ms < base_ms or tf_ms % base_ms:
        raise ValueError(f"cannot build {timeframe} candles from {base_timeframe} candles")
    return tf_ms


def aggregate(candles: Sequence[Candle], timeframe: str, include_partial_last: bool = False) -> list[Candle]:
    """Aggregate one symbol's ascending base candles into `timeframe` candles.

    The last bucket is left out unless its last base candle is there or
    `include_partial_last` is set; every earlier bucket is complete in time.
    """
    if not candles:
        return []
    first = candles[0]
    symbol, base = first.symbol, first.timeframe
    tf_ms = _check_timeframe(timeframe, base)
    base_ms = timeframe_ms(base)
    out: list[Candle] = []
    bucket = first.ts - first.ts % tf_ms
    o, h, lo, c, v = first.open, first.high, first.low, first.close, first.volume
    last_ts = first.ts
    for candle in candles[1:]:
        ts = candle.ts
        if ts <= last_ts or candle.symbol != symbol or candle.timeframe != base:
            raise ValueError(f"candle {candle} does not follow {symbol} {base} ts {last_ts} in order")
        last_ts = ts
        start = ts - ts % tf_ms
        if start != bucket:
            out.append(Candle(symbol, timeframe, bucket, o, h, lo, c, v))
            bucket = start
            o, h, lo, c, v = candle.open, candle.high, candle.low, candle.close, candle.volume
        else:
            h = max(h, candle.high)
            lo = min(lo, candle.low)
            c = candle.close
            v += candle.volume
    if include_partial_last or last_ts + base_ms == bucket + tf_ms:
        out.append(Candle(symbol, timeframe, bucket, o, h, lo, c, v))
    return out


class _Bucket:
    __slots__ = ("ts", "open", "high", "low", "close", "volume")

    def __init__(self, ts: int, candle: Candle) -> None:
        self.ts = ts
        self.open = candle.open
        self.high = candle.high
        self.low = candle.low
        self.close = candle.close
        self.volume = candle.volume


class CandleAggregator:
    """Live aggregation of closed base candles, per symbol, into several timeframes.

    Gives exactly what `aggregate()` gives on the same in-order data. A base
    candle not newer than the last one accepted for its symbol (out of order or
    repeated) is ignored and counted in `dropped`.
    """

    def __init__(self, timeframes: Iterable[str], base_timeframe: str = "1m") -> None:
        self.base_timeframe = base_timeframe
        self._base_ms = timeframe_ms(base_timeframe)
        specs = {tf: _check_timeframe(tf, base_timeframe) for tf in timeframes}
        # The base timeframe itself is the caller's already.
        self.timeframes = tuple(sorted((tf for tf, ms in specs.items() if ms > self._base_ms), key=specs.__getitem__))
        self._specs = tuple((tf, specs[tf]) for tf in self.timeframes)
        self._open: dict[str, list[_Bucket | None]] = {}
        self._last_ts: dict[str, int] = {}
        self.dropped = 0

    def add(self, candle: Candle) -> list[Candle]:
        """Take one closed base candle; return the candles it closes: those whose time had already
        passed first (a gap skipped their last base candle), then those it ends, each in timeframe order."""
        if candle.timeframe != self.base_timeframe:
            raise ValueError(f"expected a {self.base_timeframe} candle, got {candle.timeframe}")
        symbol, ts = candle.symbol, candle.ts
        last = self._last_ts.get(symbol)
        if last is not None and ts <= last:
            self.dropped += 1
            return []
        self._last_ts[symbol] = ts
        buckets = self._open.get(symbol)
        if buckets is None:
            buckets = self._open[symbol] = [None] * len(self._specs)
        end = ts + self._base_ms
        passed: list[Candle] = []
        closed: list[Candle] = []
        for i, (tf, tf_ms) in enumerate(self._specs):
            start = ts - ts % tf_ms
            bucket = buckets[i]
            if bucket is not None and bucket.ts != start:
                passed.append(_candle(symbol, tf, bucket))
                bucket = None
            if bucket is None:
                bucket = _Bucket(start, candle)
            else:
                if candle.high > bucket.high:
                    bucket.high = candle.high
                if candle.low < bucket.low:
                    bucket.low = candle.low
                bucket.close = candle.close
                bucket.volume += candle.volume
            if end == start + tf_ms:
                closed.append(_candle(symbol, tf, bucket))
                bucket = None
            buckets[i] = bucket
        return passed + closed if passed else closed


def _candle(symbol: str, timeframe: str, b: _Bucket) -> Candle:
    return Candle(symbol, timeframe, b.ts, b.open, b.high, b.low, b.close, b.volume)
