"""`tui-trader data import | list | check`: files checked row by row (bad rows reported by line,
never stored), idempotent imports, gaps and invalid bars in the table with exit code 3, and
`check --fill` fetching small gaps from a local fake Bybit."""

from __future__ import annotations

import gzip
import json
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner, Result

from tests.conftest import StateDB
from tests.fake_bybit import FakeBybit
from tui_trader.cli import app

MIN = 60_000
T0 = 1_748_736_000_000  # 2025-06-01 00:00 UTC
HEADER = "ts,open,high,low,close,volume"
runner = CliRunner()


@pytest.fixture(autouse=True)
def _isolated(isolated: None) -> None:
    """Opt in to the shared isolation (clean TUI_TRADER_* environment, scratch cwd)."""


@pytest.fixture
def state(tmp_path: Path) -> Path:
    return tmp_path / "state"


def bar(i: int) -> list[str]:
    """Minute bar i after T0: a valid bar with the decimal strings a file or the exchange has."""
    o = 100 + (i % 7) * 0.5
    c = o + (0.25 if i % 2 else -0.25)
    return [str(T0 + i * MIN), f"{o:.2f}", f"{max(o, c) + 0.1:.2f}", f"{min(o, c) - 0.1:.2f}", f"{c:.2f}", f"{1 + i % 5}.125"]


def write(path: Path, lines: list[str]) -> Path:
    text = "\n".join(lines) + "\n"
    if path.suffix == ".gz":
        path.write_bytes(gzip.compress(text.encode()))
    else:
        path.write_text(text)
    return path


def csv_file(path: Path, indices: Any, extra: dict[int, str] | None = None) -> Path:
    """Bars `indices` as CSV lines; `extra` puts raw lines in at positions of the row list."""
    lines = [",".join(bar(i)) for i in indices]
    for pos, line in sorted((extra or {}).items()):
        lines.insert(pos, line)
    return write(path, [HEADER, *lines])


def cli(*args: Any) -> Result:
    return runner.invoke(app, [str(a) for a in args])


def imp(path: Path, state: Path, *extra: str, symbol: str = "BTCUSDT", timeframe: str = "1m") -> Result:
    return cli("data", "import", path, "--symbol", symbol, "--timeframe", timeframe, "--state-dir", state, *extra)


def stored(state: Path, symbol: str = "BTCUSDT") -> list[tuple[Any, ...]]:
    if not state.exists():
        return []
    return [tuple(r.values()) for r in StateDB(state).query(
        "SELECT ts, open, high, low, close, volume FROM candles WHERE symbol = ? ORDER BY ts", (symbol,))]


def as_rows(indices: Any) -> list[tuple[Any, ...]]:
    return [(int(b[0]), *map(float, b[1:])) for b in map(bar, indices)]


# -- import --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["bars.csv", "bars.csv.gz"])
def test_import_stores_the_rows_exactly_and_a_second_import_adds_nothing(tmp_path: Path, state: Path, name: str) -> None:
    path = csv_file(tmp_path / name, range(500))
    result = imp(path, state)
    assert result.exit_code == 0, result.output
    assert "500 rows, 500 valid, 0 invalid" in result.output and "stored 500 new BTCUSDT 1m bars" in result.output
    assert stored(state) == as_rows(range(500))
    result = imp(path, state)
    assert result.exit_code == 0, result.output
    assert "stored 0 new" in result.output and "500 were already stored" in result.output
    assert stored(state) == as_rows(range(500))


def bad_file(path: Path) -> tuple[Path, dict[int, str]]:
    """Bars 0..49 with ten faults; (the file, {line number: what its report says})."""
    def at(i: int, *fields: str) -> str:
        return ",".join([str(T0 + i * MIN), *fields])

    replaced = {
        15: (at(15, "100", "99", "98", "99.5", "1"), "high is below open or close"),
        18: (at(18, "100", "101", "100.2", "100.5", "1"), "low is above open or close"),
        21: (at(21, "0", "101", "99", "100.5", "1"), "a price is not positive"),
        24: (at(24, "100", "101", "99", "100.5", "-2"), "volume is negative"),
        27: (",".join([str(T0 + 27 * MIN + 1), "100", "101", "99", "100.5", "1"]), "not aligned to 1m"),
        30: (at(30, "100", "101", "99"), "4 fields; expected 6"),
        33: (at(33, "abc", "101", "99", "100.5", "1"), "'abc' is not a number"),
        36: ("2025-06-01,100,101,99,100.5,1", "not an integer millisecond time"),
    }
    lines: list[tuple[str, str | None]] = []
    for i in range(50):
        if i == 5:
            continue  # comes after bar 10: out of order
        lines.append(replaced.get(i, (",".join(bar(i)), None)))
        if i == 2:
            lines.append((",".join(bar(2)), f"duplicate ts {T0 + 2 * MIN}"))
        if i == 10:
            lines.append((",".join(bar(5)), "before the previous row's (out of order)"))
    write(path, [HEADER, *(line for line, _ in lines)])
    return path, {n + 2: message for n, (_, message) in enumerate(lines) if message}


VALID_IN_BAD_FILE = [i for i in range(50) if i not in (5, 15, 18, 21, 24, 27, 30, 33, 36)]


def test_invalid_rows_are_reported_by_line_and_nothing_is_stored(tmp_path: Path, state: Path) -> None:
    path, faults = bad_file(tmp_path / "bad.csv")
    result = imp(path, state)
    assert result.exit_code == 2, result.output
    reported = {int(line.split(": line ")[1].split(":")[0]): line.split(": ", 2)[2]
                for line in result.output.splitlines() if ": line " in line}
    assert reported.keys() == faults.keys()
    assert all(faults[n] in reported[n] for n in faults), reported
    assert "51 rows, 41 valid, 10 invalid" in result.output
    assert "nothing stored" in result.output and "--skip-invalid" in result.output
    assert stored(state) == [] and not state.exists()


def test_skip_invalid_stores_the_valid_rows_only(tmp_path: Path, state: Path) -> None:
    path, _ = bad_file(tmp_path / "bad.csv")
    result = imp(path, state, "--skip-invalid")
    assert result.exit_code == 0, result.output
    assert "stored 41 new" in result.output and result.output.count("bad.csv: line ") == 10
    assert stored(state) == as_rows(VALID_IN_BAD_FILE)


def test_dry_run_checks_and_stores_nothing(tmp_path: Path, state: Path) -> None:
    result = imp(csv_file(tmp_path / "ok.csv", range(10)), state, "--dry-run")
    assert result.exit_code == 0, result.output
    assert "10 rows, 10 valid, 0 invalid" in result.output and not state.exists()


def test_a_long_problem_list_is_cut_short(tmp_path: Path, state: Path) -> None:
    path = write(tmp_path / "desc.csv", [HEADER, *(",".join(bar(i)) for i in range(60, 0, -1))])  # newest first
    result = imp(path, state)
    assert result.exit_code == 2
    assert result.output.count("out of order") == 20 and "... and 39 more invalid rows" in result.output


@pytest.mark.parametrize(("setup", "args", "message"), [
    ("missing", [], "cannot read the file"),
    ("header", [], "the header is 'ts,o,h,l,c,v'"),
    ("empty", [], "the file is empty"),
    ("ok", ["--timeframe", "7m"], "--timeframe '7m'"),
    ("ok", ["--symbol", "BTC-USD"], "--symbol 'BTC-USD'"),
])
def test_bad_import_arguments_and_files_exit_2(tmp_path: Path, state: Path, setup: str, args: list[str], message: str) -> None:
    path = tmp_path / "in.csv"
    if setup == "header":
        write(path, ["ts,o,h,l,c,v", ",".join(bar(0))])
    elif setup == "empty":
        path.write_text("")
    elif setup == "ok":
        csv_file(path, range(3))
    opts = dict(zip(args[::2], args[1::2], strict=True))
    result = imp(path, state, symbol=opts.get("--symbol", "BTCUSDT"), timeframe=opts.get("--timeframe", "1m"))
    assert result.exit_code == 2, result.output
    assert message in result.output
    assert not state.exists()


# -- list and check ---------------------------------------------------------------------------------------------


def test_list_shows_what_is_stored_with_its_gaps(tmp_path: Path, state: Path) -> None:
    assert cli("data", "list", "--state-dir", state).output.strip() == "no candles stored"
    imp(csv_file(tmp_path / "a.csv", [*range(0, 100), *range(110, 200), *range(203, 300)]), state)
    imp(csv_file(tmp_path / "b.csv", range(0, 50)), state, symbol="ETHUSDT")
    result = cli("data", "list", "--state-dir", state)
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0].split() == ["SYMBOL", "TF", "FIRST", "LAST", "BARS", "GAPS", "MISSING"]
    assert lines[1].split() == ["BTCUSDT", "1m", "2025-06-01", "00:00", "2025-06-01", "04:59", "287", "2", "13"]
    assert lines[2].split() == ["ETHUSDT", "1m", "2025-06-01", "00:00", "2025-06-01", "00:49", "50", "0", "0"]
    as_json = json.loads(cli("data", "list", "--json", "--symbol", "BTCUSDT", "--state-dir", state).output)
    assert as_json == [{"symbol": "BTCUSDT", "timeframe": "1m", "first": T0, "last": T0 + 299 * MIN, "count": 287,
                        "gaps": 2, "missing": 13}]


def test_check_passes_clean_data_and_exits_3_on_gaps_and_invalid_bars(tmp_path: Path, state: Path) -> None:
    imp(csv_file(tmp_path / "a.csv", range(100)), state)
    result = cli("data", "check", "--state-dir", state)
    assert result.exit_code == 0, result.output
    assert "BTCUSDT 1m: 100 bars 2025-06-01 00:00 .. 2025-06-01 01:39, 0 gaps" in result.output and "no problems" in result.output

    imp(csv_file(tmp_path / "b.csv", range(105, 120)), state)
    # A bar the importer would refuse, written by something else (an older version, a hand edit).
    with sqlite3.connect(state / "tui-trader.sqlite3") as conn:
        conn.execute("UPDATE candles SET high = 90 WHERE ts = ?", (T0 + 50 * MIN,))
        conn.execute("INSERT INTO candles VALUES ('ETHUSDT', '5m', ?, 1, 2, 0.5, 1.5, -1)", (T0,))
    result = cli("data", "check", "--state-dir", state)
    assert result.exit_code == 3, result.output
    assert "  gap 2025-06-01 01:40 .. 2025-06-01 01:44 (5 bars)\n" in result.output
    assert "  invalid bar 2025-06-01 00:50: high is below open or close (o=100.5 h=90.0" in result.output
    assert "ETHUSDT 5m" in result.output and "volume is negative" in result.output
    assert "3 problems" in result.output
    only_eth = cli("data", "check", "--symbol", "ETHUSDT", "--state-dir", state)
    assert only_eth.exit_code == 3 and "BTCUSDT" not in only_eth.output and "1 problem" in only_eth.output
    assert cli("data", "check", "--symbol", "SOLUSDT", "--state-dir", state).exit_code == 3  # nothing stored for it
    assert cli("data", "check", "--timeframe", "3m", "--state-dir", state).exit_code == 2


@pytest.fixture
def fake() -> Iterator[FakeBybit]:
    """Serves bars 0..599 (bar 599 still open at the fake's clock)."""
    with FakeBybit(now_ms=lambda: T0 + 599 * MIN + 30_000) as server:
        server.klines.add("BTCUSDT", "1", [[*bar(i), "0"] for i in range(600)])
        yield server


def test_check_fill_fetches_small_gaps_only(tmp_path: Path, state: Path, fake: FakeBybit) -> None:
    imp(csv_file(tmp_path / "a.csv", [*range(0, 100), *range(110, 300), *range(350, 400)]), state)  # gaps of 10 and 50
    result = cli("data", "check", "--fill", "--max-fill", "20", "--base-url", fake.base_url, "--rate", "1000", "--state-dir", state)
    assert result.exit_code == 3, result.output
    assert fake.windows() == [(T0 + 100 * MIN, T0 + 109 * MIN)]
    assert "filled 10 of 10 bars of the gap 2025-06-01 01:40 .. 2025-06-01 01:49" in result.output
    assert "  gap 2025-06-01 05:00 .. 2025-06-01 05:49 (50 bars)\n" in result.output and "1 problem" in result.output
    result = cli("data", "check", "--fill", "--base-url", fake.base_url, "--rate", "1000", "--state-dir", state)
    assert result.exit_code == 0, result.output
    assert stored(state) == as_rows(range(400))


def test_check_fill_records_a_gap_the_exchange_also_has(tmp_path: Path, state: Path, fake: FakeBybit) -> None:
    fake.klines.remove("BTCUSDT", "1", T0 + 100 * MIN, T0 + 104 * MIN)
    imp(csv_file(tmp_path / "a.csv", [*range(0, 100), *range(110, 200)]), state)
    result = cli("data", "check", "--fill", "--base-url", fake.base_url, "--rate", "1000", "--state-dir", state)
    assert result.exit_code == 0, result.output
    assert "filled 5 of 10 bars" in result.output
    assert "  gap 2025-06-01 01:40 .. 2025-06-01 01:44 (5 bars): none on the exchange" in result.output
    requests = len(fake.log())
    again = cli("data", "check", "--fill", "--base-url", fake.base_url, "--rate", "1000", "--state-dir", state)
    assert again.exit_code == 0 and len(fake.log()) == requests  # a known exchange gap is not asked for again
    assert stored(state) == as_rows([*range(0, 100), *range(105, 200)])
