"""Recorded candles: a checked CSV loader and a feed that replays them."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Mapping, Sequence
from itertools import repeat
from operator import attrgetter
from pathlib import Path

import numpy as np
import pandas as pd

from tui_trader.model import TIMEFRAME_MINUTES, Candle, timeframe_ms

COLUMNS = ("ts", "open", "high", "low", "close", "volume")
PRICES = ("open", "high", "low", "close")
YIELD_EVERY = 256  # candle steps between returns to the event loop when replaying at full speed


def load_csv(path: Path, symbol: str, timeframe: str) -> list[Candle]:
    """Read a `ts,open,high,low,close,volume` CSV (plain or .gz; ts = open time in ms UTC), checked.

    Raises ValueError naming the file, and the line (the header is line 1) where one is at fault.
    """
    columns = [column.tolist() for column in read_csv_columns(path, timeframe)]
    return list(map(Candle, repeat(symbol), repeat(timeframe), *columns))


def read_csv_columns(path: Path, timeframe: str) -> tuple[np.ndarray, ...]:
    """The checks of `load_csv`, returning the columns as arrays: ts (int64), open, high, low,
    close, volume (float64); for callers that work on whole columns (backtests)."""
    if timeframe not in TIMEFRAME_MINUTES:
        raise ValueError(f"{path}: unknown timeframe {timeframe!r}")
    try:
        frame = pd.read_csv(path, compression="infer", keep_default_na=False, na_values=[""])
    except pd.errors.EmptyDataError:
        raise ValueError(f"{path}: the file is empty (expected the header {','.join(COLUMNS)})") from None
    except pd.errors.ParserError as exc:
        raise ValueError(f"{path}: malformed CSV: {str(exc).strip()}") from None
    if tuple(frame.columns) != COLUMNS:
        raise ValueError(f"{path}: columns are {','.join(map(str, frame.columns))}; expected {','.join(COLUMNS)}")
    # pandas turns a leading surplus field on every row into the index.
    if not frame.index.equals(pd.RangeIndex(len(frame))):
        raise ValueError(f"{path}: the rows have more fields than the header's {len(COLUMNS)}")

    def fail(row: int, message: str) -> ValueError:
        return ValueError(f"{path}: line {row + 2}: {message}")

    def unparsable(name: str, row: int, expected: str) -> ValueError:
        value = frame[name].iloc[row]
        return fail(row, f"{name} is missing" if pd.isna(value) else f"{name} {str(value)!r} is not {expected}")

    values: dict[str, np.ndarray] = {}
    for name in COLUMNS:
        column = frame[name]
        numbers = pd.to_numeric(column, errors="coerce").to_numpy(dtype=np.float64)
        bad = np.flatnonzero(~np.isfinite(numbers))
        if bad.size:
            raise unparsable(name, int(bad[0]), "a number")
        values[name] = numbers
    ts_float = values["ts"]
    bad = np.flatnonzero((ts_float != np.floor(ts_float)) | (np.abs(ts_float) >= 2**53))
    if bad.size:
        raise unparsable("ts", int(bad[0]), "an integer millisecond time")
    ts = ts_float.astype(np.int64)
    o, h, lo, c, v = (values[name] for name in COLUMNS[1:])

    checks: list[tuple[np.ndarray, str]] = [
        ((o <= 0) | (h <= 0) | (lo <= 0) | (c <= 0), "a price is not positive"),
        (v < 0, "volume is negative"),
        ((h < o) | (h < c) | (h < lo), "high is below open, close or low"),
        ((lo > o) | (lo > c), "low is above open or close"),
        (ts % timeframe_ms(timeframe) != 0, f"ts is not aligned to {timeframe}"),
    ]
    step = np.diff(ts)
    checks.append((np.concatenate(([False], step == 0)), "duplicate ts"))
    checks.append((np.concatenate(([False], step < 0)), "ts is before the previous row's (out of order)"))
    faults = [(int(np.argmax(mask)), message) for mask, message in checks if mask.any()]
    if faults:
        row, message = min(faults, key=lambda fault: fault[0])
        raise fail(row, f"{message} ({', '.join(f'{name}={frame[name].iloc[row]}' for name in COLUMNS)})")
    return ts, o, h, lo, c, v


class ReplayFeed:
    """CandleFeed over recorded candles: the first `history_bars` of each symbol are its history,
    the rest is streamed in ts order (paced `speed` times faster than real time; 0 = no pacing)."""

    def __init__(self, candles_by_symbol: Mapping[str, Sequence[Candle]], speed: float = 0.0, history_bars: int = 0) -> None:
        if speed < 0:
            raise ValueError(f"speed must be 0 or positive, got {speed}")
        if history_bars < 0:
            raise ValueError(f"history_bars must be 0 or positive, got {history_bars}")
        self.symbols: Sequence[str] = list(candles_by_symbol)
        self.speed = speed
        self._heads: dict[str, Sequence[Candle]] = {}
        timeframes: set[str] = set()
        live: list[Candle] = []
        for symbol, candles in candles_by_symbol.items():
            previous = None
            for c in candles:
                if c.symbol != symbol:
                    raise ValueError(f"a {c.symbol} candle is among the {symbol} candles")
                if previous is not None and c.ts <= previous.ts:
                    raise ValueError(f"{symbol} candles are not in ascending ts order at ts {c.ts}")
                if previous is None or c.timeframe != previous.timeframe:
                    timeframes.add(c.timeframe)
                previous = c
            self._heads[symbol] = candles[:history_bars]
            live.extend(candles[history_bars:])
        if len(timeframes) != 1:
            found = ", ".join(sorted(timeframes)) or "no candles"
            raise ValueError(f"a replay needs candles of one timeframe, got {found}")
        (self.base_timeframe,) = timeframes
        # One stable sort up front: each step of the stream is then a slice of this list.
        live.sort(key=attrgetter("ts"))
        self._live = live
        self._bounds = [i for i in range(1, len(live)) if live[i].ts != live[i - 1].ts] + [len(live)]

    def history(self, symbol: str, bars: int) -> list[Candle]:
        if symbol not in self._heads:
            raise ValueError(f"{symbol} is not a symbol of this replay")
        head = self._heads[symbol]
        return list(head[-bars:]) if bars > 0 else []

    async def stream(self) -> AsyncIterator[list[Candle]]:
        """Candles sharing a ts, across symbols, in ts order; ends when the data does."""
        live = self._live
        if not live:
            return
        step_ms = timeframe_ms(self.base_timeframe)
        started = time.monotonic()
        first_ts = live[0].ts
        begin = 0
        for n, end in enumerate(self._bounds, 1):
            if self.speed > 0:
                # A candle is yielded when it has closed in the sped-up market time.
                due = started + (live[begin].ts + step_ms - first_ts) / (1000.0 * self.speed)
                delay = due - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)
            elif n % YIELD_EVERY == 0:
                await asyncio.sleep(0)
            yield live[begin:end]
            begin = end
