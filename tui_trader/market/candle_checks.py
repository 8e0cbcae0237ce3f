"""What makes a bar valid, and a candle file reader that reports every bad row by line.

The rules are shared by `data import`, `data check` and the kline fetcher, so a bar the fetcher
would refuse is also what `check` flags in the table.
"""

from __future__ import annotations

import csv
import gzip
import io
import math
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import TextIO

from tui_trader.model import TIMEFRAME_MINUTES, Candle, timeframe_ms

COLUMNS = ("ts", "open", "high", "low", "close", "volume")


def bar_fault(open_: float, high: float, low: float, close: float, volume: float) -> str | None:
    """Why a bar's values are impossible, or None when they are consistent."""
    if min(open_, high, low, close) <= 0:
        return "a price is not positive"
    if volume < 0:
        return "volume is negative"
    if high < max(open_, close):
        return "high is below open or close"
    if low > min(open_, close):
        return "low is above open or close"
    return None


def exact_float(text: str) -> float:
    """The float of a decimal string, refused (ValueError) unless it reads back as the same number:
    the candles table keeps REALs, and this is what makes them exactly what the source sent."""
    try:
        number = float(text)
    except ValueError:
        raise ValueError(f"{text!r} is not a number") from None
    if not math.isfinite(number):
        raise ValueError(f"{text!r} is not a finite number")
    shortest = repr(number)
    if shortest != text:  # the common case (a file Python wrote) needs no Decimal
        try:
            same = Decimal(shortest) == Decimal(text.strip())
        except InvalidOperation:
            same = False
        if not same:
            raise ValueError(f"{text!r} has more digits than a stored price keeps")
    return number


def parse_ts(text: str) -> int:
    """An integer millisecond time (no fraction, no exponent)."""
    stripped = text.strip()
    if not stripped.isdigit():
        raise ValueError(f"ts {text!r} is not an integer millisecond time")
    return int(stripped)


@dataclass(frozen=True)
class RowProblem:
    line: int  # in the file, the header is line 1
    message: str


@dataclass
class CandleFile:
    candles: list[Candle] = field(default_factory=list)  # the valid rows, in file order
    problems: list[RowProblem] = field(default_factory=list)
    rows: int = 0


def _lines(path: Path) -> Iterator[str]:
    raw = path.open("rb")
    with raw:
        magic = raw.read(2)
        raw.seek(0)
        if magic == b"\x1f\x8b":
            stream: TextIO = gzip.open(raw, "rt", encoding="utf-8", newline="")
        else:
            stream = io.TextIOWrapper(raw, encoding="utf-8", newline="")
        with stream:
            yield from stream


def read_candle_file(path: Path, symbol: str, timeframe: str) -> CandleFile:
    """Read a `ts,open,high,low,close,volume` CSV (plain or gzip; ts = open time in ms UTC).

    Every row is checked: six fields, an integer ts aligned to the timeframe, exact numbers, a
    consistent bar (`bar_fault`), and a ts neither seen before (duplicate) nor below the previous
    row's (out of order: the row after a step back is flagged, not every row after it). Bad rows
    are reported by line and left out; a wrong header, an unreadable file or an unknown timeframe
    raise ValueError.
    """
    if timeframe not in TIMEFRAME_MINUTES:
        raise ValueError(f"unknown timeframe {timeframe!r} (known: {', '.join(TIMEFRAME_MINUTES)})")
    step = timeframe_ms(timeframe)
    out = CandleFile()
    seen: set[int] = set()
    previous = -1
    try:
        reader = csv.reader(_lines(path))
        header = next(reader, None)
        if header is None:
            raise ValueError(f"{path}: the file is empty (expected the header {','.join(COLUMNS)})")
        if tuple(name.strip() for name in header) != COLUMNS:
            raise ValueError(f"{path}: the header is {','.join(header)!r}; expected {','.join(COLUMNS)}")
        for fields in reader:
            line = reader.line_num
            if not fields or fields == [""]:
                continue
            out.rows += 1
            problem = None
            try:
                if len(fields) != len(COLUMNS):
                    raise ValueError(f"{len(fields)} fields; expected {len(COLUMNS)}")
                ts = parse_ts(fields[0])
                o, h, lo, c, v = [exact_float(text) for text in fields[1:]]
            except ValueError as exc:
                problem = str(exc)
            else:
                if ts % step:
                    problem = f"ts {ts} is not aligned to {timeframe}"
                elif ts in seen:
                    problem = f"duplicate ts {ts}"
                elif ts < previous:
                    problem = f"ts {ts} is before the previous row's (out of order)"
                else:
                    problem = bar_fault(o, h, lo, c, v)
                seen.add(ts)
                previous = ts
            if problem is None:
                out.candles.append(Candle(symbol, timeframe, ts, o, h, lo, c, v))
            else:
                out.problems.append(RowProblem(line, problem))
    except (OSError, EOFError, zlib.error, UnicodeDecodeError, csv.Error) as exc:
        raise ValueError(f"{path}: cannot read the file: {exc}") from None
    return out
