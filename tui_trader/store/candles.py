"""The candles table for the `data` commands: idempotent writes, what is stored and where its
gaps are, and the record of what a fetch already asked the exchange for.

Ranges are inclusive bar open times `(first, last)` in ms. The fetch record ("fetched ranges")
lives in the `meta` table, one JSON list per symbol and timeframe, written in the same
transaction as the candles of the page it covers: a fetch resumed after any interruption skips
what is stored and the stretches where the exchange had no bars.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from tui_trader.model import Candle, timeframe_ms
from tui_trader.store.batch import Batch
from tui_trader.store.db import Store

Range = tuple[int, int]


def bars_in(r: Range, step: int) -> int:
    return (r[1] - r[0]) // step + 1


def merge(ranges: Iterable[Range], step: int) -> list[Range]:
    """Sorted, with overlapping and adjacent ranges joined."""
    out: list[Range] = []
    for first, last in sorted(ranges):
        if out and first <= out[-1][1] + step:
            out[-1] = (out[-1][0], max(out[-1][1], last))
        else:
            out.append((first, last))
    return out


def subtract(ranges: Iterable[Range], minus: Sequence[Range], step: int) -> list[Range]:
    """The parts of `ranges` outside every range of `minus`."""
    out: list[Range] = []
    cut = merge(minus, step)
    for first, last in ranges:
        lo = first
        for a, b in cut:
            if b < lo or a > last:
                continue
            if a > lo:
                out.append((lo, a - step))
            lo = b + step
            if lo > last:
                break
        if lo <= last:
            out.append((lo, last))
    return out


@dataclass
class FetchedRanges:
    """Where the exchange was asked for every bar (whether or not it had them)."""

    symbol: str
    timeframe: str
    ranges: list[Range] = field(default_factory=list)

    @property
    def key(self) -> str:
        return f"candles.fetched:{self.symbol}:{self.timeframe}"

    def add(self, first: int, last: int) -> None:
        self.ranges = merge([*self.ranges, (first, last)], timeframe_ms(self.timeframe))

    def covers(self, r: Range) -> bool:
        return any(a <= r[0] and r[1] <= b for a, b in self.ranges)


@dataclass(frozen=True)
class Series:
    """What is stored for one symbol and timeframe."""

    symbol: str
    timeframe: str
    first: int
    last: int
    count: int
    gaps: int  # runs of missing bars between first and last
    missing: int  # bars missing between first and last


async def fetched_ranges(store: Store, symbol: str, timeframe: str) -> FetchedRanges:
    record = FetchedRanges(symbol, timeframe)
    async with store.conn.execute("SELECT value FROM meta WHERE key = ?", (record.key,)) as cur:
        row = await cur.fetchone()
    if row:
        record.ranges = [(int(a), int(b)) for a, b in json.loads(row[0])]
    return record


async def save(store: Store, candles: Sequence[Candle], fetched: FetchedRanges | None = None) -> None:
    """Insert the candles, keeping rows already stored (idempotent), and the fetch record, in one transaction."""
    batch = Batch(candles=list(candles))
    if fetched is not None:
        batch.meta[fetched.key] = json.dumps(fetched.ranges)
    await store.commit(batch)


async def count(store: Store, symbol: str, timeframe: str, first: int | None = None, last: int | None = None) -> int:
    sql, args = _where(symbol, timeframe, first, last)
    async with store.conn.execute(f"SELECT COUNT(*) FROM candles {sql}", args) as cur:
        row = await cur.fetchone()
    return int(row[0]) if row else 0


async def gaps(store: Store, symbol: str, timeframe: str, first: int | None = None, last: int | None = None) -> list[Range]:
    """Runs of missing bars between stored bars (within first..last when given)."""
    step = timeframe_ms(timeframe)
    where, args = _where(symbol, timeframe, first, last)
    sql = (f"SELECT prev + ?, ts - ? FROM (SELECT ts, LAG(ts) OVER (ORDER BY ts) AS prev FROM candles {where})"
           " WHERE ts - prev > ?")
    async with store.conn.execute(sql, [step, step, *args, step]) as cur:
        return [(int(a), int(b)) for a, b in await cur.fetchall()]


async def missing(store: Store, symbol: str, timeframe: str, first: int, last: int) -> list[Range]:
    """Every run of bars in first..last (aligned bar open times) that is not stored."""
    step = timeframe_ms(timeframe)
    where, args = _where(symbol, timeframe, first, last)
    async with store.conn.execute(f"SELECT MIN(ts), MAX(ts) FROM candles {where}", args) as cur:
        row = await cur.fetchone()
    if row is None or row[0] is None:
        return [(first, last)]
    lo, hi = int(row[0]), int(row[1])
    out = [(first, lo - step)] if lo > first else []
    out += await gaps(store, symbol, timeframe, first, last)
    if hi < last:
        out.append((hi + step, last))
    return out


async def series(store: Store, symbol: str | None = None, timeframe: str | None = None) -> list[Series]:
    clauses, args = [], []
    if symbol is not None:
        clauses.append("symbol = ?")
        args.append(symbol)
    if timeframe is not None:
        clauses.append("timeframe = ?")
        args.append(timeframe)
    where = f"WHERE {' AND '.join(clauses)}" if clauses else ""
    async with store.conn.execute(f"SELECT symbol, timeframe, MIN(ts), MAX(ts), COUNT(*) FROM candles {where}"
                                  " GROUP BY symbol, timeframe ORDER BY symbol, timeframe", args) as cur:
        rows = await cur.fetchall()
    out = []
    for sym, tf, first, last, n in rows:
        runs = await gaps(store, sym, tf)
        step = timeframe_ms(tf)
        out.append(Series(sym, tf, first, last, n, len(runs), sum(bars_in(r, step) for r in runs)))
    return out


def _where(symbol: str, timeframe: str, first: int | None, last: int | None) -> tuple[str, list[Any]]:
    clauses = ["symbol = ?", "timeframe = ?"]
    args: list[Any] = [symbol, timeframe]
    if first is not None:
        clauses.append("ts >= ?")
        args.append(first)
    if last is not None:
        clauses.append("ts <= ?")
        args.append(last)
    return "WHERE " + " AND ".join(clauses), args
