from __future__ import annotations

import gzip
import math
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import pytest
import talib
from hypothesis import given, settings
from hypothesis import strategies as st

from tui_trader.indicators import DAY_MS, Chop, Cvd, Indicator, Stream, Vwap, batch, candle_arrays, chop, cvd, hma, vwap
from tui_trader.market.replay import load_csv
from tui_trader.model import Candle

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
HOUR = 3_600_000


@pytest.fixture(scope="module")
def candles() -> list[Candle]:
    path = DATA / "bybit_BTCUSDT_1h.csv.gz"
    if not path.exists():
        pytest.skip(f"{path} is missing")
    return load_csv(path, "BTCUSDT", "1h")[-3000:]


def bar(high: float, low: float, close: float, open_: float | None = None, volume: float = 1.0, ts: int = 0) -> Candle:
    return Candle("T", "1h", ts, float(close if open_ is None else open_), float(high), float(low), float(close), float(volume))


def run(indicator: Indicator, candles: Sequence[Candle], prefix: int = 0) -> np.ndarray:
    """NaN for the prefix handed to `fill`, then what `update` returns for each later candle."""
    indicator.fill(candles[:prefix])
    return np.array([np.full(np.shape(indicator.value), np.nan)] * prefix + [indicator.update(c) for c in candles[prefix:]],
                    dtype=float)


def assert_matches(got: np.ndarray, expected: np.ndarray, skip: int = 0) -> None:
    """Same NaN positions; elsewhere |a-b| <= 1e-9 * max(1, |b|). The first `skip` rows are not compared."""
    got, expected = got[skip:], expected[skip:]
    assert got.shape == expected.shape
    assert np.array_equal(np.isnan(got), np.isnan(expected))
    ok = ~np.isnan(expected)
    assert np.all(np.abs(got[ok] - expected[ok]) <= 1e-9 * np.maximum(1, np.abs(expected[ok])))


def talib_columns(name: str, stream: Stream, candles: Sequence[Candle], **params: float) -> np.ndarray:
    out = batch(name, *candle_arrays(candles, stream.fields), **params)
    return np.column_stack(out) if isinstance(out, tuple) else out


TALIB_CASES: list[tuple[str, dict[str, str], dict[str, float]]] = [
    ("SMA", {}, {"timeperiod": 20}),
    ("SMA", {"source": "volume"}, {"timeperiod": 20}),
    ("EMA", {}, {"timeperiod": 20}),
    ("WMA", {}, {"timeperiod": 20}),
    ("RSI", {}, {"timeperiod": 14}),
    ("MACD", {}, {"fastperiod": 12, "slowperiod": 26, "signalperiod": 9}),
    ("ADX", {}, {"timeperiod": 14}),
    ("PLUS_DI", {}, {"timeperiod": 14}),
    ("MINUS_DI", {}, {"timeperiod": 14}),
    ("ATR", {}, {"timeperiod": 14}),
    ("NATR", {}, {"timeperiod": 14}),
    ("BBANDS", {}, {"timeperiod": 20, "nbdevup": 2.0, "nbdevdn": 2.0, "matype": 0}),
    ("STDDEV", {}, {"timeperiod": 20, "nbdev": 1.0}),
    ("OBV", {}, {}),
    ("MFI", {}, {"timeperiod": 14}),
    ("STOCH", {}, {"fastk_period": 14, "slowk_period": 3, "slowk_matype": 0, "slowd_period": 3, "slowd_matype": 0}),
    ("STOCHRSI", {}, {"timeperiod": 14, "fastk_period": 5, "fastd_period": 3, "fastd_matype": 0}),
    ("MAX", {}, {"timeperiod": 20}),
    ("MIN", {}, {"timeperiod": 20}),
    ("MAX", {"source": "high"}, {"timeperiod": 20}),
    ("MIN", {"source": "low"}, {"timeperiod": 20}),
    ("DONCHIAN", {}, {"timeperiod": 20}),
    ("HMA", {}, {"timeperiod": 20}),
]
CASE_IDS = [f"{n}-{s.get('source', '')}" if s else n for n, s, _ in TALIB_CASES]


@pytest.mark.parametrize(("name", "source", "params"), TALIB_CASES, ids=CASE_IDS)
def test_stream_equals_batch_bar_for_bar(candles: list[Candle], name: str, source: dict[str, str], params: dict) -> None:
    stream = Stream(name, **source, **params)
    expected = talib_columns(name, stream, candles, **params)
    assert np.isnan(expected[:stream.lookback]).all() and not np.isnan(expected[stream.lookback:]).any()
    assert_matches(run(stream, candles), expected)  # output by output for the multi-output ones


@pytest.mark.parametrize(("name", "source", "params"), TALIB_CASES, ids=CASE_IDS)
def test_fill_then_update_continues_like_batch(candles: list[Candle], name: str, source: dict[str, str], params: dict) -> None:
    stream = Stream(name, **source, **params)
    expected = talib_columns(name, stream, candles, **params)
    for prefix in (stream.lookback, stream.lookback + 1, 1000):  # too short to open, just enough, long
        assert_matches(run(stream, candles, prefix), expected, skip=prefix)  # `run` refills: the state restarts


def test_source_picks_the_candle_field(candles: list[Candle]) -> None:
    high, low = candle_arrays(candles, ("high", "low"))
    assert Stream("MAX", source="high", timeperiod=20).fields == ("high",)
    assert Stream("OBV").fields == ("close", "volume")
    upper, _, lower = batch("DONCHIAN", high, low, timeperiod=20)  # TA-Lib's own Donchian is MAX(high) / MIN(low)
    assert np.array_equal(upper, batch("MAX", high, timeperiod=20), equal_nan=True)
    assert np.array_equal(lower, batch("MIN", low, timeperiod=20), equal_nan=True)
    with pytest.raises(ValueError, match="source 'vwap'"):
        Stream("SMA", source="vwap", timeperiod=20)
    with pytest.raises(ValueError, match="one price input"):
        Stream("ATR", source="high", timeperiod=14)


def test_stream_before_lookback_and_refill() -> None:
    stream = Stream("SMA", timeperiod=3)
    assert all(math.isnan(stream.update(bar(c, c, c))) for c in (1.0, 2.0))  # type: ignore[arg-type]
    assert not stream.ready
    assert stream.update(bar(3.0, 3.0, 3.0)) == 2.0 and stream.ready
    stream.fill([bar(9.0, 9.0, 9.0)])  # too short: the state restarts, not ready any more
    assert not stream.ready and math.isnan(stream.value)  # type: ignore[arg-type]
    assert math.isnan(stream.update(bar(6.0, 6.0, 6.0)))  # type: ignore[arg-type]
    assert stream.update(bar(3.0, 3.0, 3.0)) == 6.0  # (9 + 6 + 3) / 3


# --- HMA (TA-Lib's) -----------------------------------------------------------------------------


def test_hma_hand_computed() -> None:
    # HMA(4) = WMA(2 * WMA(x, 2) - WMA(x, 4), 2); WMA(2)_t = (x[t-1] + 2x[t]) / 3, WMA(4)_t = (x[t-3] + 2x[t-2] + 3x[t-1] + 4x[t]) / 10
    x = np.array([1.0, 2.0, 4.0, 8.0, 16.0, 32.0])
    # t=3: 2 * (4 + 2*8)/3 - (1 + 2*2 + 3*4 + 4*8)/10 = 40/3 - 49/10 = 253/30
    # t=4: 2 * (8 + 2*16)/3 - (2 + 2*4 + 3*8 + 4*16)/10 = 80/3 - 98/10 = 253/15
    # t=5: 2 * (16 + 2*32)/3 - (4 + 2*8 + 3*16 + 4*32)/10 = 160/3 - 196/10 = 506/15
    # HMA_4 = (253/30 + 2 * 253/15) / 3 = 1265/90;  HMA_5 = (253/15 + 2 * 506/15) / 3 = 1265/45
    out = hma(x, 4)
    assert np.isnan(out[:4]).all()  # lookback 4 - 1 + 2 - 1 = 4
    assert out[4:] == pytest.approx([1265 / 90, 1265 / 45], rel=1e-12)


@pytest.mark.parametrize("n", [2, 3, 4, 9, 16, 20, 21, 55])
def test_hma_rounds_both_periods_down(candles: list[Candle], n: int) -> None:
    close = candle_arrays(candles, ["close"])[0]
    composed = talib.WMA(2 * talib.WMA(close, timeperiod=n // 2) - talib.WMA(close, timeperiod=n), timeperiod=math.isqrt(n))
    assert_matches(hma(close, n), composed)


@pytest.mark.parametrize(("n", "lag_thirds"), [(4, 0), (6, 0), (9, 0), (15, 0), (16, 2), (20, 2), (21, 1), (25, 2)])
def test_hma_of_a_line(n: int, lag_thirds: int) -> None:
    # WMA(m) of a line a + b*t lags it by b(m-1)/3, so with h = n//2, s = floor(sqrt(n)):
    # 2*WMA(h) - WMA(n) = x - b(2h - n - 1)/3 and HMA = x - b(2h + s - n - 2)/3.
    # No lag only when 2h + s = n + 2 (n even with s = 2: 4, 6, 8; n odd with s = 3: 9..15).
    h, s = n // 2, math.isqrt(n)
    assert 2 * h + s - n - 2 == lag_thirds
    x = 7.0 + 3.0 * np.arange(200)
    out = hma(x, n)
    lookback = n - 1 + s - 1
    assert np.isnan(out[:lookback]).all()
    assert out[lookback:] == pytest.approx(x[lookback:] - 3.0 * lag_thirds / 3, rel=1e-12, abs=1e-9)


# --- CHOP ---------------------------------------------------------------------------------------


def test_chop_hand_computed() -> None:
    bars = [bar(10, 8, 9), bar(11, 9, 10), bar(12, 9, 11), bar(11, 10, 10), bar(13, 10, 12)]
    # TR (needs the previous close; bar 0 has none):
    #   1: max(11-9, |11-9|, |9-9|) = 2;  2: max(12-9, |12-10|, |9-10|) = 3
    #   3: max(11-10, |11-11|, |10-11|) = 1;  4: max(13-10, |13-10|, |10-10|) = 3
    # bar 3: sum TR(1..3) = 6, range max(11,12,11) - min(9,9,10) = 3 -> 100 log10(6/3) / log10(3) = 63.09...
    # bar 4: sum TR(2..4) = 7, range max(12,11,13) - min(9,10,10) = 4 -> 100 log10(7/4) / log10(3) = 50.93...
    expected = [math.nan] * 3 + [100 * math.log10(2) / math.log10(3), 100 * math.log10(1.75) / math.log10(3)]
    high, low, close = candle_arrays(bars, ("high", "low", "close"))
    assert chop(high, low, close, 3) == pytest.approx(expected, rel=1e-12, nan_ok=True)
    assert run(Chop(3), bars) == pytest.approx(expected, rel=1e-12, nan_ok=True)
    assert expected[3] == pytest.approx(63.0929753571, rel=1e-10)


def test_chop_extremes() -> None:
    n = 10
    # a flat range: every bar spans the whole window [100, 110] and closes inside it, so each TR is the
    # range and CHOP = 100 log10(n * 10 / 10) / log10(n) = 100
    flat = [bar(110, 100, 103 + i % 5) for i in range(30)]
    assert run(Chop(n), flat)[n:] == pytest.approx([100.0] * (30 - n), rel=1e-12)
    # a staircase: bar i spans [i, i+1] and closes at its high; each TR is 1 and the window's range is n,
    # so CHOP = 100 log10(n / n) / log10(n) = 0
    stairs = [bar(i + 1, i, i + 1) for i in range(30)]
    assert run(Chop(n), stairs)[n:] == pytest.approx([0.0] * (30 - n), abs=1e-12)
    # no range at all (max == min): defined as 100
    dead = [bar(5, 5, 5)] * 30
    assert np.array_equal(run(Chop(n), dead)[n:], np.full(30 - n, 100.0))
    high, low, close = candle_arrays(dead, ("high", "low", "close"))
    assert np.array_equal(chop(high, low, close, n)[n:], np.full(30 - n, 100.0))
    with pytest.raises(ValueError, match="timeperiod >= 2"):
        Chop(1)


# --- VWAP ---------------------------------------------------------------------------------------


VWAP_BARS = [
    bar(12, 9, 9, volume=1, ts=0),  # day 0 00:00: typical (12+9+9)/3 = 10 -> 10*1 / 1 = 10
    bar(14, 11, 11, volume=3, ts=23 * HOUR),  # day 0 23:00: typical 12 -> (10 + 12*3) / (1 + 3) = 11.5
    bar(21, 18, 21, volume=2, ts=DAY_MS),  # day 1 00:00 resets: typical 20 -> 20*2 / 2 = 20
    bar(24, 22, 23, volume=0, ts=DAY_MS + HOUR),  # typical 23, no volume: (40 + 0) / (2 + 0) = 20
    bar(31, 29, 30, volume=0, ts=2 * DAY_MS),  # day 2 has no volume yet: the typical price 30
    bar(34, 32, 33, volume=0, ts=2 * DAY_MS + HOUR),  # still none: 33
    bar(37, 35, 36, volume=4, ts=2 * DAY_MS + 2 * HOUR),  # typical 36 -> 36*4 / 4 = 36
]
VWAP_EXPECTED = [10.0, 11.5, 20.0, 20.0, 30.0, 33.0, 36.0]


def test_vwap_hand_computed_with_day_reset() -> None:
    arrays = candle_arrays(VWAP_BARS, ("ts", "high", "low", "close", "volume"))
    assert vwap(*arrays).tolist() == VWAP_EXPECTED
    vw = Vwap()
    assert not vw.ready
    assert [vw.update(c) for c in VWAP_BARS] == VWAP_EXPECTED
    vw.fill(VWAP_BARS[:3])  # only day 1 counts
    assert vw.update(VWAP_BARS[3]) == 20.0


def test_vwap_is_not_talib_vwap(candles: list[Candle]) -> None:
    ts, high, low, close, volume = candle_arrays(candles, ("ts", "high", "low", "close", "volume"))
    ours = vwap(ts, high, low, close, volume)
    day = ts // DAY_MS
    first = int(np.flatnonzero(day == day[0]).max()) + 1  # first bar of the second day
    assert ours[first] == pytest.approx((high[first] + low[first] + close[first]) / 3)  # reset at 00:00 UTC
    assert talib.VWAP(high, low, close, volume)[first] != pytest.approx(ours[first])  # TA-Lib's never resets


# --- CVD ----------------------------------------------------------------------------------------


def test_cvd_hand_computed_signs() -> None:
    bars = [
        bar(12, 9, 11, open_=10, volume=5),  # up candle: +5 -> 5
        bar(12, 9, 10, open_=11, volume=2),  # down candle: -2 -> 3
        bar(12, 9, 10, open_=10, volume=7),  # close == open: +0 -> 3
        bar(12, 9, 12, open_=10, volume=1),  # up: +1 -> 4
    ]
    assert cvd(*candle_arrays(bars, ("open", "close", "volume"))).tolist() == [5.0, 3.0, 3.0, 4.0]
    stream = Cvd()
    assert not stream.ready and math.isnan(stream.value)
    assert [stream.update(c) for c in bars] == [5.0, 3.0, 3.0, 4.0]
    stream.fill(bars[1:3])  # restarts from these: -2 + 0
    assert stream.value == -2.0 and stream.update(bars[3]) == -1.0


# --- custom streams vs their batch functions on real data ---------------------------------------


CUSTOM: list[tuple[str, Callable[[], Indicator], Callable[[list[Candle]], np.ndarray]]] = [
    ("chop14", lambda: Chop(14), lambda cs: chop(*candle_arrays(cs, ("high", "low", "close")), 14)),
    ("chop2", lambda: Chop(2), lambda cs: chop(*candle_arrays(cs, ("high", "low", "close")), 2)),
    ("vwap", Vwap, lambda cs: vwap(*candle_arrays(cs, ("ts", "high", "low", "close", "volume")))),
    ("cvd", Cvd, lambda cs: cvd(*candle_arrays(cs, ("open", "close", "volume")))),
]


@pytest.mark.parametrize(("make", "compute"), [c[1:] for c in CUSTOM], ids=[c[0] for c in CUSTOM])
def test_custom_stream_equals_batch(candles: list[Candle], make: Callable[[], Indicator],
                                    compute: Callable[[list[Candle]], np.ndarray]) -> None:
    expected = compute(candles)
    indicator = make()
    assert np.isnan(expected[:indicator.lookback]).all() and not np.isnan(expected[indicator.lookback:]).any()
    assert_matches(run(indicator, candles), expected)
    for prefix in (1, indicator.lookback, indicator.lookback + 1, 1000):
        assert_matches(run(make(), candles, prefix), expected, skip=prefix)


@st.composite
def random_candles(draw: st.DrawFn) -> list[Candle]:
    """Up to 80 candles, hours to days apart, with flat bars, zero volume and equal opens and closes."""
    out, ts = [], 0
    for _ in range(draw(st.integers(1, 80))):
        ts += draw(st.sampled_from([HOUR, 5 * HOUR, DAY_MS]))
        o, c = draw(st.sampled_from([100.0, 101.0, 103.5])), draw(st.sampled_from([100.0, 101.0, 103.5]))
        high, low = max(o, c) + draw(st.sampled_from([0.0, 0.5, 2.0])), min(o, c) - draw(st.sampled_from([0.0, 0.25]))
        out.append(Candle("T", "1h", ts, o, high, low, c, draw(st.sampled_from([0.0, 1.0, 7.5]))))
    return out


@settings(max_examples=150, deadline=None)
@given(random_candles(), st.integers(0, 80), st.sampled_from(CUSTOM))
def test_custom_stream_equals_batch_on_random_candles(candles: list[Candle], prefix: int, case: tuple) -> None:
    _, make, compute = case
    expected = compute(candles)
    assert_matches(run(make(), candles), expected)
    prefix = min(prefix, len(candles))
    assert_matches(run(make(), candles, prefix), expected, skip=prefix)


def test_chop_is_bounded_on_real_data(candles: list[Candle]) -> None:
    values = chop(*candle_arrays(candles, ("high", "low", "close")), 14)[14:]
    assert values.min() >= 0 and values.max() <= 100


def test_update_cost(candles: list[Candle], capsys: pytest.CaptureFixture[str]) -> None:
    """Sanity print only, no timed assertion."""
    for label, indicator in (("RSI", Stream("RSI", timeperiod=14)), ("BBANDS", Stream("BBANDS", timeperiod=20)),
                             ("CHOP", Chop(14)), ("VWAP", Vwap()), ("CVD", Cvd())):
        indicator.fill(candles[:500])
        start = time.perf_counter()
        for candle in candles[500:]:
            indicator.update(candle)
        with capsys.disabled():
            print(f"\n{label}: {(time.perf_counter() - start) / (len(candles) - 500) * 1e6:.2f} us/update", end="")


def test_gz_loader_reads_what_gzip_reads(candles: list[Candle]) -> None:
    with gzip.open(DATA / "bybit_BTCUSDT_1h.csv.gz", "rt") as fh:
        last = fh.read().strip().splitlines()[-1].split(",")
    assert candles[-1].ts == int(last[0]) and candles[-1].close == float(last[4])
