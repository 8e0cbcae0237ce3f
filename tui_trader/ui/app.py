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

from textual import on, work
from textual.app import App, ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.widgets import DataTable, Footer, Input, Log, Static

from tui_trader.engine.orchestrator import Engine
from tui_trader.engine.runtime import BotRuntime
from tui_trader.model import Decision, Trade
from tui_trader.ui.actions import ConsoleActions
from tui_trader.ui.buffer import EngineBuffer
from tui_trader.ui.commands import ConsoleCommands
from tui_trader.ui.views import (
    BOT_COLUMNS,
    BOT_HEADERS,
    NARROW_BOT_COLUMNS,
    POSITION_COLUMNS,
    POSITION_HEADERS,
    bot_cells,
    decision_line,
    position_cells,
    status_line,
)
from tui_trader.ui.widgets import PriceChart, RiskPanel

PANES = ("bots", "log", "positions", "chart", "risk")
CHART_MIN_SECONDS = 0.5  # at most 2 redraws a second: a candlestick build costs 20-50 ms
LOG_KEPT = 2000


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
        self.history: dict[str, deque[tuple[str, Decision]]] = {}  # per bot, for switching the log's scope
        self.all_history: deque[tuple[str, Decision]] = deque(maxlen=LOG_KEPT)
        self.bot_columns: tuple[str, ...] = BOT_COLUMNS  # all of them from 120 columns on, fewer below
        self.bot_rows: dict[str, tuple[object, ...]] = {}  # cells last shown, to update only what changed
        self.position_rows: dict[str, tuple[object, ...]] = {}
        self.trades: list[Trade] = []  # the selected bot's, for the chart's markers
        self.chart_due = True
        self.chart_drawn = 0.0
        self.mounted = False  # set once on_mount has built the tables

    # -- layout ------------------------------------------------------------------------------------------

    def compose(self) -> ComposeResult:
        yield Static(id="status")
        yield Static(id="pane-tabs")
        with Vertical(id="main"):  # a grid when wide (see app.tcss), one pane at a time when narrow
            with Vertical(id="pane-bots", classes="pane"):
                yield DataTable(id="bots", cursor_type="row", zebra_stripes=True)
            with Vertical(id="pane-log", classes="pane"):
                yield Log(id="log", max_lines=LOG_KEPT)
                yield Input(placeholder="filter the log (enter applies, empty clears, esc closes)", id="log-filter")
            with Vertical(id="pane-chart", classes="pane"):
                yield PriceChart(id="chart")
            with Vertical(id="pane-positions", classes="pane"):
                yield DataTable(id="positions", cursor_type="none")
            with Vertical(id="pane-risk", classes="pane"):
                yield RiskPanel(id="risk")
        yield Footer()

    def on_mount(self) -> None:
        for name, title in zip(PANES, ("Bots", "Decisions", "Positions", "Chart", "Risk"), strict=True):
            self.query_one(f"#pane-{name}").border_title = title
        bots = self.query_one("#bots", DataTable)
        self.bot_columns = self._columns_for_width()
        self._add_bot_columns()
        positions = self.query_one("#positions", DataTable)
        for key, header in zip(POSITION_COLUMNS, POSITION_HEADERS, strict=True):
            positions.add_column(header, key=key)
        self.query_one("#log-filter").display = False
        self.apply_panes()
        self.refresh_console(everything=True)
        bots.focus()
        self.mounted = True
        self.load_history()
        self.set_interval(1 / self.ui_hz, self.refresh_console)

    def _columns_for_width(self) -> tuple[str, ...]:
        return BOT_COLUMNS if self.size.width >= 120 else NARROW_BOT_COLUMNS

    def _add_bot_columns(self) -> None:
        table = self.query_one("#bots", DataTable)
        headers = dict(zip(BOT_COLUMNS, BOT_HEADERS, strict=True))
        for key in self.bot_columns:
            table.add_column(headers[key], key=key)

    def _sync_columns(self) -> None:
        """Crossing 120 columns changes the bots table's columns (as the CSS changes its panes)."""
        columns = self._columns_for_width()
        if columns == self.bot_columns or not self.mounted:
            return
        self.bot_columns = columns
        table = self.query_one("#bots", DataTable)
        cursor = table.cursor_row
        table.clear(columns=True)
        self._add_bot_columns()
        self.bot_rows.clear()
        self._refresh_bots(set(), True)
        table.move_cursor(row=cursor)
        self.refresh_bindings()

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
        self.query_one("#pane-tabs", Static).update(tabs)
        self.chart_due = True

    # -- the flush ---------------------------------------------------------------------------------------

    def refresh_console(self, everything: bool = False) -> None:
        """Move what the engine reported since the last flush into the widgets."""
        if not self.is_running:  # shutting down: the timer can still fire while the widgets are removed
            return
        pending = self.buffer.take()
        engine = self.engine
        self._sync_columns()
        if everything or pending.market_moved or pending.dirty or pending.portfolio_changed:
            self.query_one("#status", Static).update(status_line(engine, self.market))
        self._refresh_bots(pending.dirty, pending.market_moved or everything)
        self._refresh_positions()
        self._append_log(pending.decisions)
        self._refresh_risk()
        if pending.dirty or pending.portfolio_changed:
            self.refresh_bindings()
        if self.selected in pending.traded:
            self.load_selected()
        self.chart_due = self.chart_due or pending.market_moved
        self._maybe_draw_chart()

    def _refresh_bots(self, dirty: set[str], market_moved: bool) -> None:
        table = self.query_one("#bots", DataTable)
        bots = {b.name: b for b in self.engine.bots.values()}
        for gone in [name for name in self.bot_rows if name not in bots]:
            table.remove_row(gone)
            del self.bot_rows[gone]
        for name, bot in bots.items():
            if name in self.bot_rows and name not in dirty and not (market_moved and bot.ledger.position.is_open):
                continue
            every = dict(zip(BOT_COLUMNS, bot_cells(self.engine, bot, self.buffer.last_decision.get(name)), strict=True))
            cells = tuple(every[c] for c in self.bot_columns)
            before = self.bot_rows.get(name)
            if before is None:
                table.add_row(*cells, key=name)
            else:
                for column, old, new in zip(self.bot_columns, before, cells, strict=True):
                    if old != new:
                        table.update_cell(name, column, new, update_width=True)
            self.bot_rows[name] = cells
        if self.selected is None and table.row_count:
            self.select_bot(str(table.coordinate_to_cell_key(table.cursor_coordinate).row_key.value))

    def _refresh_positions(self) -> None:
        table = self.query_one("#positions", DataTable)
        holding = {b.name: b for b in self.engine.bots.values() if b.ledger.position.is_open}
        for gone in [name for name in self.position_rows if name not in holding]:
            table.remove_row(gone)
            del self.position_rows[gone]
        for name, bot in holding.items():
            cells = position_cells(self.engine, bot)
            before = self.position_rows.get(name)
            if before is None:
                table.add_row(*cells, key=name)
            else:
                for column, old, new in zip(POSITION_COLUMNS, before, cells, strict=True):
                    if old != new:
                        table.update_cell(name, column, new, update_width=True)
            self.position_rows[name] = cells

    def _append_log(self, decisions: list[tuple[str, Decision]]) -> None:
        for item in decisions:
            self.all_history.append(item)
            self.history.setdefault(item[0], deque(maxlen=LOG_KEPT)).append(item)
        who = (lambda n: n) if self.scope_all else (lambda n: None)
        lines = [line for line in (decision_line(who(n), d) for n, d in decisions if self._in_scope(n)) if self._passes(line)]
        if lines:
            self.query_one("#log", Log).write_lines(lines)

    def _in_scope(self, bot_name: str) -> bool:
        return self.scope_all or bot_name == self.selected

    def _passes(self, line: str) -> bool:
        return not self.log_filter or self.log_filter in line.lower()

    def rewrite_log(self) -> None:
        source = self.all_history if self.scope_all else self.history.get(self.selected or "", ())
        log = self.query_one("#log", Log)
        log.clear()
        log.write_lines([line for line in (decision_line(n if self.scope_all else None, d) for n, d in source)
                         if self._passes(line)])
        scope = "all bots" if self.scope_all else (self.selected or "-")
        extra = f", filter '{self.log_filter}'" if self.log_filter else ""
        self.query_one("#pane-log").border_title = f"Decisions: {scope}{extra}"

    def _refresh_risk(self) -> None:
        snapshot = self.engine.risk_snapshot()
        bot = next((b for b in snapshot.bots if b.name == self.selected), None)
        self.query_one("#risk", RiskPanel).show(bot, snapshot)

    def _maybe_draw_chart(self) -> None:
        chart = self.query_one("#chart", PriceChart)
        now = time.monotonic()
        if not self.chart_due or not chart.region.height or now - self.chart_drawn < CHART_MIN_SECONDS:
            return
        self.chart_due, self.chart_drawn = False, now
        bot = self.selected_bot()
        if bot is None:
            chart.draw("no bot selected", [], [], None, None, None)
            return
        spec, position = bot.record.spec, bot.ledger.position
        candles = self.buffer.candles.get((spec.symbol, spec.timeframe.value), ())
        entry = (position.opened_ts, float(position.entry_price), position.qty > 0) if position.is_open else None
        chart.draw(f"{bot.name} {spec.symbol} {spec.timeframe.value}", list(candles), self.trades, entry,
                   position.stop_price, position.target_price)

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
        table = self.query_one("#bots", DataTable)
        if name in self.bot_rows and table.cursor_row != (row := table.get_row_index(name)):
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
        names = {b.id: b.name for b in self.engine.bots.values()}
        rows = await self.engine.store.decisions(newest=True, limit=LOG_KEPT)
        if not self.is_running:
            return
        since = list(self.all_history)
        seen = {(d.bot_id, d.ts, d.decision_type, d.summary) for _, d in since}
        stored = [(names[d.bot_id], d) for _, d in rows
                  if d.bot_id in names and (d.bot_id, d.ts, d.decision_type, d.summary) not in seen]
        self.all_history.clear()
        self.history.clear()
        for item in [*stored, *since]:
            self.all_history.append(item)
            self.history.setdefault(item[0], deque(maxlen=LOG_KEPT)).append(item)
        for name, items in self.history.items():
            self.buffer.last_decision.setdefault(name, items[-1][1])
        self.rewrite_log()
        self._refresh_bots(set(self.history), False)

    @work(exclusive=True, group="selection")
    async def load_selected(self) -> None:
        """The selected bot's trades (chart markers) and enough candle history for its chart."""
        bot = self.selected_bot()
        if bot is None:
            return
        spec = bot.record.spec
        key = (spec.symbol, spec.timeframe.value)
        trades = await self.engine.store.trades(bot.id)
        if len(self.buffer.candles.get(key, ())) < 100:
            self.buffer.seed_candles(key, await self.engine.store.candles(*key, limit=200))
        if bot.name == self.selected and self.is_running:
            self.trades = trades[-50:]
            self.chart_due = True
            self._maybe_draw_chart()
