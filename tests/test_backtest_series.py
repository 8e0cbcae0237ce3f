"""The batch forms the backtest's fast path relies on equal their streaming forms
bar for bar: aggregation (the live CandleAggregator), the regime (RegimeTracker)
and a strategy's precomputed indicators (its TA-Lib stream handles)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tui_trader.backtest.regimes import regime_series
from tui_trader.backtest.series import Bars, aggregate, infer_timeframe
from tui_trader.market.aggregate import CandleAggregator
from tui_trader.market.replay import load_csv
from tui_trader.model import Candle
from tui_trader.regime import RegimeTracker
from tui_trader.setup import load_strategies
from tui_trader.strategy import MarketContext

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


def real(name: str, timeframe: str, rows: int) -> list[Candle]:
    path = DATA / name
    if not path.exists():
        pytest.skip(f"{path} is missing")
    return load_csv(path, "BTCUSDT", timeframe)[:rows]


def test_aggregation_emits_what_the_live_aggregator_emits_where_it_does() -> None:
    candles = real("bybit_BTCUSDT_1m.csv.gz", "1m", 20_000)
    del candles[5_000:5_130]  # a gap of 130 minutes: cut buckets, one skipped entirely
    bars = Bars.from_candles(candles, "BTCUSDT", "1m")
    live = CandleAggregator(["5m", "1h", "4h"])
    emitted: dict[str, list[tuple[int, Candle]]] = {"5m": [], "1h": [], "4h": []}
    for k, candle in enumerate(candles):
        for out in live.add(candle):
            emitted[out.timeframe].append((k, out))
    for tf, expected in emitted.items():
        agg, at = aggregate(bars, tf)
        assert [(int(k), c) for k, c in zip(at, agg.candles(), strict=True)] == expected, tf


def test_batch_regime_equals_the_tracker_on_real_data() -> None:
    candles = real("bybit_BTCUSDT_1h.csv.gz", "1h", 8_000)
    tracker = RegimeTracker()
    regimes, atrs, features = [], [], []
    for candle in candles:
        tracker.update(candle)
        regimes.append(tracker.regime)
        atrs.append(tracker.atr)
        features.append(tracker.features_dict)
    bars = Bars.from_candles(candles, "BTCUSDT", "1h")
    series = regime_series(bars.high, bars.low, bars.close)
    assert series.regimes == regimes
    assert len(set(regimes)) == 5  # every regime occurs: the hysteresis paths are all taken
    np.testing.assert_array_equal(np.array(series.atr), np.array(atrs))
    assert [series.features(i) for i in range(len(candles))] == features


def test_sma_cross_precomputed_equals_streamed_and_its_mask_covers_every_setup() -> None:
    candles = real("bybit_BTCUSDT_1m.csv.gz", "1m", 6_000)
    bars = Bars.from_candles(candles, "BTCUSDT", "1m")
    registry = load_strategies()
    streamed, batch = registry.make("sma_cross", {}, "1m"), registry.make("sma_cross", {}, "1m")
    mask = batch.precompute(bars.columns())
    ctx = MarketContext()
    setups = 0
    for i, candle in enumerate(candles):
        streamed.update(candle)
        batch.update(candle)
        assert streamed.ready() == batch.ready()
        assert streamed.indicators() == batch.indicators() or not streamed.ready()
        if streamed.ready():
            a, b = streamed.scan(ctx), batch.scan(ctx)
            assert a == b
            is_setup = type(a).__name__ == "Setup"
            setups += is_setup
            assert not is_setup or mask[i]
    assert setups > 100


def test_timeframe_is_inferred_from_the_spacing(tmp_path: Path) -> None:
    path = tmp_path / "c.csv"
    path.write_text("ts,open,high,low,close,volume\n0,1,1,1,1,1\n3600000,1,1,1,1,1\n10800000,1,1,1,1,1\n")
    assert infer_timeframe(path) == "1h"
    path.write_text("ts,open,high,low,close,volume\n0,1,1,1,1,1\n7000,1,1,1,1,1\n")
    with pytest.raises(ValueError, match="no known timeframe"):
        infer_timeframe(path)
