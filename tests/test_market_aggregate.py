from __future__ import annotations

import random
import time
from collections import defaultdict
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tui_trader.market.aggregate import CandleAggregator, aggregate
from tui_trader.market.replay import load_csv
from tui_trader.model import MINUTE_MS, Candle, timeframe_ms

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
needs_data = pytest.mark.skipif(not DATA.is_dir(), reason=f"real market data not found at {DATA}")
T0 = 1_735_689_600_000  # 2025-01-01T00:00Z
HIGHER = ["5m", "15m", "1h", "4h", "1d"]


def m1(minute: int, o: float, h: float, lo: float, c: float, v: float = 1.0, symbol: str = "BTCUSDT") -> Candle:
    return Candle(symbol, "1m", T0 + minute * MINUTE_MS, o, h, lo, c, v)


def flat(minute: int, price: float = 100.0, symbol: str = "BTCUSDT") -> Candle:
    return m1(minute, price, price + 1, price - 1, price, 1.0, symbol)


TEN = [
    m1(0, 100, 101, 99, 100.5, 1),
    m1(1, 100.5, 103, 100, 102, 2),
    m1(2, 102, 102.5, 98, 99, 3),
    m1(3, 99, 100, 97.5, 99.5, 4),
    m1(4, 99.5, 101, 99, 100, 5),
    m1(5, 100, 100.2, 99.9, 100.1, 0.5),
    m1(6, 100.1, 105, 100, 104, 1.5),
    m1(7, 104, 104.5, 103, 103.5, 1),
    m1(8, 103.5, 104, 95, 96, 2),
    m1(9, 96, 97, 95.5, 96.5, 1),
]


def test_aggregate_exact_values() -> None:
    assert aggregate(TEN, "5m") == [
        Candle("BTCUSDT", "5m", T0, 100, 103, 97.5, 100, 15),
        Candle("BTCUSDT", "5m", T0 + 5 * MINUTE_MS, 100, 105, 95, 96.5, 6),
    ]


def test_aggregate_partial_last_only_on_request() -> None:
    assert aggregate(TEN[:8], "5m") == [Candle("BTCUSDT", "5m", T0, 100, 103, 97.5, 100, 15)]
    partial = aggregate(TEN[:8], "5m", include_partial_last=True)
    assert partial[1] == Candle("BTCUSDT", "5m", T0 + 5 * MINUTE_MS, 100, 105, 99.9, 103.5, 3)
    assert aggregate(TEN[:4], "5m") == []
    assert aggregate([], "5m") == []


def test_aggregate_gaps_are_complete_in_time() -> None:
    # Minutes 2 and 4 (the bucket's last) missing: emitted once the next bucket has begun.
    gappy = [c for c in TEN if c.ts not in (T0 + 2 * MINUTE_MS, T0 + 4 * MINUTE_MS)]
    first = aggregate(gappy, "5m")[0]
    assert first == Candle("BTCUSDT", "5m", T0, 100, 103, 97.5, 99.5, 7)
    # A series that starts inside a bucket: that bucket is emitted once a later one begins.
    assert aggregate(TEN[3:], "5m")[0] == Candle("BTCUSDT", "5m", T0, 99, 101, 97.5, 100, 9)


def test_aggregate_alignment_and_other_bases() -> None:
    # 1h candles from 22:00 on 2024-12-31: the 1d bucket starts at 00:00 UTC.
    hourly = [
        Candle("ETHUSDT", "1h", T0 + (h - 2) * 3_600_000, 10 + h, 20 + h, 5 + h, 11 + h, 1)
        for h in range(26)
    ]
    days = aggregate(hourly, "1d")
    assert [d.ts for d in days] == [T0 - 86_400_000, T0]
    assert days[0] == Candle("ETHUSDT", "1d", T0 - 86_400_000, 10, 21, 5, 12, 2)
    assert days[1] == Candle("ETHUSDT", "1d", T0, 12, 45, 7, 36, 24)
    fives = aggregate(TEN + [flat(m) for m in range(10, 60)], "5m")
    assert aggregate(fives, "1h") == aggregate(TEN + [flat(m) for m in range(10, 60)], "1h")
    assert aggregate(hourly, "1h") == hourly


def test_aggregate_rejects_bad_input() -> None:
    with pytest.raises(ValueError, match="cannot build 1m candles from 5m"):
        aggregate([Candle("BTCUSDT", "5m", T0, 1, 1, 1, 1, 1)], "1m")
    with pytest.raises(ValueError, match="order"):
        aggregate([TEN[1], TEN[0]], "5m")
    with pytest.raises(ValueError, match="order"):
        aggregate([TEN[0], flat(1, symbol="ETHUSDT")], "5m")


def test_aggregator_emits_only_closed_candles() -> None:
    agg = CandleAggregator(["15m", "1m", "5m"])
    assert agg.timeframes == ("5m", "15m")
    out = [agg.add(c) for c in TEN]
    assert out[:4] == [[], [], [], []]
    assert out[4] == [Candle("BTCUSDT", "5m", T0, 100, 103, 97.5, 100, 15)]
    assert out[5:9] == [[], [], [], []]
    assert [c.timeframe for c in out[9]] == ["5m"]
    closing = [agg.add(flat(m)) for m in range(10, 15)]
    assert closing[:4] == [[], [], [], []]
    assert [(c.timeframe, c.ts) for c in closing[4]] == [("5m", T0 + 10 * MINUTE_MS), ("15m", T0)]
    assert closing[4][1] == Candle("BTCUSDT", "15m", T0, 100, 105, 95, 100, 26)


def test_aggregator_gap_emits_when_next_bucket_starts() -> None:
    agg = CandleAggregator(["5m", "15m"])
    assert [agg.add(c) for c in TEN[:4]] == [[], [], [], []]  # minute 4 never arrives
    assert agg.add(TEN[5]) == [Candle("BTCUSDT", "5m", T0, 100, 103, 97.5, 99.5, 10)]
    # Minutes 7-13 missing: minute 14 closes the stale 5-9 bucket first, then the ones it ends.
    assert agg.add(TEN[6]) == []
    out = agg.add(flat(14))
    assert [(c.timeframe, c.ts) for c in out] == [
        ("5m", T0 + 5 * MINUTE_MS),
        ("5m", T0 + 10 * MINUTE_MS),
        ("15m", T0),
    ]
    assert out[0] == Candle("BTCUSDT", "5m", T0 + 5 * MINUTE_MS, 100, 105, 99.9, 104, 2)


def test_aggregator_drops_out_of_order_and_keeps_symbols_apart() -> None:
    agg = CandleAggregator(["5m"])
    for c in TEN[:4]:
        agg.add(c)
        agg.add(flat(c.ts // MINUTE_MS - T0 // MINUTE_MS, symbol="ETHUSDT"))
    assert agg.add(TEN[2]) == [] and agg.add(TEN[3]) == []
    assert agg.dropped == 2
    assert agg.add(TEN[4]) == [Candle("BTCUSDT", "5m", T0, 100, 103, 97.5, 100, 15)]
    assert agg.add(flat(4, symbol="ETHUSDT")) == [Candle("ETHUSDT", "5m", T0, 100, 101, 99, 100, 5)]
    assert agg.dropped == 2
    agg.add(flat(9))
    agg.add(flat(3))  # older than the current bucket
    assert agg.dropped == 3


def test_aggregator_rejects_bad_timeframes() -> None:
    with pytest.raises(ValueError, match="cannot build 5m candles from 15m"):
        CandleAggregator(["5m"], base_timeframe="15m")
    with pytest.raises(ValueError, match="expected a 1m candle"):
        CandleAggregator(["5m"]).add(Candle("BTCUSDT", "5m", T0, 1, 1, 1, 1, 1))


def run_aggregator(candles: list[Candle], timeframes: list[str]) -> dict[str, list[Candle]]:
    agg = CandleAggregator(timeframes, base_timeframe=candles[0].timeframe if candles else "1m")
    out: dict[str, list[Candle]] = defaultdict(list)
    for c in candles:
        for closed in agg.add(c):
            out[closed.timeframe].append(closed)
    return out


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(0, 3 * 1440), unique=True, max_size=300), st.randoms(use_true_random=False))
def test_aggregator_equals_aggregate_with_gaps(minutes: list[int], rnd: random.Random) -> None:
    candles = []
    for m in sorted(minutes):
        o, c = rnd.uniform(90, 110), rnd.uniform(90, 110)
        candles.append(m1(m, o, max(o, c) + rnd.random(), min(o, c) - rnd.random(), c, rnd.random()))
    live = run_aggregator(candles, HIGHER)
    for tf in HIGHER:
        assert live.get(tf, []) == aggregate(candles, tf)


@pytest.fixture(scope="module")
def btc_1m() -> list[Candle]:
    return load_csv(DATA / "bybit_BTCUSDT_1m.csv.gz", "BTCUSDT", "1m")


@needs_data
def test_aggregator_equals_aggregate_on_real_data(btc_1m: list[Candle]) -> None:
    began = time.perf_counter()
    live = run_aggregator(btc_1m, HIGHER)
    elapsed = time.perf_counter() - began
    for tf in HIGHER:
        batch = aggregate(btc_1m, tf)
        assert live[tf] == batch
        assert len(batch) >= len(btc_1m) * MINUTE_MS // timeframe_ms(tf) - 1
    assert elapsed < 2.0, f"{len(btc_1m)} adds took {elapsed:.2f} s"


@needs_data
@pytest.mark.parametrize("timeframe", ["5m", "1h"])
def test_real_1m_aggregates_to_real_bybit_candles(btc_1m: list[Candle], timeframe: str) -> None:
    tf_ms = timeframe_ms(timeframe)
    # Start at a bucket boundary: the series' first bucket is missing its first minutes.
    whole = [c for c in btc_1m if c.ts >= -(-btc_1m[0].ts // tf_ms) * tf_ms]
    ours = aggregate(whole, timeframe)
    real = {c.ts: c for c in load_csv(DATA / f"bybit_BTCUSDT_{timeframe}.csv.gz", "BTCUSDT", timeframe)}
    compared = [c for c in ours if c.ts in real]
    assert len(compared) == len(ours) > 100
    for c in compared:
        r = real[c.ts]
        assert (c.open, c.high, c.low, c.close) == (r.open, r.high, r.low, r.close), c.ts
        assert c.volume == pytest.approx(r.volume, rel=1e-9, abs=1e-9), c.ts
