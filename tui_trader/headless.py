"""`tui-trader --no-ui`: the engine with one printed line per decision.

SIGINT, SIGTERM and SIGHUP finish the tick in progress, flush state and exit 0.
Never imports textual or rich (a test holds that).
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
from datetime import UTC, datetime
from collections.abc import Callable
from pathlib import Path
from typing import TextIO

from tui_trader.config import AppConfig
from tui_trader.engine.events import DecisionEvent, EngineEvent, StateEvent, TickEvent
from tui_trader.setup import engine_lock, open_engine
from tui_trader.strategy import StrategyRegistry


def iso(ts_ms: int) -> str:
    return datetime.fromtimestamp(ts_ms / 1000, UTC).strftime("%Y-%m-%d %H:%M:%S")


class DecisionPrinter:
    """Writes decisions and state changes; flushes once per tick, not per line.

    When the reader goes away (`tui-trader --no-ui | head`), it calls `on_closed` once,
    like any Unix filter would stop, instead of failing on every line."""

    def __init__(self, out: TextIO, fmt: str) -> None:
        self.out = out
        self.json = fmt == "json"
        self.on_closed: Callable[[], None] | None = None
        self.closed = False

    def __call__(self, event: EngineEvent) -> None:
        if self.closed:
            return
        try:
            self._write(event)
        except BrokenPipeError:
            self.closed = True
            if self.on_closed is not None:
                self.on_closed()

    def _write(self, event: EngineEvent) -> None:
        if isinstance(event, DecisionEvent):
            d = event.decision
            if self.json:
                self.out.write(json.dumps({"ts": iso(d.ts), "ts_ms": d.ts, "bot": event.bot_name, "phase": d.phase.value,
                                           "type": d.decision_type.value, "summary": d.summary, "details": d.details},
                                          default=str) + "\n")
            else:
                self.out.write(f"{iso(d.ts)}  {event.bot_name:<16} {d.phase.value:<8} {d.decision_type.value:<15} {d.summary}\n")
        elif isinstance(event, StateEvent) and event.bot_name is None:
            line = {"type": "PORTFOLIO_STATE", "state": event.state.value, "reason": event.reason, "source": event.source}
            self.out.write(json.dumps(line) + "\n" if self.json else
                           f"portfolio -> {event.state.value} by {event.source}: {event.reason}\n")
        elif isinstance(event, TickEvent):
            self.out.flush()


async def run_headless(config: AppConfig, state_dir: Path, registry: StrategyRegistry, log_format: str,
                       out: TextIO = sys.stdout) -> int:
    printer = DecisionPrinter(out, log_format)
    with engine_lock(state_dir):
        engine = await open_engine(config, state_dir, registry, [printer])
        printer.on_closed = engine.request_stop
        if printer.closed:  # the reader left during start-up
            engine.request_stop()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            loop.add_signal_handler(sig, engine.request_stop)
        try:
            await engine.run()
        finally:
            for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
                loop.remove_signal_handler(sig)
            await engine.store.close()
            try:
                out.flush()
            except BrokenPipeError:
                printer.closed = True
    if printer.closed and out is sys.stdout:  # keep the interpreter's final flush quiet
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    return 0
