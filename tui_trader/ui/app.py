"""The operator console: one screen over the running engine, keyboard first.

The engine runs on the same event loop and knows nothing of this module: it reports to
an `EngineBuffer`, and one timer (`--ui-hz`, default 4 Hz) flushes what changed into the
widgets: changed table cells only, the log's new lines in one write, the chart only when
it is visible and at most twice a second. Below 120 columns the panes become tabs
(number keys). Every action has a key, shown in the footer (greyed out when it cannot
apply to the selected bot) and in the command palette.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Iterable

from textual import on, work
from textual.app import App, ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.widgets import DataTable, Footer, Input, Log

from tui_trader.engine.orchestrator import Engine
from tui_trader.engine.runtime import BotRuntime
from tui_trader.model import Decision, Trade
from tui_trader.ui.actions import ConsoleActions
from tui_trader.ui.buffer import EngineBuffer
from tui_trader.ui.commands import ConsoleCommands
from tui_trader.ui.views import (
    decision_line,
    status_line,
    with_name,
)
from tui_trader.ui.tables import BotsTable, PositionsTable
from tui_trader.ui.widgets import ChartData, PriceChart, RiskPanel, TextLine

PANES = ("bots", "log", "positions", "chart", "risk")
CHART_MIN_SECONDS = 0.5  # at most 2 redraws a second: a candlestick build costs 20-50 ms (in a thread)
LOG_KEPT = 2000  # lines of every bot's decisions
BOT_LOG_KEPT = 500  # lines per bot, for showing one bot's log at once


class TraderApp(ConsoleActions, App[None]):
    CSS_PATH = "app.tcss"
    TITLE = "tui-trader"
    COMMANDS = App.COMMANDS | {ConsoleCommands}
    HORIZONTAL_BREAKPOINTS = [(0, "-narrow"), (120, "-wide")]
    BINDINGS = [
        Binding("p", "pause", "Pause"),
        Binding("r", "resume", "Resume"),
        Binding("f", "flatten", "Flatten"),
        Binding("X", "flatten_all", "Flatten ALL", priority=True),
        Binding("R", "resume_all", "Resume portfolio", show=False),
        Binding("n", "new_bot", "New", show=False),
        Binding("e", "edit_bot", "Edit", show=False),
        Binding("d", "delete_bot", "Delete", show=False),
        Binding("a", "toggle_scope", "Log: bot/all", show=False),
        Binding("slash", "filter_log", "Filter log", show=False),
        Binding("escape", "close_filter", show=False),
        Binding("question_mark", "help", "Help"),
        Binding("q", "quit", "Quit"),
        Binding("j", "cursor(1)", "Down", show=False),
        Binding("k", "cursor(-1)", "Up", show=False),
        *(Binding(str(i + 1), f"pane('{name}')", name.capitalize(), show=False) for i, name in enumerate(PANES)),
    ]

    def __init__(self, engine: Engine, *, market: str = "", ui_hz: float = 4.0, ansi: bool = False) -> None:
        super().__init__(ansi_color=ansi)
        if ansi:
            self.theme = "ansi-dark"
        self.engine = engine
        self.market = market
        self.ui_hz = ui_hz
        self.buffer = EngineBuffer()
        self.unsubscribe = engine.bus.subscribe(self.buffer)
        self.selected: str | None = None
        self.scope_all = False  # the log shows every bot's decisions, not only the selected one's
        self.log_filter = ""
        self.active_pane = "bots"
        self.history: dict[str, deque[str]] = {}  # per bot: its log lines, for switching the log's scope
        self.all_history: deque[tuple[str, str]] = deque(maxlen=LOG_KEPT)  # (bot, line)
        self.positions_due = self.risk_due = True
        self.bindings_key: tuple[object, ...] = ()
        self.trades: list[Trade] = []  # the selected bot's, for the chart's markers
        self.chart_due = True
        self.chart_drawn = 0.0
        self.mounted = False  # set once on_mount has built the tables

    # -- layout ------------------------------------------------------------------------------------------

    def compose(self) -> ComposeResult:
        yield TextLine(id="status")
        yield TextLine(id="pane-tabs")
        with Vertical(id="main"):  # a grid when wide (see app.tcss), one pane at a time when narrow
            with Vertical(id="pane-bots", classes="pane"):
                yield BotsTable(id="bots")
            with Vertical(id="pane-log", classes="pane"):
                yield Log(id="log", max_lines=LOG_KEPT)
                yield Input(placeholder="filter the log (enter applies, empty clears, esc closes)", id="log-filter")
            with Vertical(id="pane-chart", classes="pane"):
                yield PriceChart(id="chart")
            with Vertical(id="pane-positions", classes="pane"):
                yield PositionsTable(id="positions")
            with Vertical(id="pane-risk", classes="pane"):
                yield RiskPanel(id="risk")
        yield Footer()

    def on_mount(self) -> None:
        for name, title in zip(PANES, ("Bots", "Decisions", "Positions", "Chart", "Risk"), strict=True):
            self.query_one(f"#pane-{name}").border_title = title
        bots = self.bots_table
        bots.fit_columns(self.size.width)
        self.query_one("#log-filter").display = False
        self.apply_panes()
        self.refresh_console(everything=True)
        bots.focus()
        self.mounted = True
        self.load_history()
        self.set_interval(1 / self.ui_hz, self.refresh_console)

    @property
    def bots_table(self) -> BotsTable:
        return self.query_one("#bots", BotsTable)

    @property
    def bot_columns(self) -> tuple[str, ...]:
        return self.bots_table.columns_shown

    def _sync_columns(self) -> None:
        """Crossing 120 columns changes the bots table's columns (as the CSS changes its panes)."""
        if self.mounted and self.bots_table.fit_columns(self.size.width):
            self.bots_table.show(self.engine, self.buffer.last_decision)
            self.refresh_bindings()

    def on_resize(self) -> None:
        if self.mounted:  # crossing 120 columns changes the panes and the table's columns
            self.refresh_console(everything=True)

    def on_unmount(self) -> None:
        self.unsubscribe()

    def engine_ended(self, task: asyncio.Task[None]) -> None:
        """The engine task finished while the console runs: a failure ends the console, a feed
        that ran out (a replay) leaves it up with the final state."""
        if not self.is_running or task.cancelled():
            return
        failure = task.exception()
        if failure is not None:
            self.exit(return_code=1, message=f"the engine failed: {type(failure).__name__}: {failure}")
        else:
            self.notify("the market feed ended; the engine has stopped", severity="warning", timeout=30)

    def apply_panes(self) -> None:
        """Narrow terminals show one pane at a time; wide ones all of them."""
        for name in PANES:
            self.query_one(f"#pane-{name}").set_class(name == self.active_pane, "-active")
        tabs = "  ".join(f"[reverse] {i + 1} {n} [/]" if n == self.active_pane else f" {i + 1} {n} "
                         for i, n in enumerate(PANES))
        self.query_one("#pane-tabs", TextLine).show(tabs)
        self.chart_due = True
        if self.mounted:
            self.refresh_console(everything=True)

    # -- the flush ---------------------------------------------------------------------------------------

    def pane_shown(self, pane: str) -> bool:
        return not self.screen.has_class("-narrow") or self.active_pane == pane

    def refresh_console(self, everything: bool = False) -> None:
        """Move what the engine reported since the last flush into the widgets: only what changed,
        only into panes that are visible (a hidden pane is brought up to date when it is shown)."""
        if not self.is_running:  # shutting down: the timer can still fire while the widgets are removed
            return
        self._sync_columns()
        if not everything and self.buffer.idle():  # nothing happened: an idle console costs next to nothing
            self._maybe_draw_chart()  # but a redraw the throttle held back still happens
            return
        pending = self.buffer.take()
        changed = everything or pending.market_moved or bool(pending.dirty) or pending.portfolio_changed
        if changed:
            self.query_one("#status", TextLine).show(status_line(self.engine, self.market))
        bots = self.bots_table
        bots.stale |= pending.dirty
        bots.marked = bots.marked or pending.market_moved or everything
        if self.pane_shown("bots"):
            bots.show(self.engine, self.buffer.last_decision)
            if self.selected is None and bots.row_count:
                self.select_bot(str(bots.coordinate_to_cell_key(bots.cursor_coordinate).row_key.value))
        self.positions_due = self.positions_due or changed
        if self.positions_due and self.pane_shown("positions"):
            self.positions_due = False
            self.query_one("#positions", PositionsTable).show(self.engine)
        self._append_log(pending.decisions)
        self.risk_due = self.risk_due or changed
        if self.risk_due and self.pane_shown("risk"):
            self.risk_due = False
            self._refresh_risk()
        self._refresh_bindings_if_changed()
        if self.selected in pending.traded:
            self.load_selected()
        self.chart_due = self.chart_due or pending.market_moved
        self._maybe_draw_chart()

    def _refresh_bindings_if_changed(self) -> None:
        """The footer greys out keys by the selected bot's state: recompute it only when that changes."""
        bot = self.selected_bot()
        key = (self.engine.global_state, self.selected, bot.state if bot else None,
               bool(bot and (bot.ledger.position.is_open or bot.orders)))
        if key != self.bindings_key:
            self.bindings_key = key
            self.refresh_bindings()

    def _append_log(self, decisions: list[tuple[str, Decision]]) -> None:
        """Kept as plain strings: thousands of Decision objects held here would slow every GC pass."""
        lines = []
        for name, decision in decisions:
            line = decision_line(None, decision)
            self.all_history.append((name, line))
            kept = self.history.get(name)
            if kept is None:
                kept = self.history[name] = deque(maxlen=BOT_LOG_KEPT)
            kept.append(line)
            if self.scope_all or name == self.selected:
                shown = with_name(name, line) if self.scope_all else line
                if not self.log_filter or self.log_filter in shown.lower():
                    lines.append(shown)
        if lines:
            self.query_one("#log", Log).write_lines(lines)

    def rewrite_log(self) -> None:
        if self.scope_all:
            source: Iterable[str] = (with_name(n, line) for n, line in self.all_history)
        else:
            source = self.history.get(self.selected or "", ())
        lines = [line for line in source if not self.log_filter or self.log_filter in line.lower()][-LOG_KEPT:]
        log = self.query_one("#log", Log)
        log.clear()
        # Padded to its full length: a log whose length changes lays the whole screen out again on every write.
        log.write_lines([" "] * (LOG_KEPT - len(lines)) + lines)  # " ": Log drops "" (no line to split)
        scope = "all bots" if self.scope_all else (self.selected or "-")
        extra = f", filter '{self.log_filter}'" if self.log_filter else ""
        self.query_one("#pane-log").border_title = f"Decisions: {scope}{extra}"

    def _refresh_risk(self) -> None:
        snapshot = self.engine.risk_snapshot()
        bot = next((b for b in snapshot.bots if b.name == self.selected), None)
        runtime = self.selected_bot()
        profile = (runtime.record.spec.risk_profile, runtime.profile.risk) if runtime else None
        self.query_one("#risk", RiskPanel).show(bot, snapshot, profile)

    def _maybe_draw_chart(self) -> None:
        chart = self.query_one("#chart", PriceChart)
        now = time.monotonic()
        if not self.chart_due or not chart.region.height or now - self.chart_drawn < CHART_MIN_SECONDS:
            return
        self.chart_due, self.chart_drawn = False, now
        bot = self.selected_bot()
        if bot is None:
            chart.draw(ChartData("no bot selected", [], [], None, None, None))
            return
        spec, position = bot.record.spec, bot.ledger.position
        candles = self.buffer.candles.get((spec.symbol, spec.timeframe.value), ())
        entry = (position.opened_ts, float(position.entry_price), position.qty > 0) if position.is_open else None
        chart.draw(ChartData(f"{bot.name} {spec.symbol} {spec.timeframe.value}", list(candles), list(self.trades), entry,
                             position.stop_price, position.target_price))

    # -- selection ---------------------------------------------------------------------------------------

    def selected_bot(self) -> BotRuntime | None:
        return next((b for b in self.engine.bots.values() if b.name == self.selected), None)

    @on(DataTable.RowSelected, "#bots")
    def _chosen(self) -> None:
        self.action_detail()

    @on(Input.Submitted, "#log-filter")
    def _filter_submitted(self, event: Input.Submitted) -> None:
        self.log_filter = event.value.strip().lower()
        event.input.display = False
        self.query_one("#bots", DataTable).focus()
        self.rewrite_log()

    @on(DataTable.RowHighlighted, "#bots")
    def _highlighted(self, event: DataTable.RowHighlighted) -> None:
        if event.row_key.value is not None and event.row_key.value != self.selected:
            self.select_bot(str(event.row_key.value))

    def select_bot(self, name: str) -> None:
        """Make `name` the selected bot (and the table's cursor row)."""
        self.selected = name
        table = self.bots_table
        if name in table.rows_shown and table.cursor_row != (row := table.get_row_index(name)):
            table.move_cursor(row=row)
        self.trades = []
        self.rewrite_log()
        self._refresh_risk()
        self.refresh_bindings()
        self.chart_due = True
        self.load_selected()

    @work(group="history")
    async def load_history(self) -> None:
        """The decisions stored before the console opened, under those reported since."""
        rows = await self.engine.recent_decisions(limit=LOG_KEPT)
        if not self.is_running:
            return
        since = list(self.all_history)
        seen = set(since)
        stored = [(name, decision_line(None, d)) for name, d in rows]
        self.all_history.clear()
        self.history.clear()
        for name, line in [*(item for item in stored if item not in seen), *since]:
            self.all_history.append((name, line))
            self.history.setdefault(name, deque(maxlen=BOT_LOG_KEPT)).append(line)
        for name, d in reversed(rows):  # the last decision column, for bots that have not decided since
            self.buffer.last_decision.setdefault(name, d)
        self.rewrite_log()
        self.bots_table.stale.update(self.history)
        self.refresh_console(everything=True)

    @work(exclusive=True, group="selection")
    async def load_selected(self) -> None:
        """The selected bot's trades (chart markers) and enough candle history for its chart."""
        bot = self.selected_bot()
        if bot is None:
            return
        spec = bot.record.spec
        key = (spec.symbol, spec.timeframe.value)
        trades = await self.engine.closed_trades(bot)
        if len(self.buffer.candles.get(key, ())) < 100:
            self.buffer.seed_candles(key, await self.engine.recent_candles(*key, limit=200))
        if bot.name == self.selected and self.is_running:
            self.trades = trades[-50:]
            self.chart_due = True
            self._maybe_draw_chart()
