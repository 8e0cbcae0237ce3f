"""Snapshots of the main screen, the bot detail screen, the flatten preview and the bot form at
80x24 and 160x48, over a real engine fed fixed candles: the same data gives the same picture.
The SVGs are compared by syrupy with pytest-textual-snapshot's SVG extension; after a
deliberate change run `pytest tests/test_ui_snapshots.py --snapshot-update` and look at the
SVGs in tests/__snapshots__/ before committing them.

The screenshot is taken inside `App.run_test` on the test's own event loop (the engine's
SQLite store belongs to that loop), as `snap_compare` would take it in a loop of its own.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from pytest_textual_snapshot import SVGImageExtension
from syrupy.assertion import SnapshotAssertion
from textual.pilot import Pilot
from textual.widgets import DataTable, Input

from tests.engine_harness import Harness, at, bar, bot_spec, history, make_config, open_harness
from tui_trader.ui.app import TraderApp

SIZES = {"80x24": (80, 24), "160x48": (160, 48)}


def live() -> list[Any]:
    """A drift up then down, so the holder's long shows a P&L and the chart has shape."""
    out, price = [], 1000.0
    for i in range(40):
        step = 2.5 if i < 25 else -3.0
        close = price + step
        out.append(bar(i, price, max(price, close) + 1.5, min(price, close) - 1.5, close, 1.0 + (i % 5)))
        price = close
    return out


@pytest.fixture(autouse=True)
def no_cursor_blink(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(Input, "_toggle_cursor", lambda self: None)


@pytest.fixture
async def harness(tmp_path: Path) -> AsyncIterator[Harness]:
    """Three bots: `trader` went long and out once and is long again, `holder` is long, `idle` never trades."""
    bots = [bot_spec("trader", long_at=at(2, 20), exit_at=at(12), atr=30.0), bot_spec("holder", long_at=at(5), atr=60.0),
            bot_spec("idle")]
    candles = live()
    h = await open_harness(tmp_path / "state", make_config(bots), history() + candles)
    await h.run(candles[:30])
    try:
        yield h
    finally:
        await h.close()


@pytest.fixture
def svg_snapshot(snapshot: SnapshotAssertion) -> SnapshotAssertion:
    return snapshot.use_extension(SVGImageExtension)


Step = Callable[[Pilot[None]], Awaitable[None]]


async def screenshot(h: Harness, size: str, select: str, *steps: Step) -> str:
    """The console at `size` with `select` chosen, after `steps`, as `snap_compare` takes it."""
    app = TraderApp(h.engine, market="replay of test candles")
    async with app.run_test(size=SIZES[size]) as pilot:
        await settle(pilot)
        table = app.query_one("#bots", DataTable)
        table.move_cursor(row=table.get_row_index(select))
        await settle(pilot)
        app.chart_drawn = 0.0  # the chart redraws at most twice a second; a snapshot wants the latest
        app.chart_due = True
        app.refresh_console()
        await pilot.pause()
        for step in steps:
            await step(pilot)
        await pilot.wait_for_scheduled_animations()
        await pilot.pause()
        return app.export_screenshot(title=app.title, simplify=True)


async def settle(pilot: Pilot[None]) -> None:
    await pilot.pause()
    await pilot.app.workers.wait_for_complete()
    await pilot.pause()


def press(*keys: str) -> Step:
    async def step(pilot: Pilot[None]) -> None:
        await pilot.press(*keys)
        await settle(pilot)

    return step


@pytest.mark.parametrize("size", SIZES)
async def test_main_screen(svg_snapshot: SnapshotAssertion, harness: Harness, size: str) -> None:
    assert await screenshot(harness, size, "trader") == svg_snapshot


@pytest.mark.parametrize("size", SIZES)
async def test_detail_screen(svg_snapshot: SnapshotAssertion, harness: Harness, size: str) -> None:
    assert await screenshot(harness, size, "trader", press("enter")) == svg_snapshot


@pytest.mark.parametrize("size", SIZES)
async def test_flatten_preview(svg_snapshot: SnapshotAssertion, harness: Harness, size: str) -> None:
    assert await screenshot(harness, size, "holder", press("f")) == svg_snapshot


@pytest.mark.parametrize("size", SIZES)
async def test_bot_form(svg_snapshot: SnapshotAssertion, harness: Harness, size: str) -> None:
    assert await screenshot(harness, size, "idle", press("n")) == svg_snapshot
