"""What a backtest reports: the metrics, the pessimistic and optimistic totals of
ambiguous bars, the decisions; in the terminal (a rich table and plotext charts)
and as files (trades.csv, equity.csv, summary.json, report.html)."""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import plotext as plt
from rich.console import Console
from rich.table import Table
from rich.text import Text

from tui_trader.backtest.html import render_html
from tui_trader.backtest.metrics import Metrics, compute_metrics, drawdown_series
from tui_trader.backtest.results import RunResult
from tui_trader.backtest.text import downsample, duration, iso, money, num, pct
from tui_trader.model import BotState, Trade, timeframe_ms

@dataclass(frozen=True)
class RunInfo:
    """What was run, for the report's header."""

    strategy: str
    params: Mapping[str, Any]
    symbol: str
    timeframe: str
    fill_model: str
    capital: Decimal
    fee_pct: Decimal
    slippage_pct: Decimal
    risk_profile: str
    data: str  # where the candles came from
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class Report:
    info: RunInfo
    result: RunResult
    optimistic: RunResult | None
    elapsed_s: float
    metrics: Metrics = field(init=False)
    times: np.ndarray = field(init=False)  # close time (ms) of each traded base bar
    equity: np.ndarray = field(init=False)

    def __post_init__(self) -> None:
        r = self.result
        bars = r.bars
        self.times = bars.ts[r.start:] + timeframe_ms(bars.timeframe)
        self.equity = r.equity_curve()
        first_open = float(bars.open[r.start]) if len(self.times) else math.nan
        hold = (float(bars.close[-1]) / first_open - 1) * 100 if len(self.times) else math.nan
        self.metrics = compute_metrics(r.trades, pd.Series(self.equity, index=self.times), r.capital,
                                       buy_and_hold_pct=hold)

    # -- numbers ---------------------------------------------------------------------------------------

    def summary(self) -> dict[str, Any]:
        r, info = self.result, self.info
        counts = r.decision_counts()
        out: dict[str, Any] = {
            "strategy": info.strategy, "params": dict(info.params), "symbol": info.symbol, "timeframe": info.timeframe,
            "data": info.data, "data_timeframe": r.bars.timeframe, "risk_profile": info.risk_profile,
            "fill_model": info.fill_model, "fee_pct": str(info.fee_pct), "slippage_pct": str(info.slippage_pct),
            "capital": str(r.capital),
            "from": iso(int(r.bars.ts[r.start])) if len(self.times) else None,
            "to": iso(int(self.times[-1])) if len(self.times) else None,
            "bars": len(self.times), "bars_processed": r.bars_processed, "elapsed_s": round(self.elapsed_s, 3),
            "final_equity": str(r.final_equity), "open_position": None if r.open_position is None else
            {"qty": str(r.open_position[0]), "entry_price": str(r.open_position[1])},
            "out_of_money": r.out_of_money, "final_state": r.state.value, "final_state_reason": r.state_reason,
            "metrics": {k: _json_number(v) for k, v in asdict(self.metrics).items()},
            "ambiguous_bars": r.ambiguous_bars,
            "decisions": {k.value: v for k, v in sorted(counts.items(), key=lambda kv: kv[0].value)},
            **info.extra,
        }
        if self.optimistic is not None:
            o = self.optimistic
            out["pessimistic"] = {"net_pnl": str(r.final_equity - r.capital), "final_equity": str(r.final_equity)}
            out["optimistic"] = {"net_pnl": str(o.final_equity - o.capital), "final_equity": str(o.final_equity),
                                 "trades": len(o.trades), "ambiguous_bars": o.ambiguous_bars}
        return out

    # -- files -------------------------------------------------------------------------------------------

    def write(self, out_dir: Path) -> list[Path]:
        out_dir.mkdir(parents=True, exist_ok=True)
        paths = [out_dir / name for name in ("trades.csv", "equity.csv", "summary.json", "report.html")]
        write_trades(paths[0], self.result.trades)
        drawdown = drawdown_series(pd.Series(self.equity)).to_numpy() * 100
        pd.DataFrame({"time": pd.to_datetime(self.times, unit="ms", utc=True).strftime("%Y-%m-%dT%H:%M:%SZ"),
                      "ts": self.times, "equity": np.round(self.equity, 8), "drawdown_pct": np.round(drawdown, 6)},
                     ).to_csv(paths[1], index=False)
        paths[2].write_text(json.dumps(self.summary(), indent=2) + "\n")
        paths[3].write_text(render_html(self))
        return paths

    # -- terminal ---------------------------------------------------------------------------------------

    def print(self, console: Console, charts: bool = True) -> None:
        console.print(self.table())
        if charts and len(self.times) > 1:
            width = min(console.width, 120)
            for chart in (equity_chart(self.times, self.equity, width), price_chart(self, width)):
                console.print(Text.from_ansi(chart), no_wrap=True, crop=False)

    def table(self) -> Table:
        r, m, info = self.result, self.metrics, self.info
        summary = self.summary()
        table = Table(title=f"Backtest {info.strategy} {info.symbol} {info.timeframe} ({info.fill_model} fills)",
                      show_header=False, title_justify="left")
        table.add_column("", style="bold")
        table.add_column("", justify="right")
        table.add_column("", style="bold")
        table.add_column("", justify="right")
        rows = [
            ("Period", f"{summary['from']} -> {summary['to']}", "Bars", f"{len(self.times):,} {r.bars.timeframe}"),
            ("Capital", f"{r.capital:,.2f}", "Final equity", f"{r.final_equity:,.2f}"),
            ("Net P&L", money(m.net_pnl), "Total return", pct(m.total_return_pct)),
            ("CAGR", pct(m.cagr_pct), "Buy & hold", pct(m.buy_and_hold_pct)),
            ("Trades", f"{m.trades:,}", "Win rate", pct(m.win_rate_pct, signed=False)),
            ("Profit factor", num(m.profit_factor), "Profit factor (%)", num(m.profit_factor_pct)),
            ("Expectancy", money(m.expectancy), "Fees paid", money(m.fees_paid)),
            ("Avg win", money(m.avg_win), "Avg loss", money(m.avg_loss)),
            ("Largest win", money(m.largest_win), "Largest loss", money(m.largest_loss)),
            ("Max drawdown", pct(m.max_drawdown_pct), "DD duration", duration(m.max_drawdown_duration)),
            ("Sharpe", num(m.sharpe), "Sortino", num(m.sortino)),
            ("Calmar", num(m.calmar), "Exposure", pct(m.exposure_pct, signed=False)),
            ("Fees", f"{info.fee_pct}% per leg", "Slippage", f"{info.slippage_pct}%"),
            ("Ambiguous bars", f"{r.ambiguous_bars:,}", "Time", f"{self.elapsed_s:.2f}s"),
        ]
        if self.optimistic is not None:
            rows.append(("Pessimistic P&L", money(float(r.final_equity - r.capital)),
                         "Optimistic P&L", money(float(self.optimistic.final_equity - self.optimistic.capital))))
        if r.open_position is not None:
            qty, entry = r.open_position
            rows.append(("Open at end", f"{qty} @ {entry}", "", ""))
        notes = []
        if r.state is not BotState.RUNNING:
            notes.append(f"The bot ended {r.state.value}: {r.state_reason} (a backtest has no operator to resume it).")
        if r.out_of_money:
            notes.append("Equity reached zero: the run ended there.")
        table.caption = " ".join(notes) or None
        table.caption_justify = "left"
        for row in rows:
            table.add_row(*row)
        return table


def write_trades(path: Path, trades: list[Trade]) -> None:
    with path.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["entry_time", "exit_time", "side", "qty", "entry_price", "exit_price", "pnl", "fees", "net_pnl",
                    "return_pct", "exit_reason"])
        for t in trades:
            ret = t.net_pnl / (t.qty * t.entry_price) * 100 if t.qty and t.entry_price else Decimal(0)
            w.writerow([iso(t.entry_ts), iso(t.exit_ts), "long" if t.side.sign > 0 else "short", t.qty, t.entry_price,
                        t.exit_price, t.pnl, t.fees, t.net_pnl, f"{ret:.6f}", t.exit_reason])


def _clear(width: int, height: int) -> None:
    """plotext 5's one module-level figure (the CLI draws one chart at a time), cleared."""
    plt.clf()
    plt.plotsize(width, height)
    plt.theme("dark")


def equity_chart(times: np.ndarray, equity: np.ndarray, width: int) -> str:
    t, v = downsample(times, equity, width * 2)
    dd = drawdown_series(pd.Series(v)).to_numpy() * 100
    x = ((t - t[0]) / 86_400_000).tolist()
    _clear(width, 14)  # two charts, not subplots: plotext 5 keeps a grid of subplots across clears
    plt.plot(x, v.tolist(), marker="braille")
    plt.title(f"Equity (USDT), days since {iso(int(t[0]))}")
    equity_part = str(plt.build())
    _clear(width, 12)
    plt.plot(x, dd.tolist(), marker="braille")
    plt.title("Drawdown (%)")
    return equity_part + "\n" + str(plt.build())


def price_chart(report: Report, width: int) -> str:
    bars = report.result.bot_bars
    first = int(np.searchsorted(bars.ts, int(report.result.bars.ts[report.result.start])))
    t, c = downsample(bars.ts[first:], bars.close[first:], width * 2)
    if not len(t):
        return ""
    origin = int(t[0])
    day = lambda ts: (ts - origin) / 86_400_000  # noqa: E731
    _clear(width, 18)
    plt.plot(day(t).tolist(), c.tolist(), marker="braille")
    trades = report.result.trades[-100:]  # the latest: more would only cover the line
    for side, marker in ((1, "^"), (-1, "v")):
        group = [tr for tr in trades if tr.side.sign == side]
        if group:
            plt.scatter([day(tr.entry_ts) for tr in group], [float(tr.entry_price) for tr in group], marker=marker)
    if trades:
        plt.scatter([day(tr.exit_ts) for tr in trades], [float(tr.exit_price) for tr in trades], marker="x")
    plt.title(f"{report.info.symbol} close since {iso(origin)}: ^ long, v short, x exit")
    return str(plt.build())


def _json_number(v: Any) -> Any:
    if isinstance(v, float) and not math.isfinite(v):
        return None if math.isnan(v) else ("inf" if v > 0 else "-inf")
    return v
