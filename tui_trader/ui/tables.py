"""The console's live tables: bots and positions. Each keeps the cells it last showed and
writes only the cells that changed (`LiveTable.set_cell` repaints one row)."""

from __future__ import annotations

import time
from typing import Any

from textual.widgets import DataTable
from textual.widgets.data_table import ColumnKey, RowKey

from tui_trader.engine.orchestrator import Engine
from tui_trader.model import Decision, DecisionType
from tui_trader.ui.views import (
    BOT_COLUMNS,
    BOT_HEADERS,
    BOT_WIDTHS,
    NARROW_BOT_COLUMNS,
    POSITION_COLUMNS,
    POSITION_HEADERS,
    POSITION_WIDTHS,
    bot_cells,
    position_cells,
)

OPTIONAL_COLUMNS = ("strategy", "symbol", "risk", "last")  # shown as the width allows, in this order
LAST_MIN_WIDTH = 24
ROUTINE = frozenset({DecisionType.NO_SETUP, DecisionType.HOLD, DecisionType.WARMING_UP})
ROUTINE_SHOWN_EVERY_S = 1.0


class LiveTable(DataTable[Any]):
    """A DataTable for cells that change several times a second: `set_cell` repaints only the row
    it changes. `DataTable.update_cell` repaints the whole view, so a console where a few rows
    change four times a second sent every visible row each time (over SSH, bytes are the cost).
    It writes the cell where `update_cell` does (textual is pinned: see pyproject)."""

    def set_cell(self, row_key: str, column_key: str, value: object) -> None:
        self._data[RowKey(row_key)][ColumnKey(column_key)] = value
        self._update_count += 1  # the key of the row render caches
        self.refresh_row(self.get_row_index(row_key))


class BotsTable(LiveTable):
    """A row per bot. Rows scrolled out of view wait until they come back (`stale`), and a
    routine last decision (one per bot per candle) shows at most once a second: a row that
    changes repaints all its cells, and nobody reads a cell that changes 20 times a second."""

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id, cursor_type="row", zebra_stripes=True)
        self.columns_shown: tuple[str, ...] = ()
        self.rows_shown: dict[str, tuple[object, ...]] = {}  # cells last shown, by bot name
        self.stale: set[str] = set()  # rows whose cells may have changed since they were last shown
        self.marked = False  # the market moved since the table was last brought up to date
        self.routine_shown: dict[str, float] = {}  # when each row's routine last decision was last shown

    def fit_columns(self, width: int) -> bool:
        """As many columns as a terminal this wide shows (the narrow set always, then strategy, symbol,
        risk profile and the last decision as they fit); True when they changed (the table is rebuilt)."""
        chosen = set(NARROW_BOT_COLUMNS)
        room = width - 3 - sum(BOT_WIDTHS[k] + 2 for k in chosen)  # the pane's border and scrollbar take 3
        for key in OPTIONAL_COLUMNS:
            need = (LAST_MIN_WIDTH if key == "last" else BOT_WIDTHS[key]) + 2
            if need <= room:
                chosen.add(key)
                room -= need
        columns = tuple(k for k in BOT_COLUMNS if k in chosen)
        if columns == self.columns_shown:
            return False
        cursor = self.cursor_row
        self.clear(columns=True)
        self.columns_shown = columns
        headers = dict(zip(BOT_COLUMNS, BOT_HEADERS, strict=True))
        fixed = sum(BOT_WIDTHS[k] + 2 for k in columns if k != "last")  # + cell padding
        for key in columns:
            # the last decision takes what is left of the width (the pane's border and scrollbar take 3)
            table_width = max(LAST_MIN_WIDTH, width - 3 - fixed - 2) if key == "last" else BOT_WIDTHS[key]
            self.add_column(headers[key], key=key, width=table_width)
        self.rows_shown.clear()
        self.marked = True
        self.move_cursor(row=cursor)
        return True

    def show(self, engine: Engine, last: dict[str, Decision]) -> None:
        """Bring the rows on screen up to date (and add new bots, remove gone ones)."""
        bots = {b.name: b for b in engine.bots.values()}
        for gone in [name for name in self.rows_shown if name not in bots]:
            self.remove_row(gone)
            del self.rows_shown[gone]
        if self.marked:  # the market moved: every open position's P&L changed
            self.stale.update(name for name, bot in bots.items() if bot.ledger.position.is_open)
            self.marked = False
        first = int(self.scroll_y)
        window = range(first, first + max(self.size.height, 1))
        columns, now = self.columns_shown, time.monotonic()
        new = [name for name in bots if name not in self.rows_shown]
        for name in [*new, *(n for n in self.stale if n in bots and n in self.rows_shown and self.get_row_index(n) in window)]:
            decision = last.get(name)
            every = dict(zip(BOT_COLUMNS, bot_cells(engine, bots[name], decision), strict=True))
            before = self.rows_shown.get(name)
            held = False
            if before is not None and "last" in columns and decision is not None and decision.decision_type in ROUTINE:
                if now - self.routine_shown.get(name, 0.0) < ROUTINE_SHOWN_EVERY_S:
                    every["last"], held = before[columns.index("last")], True
                else:
                    self.routine_shown[name] = now
            cells = tuple(every[c] for c in columns)
            if before is None:
                self.add_row(*cells, key=name)
            else:
                for column, old, value in zip(columns, before, cells, strict=True):
                    if old != value:
                        self.set_cell(name, column, value)
            self.rows_shown[name] = cells
            if not held:
                self.stale.discard(name)


class PositionsTable(LiveTable):
    """Open positions by bot name, in rows that are reused, never removed: adding or removing a
    row lays the whole screen out again, and positions open and close all the time."""

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id, cursor_type="none")
        self.rows_shown: dict[str, tuple[object, ...]] = {}  # by slot

    def on_mount(self) -> None:
        for key, header, width in zip(POSITION_COLUMNS, POSITION_HEADERS, POSITION_WIDTHS, strict=True):
            self.add_column(header, key=key, width=width)

    def show(self, engine: Engine) -> None:
        holding = sorted((b for b in engine.bots.values() if b.ledger.position.is_open), key=lambda b: b.name)
        rows = [position_cells(engine, bot) for bot in holding]
        blank = ("",) * len(POSITION_COLUMNS)
        for slot in range(max(len(rows), len(self.rows_shown))):
            cells = rows[slot] if slot < len(rows) else blank
            key = str(slot)
            before = self.rows_shown.get(key)
            if before is None:
                self.add_row(*cells, key=key)
            else:
                for column, old, value in zip(POSITION_COLUMNS, before, cells, strict=True):
                    if old != value:
                        self.set_cell(key, column, value)
            self.rows_shown[key] = cells

    def bots_shown(self) -> list[str]:
        """The bots whose positions the table lists, top to bottom."""
        return [str(cells[0]) for cells in self.rows_shown.values() if cells[0]]
