"""Benchmark: our backtest against backtesting.py 0.6.6 on one year of 1m bars.

The bot: sma_cross SMA(10, 20), always in the market, with the risk profile's stop
(2 ATR) and target (3 R) on every entry, sized at 0.5 % of capital (whole BTC:
the instrument's qty step is 1, which backtesting.py needs), fees 0.06 % per leg,
no slippage, ../shared/data/binance_BTCUSDT_1m.csv.gz (525,600 bars).

Ours: `tui_trader.backtest.runner.Backtest` with the backtesting-py fill model:
the live engine's bot cycle, ledger and risk rules, every decision accounted for
(routine ones counted on the bars the fast path skips). backtesting.py: the same
bot as a backtesting.py strategy (tests/btpy_mirror.py: its `crossover`, stops,
targets and sizes from the same pure functions the cycle calls), finalize_trades.
Both start from data already in memory (our column arrays, its DataFrame); each
timing covers building the run, running it and computing its statistics (the
equity curve and the metrics: backtesting.py's `run()` computes its stats too,
0.4-0.6 s of its time here). The runs alternate, `--runs` each;
the medians are compared. The trade lists (entry and exit bars, sizes, prices)
and the returns must be identical (prices and returns within 1e-9).

    python benchmarks/backtest.py [--runs 5] [--bars N]

Last output line: {"ours_s", "backtesting_py_s", "ratio", "identical_trades"}.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
import warnings
from decimal import Decimal
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from backtesting import Backtest as BtBacktest  # noqa: E402

from tests.btpy_mirror import frame, mirror  # noqa: E402
from tui_trader.backtest.metrics import Metrics, compute_metrics  # noqa: E402
from tui_trader.backtest.results import RunResult  # noqa: E402
from tui_trader.backtest.runner import Backtest  # noqa: E402
from tui_trader.backtest.session import FillSettings  # noqa: E402
from tui_trader.backtest.series import FIELDS, Bars  # noqa: E402
from tui_trader.config import RiskProfile  # noqa: E402
from tui_trader.engine.cycle import BotProfile  # noqa: E402
from tui_trader.model import Instrument  # noqa: E402
from tui_trader.setup import load_strategies  # noqa: E402

DATA = ROOT.parent / "shared" / "data" / "binance_BTCUSDT_1m.csv.gz"
REQUIRED_RATIO, GOAL_RATIO = 5.0, 10.0
CAPITAL = Decimal(100_000_000)
FEE = Decimal("0.0006")
INSTRUMENT = Instrument("BTCUSDT", Decimal("0.01"), Decimal(1), Decimal(1), Decimal(0), Decimal(100))
RISK = RiskProfile(risk_per_trade_pct=10, stop_atr_mult=2, take_profit_r=3, max_leverage=10, max_position_pct=0.5)


STRATEGIES = load_strategies()  # the registry is loaded once, as backtesting.py's strategy class is imported once


def ours(bars: Bars) -> tuple[RunResult, Metrics]:
    profile = BotProfile(1, "bench", "BTCUSDT", "1m", CAPITAL, 0, RISK, INSTRUMENT, FEE, 180_000, 60_000)
    strategy = STRATEGIES.make("sma_cross", {"fast": 10, "slow": 20}, "1m")
    result = Backtest(bars, profile, strategy, FillSettings("backtesting-py", FEE, FEE, Decimal(0))).run()
    equity = pd.Series(result.equity_curve(), index=bars.ts + 60_000)
    hold = (float(bars.close[-1]) / float(bars.open[0]) - 1) * 100
    return result, compute_metrics(result.trades, equity, CAPITAL, buy_and_hold_pct=hold)


def theirs(df) -> object:  # noqa: ANN001
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        bt = BtBacktest(df, mirror(RISK, INSTRUMENT, CAPITAL, FEE), cash=float(CAPITAL), commission=float(FEE),
                        margin=0.1, finalize_trades=True)
        return bt.run()


def compare(bars: Bars, result: RunResult, stats) -> tuple[bool, str]:  # noqa: ANN001
    trades = stats["_trades"]
    if len(trades) != len(result.trades):
        return False, f"{len(result.trades)} trades vs {len(trades)}"
    index = {int(ts): i for i, ts in enumerate(bars.ts)}
    entry_bar = np.array([index[t.entry_ts] for t in result.trades])
    exit_bar = np.array([index[t.exit_ts] for t in result.trades])
    size = np.array([float(t.qty) * t.side.sign for t in result.trades])
    entry = np.array([float(t.entry_price) for t in result.trades])
    exit_ = np.array([float(t.exit_price) for t in result.trades])
    checks = {
        "entry bars": np.array_equal(entry_bar, trades["EntryBar"].to_numpy()),
        "exit bars": np.array_equal(exit_bar, trades["ExitBar"].to_numpy()),
        "sizes": np.array_equal(size, trades["Size"].to_numpy(dtype=float)),
        "entry prices": np.allclose(entry, trades["EntryPrice"].to_numpy(), rtol=1e-9, atol=0),
        "exit prices": np.allclose(exit_, trades["ExitPrice"].to_numpy(), rtol=1e-9, atol=0),
    }
    ret = float(result.final_equity) / float(CAPITAL) - 1
    checks["return"] = abs(ret - stats["Return [%]"] / 100) <= 1e-9
    failed = [name for name, ok in checks.items() if not ok]
    reasons = {r: sum(t.exit_reason == r for t in result.trades) for r in ("reverse", "stop", "target", "exit")}
    detail = (f"{len(trades):,} trades (exits: {reasons}); return {ret * 100:.6f}% vs {stats['Return [%]']:.6f}%"
              + (f"; DIFFER in {', '.join(failed)}" if failed else "; identical"))
    return not failed, detail


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--bars", type=int, default=0, help="only the first N bars (default: all)")
    args = parser.parse_args()
    if not DATA.exists():
        sys.exit(f"{DATA} is missing")
    bars = Bars.from_csv(DATA, "BTCUSDT", "1m")
    if args.bars:
        bars = Bars(bars.symbol, bars.timeframe, *(getattr(bars, f)[:args.bars] for f in FIELDS))
    df = frame(bars)
    print(f"{len(bars):,} bars of {DATA.name}; {args.runs} runs each, alternating", flush=True)
    ours_times, bt_times = [], []
    for run in range(args.runs):
        result = stats = metrics = None  # the previous run's results are freed outside the timings
        t = time.perf_counter()
        result, metrics = ours(bars)
        ours_times.append(time.perf_counter() - t)
        t = time.perf_counter()
        stats = theirs(df)
        bt_times.append(time.perf_counter() - t)
        print(f"run {run + 1}: ours {ours_times[-1]:.3f}s ({result.bars_processed:,} bars processed),"
              f" backtesting.py {bt_times[-1]:.3f}s", flush=True)
    identical, detail = compare(bars, result, stats)
    ours_s, bt_s = statistics.median(ours_times), statistics.median(bt_times)
    ratio = bt_s / ours_s
    counts = result.decision_counts()
    print(f"decisions: {sum(counts.values()):,} ({', '.join(f'{k.value} {v:,}' for k, v in counts.most_common())})")
    print(f"trade lists: {detail}")
    assert metrics is not None and stats is not None
    print(f"statistics (ours / backtesting.py): return {metrics.total_return_pct:.4f}% / {stats['Return [%]']:.4f}%,"
          f" max drawdown {metrics.max_drawdown_pct:.4f}% / {stats['Max. Drawdown [%]']:.4f}%,"
          f" win rate {metrics.win_rate_pct:.2f}% / {stats['Win Rate [%]']:.2f}%, trades {metrics.trades} / {stats['# Trades']}")
    verdict = "goal met" if ratio >= GOAL_RATIO else "required met" if ratio >= REQUIRED_RATIO else "BELOW the required"
    print(f"median: ours {ours_s:.3f}s, backtesting.py {bt_s:.3f}s: {ratio:.2f}x ({verdict}: required"
          f" {REQUIRED_RATIO:g}x, goal {GOAL_RATIO:g}x)")
    print(json.dumps({"ours_s": round(ours_s, 4), "backtesting_py_s": round(bt_s, 4), "ratio": round(ratio, 3),
                      "identical_trades": identical}))


if __name__ == "__main__":
    main()
