"""The bot detail screen (enter on a bot): performance, trade history, equity curve and the
full decision history with a filter by type. Everything is read from the store when the
screen opens (and on `r`), and scored by the backtests' own metric functions."""

from __future__ import annotations

import math
from dataclasses import dataclass
from decimal import Decimal

import pandas as pd
from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import Screen
from textual.widgets import ContentSwitcher, DataTable, Footer, Log, Select, Static
from textual_plotext import PlotextPlot

from tui_trader.backtest.metrics import Metrics, compute_metrics
from tui_trader.engine.orchestrator import Engine
from tui_trader.model import DecisionType, Trade
from tui_trader.ui.views import decision_line, month_day_time, signed

DECISIONS_SHOWN = 5000  # the newest; the CLI's `decisions BOT` reads any amount
SECTIONS = ("trades", "equity", "decisions")
ALL_TYPES = "all"


@dataclass(frozen=True, slots=True)
class BotHistory:
    trades: list[Trade]
    equity: list[tuple[int, Decimal]]
    metrics: Metrics


def figure(value: float, fmt: str = ",.2f", suffix: str = "") -> str:
    """A metric for display: NaN (undefined, e.g. no losing trade) as '-', inf as '∞'."""
    if math.isnan(value):
        return "-"
    if math.isinf(value):
        return "∞" if value > 0 else "-∞"
    return f"{value:{fmt}}{suffix}"


def performance_text(m: Metrics) -> str:
    """Two lines of the headline figures (definitions: tui_trader/backtest/metrics.py)."""
    return (f"P&L {figure(m.net_pnl, '+,.2f')} USDT ({figure(m.total_return_pct, '+.2f', '%')})  "
            f"trades {m.trades}  win rate {figure(m.win_rate_pct, '.1f', '%')}  "
            f"profit factor {figure(m.profit_factor, '.2f')}\n"
            f"max drawdown {figure(m.max_drawdown_pct, '.2f', '%')}  Sharpe {figure(m.sharpe, '.2f')}  "
            f"Sortino {figure(m.sortino, '.2f')}  expectancy {figure(m.expectancy, '+.2f')}  fees {figure(m.fees_paid)}")


def history_metrics(trades: list[Trade], equity: list[tuple[int, Decimal]], capital: Decimal) -> Metrics:
    curve = pd.Series([float(e) for _, e in equity], index=[ts for ts, _ in equity], dtype=float)
    return compute_metrics(trades, curve, capital)


class BotDetailScreen(Screen[None]):
    BINDINGS = [
        Binding("escape,backspace", "back", "Back"),
        Binding("1", "section('trades')", "Trades"),
        Binding("2", "section('equity')", "Equity"),
        Binding("3", "section('decisions')", "Decisions"),
        Binding("t", "type_filter", "Filter type"),
        Binding("R", "reload", "Reload"),
    ]
    DEFAULT_CSS = """
    BotDetailScreen #d-title { height: 1; background: $panel; }
    BotDetailScreen #d-perf { height: 2; }
    BotDetailScreen #d-sections { height: 1; color: $text-muted; }
    BotDetailScreen ContentSwitcher { height: 1fr; }
    BotDetailScreen #d-trades, BotDetailScreen #d-equity, BotDetailScreen #d-decisions-box { height: 1fr; }
    BotDetailScreen #d-type { width: 40; }
    BotDetailScreen #d-log { height: 1fr; }
    """

    def __init__(self, engine: Engine, bot_name: str) -> None:
        super().__init__()
        self.engine = engine
        self.bot_name = bot_name
        self.history: BotHistory | None = None
        self.section = "trades"

    def compose(self) -> ComposeResult:
        yield Static(id="d-title")
        yield Static("loading…", id="d-perf", markup=False)
        yield Static(id="d-sections")
        with ContentSwitcher(initial="d-trades"):
            yield DataTable(id="d-trades", cursor_type="row", zebra_stripes=True)
            yield PlotextPlot(id="d-equity")
            with Vertical(id="d-decisions-box"):
                yield Select([(t, t) for t in (ALL_TYPES, *DecisionType)], value=ALL_TYPES, allow_blank=False,
                             id="d-type", compact=True)
                yield Log(id="d-log", max_lines=DECISIONS_SHOWN)
        yield Footer()

    def on_mount(self) -> None:
        table = self.query_one("#d-trades", DataTable)
        for key, header in (("entry", "Opened"), ("side", "Side"), ("qty", "Qty"), ("entry_px", "Entry"),
                            ("exit_px", "Exit"), ("exit", "Closed"), ("net", "Net P&L"), ("fees", "Fees"),
                            ("why", "Why")):
            table.add_column(header, key=key)
        self.show_section("trades")
        self.load()

    def bot_title(self) -> Text:
        bot = self.engine.bot(self.bot_name)
        spec = bot.record.spec
        return Text.assemble((f" {bot.name} ", "bold reverse"), f" {spec.symbol} {spec.timeframe.value}  {spec.strategy}",
                             f"  risk {spec.risk_profile}  capital {spec.capital}  equity {bot.equity:,.2f}  ",
                             (bot.state.value, "bold"))

    @work(exclusive=True, group="detail")
    async def load(self) -> None:
        bot = self.engine.bot(self.bot_name)
        trades = await self.engine.closed_trades(bot)
        equity = await self.engine.equity_curve(bot)
        equity.append((self.engine.now_ts, bot.equity))  # where it stands now, marked to market
        if not self.is_attached:
            return
        self.history = BotHistory(trades, equity, history_metrics(trades, equity, bot.ledger.capital))
        self.query_one("#d-title", Static).update(self.bot_title())
        self.query_one("#d-perf", Static).update(performance_text(self.history.metrics))
        self.fill_trades(trades)
        self.draw_equity()
        await self.load_decisions()

    def fill_trades(self, trades: list[Trade]) -> None:
        table = self.query_one("#d-trades", DataTable)
        table.clear()
        for t in reversed(trades):  # newest first
            entered = month_day_time(t.entry_ts)[:11]
            left = month_day_time(t.exit_ts)[:11]
            if left[:5] == entered[:5]:
                left = left[6:]  # same day: the time is enough (and 80 columns fit every column)
            table.add_row(entered, Text("long" if t.side.sign > 0 else "short"), str(t.qty), f"{t.entry_price}",
                          f"{t.exit_price}", left, signed(t.net_pnl), f"{t.fees:.2f}", t.exit_reason)

    def draw_equity(self) -> None:
        if self.history is None or self.section != "equity":
            return
        plot = self.query_one("#d-equity", PlotextPlot)
        plt = plot.plt
        plt.clear_data()
        plt.clear_figure()
        points = self.history.equity
        plt.title(f"{self.bot_name} equity (USDT)")
        if len(points) > 1:
            xs = list(range(len(points)))
            plt.plot(xs, [float(e) for _, e in points], marker="braille", color="cyan")
            plt.hline(float(self.engine.bot(self.bot_name).ledger.capital), color="gray")
            ticks = xs[:: max(1, len(xs) // 4)]
            plt.xticks(ticks, [month_day_time(points[i][0])[:11] for i in ticks])
        plot.refresh()

    async def load_decisions(self) -> None:
        bot = self.engine.bot(self.bot_name)
        chosen = self.query_one("#d-type", Select).value
        types = [] if chosen == ALL_TYPES or not isinstance(chosen, str) else [chosen]
        rows = await self.engine.recent_decisions(bot, types=types, limit=DECISIONS_SHOWN)
        log = self.query_one("#d-log", Log)
        log.clear()
        log.write_lines([decision_line(None, d, dated=True) for _, d in rows])

    @on(Select.Changed, "#d-type")
    async def type_changed(self) -> None:
        if self.history is not None:
            await self.load_decisions()

    def show_section(self, name: str) -> None:
        self.section = name
        ids = {"trades": "d-trades", "equity": "d-equity", "decisions": "d-decisions-box"}
        self.query_one(ContentSwitcher).current = ids[name]
        self.query_one("#d-sections", Static).update(
            Text.assemble(*((f" {i + 1} {s} ", "reverse" if s == name else "") for i, s in enumerate(SECTIONS))))
        self.draw_equity()

    def action_section(self, name: str) -> None:
        self.show_section(name)

    def action_type_filter(self) -> None:
        self.show_section("decisions")
        self.query_one("#d-type", Select).focus()

    def action_reload(self) -> None:
        self.load()

    def action_back(self) -> None:
        self.dismiss(None)
