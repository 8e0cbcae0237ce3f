from __future__ import annotations

import asyncio
import gzip
import time
from pathlib import Path

import numpy as np
import pytest

from tui_trader.market.replay import ReplayFeed, load_csv
from tui_trader.model import MINUTE_MS, Candle

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
needs_data = pytest.mark.skipif(not DATA.is_dir(), reason=f"real market data not found at {DATA}")
HEADER = "ts,open,high,low,close,volume"
T0 = 1_735_689_600_000  # 2025-01-01T00:00Z
GOOD_ROWS = [f"{T0},100,101,99,100.5,3", f"{T0 + MINUTE_MS},100.5,102,100,101,4.25"]


def write(tmp_path: Path, rows: list[str], name: str = "candles.csv", header: str = HEADER) -> Path:
    path = tmp_path / name
    text = "\n".join([header, *rows]) + "\n" if header else "\n".join(rows)
    if name.endswith(".gz"):
        path.write_bytes(gzip.compress(text.encode()))
    else:
        path.write_text(text)
    return path


def candle(symbol: str, minute: int, price: float = 100.0, timeframe: str = "1m") -> Candle:
    return Candle(symbol, timeframe, T0 + minute * MINUTE_MS, price, price + 1, price - 1, price, 1.0)


@needs_data
def test_load_real_gz() -> None:
    candles = load_csv(DATA / "bybit_BTCUSDT_1m.csv.gz", "BTCUSDT", "1m")
    assert len(candles) == 43_199
    assert candles[0] == Candle("BTCUSDT", "1m", 1_748_623_140_000, 104217.5, 104402.7, 104200.0, 104337.8, 477.605)
    assert all(b.ts - a.ts == MINUTE_MS for a, b in zip(candles, candles[1:], strict=False))


@needs_data
def test_load_a_year_of_minutes_quickly() -> None:
    began = time.perf_counter()
    candles = load_csv(DATA / "binance_BTCUSDT_1m.csv.gz", "BTCUSDT", "1m")
    elapsed = time.perf_counter() - began
    assert len(candles) == 525_600
    assert elapsed < 5.0, f"loading took {elapsed:.2f} s"


@pytest.mark.parametrize("name", ["plain.csv", "packed.csv.gz"])
def test_load_plain_and_gz(tmp_path: Path, name: str) -> None:
    candles = load_csv(write(tmp_path, GOOD_ROWS, name), "ETHUSDT", "1m")
    assert candles == [
        Candle("ETHUSDT", "1m", T0, 100, 101, 99, 100.5, 3),
        Candle("ETHUSDT", "1m", T0 + MINUTE_MS, 100.5, 102, 100, 101, 4.25),
    ]
    assert type(candles[0].ts) is int and type(candles[0].open) is float


def test_load_header_only(tmp_path: Path) -> None:
    assert load_csv(write(tmp_path, []), "ETHUSDT", "1m") == []


BAD_FILES = {
    "missing column": (HEADER.removesuffix(",volume"), [f"{T0},1,2,0.5,1.5"], "columns are ts,open,high,low,close; expected"),
    "extra column": (HEADER + ",trades", [f"{T0},1,2,0.5,1.5,3,7"], "columns are ts,open,high,low,close,volume,trades"),
    "extra field on a row": (HEADER, [GOOD_ROWS[0], f"{T0 + MINUTE_MS},1,2,0.5,1.5,3,7"], "Expected 6 fields in line 3, saw 7"),
    "extra field on every row": (HEADER, [f"{T0},1,2,0.5,1.5,3,7"], "more fields than the header"),
    "unparsable": (HEADER, [GOOD_ROWS[0], f"{T0 + MINUTE_MS},100.5,abc,100,101,4"], "line 3: high 'abc' is not a number"),
    "missing value": (HEADER, [GOOD_ROWS[0], f"{T0 + MINUTE_MS},100.5,102,100,,4"], "line 3: close is missing"),
    "nan": (HEADER, [f"{T0},1,2,0.5,1.5,nan"], "line 2: volume 'nan' is not a number"),
    "fractional ts": (HEADER, [f"{T0}.5,1,2,0.5,1.5,3"], "line 2: ts '1735689600000.5' is not an integer millisecond time"),
    "zero price": (HEADER, [GOOD_ROWS[0], f"{T0 + MINUTE_MS},100.5,102,0,101,4"], "line 3: a price is not positive"),
    "negative price": (HEADER, [f"{T0},-1,2,-2,1.5,3"], "line 2: a price is not positive"),
    "high below close": (HEADER, [GOOD_ROWS[0], f"{T0 + MINUTE_MS},100.5,100.8,100,101,4"], "line 3: high is below open, close or low"),
    "high below low": (HEADER, [f"{T0},100,100,101,100,4"], "line 2: high is below"),
    "low above open": (HEADER, [f"{T0},100,102,100.2,101,4"], "line 2: low is above open or close"),
    "out of order": (HEADER, [GOOD_ROWS[1], GOOD_ROWS[0]], "line 3: ts is before the previous row's"),
    "duplicate": (HEADER, [GOOD_ROWS[0], GOOD_ROWS[0]], "line 3: duplicate ts"),
    "not aligned": (HEADER, [GOOD_ROWS[0], f"{T0 + 90_000},100.5,102,100,101,4"], "line 3: ts is not aligned to 1m"),
    "empty file": ("", [], "the file is empty"),
}


@pytest.mark.parametrize("case", list(BAD_FILES))
def test_load_rejects_bad_files(tmp_path: Path, case: str) -> None:
    header, rows, message = BAD_FILES[case]
    path = write(tmp_path, rows, header=header)
    with pytest.raises(ValueError) as err:
        load_csv(path, "BTCUSDT", "1m")
    assert str(err.value).startswith(f"{path}: ")
    assert message in str(err.value)


def test_load_reports_the_first_bad_row_and_checks_alignment_per_timeframe(tmp_path: Path) -> None:
    rows = [GOOD_ROWS[0], f"{T0 + MINUTE_MS},100.5,102,100.6,101,4", f"{T0 + MINUTE_MS},0,102,100,101,4"]
    with pytest.raises(ValueError, match="line 3: low is above"):
        load_csv(write(tmp_path, rows), "BTCUSDT", "1m")
    with pytest.raises(ValueError, match="line 3: ts is not aligned to 5m"):
        load_csv(write(tmp_path, GOOD_ROWS), "BTCUSDT", "5m")
    with pytest.raises(ValueError, match="unknown timeframe '2m'"):
        load_csv(write(tmp_path, GOOD_ROWS), "BTCUSDT", "2m")


async def collect(feed: ReplayFeed) -> list[list[Candle]]:
    return [batch async for batch in feed.stream()]


TWO = {
    "BTCUSDT": [candle("BTCUSDT", m, 100 + m) for m in range(6)],
    "ETHUSDT": [candle("ETHUSDT", m, 10 + m) for m in (0, 1, 2, 4, 5, 6)],  # minute 3 missing
}


async def test_replay_merges_symbols_in_ts_order() -> None:
    feed = ReplayFeed(TWO)
    assert feed.base_timeframe == "1m" and feed.symbols == ["BTCUSDT", "ETHUSDT"]
    batches = await collect(feed)
    assert [[(c.symbol, (c.ts - T0) // MINUTE_MS) for c in b] for b in batches] == [
        [("BTCUSDT", 0), ("ETHUSDT", 0)],
        [("BTCUSDT", 1), ("ETHUSDT", 1)],
        [("BTCUSDT", 2), ("ETHUSDT", 2)],
        [("BTCUSDT", 3)],
        [("BTCUSDT", 4), ("ETHUSDT", 4)],
        [("BTCUSDT", 5), ("ETHUSDT", 5)],
        [("ETHUSDT", 6)],
    ]
    assert await collect(feed) == batches  # each stream() starts over


async def test_replay_history_split() -> None:
    feed = ReplayFeed(TWO, history_bars=3)
    assert feed.history("BTCUSDT", 10) == TWO["BTCUSDT"][:3]
    assert feed.history("BTCUSDT", 2) == TWO["BTCUSDT"][1:3]
    assert feed.history("ETHUSDT", 3) == TWO["ETHUSDT"][:3]
    assert feed.history("ETHUSDT", 0) == []
    batches = await collect(feed)
    assert [c for b in batches for c in b if c.symbol == "BTCUSDT"] == TWO["BTCUSDT"][3:]
    assert [c for b in batches for c in b if c.symbol == "ETHUSDT"] == TWO["ETHUSDT"][3:]
    assert batches[0] == [TWO["BTCUSDT"][3]]
    with pytest.raises(ValueError, match="SOLUSDT"):
        feed.history("SOLUSDT", 1)


def test_replay_rejects_bad_input() -> None:
    with pytest.raises(ValueError, match="one timeframe, got 1m, 5m"):
        ReplayFeed({"BTCUSDT": [candle("BTCUSDT", 0)], "ETHUSDT": [candle("ETHUSDT", 0, timeframe="5m")]})
    with pytest.raises(ValueError, match="no candles"):
        ReplayFeed({"BTCUSDT": []})
    with pytest.raises(ValueError, match="ascending"):
        ReplayFeed({"BTCUSDT": [candle("BTCUSDT", 1), candle("BTCUSDT", 0)]})
    with pytest.raises(ValueError, match="ETHUSDT candle is among the BTCUSDT"):
        ReplayFeed({"BTCUSDT": [candle("ETHUSDT", 0)]})
    with pytest.raises(ValueError, match="speed"):
        ReplayFeed(TWO, speed=-1)


async def test_replay_paced_by_speed() -> None:
    feed = ReplayFeed(TWO, speed=60 / 0.02)  # one minute of market time per 0.02 s
    began = time.monotonic()
    stamps = []
    async for _ in feed.stream():
        stamps.append(time.monotonic() - began)
    assert len(stamps) == 7
    assert 0.12 <= stamps[-1] <= 0.3
    assert 0.01 <= float(np.median(np.diff(stamps))) <= 0.04


async def test_replay_full_speed_ends_and_lets_others_run() -> None:
    candles = [candle("BTCUSDT", m) for m in range(5000)]
    feed = ReplayFeed({"BTCUSDT": candles})
    ticks = 0

    async def other_task() -> None:
        nonlocal ticks
        while True:
            ticks += 1
            await asyncio.sleep(0)

    task = asyncio.create_task(other_task())
    began = time.monotonic()
    batches = await collect(feed)
    elapsed = time.monotonic() - began
    task.cancel()
    assert [b[0] for b in batches] == candles
    assert elapsed < 1.0
    assert ticks >= 10


@needs_data
async def test_replay_real_file() -> None:
    candles = load_csv(DATA / "bybit_ETHUSDT_1m.csv.gz", "ETHUSDT", "1m")
    feed = ReplayFeed({"ETHUSDT": candles}, history_bars=1000)
    assert feed.history("ETHUSDT", 200) == candles[800:1000]
    batches = await collect(feed)
    assert len(batches) == len(candles) - 1000 and batches[0] == [candles[1000]]
