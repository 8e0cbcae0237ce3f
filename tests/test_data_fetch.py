"""`tui-trader data fetch` against a local fake Bybit (tests/fake_bybit.py) serving real BTCUSDT 1m
candles: the real pybit client, newest-first paging, rate limits (10006 and the proactive pace),
faults, resume after an interruption, idempotency, exchange gaps, and exact stored values.

What the fetcher asked for is read from the fake's request log, what it stored from the database.
"""

from __future__ import annotations

import signal
import subprocess
import time
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from pybit.unified_trading import HTTP
from typer.testing import CliRunner, Result

from tests.conftest import StateDB, clean_environ
from tests.fake_bybit import KLINE, FakeBybit, dropped, malformed, rate_limited, read_rows
from tui_trader.cli import app
from tui_trader.market.bybit_klines import MalformedPage, kline_session, parse_klines
from tui_trader.market.candle_checks import exact_float

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
BTC_1M = DATA / "bybit_BTCUSDT_1m.csv.gz"
MIN = 60_000

pytestmark = pytest.mark.skipif(not BTC_1M.exists(), reason=f"real market data not found at {BTC_1M}")
runner = CliRunner()


@pytest.fixture(autouse=True)
def _isolated(isolated: None) -> None:
    """Opt in to the shared isolation (clean TUI_TRADER_* environment, scratch cwd)."""


@pytest.fixture(scope="module")
def rows() -> list[list[str]]:
    return read_rows(BTC_1M)


@pytest.fixture
def fake(rows: list[list[str]]) -> Iterator[FakeBybit]:
    """The fake's clock is 30 s into the last bar of the file: that bar is still open."""
    last = int(rows[-1][0])
    with FakeBybit(now_ms=lambda: last + 30_000) as server:
        server.klines.add("BTCUSDT", "1", rows)
        yield server


@pytest.fixture
def state(tmp_path: Path) -> Path:
    return tmp_path / "state"


def ts(rows: list[list[str]], i: int) -> int:
    return int(rows[i][0])


def fetch(fake: FakeBybit, state: Path, start: int, end: int | None, *extra: str) -> Result:
    args = ["data", "fetch", "--symbol", "BTCUSDT", "--timeframe", "1m", "--from", str(start),
            "--base-url", fake.base_url, "--rate", "1000", "--state-dir", str(state), *extra]
    if end is not None:
        args += ["--to", str(end)]
    return runner.invoke(app, args)


def stored(state: Path) -> list[tuple[Any, ...]]:
    return [tuple(r.values()) for r in StateDB(state).query(
        "SELECT ts, open, high, low, close, volume FROM candles WHERE symbol = 'BTCUSDT' AND timeframe = '1m' ORDER BY ts")]


def expected(rows: list[list[str]], lo: int, hi: int) -> list[tuple[Any, ...]]:
    """The file's rows lo..hi-1 as the table holds them."""
    return [(int(r[0]), *map(float, r[1:6])) for r in rows[lo:hi]]


def windows_since(fake: FakeBybit, n: int) -> list[tuple[int, int]]:
    return [(int(r.params["start"]), int(r.params["end"])) for r in fake.log()[n:] if r.answered == "ok" and "start" in r.params]


def test_pages_newest_first_in_windows_that_tile_the_range_and_store_exact_values(
        fake: FakeBybit, state: Path, rows: list[list[str]]) -> None:
    lo, n = 1000, 5000
    result = fetch(fake, state, ts(rows, lo), ts(rows, lo + n), "--page-size", "500")
    assert result.exit_code == 0, result.output
    windows = fake.windows()
    assert len(windows) == 10 and len(fake.log()) == 10
    assert windows[0] == (ts(rows, lo + n - 500), ts(rows, lo + n - 1))
    assert windows[-1][0] == ts(rows, lo)
    assert all(b[1] == a[0] - MIN for a, b in zip(windows, windows[1:], strict=False))  # newest first, no overlap
    assert {r.params["limit"] for r in fake.log()} == {"500"}
    assert {(r.params["category"], r.params["interval"]) for r in fake.log()} == {("linear", "1")}
    got = stored(state)
    assert got == expected(rows, lo, lo + n)
    # REALs that read back as the very decimal strings the exchange sent
    assert all(Decimal(repr(v)) == Decimal(s) for g, r in zip(got, rows[lo:lo + n], strict=True) for v, s in zip(g[1:], r[1:6], strict=True))
    assert "5000 bars; 0 stored; 5000 to fetch in 1 range" in result.output
    assert "stored 5000 new bars; 0 bars of the range are not on the exchange" in result.output


def test_the_bar_still_open_is_not_stored_until_it_closes(fake: FakeBybit, state: Path, rows: list[list[str]]) -> None:
    result = fetch(fake, state, ts(rows, -300), None)
    assert result.exit_code == 0, result.output
    assert stored(state) == expected(rows, -300, -1)  # the last bar is open at the fake's clock
    n = len(fake.log())
    fake.now_ms = lambda: ts(rows, -1) + MIN + 30_000
    result = fetch(fake, state, ts(rows, -300), None)
    assert result.exit_code == 0, result.output
    assert windows_since(fake, n)[-1] == (ts(rows, -1), ts(rows, -1))  # only the bar that closed is asked again
    assert stored(state) == expected(rows, -300, len(rows))


def test_rate_limit_answer_waits_until_the_reset_header_then_completes(fake: FakeBybit, state: Path, rows: list[list[str]]) -> None:
    lo, n = 2000, 3000
    fake.inject(KLINE, rate_limited(1200), rate_limited(1200), after=2)
    result = fetch(fake, state, ts(rows, lo), ts(rows, lo + n), "--page-size", "500")
    assert result.exit_code == 0, result.output
    log = fake.log()
    assert [r.answered for r in log] == ["ok", "ok", "rate_limited", "rate_limited", "ok", "ok", "ok", "ok"]
    assert log[2].params == log[3].params == log[4].params  # the same page, asked again
    # The default backoff would retry after 0.5 s; the header said 1.2 s.
    assert log[3].at - log[2].at >= 1.15 and log[4].at - log[3].at >= 1.15
    assert stored(state) == expected(rows, lo, lo + n)
    assert "2 rate-limited" in result.output


def test_the_pace_keeps_under_the_server_limit_and_an_exceeded_limit_still_completes(
        fake: FakeBybit, state: Path, rows: list[list[str]]) -> None:
    fake.rate_limit = 8  # per second, sliding
    result = fetch(fake, state, ts(rows, 0), ts(rows, 2000), "--page-size", "100", "--rate", "6")
    assert result.exit_code == 0, result.output
    log = fake.log()
    assert len(log) == 20 and not fake.log(answered="rate_limited")
    assert log[-1].at - log[0].at >= 19 / 6 - 0.1
    n = len(log)
    result = fetch(fake, state, ts(rows, 2000), ts(rows, 3500), "--page-size", "100", "--rate", "1000")
    assert result.exit_code == 0, result.output
    limited = [r for r in fake.log()[n:] if r.answered == "rate_limited"]
    assert limited, "no request ever exceeded the fake's limit: the test proves nothing"
    assert len(windows_since(fake, n)) == 15
    assert f"{len(limited)} rate-limited" in result.output
    assert stored(state) == expected(rows, 0, 3500)


def test_resume_after_the_connection_drops_asks_only_for_what_is_missing(fake: FakeBybit, state: Path, rows: list[list[str]]) -> None:
    lo, n = 5000, 5000
    fake.fail_after(KLINE, 4, dropped())
    result = fetch(fake, state, ts(rows, lo), ts(rows, lo + n), "--page-size", "500", "--attempts", "2")
    assert result.exit_code == 1, result.output
    assert "gave up after 2 attempts" in result.output and "network error" in result.output
    assert stored(state) == expected(rows, lo + n - 2000, lo + n)  # the four newest pages, whole
    fake.clear_faults()
    before = len(fake.log())
    result = fetch(fake, state, ts(rows, lo), ts(rows, lo + n), "--page-size", "500")
    assert result.exit_code == 0, result.output
    assert "2000 stored; 3000 to fetch in 1 range" in result.output
    again = windows_since(fake, before)
    assert len(again) == 6 and all(end < ts(rows, lo + n - 2000) for _, end in again)
    assert stored(state) == expected(rows, lo, lo + n)


def test_resume_after_the_process_is_killed(fake: FakeBybit, state: Path, rows: list[list[str]], tui_exe: str) -> None:
    lo, n = 10_000, 4000
    args = [tui_exe, "data", "fetch", "--symbol", "BTCUSDT", "--timeframe", "1m", "--from", str(ts(rows, lo)),
            "--to", str(ts(rows, lo + n)), "--base-url", fake.base_url, "--rate", "4", "--page-size", "200",
            "--state-dir", str(state)]
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=clean_environ())
    try:
        deadline = time.monotonic() + 30
        while len(fake.log(answered="ok")) < 4:
            assert time.monotonic() < deadline and proc.poll() is None, "the fetch did not get going"
            time.sleep(0.02)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    kept = stored(state)
    assert kept and len(kept) % 200 == 0 and len(kept) < n  # whole pages only
    assert kept == expected(rows, lo + n - len(kept), lo + n)
    before = len(fake.log())
    result = fetch(fake, state, ts(rows, lo), ts(rows, lo + n), "--page-size", "200")
    assert result.exit_code == 0, result.output
    assert all(end < kept[0][0] for _, end in windows_since(fake, before))
    assert stored(state) == expected(rows, lo, lo + n)


def test_ctrl_c_stops_with_exit_130_and_keeps_the_pages(fake: FakeBybit, state: Path, rows: list[list[str]], tui_exe: str) -> None:
    args = [tui_exe, "data", "fetch", "--symbol", "BTCUSDT", "--timeframe", "1m", "--from", str(ts(rows, 0)),
            "--to", str(ts(rows, 4000)), "--base-url", fake.base_url, "--rate", "4", "--page-size", "200", "--state-dir", str(state)]
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=clean_environ())
    try:
        deadline = time.monotonic() + 30
        while len(fake.log(answered="ok")) < 3:
            assert time.monotonic() < deadline and proc.poll() is None, "the fetch did not get going"
            time.sleep(0.02)
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=15)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 130, err
    assert "run the same command to resume" in err
    kept = stored(state)  # the third answer may not have been committed when the signal came
    assert len(kept) in (400, 600, 800) and kept == expected(rows, 4000 - len(kept), 4000)


def test_fetching_twice_stores_the_same_rows_and_asks_nothing_the_second_time(
        fake: FakeBybit, state: Path, rows: list[list[str]]) -> None:
    lo, n = 20_000, 1500
    assert fetch(fake, state, ts(rows, lo), ts(rows, lo + n)).exit_code == 0
    first = stored(state)
    requests = len(fake.log())
    result = fetch(fake, state, ts(rows, lo), ts(rows, lo + n))
    assert result.exit_code == 0, result.output
    assert "0 to fetch" in result.output and len(fake.log()) == requests
    assert stored(state) == first == expected(rows, lo, lo + n)
    # A wider range asks only for its new parts.
    result = fetch(fake, state, ts(rows, lo - 300), ts(rows, lo + n + 200))
    assert result.exit_code == 0, result.output
    assert sorted(windows_since(fake, requests)) == [(ts(rows, lo - 300), ts(rows, lo - 1)), (ts(rows, lo + n), ts(rows, lo + n + 199))]
    assert stored(state) == expected(rows, lo - 300, lo + n + 200)


def bad_page(rows: list[list[str]], i: int) -> dict[str, Any]:
    """An answer whose one bar has high below open."""
    row = [rows[i][0], "100", "90", "80", "85", "1", "85"]
    return {"retCode": 0, "retMsg": "OK", "result": {"category": "linear", "symbol": "BTCUSDT", "list": [row]}, "time": 0}


def test_a_malformed_page_is_counted_and_asked_again_never_stored(fake: FakeBybit, state: Path, rows: list[list[str]]) -> None:
    lo, n = 30_000, 2000
    fake.inject(KLINE, malformed(bad_page(rows, lo + 100)), malformed(), after=1)
    result = fetch(fake, state, ts(rows, lo), ts(rows, lo + n), "--page-size", "500")
    assert result.exit_code == 0, result.output
    assert [r.answered for r in fake.log()] == ["ok", "malformed", "malformed", "ok", "ok", "ok"]
    assert "2 malformed pages" in result.output
    assert stored(state) == expected(rows, lo, lo + n)


def test_a_page_that_stays_malformed_fails_clearly_and_keeps_the_pages_before(
        fake: FakeBybit, state: Path, rows: list[list[str]]) -> None:
    lo, n = 30_000, 2000
    fake.fail_after(KLINE, 1, malformed(bad_page(rows, lo + 1400)))
    result = fetch(fake, state, ts(rows, lo), ts(rows, lo + n), "--page-size", "500", "--attempts", "3")
    assert result.exit_code == 1, result.output
    assert "gave up after 3 attempts; last: malformed page" in result.output and "high is below open or close" in result.output
    assert stored(state) == expected(rows, lo + n - 500, lo + n)


def test_gaps_on_the_exchange_are_recorded_and_long_ones_skipped_with_one_probe(
        fake: FakeBybit, state: Path, rows: list[list[str]]) -> None:
    lo, n = 15_000, 6000
    fake.klines.remove("BTCUSDT", "1", ts(rows, lo + 1000), ts(rows, lo + 3999))  # 3000 bars, six pages
    fake.klines.remove("BTCUSDT", "1", ts(rows, lo + 5000), ts(rows, lo + 5009))  # 10 bars
    result = fetch(fake, state, ts(rows, lo), ts(rows, lo + n), "--page-size", "500")
    assert result.exit_code == 0, result.output
    probes = [r for r in fake.log() if "start" not in r.params]
    assert len(probes) == 1 and probes[0].params["limit"] == "1"
    assert len(fake.log()) < n // 500  # fewer requests than walking every window
    assert stored(state) == expected(rows, lo, lo + 1000) + expected(rows, lo + 4000, lo + 5000) + expected(rows, lo + 5010, lo + n)
    assert "3010 bars of the range are not on the exchange" in result.output
    before = len(fake.log())
    result = fetch(fake, state, ts(rows, lo), ts(rows, lo + n))
    assert result.exit_code == 0 and "0 to fetch" in result.output and len(fake.log()) == before
    check = runner.invoke(app, ["data", "check", "--state-dir", str(state)])
    assert check.exit_code == 0, check.output
    assert check.output.count("none on the exchange") == 2


def test_bybit_refusing_the_symbol_is_bad_input(fake: FakeBybit, state: Path) -> None:
    result = runner.invoke(app, ["data", "fetch", "--symbol", "DOGEUSDT", "--timeframe", "1m", "--from", "2025-06-01",
                                 "--to", "2025-06-02", "--base-url", fake.base_url, "--state-dir", str(state)])
    assert result.exit_code == 2, result.output
    assert "symbol invalid (retCode 10001)" in result.output
    assert stored(state) == []


@pytest.mark.parametrize(("args", "message"), [
    (["--symbol", "btc"], "--symbol 'btc'"),
    (["--timeframe", "2m"], "--timeframe '2m'"),
    (["--from", "yesterday"], "--from 'yesterday'"),
    (["--from", "1748736000"], "this looks like seconds"),
    (["--to", "2025-05-01"], "--to must be after --from"),
    (["--from", "2999-01-01", "--to", "2999-02-01"], "no closed 1m bar"),
    (["--base-url", "ftp://x"], "--base-url 'ftp://x'"),
    (["--rate", "0"], "--rate 0.0: must be positive"),
    (["--page-size", "1001"], "--page-size 1001: must be 1..1000"),
    (["--attempts", "0"], "--attempts 0: must be at least 1"),
])
def test_bad_arguments_exit_2_and_touch_nothing(state: Path, args: list[str], message: str) -> None:
    base = {"--symbol": "BTCUSDT", "--timeframe": "1m", "--from": "2025-06-01", "--to": "2025-06-02"}
    base.update(dict(zip(args[::2], args[1::2], strict=True)))
    result = runner.invoke(app, ["data", "fetch", *[x for kv in base.items() for x in kv], "--state-dir", str(state)])
    assert result.exit_code == 2, result.output
    assert message in result.output
    assert not state.exists()


def test_the_session_is_pybits_pointed_at_mainnet_testnet_or_a_given_url() -> None:
    assert kline_session().endpoint == "https://api.bybit.com"
    assert kline_session(testnet=True).endpoint == "https://api-testnet.bybit.com"
    assert kline_session(base_url="http://127.0.0.1:9/").endpoint == "http://127.0.0.1:9"
    assert isinstance(kline_session(), HTTP)


# -- the page parser -------------------------------------------------------------------------------------------

GOOD = ["1748623200000", "104337.8", "104409.1", "104230.8", "104288.5", "328.242", "34229.1"]
OLDER = ["1748623140000", "104217.5", "104402.7", "104200.0", "104337.8", "477.605", "49800.2"]


def answer(*rows: Any, symbol: str = "BTCUSDT") -> dict[str, Any]:
    return {"retCode": 0, "result": {"symbol": symbol, "category": "linear", "list": list(rows)}}


def test_parse_klines_turns_newest_first_strings_into_candles_oldest_first() -> None:
    candles = parse_klines(answer(GOOD, OLDER), "BTCUSDT", "1m", 1748623140000, 1748623200000)
    assert [(c.ts, c.open, c.volume) for c in candles] == [(1748623140000, 104217.5, 477.605), (1748623200000, 104337.8, 328.242)]


@pytest.mark.parametrize(("response", "fault"), [
    ({"retCode": 0, "result": {}}, "no result.list"),
    (answer(GOOD, symbol="ETHUSDT"), "not BTCUSDT"),
    (answer(GOOD[:5]), "at least 6 strings"),
    (answer([1748623200000, *GOOD[1:]]), "at least 6 strings"),
    (answer(["17486232e5", *GOOD[1:]]), "not an integer"),
    (answer([GOOD[0], "abc", *GOOD[2:]]), "not a number"),
    (answer([GOOD[0], "NaN", *GOOD[2:]]), "not a finite number"),
    (answer([GOOD[0], "104337.80000000000001", *GOOD[2:]]), "more digits"),
    (answer(["1748623200001", *GOOD[1:]]), "misaligned or outside"),
    (answer(["1748623260000", *GOOD[1:]]), "misaligned or outside"),
    (answer(OLDER, GOOD), "newest first"),
    (answer(GOOD, GOOD), "newest first"),
    (answer([GOOD[0], "104337.8", "104300", *GOOD[3:]]), "high is below open or close"),
    (answer([*GOOD[:5], "-1", GOOD[6]]), "volume is negative"),
    (answer([GOOD[0], "0", *GOOD[2:]]), "not positive"),
])
def test_parse_klines_refuses_whatever_is_off(response: dict[str, Any], fault: str) -> None:
    with pytest.raises(MalformedPage, match=fault):
        parse_klines(response, "BTCUSDT", "1m", 1748623140000, 1748623200000)


def test_exact_float_keeps_decimal_strings_exact() -> None:
    assert exact_float("104337.80") == 104337.8
    assert exact_float("0.00012345") == 0.00012345
    with pytest.raises(ValueError, match="more digits"):
        exact_float("0.1000000000000000055511151231257827")
