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

Streams filled inside `shared()` (the engine's warm-up) on the same candles with the same
parameters share their state from then on: fed the same candle objects, they compute it once
per candle for all of them (a thousand bots on ten symbols hold a few hundred distinct
indicators). A state is copied, never changed, while another stream can still reach it, so
each stream's values are exactly those it would have alone, whatever candles it is fed.

Pure: no I/O, no clock.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
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


class _State(Protocol):
    """A streaming indicator's state: a TA-Lib stream handle, or an object with the same calls."""

    @property
    def value(self) -> Value: ...

    def update(self, *inputs: float) -> Value: ...

    def copy(self) -> _State: ...


# A pool keeps every state its streams replayed through (so a later stream can replay the same
# candles onto them) up to this many candles after the fill; a stream replaying more goes on alone.
MAX_POOLED_REPLAY = 256


class _Node:
    """One state of an indicator, with the value it gives: held by every stream that reached it.

    Streams filled on the same candles (inside `shared()`) start on one node; a stream advancing
    with a candle the others will also see computes once and links the result, and the others
    step onto it. A node another stream can still reach is never changed: advancing from it
    copies the state, so a stream that misses a candle keeps the state it had (a node no other
    stream can reach is updated in place, and its `value` is then the stream's)."""

    __slots__ = ("state", "value", "holders", "next", "next_candle", "parent", "pool", "depth")

    def __init__(self, state: _State, value: Value, pool: _Pool | None, depth: int = 0) -> None:
        self.state = state
        self.value = value
        self.holders = 1  # streams on this node
        self.next: _Node | None = None  # the state after `next_candle`, for streams still here
        self.next_candle: Candle | None = None
        self.parent: _Node | None = None  # the node linking here, until the next candle unlinks it
        self.depth = depth  # candles since the fill, while in a pool
        self.pool = pool if depth <= MAX_POOLED_REPLAY else None
        if self.pool is not None:
            self.pool.nodes.append(self)


def _unlink(node: _Node) -> None:
    following = node.next
    if following is not None:
        following.parent = None
    node.next = node.next_candle = None


class _Pool:
    __slots__ = ("histories", "roots", "nodes")

    def __init__(self) -> None:
        self.histories: dict[tuple[int, int, int], Sequence[Candle]] = {}  # one per (length, first, last) seen
        self.roots: dict[tuple[object, ...], _Node] = {}  # by indicator and history
        self.nodes: list[_Node] = []


_POOL: ContextVar[_Pool | None] = ContextVar("indicator_pool", default=None)


@contextmanager
def shared() -> Iterator[None]:
    """Indicators filled inside this block on the same candles with the same parameters share
    their computation from then on (one update per candle for all of them), as long as they
    are fed the same candle objects; values are exactly those of separate indicators. Nodes
    made inside the block stay linked until it ends, so a stream can replay candles another
    one already replayed."""
    pool = _Pool()
    token = _POOL.set(pool)
    try:
        yield
    finally:
        _POOL.reset(token)
        for node in pool.nodes:  # a pooled node's parent is pooled too
            node.pool = node.parent = None
            _unlink(node)


class _Streaming:
    """The update/fill protocol of an indicator whose state is a `_State`, shared through nodes."""

    __slots__ = ("lookback", "value", "_node", "_own", "_buffer", "_inputs", "_spread", "_key")

    def __init__(self, lookback: int, fields: tuple[str, ...], key: tuple[object, ...]) -> None:
        self.lookback = lookback
        self._inputs = attrgetter(*fields)  # one field -> a value, several -> a tuple
        self._spread = len(fields) > 1
        self._key = key  # what identifies the computation besides the candles
        self._node: _Node | None = None
        self._reset()

    def _reset(self) -> None:
        self.value: Value = self._empty()
        if self._node is not None:
            self._node.holders -= 1
        self._node = None
        # The node's state once no other stream can reach the node: it never can again (only new nodes
        # are linked or pooled), so it is updated in place, without looking at the node.
        self._own: _State | None = None
        self._buffer: list[Candle] = []

    def _empty(self) -> Value:
        return NAN

    def _open(self, candles: Sequence[Candle]) -> _State:
        raise NotImplementedError

    @property
    def ready(self) -> bool:
        return self._node is not None

    def update(self, candle: Candle) -> Value:
        own = self._own
        if own is not None:  # per indicator per bot per candle: kept short
            value = own.update(*self._inputs(candle)) if self._spread else own.update(self._inputs(candle))
            self.value = value
            return value
        node = self._node
        if node is not None:
            if node.next_candle is candle:  # another stream already took this candle from here
                following = node.next
                node.holders -= 1
                following.holders += 1  # type: ignore[union-attr]
                self._node = following
                value = self.value = following.value  # type: ignore[union-attr]
                return value
            return self._advance(node, candle)
        self._buffer.append(candle)
        if len(self._buffer) > self.lookback:
            self.fill(self._buffer)
        return self.value

    def _advance(self, node: _Node, candle: Candle) -> Value:
        inputs = self._inputs(candle)
        if node.holders == 1 and node.parent is None and node.pool is None:  # no other stream can reach it
            if node.next is not None:  # a link from the state it leaves
                _unlink(node)
            own = self._own = node.state
            value = self.value = own.update(*inputs) if self._spread else own.update(inputs)
            return value
        state = node.state.copy()
        value = state.update(*inputs) if self._spread else state.update(inputs)
        new = _Node(state, value, node.pool, node.depth + 1)
        parent = node.parent
        if parent is not None and parent.pool is None:  # a stream still on the state before missed a candle
            _unlink(parent)
        node.holders -= 1
        if node.holders or node.pool is not None or node.parent is not None:  # others may follow
            if node.next is not None:
                _unlink(node)
            node.next, node.next_candle, new.parent = new, candle, node
        self._node = new
        self.value = value
        return value

    def __deepcopy__(self, memo: dict[int, object]) -> _Streaming:
        """A stream at the same state that goes on independently: it shares the node (copied when
        either advances), or gets a copy of a state only this stream could reach."""
        clone = copy.copy(self)
        clone._buffer = list(self._buffer)
        if self._own is not None:
            clone._own = self._own.copy()
            clone._node = _Node(clone._own, self.value, None)
        elif self._node is not None:
            self._node.holders += 1
        return clone

    def fill(self, candles: Sequence[Candle]) -> None:
        """Warm up on history in one call (the state restarts from these candles)."""
        self._reset()
        if len(candles) <= self.lookback:
            self._buffer = list(candles)
            return
        pool, key = _POOL.get(), None
        if pool is not None:
            # the same history: the same candle objects (or equal ones); the stored one keeps the ids taken
            history = (len(candles), id(candles[0]), id(candles[-1]))
            known = pool.histories.setdefault(history, candles)
            key = (self._key, history) if known is candles or known == candles else None
            node = pool.roots.get(key) if key else None
            if node is not None:
                node.holders += 1
                self._node, self.value = node, node.value
                return
        state = self._open(candles)
        value = state.value
        node = self._node = _Node(state, tuple(value) if isinstance(value, tuple) else value, pool)
        self.value = node.value
        if pool is None:
            self._own = state
        elif key is not None:
            pool.roots[key] = node


def update_all(streams: Iterable[Stream | Chop], candle: Candle) -> None:
    """`update` each stream with the candle, as a strategy's update does per candle: the common steps
    (onto a state another stream already computed, or of a state no other stream can reach) are taken
    here, without a call per stream."""
    for stream in streams:
        own = stream._own
        if own is not None:
            stream.value = own.update(*stream._inputs(candle)) if stream._spread else own.update(stream._inputs(candle))
            continue
        node = stream._node
        if node is not None and node.next_candle is candle:
            following = node.next
            node.holders -= 1
            following.holders += 1  # type: ignore[union-attr]
            stream._node = following
            stream.value = following.value  # type: ignore[union-attr]
        else:
            stream.update(candle)


class Stream(_Streaming):
    """One TA-Lib indicator updated a candle at a time.

    `update` returns NaN (or a tuple of NaNs) until the indicator has its lookback;
    from then on the value TA-Lib's batch function gives for that bar. `source` picks
    the candle field of a function's single price input (default close), e.g. a
    Donchian upper band is `Stream("MAX", source="high", timeperiod=20)`.
    """

    __slots__ = ("name", "params", "fields", "outputs")

    def __init__(self, name: str, *, source: str | None = None, **params: float) -> None:
        self.name = name
        self.params = params
        lookback, self.fields, self.outputs = _spec(name, tuple(sorted(params.items())), source)
        super().__init__(lookback, self.fields, (name, tuple(sorted(params.items())), self.fields))

    def _empty(self) -> Value:
        return NAN if self.outputs == 1 else (NAN,) * self.outputs

    def _open(self, candles: Sequence[Candle]) -> _State:
        handle, _ = getattr(talib.stream, self.name).open_and_fill(*candle_arrays(candles, self.fields), **self.params)
        return handle  # type: ignore[no-any-return]


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


def is_nan(value: Value) -> bool:
    return math.isnan(value[0] if isinstance(value, tuple) else value)
