"""TA-Lib indicators a candle at a time: `Stream` wraps a `talib.stream` handle opened with
`open_and_fill` on the first bars it needs and then updated with TA-Lib's own recurrences, so
the streaming path equals the batch path bar for bar.

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


def update_all(streams: Iterable[_Streaming], candle: Candle) -> None:
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


def is_nan(value: Value) -> bool:
    return math.isnan(value[0] if isinstance(value, tuple) else value)
