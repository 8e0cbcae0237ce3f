"""Indicators filled inside `shared()` compute each candle once for all of them, and give exactly
the values each would give alone, whatever candles each one is fed later (missed, different or
replayed out of step with the others)."""

from __future__ import annotations

import gc
import math
from collections.abc import Callable

from hypothesis import example, given, settings
from hypothesis import strategies as st

from tui_trader.indicators import Chop, Stream, Value, shared, update_all
from tui_trader.indicators.streaming import _Node
from tui_trader.model import Candle

HOUR = 3_600_000
MAKERS: dict[str, Callable[[], Stream | Chop]] = {
    "EMA": lambda: Stream("EMA", timeperiod=3),
    "ATR": lambda: Stream("ATR", timeperiod=3),
    "BBANDS": lambda: Stream("BBANDS", timeperiod=4, nbdevup=2.0, nbdevdn=2.0, matype=0),
    "SMA-volume": lambda: Stream("SMA", source="volume", timeperiod=3),
    "CHOP": lambda: Chop(3),
}


def candle(i: int, close: float) -> Candle:
    return Candle("T", "1h", i * HOUR, close, close + 1.5, close - 0.5 - i % 3, close, 1.0 + i % 4)


def same(a: Value, b: Value) -> bool:
    pairs = zip(a, b) if isinstance(a, tuple) else [(a, b)]  # type: ignore[arg-type]
    return all(x == y or (math.isnan(x) and math.isnan(y)) for x, y in pairs)  # type: ignore[arg-type]


def live_nodes() -> int:
    return sum(isinstance(o, _Node) for o in gc.get_objects())


def test_streams_filled_on_the_same_candles_share_one_computation() -> None:
    history = [candle(i, 100 + i % 7) for i in range(40)]
    alone = Stream("EMA", timeperiod=5)
    alone.fill(history[:-3])
    with shared():
        streams = [Stream("EMA", timeperiod=5) for _ in range(4)]
        for stream in streams:
            stream.fill(history[:-3])  # a new list each time, the same candles
        other = Stream("EMA", timeperiod=6)
        other.fill(history[:-3])
        shorter = Stream("EMA", timeperiod=5)
        shorter.fill(history[:-4])
        for stream in streams:
            for c in history[-3:]:  # each replays the last candles in turn, as warm-ups do
                stream.update(c)
    for c in history[-3:]:
        alone.update(c)
    assert len({id(s._node) for s in streams}) == 1  # one state for the four
    assert other._node is not streams[0]._node and shorter._node is not streams[0]._node
    for i in range(40, 60):
        live = candle(i, 100 + i % 5)
        expected = alone.update(live)
        assert streams[0].update(live) == expected
        update_all(streams[1:], live)  # the others step onto the state the first computed
        assert all(stream.value == expected for stream in streams)
        assert len({id(s._node) for s in streams}) == 1


def test_a_stream_that_misses_candles_keeps_its_own_state_and_holds_no_chain() -> None:
    history = [candle(i, 100 + i % 7) for i in range(40)]
    with shared():
        streams = [Stream("ATR", timeperiod=5) for _ in range(3)]
        for stream in streams:
            stream.fill(history)
    laggard, alone = streams[0], Stream("ATR", timeperiod=5)
    alone.fill(history)
    before = live_nodes()
    for i in range(40, 240):
        live = candle(i, 100 + i % 9)
        for stream in streams[1:]:
            stream.update(live)
        if i < 45:  # then it stops being fed, like a stopped bot
            assert laggard.update(live) == alone.update(live)
    assert live_nodes() <= before + 2  # the laggard's state and the others', not a node per candle
    resumed = candle(240, 101)
    assert laggard.update(resumed) == alone.update(resumed)


@st.composite
def schedules(draw: st.DrawFn) -> tuple[str, list[int], list[list[tuple[str, int]]], list[int], int]:
    """Streams of one kind, each filled on a prefix of a history and then fed its own sequence of
    (kind of candle, index): the history's next candle, the live candle everyone gets, a copy of it
    (equal, another object), a different candle, or nothing (a missed candle). `order` interleaves
    the streams' steps; the first `inside` steps run inside shared()."""
    kind = draw(st.sampled_from(sorted(MAKERS)))
    n = draw(st.integers(2, 5))
    prefixes = [draw(st.sampled_from([12, 14, 15])) for _ in range(n)]
    sequences = []
    for prefix in prefixes:
        steps: list[tuple[str, int]] = [("history", i) for i in range(prefix, 16)]
        for i in range(draw(st.integers(0, 12))):
            what = draw(st.sampled_from(["live", "live", "live", "copy", "other", "skip"]))
            if what != "skip":
                steps.append((what, i))
        sequences.append(steps)
    order = draw(st.permutations([s for s, steps in enumerate(sequences) for _ in steps]))
    return kind, prefixes, sequences, order, draw(st.integers(0, len(order)))


@settings(max_examples=1000, deadline=None)
@given(schedules())
@example(("ATR", [15, 15], [[("history", 15), ("live", 1), ("live", 2)], [("history", 15), ("live", 0), ("live", 1)]],
          [0, 1, 0, 1, 1, 0], 0))  # the second stream's state, updated in place, once kept the link for live 1
def test_shared_values_equal_separate_ones_on_any_schedule(
        schedule: tuple[str, list[int], list[list[tuple[str, int]]], list[int], int]) -> None:
    kind, prefixes, sequences, order, inside = schedule
    history = [candle(i, 100 + (i * 7) % 11) for i in range(16)]
    live = [candle(16 + i, 100 + (i * 5) % 9) for i in range(12)]
    pick = {"history": lambda i: history[i], "live": lambda i: live[i],
            "copy": lambda i: candle(16 + i, 100 + (i * 5) % 9), "other": lambda i: candle(16 + i, 90 + i)}
    streams = [MAKERS[kind]() for _ in prefixes]
    separate = [MAKERS[kind]() for _ in prefixes]
    for stream, prefix in zip(separate, prefixes):
        stream.fill(history[:prefix])
    position = [0] * len(streams)

    def step(s: int) -> None:
        what, i = sequences[s][position[s]]
        position[s] += 1
        c = pick[what](i)
        if s % 2:
            assert same(streams[s].update(c), separate[s].update(c))
        else:  # as strategies do
            update_all([streams[s]], c)
            assert same(streams[s].value, separate[s].update(c))

    with shared():
        for stream, prefix in zip(streams, prefixes):
            stream.fill(history[:prefix])
        for s in order[:inside]:
            step(s)
    for s in order[inside:]:
        step(s)
