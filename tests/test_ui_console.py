"""The console over a real engine (SQLite store, paper exchange, scripted bots), driven
with Textual's Pilot: every key changes the engine as it says, and the modals show what
will happen before it does. The engine runs no task here: the test feeds its candles.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from textual.widgets import DataTable, Input, Log, Select, Static

from tests.engine_harness import Harness, at, bot_spec, flat, history, make_config, open_harness
from tui_trader.model import BotState, OrderPurpose, OrderStatus
from tui_trader.ui.app import LOG_KEPT, TraderApp
from tui_trader.ui.bot_form import BotFormScreen
from tui_trader.ui.detail import BotDetailScreen
from tui_trader.ui.tables import PositionsTable
from tui_trader.ui.screens import ConfirmScreen, HelpScreen, KillAllScreen, QuitScreen

LIVE = [flat(i) for i in range(12)]


@pytest.fixture
async def console(tmp_path: Path):
    """A harness with two bots: `holder` goes long on bar 1 (filled on bar 2), `idle` never trades."""
    bots = [bot_spec("holder", long_at=at(1), atr=50.0), bot_spec("idle")]
    h = await open_harness(tmp_path / "state", make_config(bots), history() + LIVE)
    await h.run(LIVE[:3])
    try:
        yield h
    finally:
        await h.close()


def select(app: TraderApp, name: str) -> None:
    table = app.query_one("#bots", DataTable)
    table.move_cursor(row=table.get_row_index(name))


async def test_pause_and_resume_change_the_engine(console: Harness) -> None:
    app = TraderApp(console.engine)
    async with app.run_test(size=(160, 48)) as pilot:
        select(app, "idle")
        await pilot.pause()
        await pilot.press("p")
        await pilot.pause()
        assert console.bot("idle").state is BotState.PAUSED
        assert app.check_action("pause", ()) is None and app.check_action("resume", ()) is True  # greyed / live
        await pilot.press("r")
        await pilot.pause()
        assert console.bot("idle").state is BotState.RUNNING
        sources = await console.rows("SELECT source FROM control_events ORDER BY id")
        assert sources == [("operator:ui",), ("operator:ui",)]


async def test_flatten_preview_then_confirm_closes_the_position(console: Harness) -> None:
    holder = console.bot("holder")
    assert holder.ledger.position.is_open
    app = TraderApp(console.engine)
    async with app.run_test(size=(160, 48)) as pilot:
        select(app, "holder")
        await pilot.pause()
        await pilot.press("f")
        await pilot.pause()
        screen = app.screen
        assert isinstance(screen, ConfirmScreen)
        preview = "\n".join(screen.lines)
        assert "reduce-only market sell 2.000" not in preview  # qty is the position's, shown exactly:
        assert f"reduce-only market sell {abs(holder.ledger.position.qty)}" in preview and "fee" in preview
        await pilot.press("y")
        await pilot.pause()
        assert holder.state is BotState.FLATTENING
        await console.tick(LIVE[3])  # the close fills on the next candle
        app.refresh_console()
        await pilot.pause()
        assert not holder.ledger.position.is_open and holder.state is BotState.HALTED
        assert "holder" not in app.query_one("#positions", PositionsTable).bots_shown()


async def test_flatten_cancelled_changes_nothing(console: Harness) -> None:
    holder = console.bot("holder")
    qty = holder.ledger.position.qty
    app = TraderApp(console.engine)
    async with app.run_test(size=(80, 24)) as pilot:
        select(app, "holder")
        await pilot.pause()
        await pilot.press("f")
        await pilot.pause()
        await pilot.press("n")
        await pilot.pause()
        assert not isinstance(app.screen, ConfirmScreen)
        assert holder.state is BotState.RUNNING and holder.ledger.position.qty == qty
        assert await console.rows("SELECT COUNT(*) FROM control_events") == [(0,)]


async def test_flatten_is_greyed_out_for_a_flat_bot(console: Harness) -> None:
    app = TraderApp(console.engine)
    async with app.run_test(size=(80, 24)) as pilot:
        select(app, "idle")
        await pilot.pause()
        assert app.check_action("flatten", ()) is None
        await pilot.press("f")
        await pilot.pause()
        assert not isinstance(app.screen, ConfirmScreen)


async def test_kill_all_needs_the_typed_word_and_halts_everything(console: Harness) -> None:
    app = TraderApp(console.engine)
    async with app.run_test(size=(160, 48)) as pilot:
        await pilot.press("X")
        await pilot.pause()
        assert isinstance(app.screen, KillAllScreen)
        word = app.screen.query_one("#kill-word", Input)
        word.value = "flatten"  # wrong case: refused
        await pilot.press("enter")
        await pilot.pause()
        assert isinstance(app.screen, KillAllScreen) and console.engine.global_state is BotState.RUNNING
        word.value = "FLATTEN"
        await pilot.press("enter")
        await pilot.pause()
        assert console.engine.global_state is BotState.FLATTENING
        await console.tick(LIVE[3])
        assert console.engine.global_state is BotState.HALTED
        assert not any(b.ledger.position.is_open for b in console.engine.bots.values())
        statuses = {s for (s,) in await console.rows("SELECT status FROM orders")}
        assert OrderStatus.NEW.value not in statuses


async def test_quit_with_positions_asks_and_says_what_happens(console: Harness) -> None:
    app = TraderApp(console.engine)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("q")
        await pilot.pause()
        assert isinstance(app.screen, QuitScreen)
        assert app.screen.holding == ["holder"]
        await pilot.press("n")
        await pilot.pause()
        assert app.is_running and not isinstance(app.screen, QuitScreen)
        await pilot.press("q")
        await pilot.pause()
        await pilot.press("y")
        await pilot.pause()
    assert app.return_code == 0 and console.bot("holder").ledger.position.is_open  # left open, managed next start


async def test_narrow_terminal_shows_one_pane_at_a_time(console: Harness) -> None:
    app = TraderApp(console.engine)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        assert app.screen.has_class("-narrow")
        shown = [p.id for p in app.query(".pane") if p.display and p.region.height]
        assert shown == ["pane-bots"]
        assert app.bot_columns == ("name", "tf", "state", "position", "upnl", "realized", "dd")
        await pilot.press("2")
        await pilot.pause()
        assert [p.id for p in app.query(".pane") if p.region.height] == ["pane-log"]
        await pilot.press("4")
        await pilot.pause()
        assert [p.id for p in app.query(".pane") if p.region.height] == ["pane-chart"]
        await pilot.resize_terminal(160, 48)
        await pilot.pause()
        app.refresh_console()
        await pilot.pause()
        assert app.screen.has_class("-wide") and len(app.bot_columns) == 11
        assert sorted(p.id for p in app.query(".pane") if p.region.height) == [
            "pane-bots", "pane-chart", "pane-log", "pane-positions", "pane-risk"]


async def test_log_follows_the_selected_bot_switches_to_all_and_filters(console: Harness) -> None:
    app = TraderApp(console.engine)
    async with app.run_test(size=(160, 48)) as pilot:
        select(app, "holder")
        await pilot.pause()
        log = app.query_one("#log", Log)

        def shown() -> list[str]:  # the log is padded with blank lines to its full length
            return [line for line in log.lines if line.strip()]

        assert len(log.lines) == LOG_KEPT
        assert shown() and all("holder" not in line[:30] for line in shown())  # one bot: no name column
        assert any("TRADE_ENTERED" in line for line in shown())
        await pilot.press("a")
        await pilot.pause()
        assert any(" idle " in line for line in shown()) and any(" holder " in line for line in shown())
        await pilot.press("slash")
        await pilot.pause()
        app.query_one("#log-filter", Input).value = "trade_entered"
        await pilot.press("enter")
        await pilot.pause()
        assert shown() and all("TRADE_ENTERED" in line for line in shown())
        await console.tick(LIVE[3])
        app.refresh_console()
        await pilot.pause()
        assert all("TRADE_ENTERED" in line for line in shown())  # new lines pass the filter too
        assert len(log.lines) == LOG_KEPT


async def test_help_lists_every_key(console: Harness) -> None:
    app = TraderApp(console.engine)
    async with app.run_test(size=(160, 48)) as pilot:
        await pilot.press("question_mark")
        await pilot.pause()
        assert isinstance(app.screen, HelpScreen)
        text = str(app.screen.query_one("Static").content)
        for key in ("p  pause", "r      resume", "f  flatten", "X      flatten ALL", "ctrl+p", "q  quit"):
            assert key in text
        await pilot.press("escape")
        await pilot.pause()
        assert not isinstance(app.screen, HelpScreen)


async def test_tables_and_gauges_follow_the_engine(console: Harness) -> None:
    app = TraderApp(console.engine)
    async with app.run_test(size=(160, 48)) as pilot:
        await pilot.pause()
        bots = app.query_one("#bots", DataTable)
        assert bots.row_count == 2 and str(bots.get_cell("holder", "state")) == "RUNNING"
        assert str(bots.get_cell("holder", "position")).startswith("long ")
        assert app.query_one("#positions", DataTable).row_count == 1
        await console.engine.command("pause", "idle", "operator:cli")
        app.refresh_console()
        await pilot.pause()
        assert str(bots.get_cell("idle", "state")) == "PAUSED"
        status = str(app.query_one("#status").content)
        assert "RUNNING" in status and "PAPER" in status and "2 bots" in status


# -- bots: new, edit, delete, detail, the palette -----------------------------------------------------------------


async def until(pilot, condition: Callable[[], bool], timeout: float = 5.0) -> None:  # noqa: ANN001 - Pilot
    """Let the app run until `condition` holds: a modal's callback awaits the engine and the store."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        await pilot.pause(0.02)


async def fill_form(app: TraderApp, pilot, values: dict[str, str]) -> None:  # noqa: ANN001 - Pilot
    for wid, value in values.items():
        app.screen.query_one(f"#{wid}").value = value  # type: ignore[attr-defined]
    await pilot.pause()
    await pilot.press("ctrl+s")
    await pilot.pause()


async def test_new_bot_form_rejects_bad_fields_then_creates_a_running_bot(console: Harness) -> None:
    app = TraderApp(console.engine)
    async with app.run_test(size=(160, 48)) as pilot:
        await pilot.press("n")
        await pilot.pause()
        assert isinstance(app.screen, BotFormScreen) and app.screen.form_title == "New bot"
        good = {"f-name": "fresh", "f-symbol": "BTCUSDT", "f-capital": "2500", "f-timeframe": "1m", "f-risk": "exact",
                "f-strategy": "scripted", "f-params": "", "f-confirmations": "0"}
        await fill_form(app, pilot, {**good, "f-name": "idle", "f-capital": "-5"})
        assert isinstance(app.screen, BotFormScreen)  # refused: the name is taken and the capital negative
        assert app.screen.query_one("#f-name").has_class("-invalid") and app.screen.query_one("#f-capital").has_class("-invalid")
        assert "fresh" not in {b.name for b in console.engine.bots.values()}
        await fill_form(app, pilot, good)
        assert not isinstance(app.screen, BotFormScreen)
        await until(pilot, lambda: app.selected == "fresh")
        fresh = console.bot("fresh")
        assert fresh.state is BotState.RUNNING and fresh.ledger.capital == 2500 and fresh.cycle is not None
        assert app.selected == "fresh" and "fresh" in app.bots_table.rows_shown
        assert await console.rows("SELECT capital, strategy FROM bots WHERE name = 'fresh'") == [("2500", "scripted")]
        await console.tick(LIVE[3])  # it trades like the others: its cycle runs on the next candle
        assert any(n == "fresh" for n, _ in console.log[-10:])


async def test_edit_changes_the_running_bot_and_refuses_a_structural_change_while_holding(console: Harness) -> None:
    app = TraderApp(console.engine)
    async with app.run_test(size=(160, 48), notifications=True) as pilot:
        select(app, "holder")
        await pilot.pause()
        await pilot.press("e")
        await pilot.pause()
        assert isinstance(app.screen, BotFormScreen) and app.screen.query_one("#f-name").value == "holder"
        await fill_form(app, pilot, {"f-timeframe": "5m"})  # a valid spec, but the bot holds a position
        await until(pilot, lambda: any("flatten it before" in n.message for n in app._notifications))
        assert console.bot("holder").record.spec.timeframe.value == "1m"
        select(app, "idle")
        await pilot.pause()
        await pilot.press("e")
        await pilot.pause()
        await fill_form(app, pilot, {"f-capital": "12345"})
        await until(pilot, lambda: console.bot("idle").ledger.capital == 12345)
        assert await console.rows("SELECT capital FROM bots WHERE name = 'idle'") == [("12345",)]


async def test_delete_is_refused_while_holding_and_removes_a_flat_bot_after_confirm(console: Harness) -> None:
    app = TraderApp(console.engine)
    async with app.run_test(size=(160, 48)) as pilot:
        select(app, "holder")
        await pilot.pause()
        await pilot.press("d")
        await pilot.pause()
        assert not isinstance(app.screen, ConfirmScreen)  # refused outright, with the reason in a notification
        assert "holder" in {b.name for b in console.engine.bots.values()}
        select(app, "idle")
        await pilot.pause()
        await pilot.press("d")
        await pilot.pause()
        assert isinstance(app.screen, ConfirmScreen)
        await pilot.press("n")
        await pilot.pause()
        assert "idle" in {b.name for b in console.engine.bots.values()}
        await pilot.press("d")
        await pilot.pause()
        await pilot.press("y")
        await until(pilot, lambda: "idle" not in app.bots_table.rows_shown)
        assert "idle" not in {b.name for b in console.engine.bots.values()}
        assert (await console.rows("SELECT removed_ts IS NOT NULL FROM bots WHERE name = 'idle'")) == [(1,)]


async def test_enter_opens_the_detail_screen_with_performance_trades_and_filtered_decisions(console: Harness) -> None:
    await console.engine.command("flatten", "holder", "test")
    await console.tick(LIVE[3])  # the close fills: one trade
    app = TraderApp(console.engine)
    async with app.run_test(size=(80, 24)) as pilot:
        select(app, "holder")
        await pilot.pause()
        await pilot.press("enter")
        await pilot.pause()
        screen = app.screen
        assert isinstance(screen, BotDetailScreen)
        await app.workers.wait_for_complete()
        await pilot.pause()
        assert screen.history is not None and screen.history.metrics.trades == 1
        perf = str(screen.query_one("#d-perf", Static).content)
        assert "trades 1" in perf and "win rate" in perf and "profit factor" in perf and "Sharpe" in perf
        assert screen.query_one("#d-trades", DataTable).row_count == 1
        await pilot.press("3")
        await pilot.pause()
        lines = list(screen.query_one("#d-log", Log).lines)
        assert any("TRADE_ENTERED" in line for line in lines) and any("TRADE_EXITED" in line for line in lines)
        screen.query_one("#d-type", Select).value = "TRADE_EXITED"
        await pilot.pause()
        await app.workers.wait_for_complete()
        await pilot.pause()
        lines = list(screen.query_one("#d-log", Log).lines)
        assert len(lines) == 1 and "TRADE_EXITED" in lines[0]
        await pilot.press("2")
        await pilot.pause()
        assert screen.query_one("#d-equity").display
        await pilot.press("escape")
        await pilot.pause()
        assert not isinstance(app.screen, BotDetailScreen)


async def test_palette_runs_a_bot_action_by_name(console: Harness) -> None:
    app = TraderApp(console.engine)
    async with app.run_test(size=(80, 24)) as pilot:
        select(app, "holder")
        await pilot.pause()
        await pilot.press("ctrl+p")
        await pilot.pause()
        await pilot.press(*"pause idle")
        await pilot.pause(0.3)
        await pilot.press("enter")
        await until(pilot, lambda: console.bot("idle").state is BotState.PAUSED) and console.bot("holder").state is BotState.RUNNING
        assert app.selected == "idle"


async def test_resume_portfolio_after_a_kill_all(console: Harness) -> None:
    await console.engine.command("flatten_all", None, "test")
    await console.tick(LIVE[3])
    assert console.engine.global_state is BotState.HALTED
    app = TraderApp(console.engine)
    async with app.run_test(size=(160, 48)) as pilot:
        await pilot.pause()
        assert "HALTED" in str(app.query_one("#status", Static).content)
        await pilot.press("R")
        await until(pilot, lambda: console.engine.global_state is BotState.RUNNING)
        assert app.check_action("resume_all", ()) is None


def test_no_textual_method_is_overridden_by_accident() -> None:
    """A helper named like a Textual internal (`_flush`, `visible`) silently replaces it."""
    import inspect

    from textual.app import App
    from textual.screen import ModalScreen, Screen

    from tui_trader.ui.actions import ConsoleActions

    meant = {"__init__", "compose", "on_mount", "on_unmount", "on_resize", "check_action", "action_quit", "render"}
    for cls, base in ((TraderApp, App), (ConsoleActions, App), (BotFormScreen, ModalScreen), (BotDetailScreen, Screen),
                      (ConfirmScreen, ModalScreen), (KillAllScreen, ModalScreen), (QuitScreen, ModalScreen)):
        own = {n for n, v in vars(cls).items() if inspect.isfunction(v) or isinstance(v, property)}
        clashes = sorted(n for n in own - meant if hasattr(base, n))
        assert not clashes, f"{cls.__name__} overrides {base.__name__}.{clashes}"


async def test_risk_pane_shows_the_selected_bots_profile_and_gauges(console: Harness) -> None:
    app = TraderApp(console.engine)
    async with app.run_test(size=(160, 48)) as pilot:
        select(app, "holder")
        await pilot.pause()
        panel = app.query_one("#risk")
        text = "\n".join(str(line.text) for line in panel.query("TextLine"))
        assert "holder" in text and "risk profile" in text and "exact" in text
        assert "1%/trade, stop 2xATR, TP 2R, lev 10x, pos 1000%" in text
        exposure = panel.query_one("#g-bot-exposure").gauge
        position = console.bot("holder").ledger.position
        assert exposure.value == abs(position.qty) * console.engine.marks[position.symbol]


async def test_quit_can_flatten_everything_first(console: Harness) -> None:
    async def market() -> None:  # the closing order, once sent, fills on the next candle
        holder = console.bot("holder")
        while not any(o.request.purpose is OrderPurpose.FLATTEN and o.status is OrderStatus.NEW for o in holder.orders.values()):
            await asyncio.sleep(0.01)
        await console.tick(LIVE[3])

    app = TraderApp(console.engine)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("q")
        await pilot.pause()
        assert isinstance(app.screen, QuitScreen)
        filled = asyncio.create_task(market())
        await pilot.press("f")
        await until(pilot, lambda: app.return_code is not None)
        await filled
    assert app.return_code == 0
    assert console.engine.global_state is BotState.HALTED and not console.bot("holder").ledger.position.is_open


async def test_flatten_cancels_a_working_entry_the_preview_names(tmp_path: Path) -> None:
    """An entry sent on bar 3 works until bar 4 opens: flattening in between cancels it, and nothing fills."""
    h = await open_harness(tmp_path / "state", make_config([bot_spec("late", long_at=at(3), atr=50.0)]), history() + LIVE)
    try:
        await h.run(LIVE[:4])
        late = h.bot("late")
        working = [o for o in late.orders.values() if o.status is OrderStatus.NEW]
        assert len(working) == 1 and not late.ledger.position.is_open
        app = TraderApp(h.engine)
        async with app.run_test(size=(160, 48)) as pilot:
            await pilot.pause()
            await pilot.press("f")
            await pilot.pause()
            assert isinstance(app.screen, ConfirmScreen)
            assert any(f"cancel entry market buy {working[0].request.qty}" in line for line in app.screen.lines)
            await pilot.press("y")
            await until(pilot, lambda: not late.orders)
        await h.tick(LIVE[4])
        assert not late.ledger.position.is_open and late.state is BotState.HALTED
        status = await h.rows("SELECT status FROM orders WHERE client_order_id = ?", working[0].client_order_id)
        assert status == [(OrderStatus.CANCELLED.value,)]
    finally:
        await h.close()
