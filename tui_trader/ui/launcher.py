"""`tui-trader` with the console: the launcher owns the engine task, the app attaches to it.

The engine runs as a task of this function on the event loop the app shares, so a UI that
raises cannot take trading down mid-tick: the app returns, the engine then stops gracefully
(the tick in progress completes, state is flushed), and the error is printed once the
terminal is restored. SIGTERM and SIGHUP (the terminal or SSH session went away) leave the
UI the same way.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import sys
from pathlib import Path

from tui_trader.config import AppConfig
from tui_trader.setup import engine_lock, open_engine
from tui_trader.strategy import StrategyRegistry

log = logging.getLogger(__name__)
UI_EXIT_GRACE_SECONDS = 5.0
COLOR_SYSTEMS = {"auto": "auto", "truecolor": "truecolor", "256": "256", "16": "standard"}


def describe_market(config: AppConfig) -> str:
    market = config.market
    if market.source == "synthetic":
        return f"synthetic market (seed {market.seed}, {market.candle_seconds:g} s per 1m candle)"
    return f"replay of {market.replay.path or 'stored candles'}"


async def run_console(config: AppConfig, state_dir: Path, registry: StrategyRegistry, *, ui_hz: float = 4.0,
                      color: str = "auto", mouse: bool = True) -> int:
    os.environ["TEXTUAL_COLOR_SYSTEM"] = COLOR_SYSTEMS[color]  # read when the app builds its console
    from tui_trader.ui.app import TraderApp  # here: the headless path never imports textual

    with engine_lock(state_dir):
        engine = await open_engine(config, state_dir, registry)
        app = TraderApp(engine, market=describe_market(config), ui_hz=ui_hz, ansi=color == "16")
        engine_task = asyncio.create_task(engine.run(), name="engine")
        engine_task.add_done_callback(lambda task: app.engine_ended(task))
        ui_task = asyncio.create_task(app.run_async(mouse=mouse), name="console")

        def leave() -> None:
            app.exit()
            # With the terminal gone, the UI's shutdown can block on it: the engine must still stop.
            loop.call_later(UI_EXIT_GRACE_SECONDS, ui_task.cancel)

        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGHUP):
            loop.add_signal_handler(sig, leave)
        try:
            with contextlib.suppress(asyncio.CancelledError):
                await ui_task
        finally:
            for sig in (signal.SIGTERM, signal.SIGHUP):
                loop.remove_signal_handler(sig)
            engine.request_stop()
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.shield(engine_task)
            await engine.store.close()
    if app.return_code:
        print("tui-trader: the console stopped on an error (above); the engine was stopped and its state saved.",
              file=sys.stderr)
        return 1
    failure = engine_task.exception() if not engine_task.cancelled() else None
    if failure is not None:
        print(f"tui-trader: the engine failed: {type(failure).__name__}: {failure}", file=sys.stderr)
        return 1
    return 0
