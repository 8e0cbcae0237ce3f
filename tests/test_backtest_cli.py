"""`tui-trader backtest` as a user runs it: from a CSV or the candles table, with a
strategy or an existing bot's settings; the report in the terminal and as files;
bad input refused with exit code 2."""

from __future__ import annotations

import asyncio
import csv
import gzip
import json
import re
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tui_trader.market.replay import load_csv
from tui_trader.store import Batch, Store

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
ROWS = 4_000  # 1m bars: 501 warm up, the rest trade


@pytest.fixture(autouse=True)
def _isolated(isolated: None) -> None:
    pass


@pytest.fixture(scope="module")
def minutes(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The first ROWS bars of a real 1m file, gzipped (the reader takes both)."""
    source = DATA / "bybit_ETHUSDT_1m.csv.gz"
    if not source.exists():
        pytest.skip(f"{source} is missing")
    path = tmp_path_factory.mktemp("data") / "eth_1m.csv.gz"
    with gzip.open(source, "rt") as src, gzip.open(path, "wt") as dst:
        for n, line in enumerate(src):
            if n > ROWS:
                break
            dst.write(line)
    return path


def test_strategy_on_a_csv_prints_the_report_and_writes_the_files(minutes: Path, tmp_path: Path,
                                                                  run_cli: Callable[..., Any]) -> None:
    out = tmp_path / "out"
    result = run_cli("backtest", "--strategy", "sma_cross", "--param", "fast=5", "--param", "slow=30",
                     "--symbol", "ETHUSDT", "--timeframe", "1m", "--data", minutes, "--capital", "5000",
                     "--fee", "0.06", "--slippage", "0.01", "--out", out, "--state-dir", tmp_path / "state", timeout=120)
    assert result.returncode == 0, result.stderr
    assert "Backtest sma_cross ETHUSDT 1m (paper fills)" in result.stdout
    for label in ("Net P&L", "Profit factor", "Max drawdown", "Sharpe", "Sortino", "Calmar", "Exposure", "Buy & hold",
                  "Equity (USDT)", "Drawdown (%)", "ETHUSDT close"):
        assert label in result.stdout, label
    summary = json.loads((out / "summary.json").read_text())
    assert summary["params"] == {"fast": 5, "slow": 30}
    assert (summary["capital"], summary["fee_pct"], summary["slippage_pct"]) == ("5000", "0.0600", "0.01")
    assert summary["bars"] == ROWS - 501
    with (out / "trades.csv").open() as f:
        trades = list(csv.DictReader(f))
    assert len(trades) == summary["metrics"]["trades"] > 5
    assert summary["decisions"]["TRADE_EXITED"] == len(trades)
    net = sum(float(t["net_pnl"]) for t in trades)
    assert net == pytest.approx(summary["metrics"]["net_pnl"], abs=1e-6)
    with (out / "equity.csv").open() as f:
        equity = list(csv.DictReader(f))
    assert len(equity) == summary["bars"]
    assert float(equity[-1]["equity"]) == pytest.approx(float(summary["final_equity"]), abs=0.05)
    page = (out / "report.html").read_text()
    fetched = page.replace("http://www.w3.org/2000/svg", "")  # the SVG namespace is a name, not a download
    assert "<script" in page and "http://" not in fetched and "https://" not in fetched  # self-contained
    assert not re.search(r"<(script|link|img)[^>]+(src|href)=", page)
    assert '"eq_v":[' in page and "ETHUSDT" in page


def test_the_candles_table_feeds_a_5m_bot_its_1m_candles(minutes: Path, tmp_path: Path,
                                                          run_cli: Callable[..., Any]) -> None:
    state = tmp_path / "state"
    candles = load_csv(minutes, "ETHUSDT", "1m")

    async def store_candles() -> None:
        store = await Store.open(state)
        await store.commit(Batch(candles=candles))
        await store.close()

    asyncio.run(store_candles())
    out = tmp_path / "out"
    result = run_cli("backtest", "--strategy", "sma_cross", "--param", "fast=3", "--param", "slow=8", "--symbol", "ETHUSDT",
                     "--timeframe", "5m", "--state-dir", state, "--out", out, "--no-charts", timeout=120)
    assert result.returncode == 0, result.stderr
    summary = json.loads((out / "summary.json").read_text())
    assert summary["data_timeframe"] == "1m" and summary["timeframe"] == "5m"
    assert "candles table (1m)" in summary["data"]
    assert "Equity (USDT)" not in result.stdout


def test_an_existing_bots_settings(minutes: Path, tmp_path: Path, run_cli: Callable[..., Any]) -> None:
    state = tmp_path / "state"
    added = run_cli("bots", "add", "--name", "eth-fast", "--symbol", "ETHUSDT", "--timeframe", "1m", "--capital", "2500",
                    "--strategy", "sma_cross", "--param", "fast=4", "--param", "slow=9", "--risk-profile", "cautious",
                    "--state-dir", state)
    assert added.returncode == 0, added.stderr
    out = tmp_path / "out"
    result = run_cli("backtest", "--bot", "eth-fast", "--data", minutes, "--state-dir", state, "--out", out,
                     "--fill-model", "backtesting-py", "--no-charts", timeout=120)
    assert result.returncode == 0, result.stderr
    summary = json.loads((out / "summary.json").read_text())
    assert (summary["params"], summary["capital"], summary["risk_profile"]) == ({"fast": 4, "slow": 9}, "2500", "cautious")
    assert summary["fill_model"] == "backtesting-py"


@pytest.mark.parametrize(("args", "message"), [
    (["--strategy", "nope", "--symbol", "ETHUSDT", "--timeframe", "1m"], "unknown strategy 'nope'"),
    (["--strategy", "sma_cross", "--param", "fast=50", "--symbol", "ETHUSDT", "--timeframe", "1m"], "fast (50) must be below slow"),
    (["--strategy", "sma_cross", "--timeframe", "1m"], "--strategy needs --symbol and --timeframe"),
    (["--symbol", "ETHUSDT", "--timeframe", "1m"], "give --strategy NAME"),
    (["--strategy", "sma_cross", "--symbol", "ETHUSDT", "--timeframe", "2m"], "backtest.timeframe"),
    (["--strategy", "sma_cross", "--symbol", "ETHUSDT", "--timeframe", "1m", "--fee", "abc"], "--fee 'abc'"),
    (["--strategy", "sma_cross", "--symbol", "ETHUSDT", "--timeframe", "1m", "--from", "2025-07-01", "--to", "2025-06-01"],
     "--from must be before --to"),
    (["--strategy", "sma_cross", "--symbol", "ETHUSDT", "--timeframe", "1m", "--from", "yesterday"], "--from 'yesterday'"),
    (["--strategy", "sma_cross", "--symbol", "ETHUSDT", "--timeframe", "1m", "--fill-model", "vectorbt"], "--fill-model"),
    (["--strategy", "sma_cross", "--symbol", "DOGEUSDT", "--timeframe", "1m"], "no instrument rules for DOGEUSDT"),
    (["--bot", "ghost"], "no bot named 'ghost'"),
    (["--strategy", "sma_cross", "--symbol", "ETHUSDT", "--timeframe", "1m", "--from", "2030-01-01"], "no candles to trade"),
])
def test_bad_input_exits_2_with_the_reason(args: list[str], message: str, minutes: Path, tmp_path: Path,
                                          run_cli: Callable[..., Any]) -> None:
    result = run_cli("backtest", *args, "--data", minutes, "--state-dir", tmp_path / "state", timeout=60)
    assert result.returncode == 2, (result.stdout, result.stderr)
    assert message in result.stderr, result.stderr


def test_unreadable_data_and_missing_candles_exit_2(tmp_path: Path, run_cli: Callable[..., Any]) -> None:
    bad = tmp_path / "bad.csv"
    bad.write_text("ts,open,high,low,close,volume\n0,1,1,1,1,1\n60000,1,0.5,1,1,1\n")
    base = ["backtest", "--strategy", "sma_cross", "--symbol", "ETHUSDT", "--timeframe", "1m", "--state-dir", tmp_path / "s"]
    result = run_cli(*base, "--data", bad)
    assert result.returncode == 2 and "line 3: high is below" in result.stderr, result.stderr
    result = run_cli(*base, "--data", tmp_path / "missing.csv")
    assert result.returncode == 2 and "missing.csv" in result.stderr, result.stderr
    result = run_cli(*base)
    assert result.returncode == 2 and "no ETHUSDT candles of 1m or finer" in result.stderr, result.stderr


DOM = r"""
class El { constructor(){ this.children=[]; this.innerHTML=''; this.style={}; this.listeners={}; this.textContent=''; }
  appendChild(c){ this.children.push(c); return c; } setAttribute(){} insertAdjacentHTML(_, html){ this.innerHTML += html; }
  addEventListener(ev, fn){ this.listeners[ev] = fn; } getBoundingClientRect(){ return {left: 0, top: 0, width: 1000}; } }
const els = {};
global.document = {getElementById: id => id === 'data' ? {textContent: DATA} : (els[id] = els[id] || new El()),
  createElementNS: () => new El(), createElement: () => new El()};
"""
REPORT = r"""
for (const id of ['equity', 'drawdown', 'price']) {
  const svg = els[id].children[0], tip = els[id].children[1];
  svg.listeners.mousemove({clientX: 500});
  const before = svg.innerHTML;
  svg.listeners.mousedown({clientX: 300}); svg.listeners.mouseup({clientX: 700});
  const zoomed = svg.innerHTML !== before;
  console.log(JSON.stringify({id, paths: (before.match(/<path /g) || []).length,
    markers: (before.match(/<polygon|<circle/g) || []).length, tip: tip.textContent, zoomed}));
}
"""


def test_the_html_reports_script_draws_its_charts(minutes: Path, tmp_path: Path, run_cli: Callable[..., Any]) -> None:
    """The page's own script, run by node against a minimal DOM: three charts, markers, hover, zoom."""
    node = shutil.which("node")
    if node is None:
        pytest.skip("node is not installed")
    out = tmp_path / "out"
    result = run_cli("backtest", "--strategy", "sma_cross", "--symbol", "ETHUSDT", "--timeframe", "1m", "--data", minutes,
                     "--out", out, "--no-charts", "--state-dir", tmp_path / "state", timeout=120)
    assert result.returncode == 0, result.stderr
    page = (out / "report.html").read_text()
    data = re.search(r'<script type="application/json" id="data">(.*?)</script>', page, re.S).group(1)
    script = re.search(r"<script>(.*?)</script>", page, re.S).group(1)
    payload = json.dumps(data.replace("<\\/", "</"))  # the page escapes "</" inside its script tag
    program = f"const DATA = {payload};\n{DOM}\n{script}\n{REPORT}"
    ran = subprocess.run([node, "-e", program], capture_output=True, text=True, timeout=60)
    assert ran.returncode == 0, ran.stderr
    charts = {c["id"]: c for c in map(json.loads, ran.stdout.splitlines())}
    assert all(c["paths"] == 1 and c["zoomed"] for c in charts.values())
    assert charts["price"]["markers"] == len(json.loads(data)["markers"]) > 0
    assert charts["equity"]["tip"].endswith(tuple("0123456789")) and "equity" in charts["equity"]["tip"]
