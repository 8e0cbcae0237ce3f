from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import pytest

from tui_trader.indicators import Stream, batch, candle_arrays
from tui_trader.market.replay import load_csv
from tui_trader.model import Candle

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


@pytest.fixture(scope="module")
def candles() -> list[Candle]:
    path = DATA / "bybit_BTCUSDT_1h.csv.gz"
    if not path.exists():
        pytest.skip(f"{path} is missing")
    return load_csv(path, "BTCUSDT", "1h")[-3000:]


@pytest.mark.parametrize(("name", "params"), [
    ("EMA", {"timeperiod": 20}), ("SMA", {"timeperiod": 20}), ("ATR", {"timeperiod": 14}), ("ADX", {"timeperiod": 14}),
    ("NATR", {"timeperiod": 14}), ("BBANDS", {"timeperiod": 20, "nbdevup": 2.0, "nbdevdn": 2.0, "matype": 0}),
])
def test_stream_equals_batch_bar_for_bar(candles: list[Candle], name: str, params: dict) -> None:
    stream = Stream(name, **params)
    streamed = np.array([stream.update(c) for c in candles], dtype=float)
    expected = batch(name, *candle_arrays(candles, stream.fields), **params)
    expected = np.column_stack(expected) if isinstance(expected, tuple) else expected
    assert np.array_equal(np.isnan(streamed), np.isnan(expected))
    ok = ~np.isnan(expected)
    assert np.all(np.abs(streamed[ok] - expected[ok]) <= 1e-9 * np.maximum(1, np.abs(expected[ok])))


def test_fill_then_update_continues_like_batch(candles: list[Candle]) -> None:
    stream = Stream("EMA", timeperiod=26)
    stream.fill(candles[:1000])
    last = [stream.update(c) for c in candles[1000:]][-1]
    assert last == pytest.approx(batch("EMA", candle_arrays(candles, ["close"])[0], timeperiod=26)[-1], rel=1e-12)


def test_gz_loader_reads_what_gzip_reads(candles: list[Candle]) -> None:
    with gzip.open(DATA / "bybit_BTCUSDT_1h.csv.gz", "rt") as fh:
        last = fh.read().strip().splitlines()[-1].split(",")
    assert candles[-1].ts == int(last[0]) and candles[-1].close == float(last[4])
