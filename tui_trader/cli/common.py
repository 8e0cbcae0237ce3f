"""What every command shares: the common options, failures as exit codes, the config context,
logging, and the store opened for one command."""

from __future__ import annotations

import asyncio
import logging
import logging.handlers
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer

from tui_trader.config import AppConfig, ConfigError, ParamValue, load_config, parse_param_value
from tui_trader.setup import EngineBusy, check_config, load_strategies
from tui_trader.store import BotRecord, Store

T = TypeVar("T")

ConfigOpt = Annotated[Path | None, typer.Option("--config", envvar="TUI_TRADER_CONFIG", help="TOML config (default: the built-in demo)")]
StateOpt = Annotated[Path | None, typer.Option("--state-dir", envvar="TUI_TRADER_STATE_DIR", help="database and logs (default: app.state_dir of the config)")]
StrategiesOpt = Annotated[Path | None, typer.Option("--strategies-dir", envvar="TUI_TRADER_STRATEGIES_DIR", help="an extra directory of strategy plugins")]


class Fail(Exception):
    def __init__(self, message: str, code: int = 2) -> None:
        super().__init__(message)
        self.code = code


def run(coro_fn: Callable[[], Awaitable[T]]) -> T:
    """Run a command body; turn known failures into a message and an exit code."""
    try:
        return asyncio.run(coro_fn())  # type: ignore[arg-type]
    except ConfigError as exc:
        typer.echo(exc.render(), err=True)
        raise typer.Exit(2) from None
    except Fail as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(exc.code) from None
    except EngineBusy as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from None


def context(config_path: Path | None, state_dir: Path | None, strategies_dir: Path | None = None) -> tuple[AppConfig, Path, Any]:
    """Config (validated against the strategy plugins), state dir and strategy registry."""
    config = load_config(config_path)
    registry = load_strategies(strategies_dir)
    check_config(config, registry, str(config_path or "built-in demo config"))
    return config, state_dir or config.app.state_dir, registry


def setup_logging(state_dir: Path, level: str, console: bool = True) -> None:
    """The log file in the state dir; warnings also on stderr, unless the console owns the terminal."""
    state_dir.mkdir(parents=True, exist_ok=True)
    handler = logging.handlers.RotatingFileHandler(state_dir / "tui-trader.log", maxBytes=10_000_000, backupCount=3)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    handlers: list[logging.Handler] = [handler]
    if console:
        stderr = logging.StreamHandler(sys.stderr)
        stderr.setLevel(logging.WARNING)
        stderr.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
        handlers.append(stderr)
    logging.basicConfig(level=level, handlers=handlers, force=True)


def parse_params(items: list[str]) -> dict[str, ParamValue]:
    params: dict[str, ParamValue] = {}
    for item in items:
        key, sep, raw = item.partition("=")
        if not sep or not key:
            raise Fail(f"--param {item!r}: expected key=value")
        params[key.strip()] = parse_param_value(raw.strip())
    return params


@asynccontextmanager
async def opened(state_dir: Path) -> AsyncIterator[Store]:
    store = await Store.open(state_dir)
    try:
        yield store
    finally:
        await store.close()


@asynccontextmanager
async def named_bot(state_dir: Path, name: str) -> AsyncIterator[tuple[Store, BotRecord]]:
    """The store and the named bot; Fail (exit 2) when there is no such bot."""
    async with opened(state_dir) as store:
        bot = await store.get_bot(name)
        if bot is None:
            raise Fail(f"no bot named {name!r}")
        yield store, bot


def now_ms() -> int:
    return int(time.time() * 1000)
