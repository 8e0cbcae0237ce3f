"""The command line (typer): the only place that parses arguments.

Exit codes: 0 done, 1 runtime failure, 2 bad input (config, arguments, refused command).
"""

from __future__ import annotations

import asyncio
import json
import logging
import logging.handlers
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer

from tui_trader.config import AppConfig, BotSpec, ConfigError, ParamValue, RiskProfile, load_config, validate_bot
from tui_trader.model import BotState, DecisionType
from tui_trader.setup import EngineBusy, bot_errors, check_config, engine_running, load_strategies
from tui_trader.store import BotExists, BotRecord, Store

T = TypeVar("T")

ConfigOpt = Annotated[Path | None, typer.Option("--config", envvar="TUI_TRADER_CONFIG", help="TOML config (default: the built-in demo)")]
StateOpt = Annotated[Path | None, typer.Option("--state-dir", envvar="TUI_TRADER_STATE_DIR", help="database and logs (default: app.state_dir of the config)")]
StrategiesOpt = Annotated[Path | None, typer.Option("--strategies-dir", envvar="TUI_TRADER_STRATEGIES_DIR", help="an extra directory of strategy plugins")]

app = typer.Typer(add_completion=False, no_args_is_help=False, help="Run and operate a portfolio of trading bots.")
bots_app = typer.Typer(help="List, add, edit, remove, pause and resume bots.", no_args_is_help=True)
app.add_typer(bots_app, name="bots")


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


def setup_logging(state_dir: Path, level: str) -> None:
    state_dir.mkdir(parents=True, exist_ok=True)
    handler = logging.handlers.RotatingFileHandler(state_dir / "tui-trader.log", maxBytes=10_000_000, backupCount=3)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    stderr = logging.StreamHandler(sys.stderr)
    stderr.setLevel(logging.WARNING)
    stderr.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    logging.basicConfig(level=level, handlers=[handler, stderr], force=True)


@app.callback(invoke_without_command=True)
def main_command(
    ctx: typer.Context,
    config: ConfigOpt = None,
    state_dir: StateOpt = None,
    strategies_dir: StrategiesOpt = None,
    no_ui: Annotated[bool, typer.Option("--no-ui", help="run headless: one line per decision on stdout")] = False,
    log_format: Annotated[str | None, typer.Option("--log-format", help="text or json (default: app.log_format)")] = None,
) -> None:
    """Without a command: run the engine (headless with --no-ui)."""
    if ctx.invoked_subcommand is not None:
        return
    if not no_ui:
        typer.echo("error: the terminal console is not part of this version yet; run `tui-trader --no-ui`", err=True)
        raise typer.Exit(2)
    if log_format not in (None, "text", "json"):
        typer.echo("error: --log-format: choose text or json", err=True)
        raise typer.Exit(2)

    async def body() -> int:
        from tui_trader.headless import run_headless

        cfg, state, registry = context(config, state_dir, strategies_dir)
        setup_logging(state, cfg.app.log_level)
        for error in registry.errors:
            logging.getLogger("tui_trader.plugins").error("strategy plugin %s skipped: %s", error.source, error.error)
        return await run_headless(cfg, state, registry, log_format or cfg.app.log_format)

    raise typer.Exit(run(body))


# -- bots ---------------------------------------------------------------------------------------------


def parse_params(items: list[str]) -> dict[str, ParamValue]:
    params: dict[str, ParamValue] = {}
    for item in items:
        key, sep, raw = item.partition("=")
        if not sep or not key:
            raise Fail(f"--param {item!r}: expected key=value")
        params[key.strip()] = _param_value(raw.strip())
    return params


def _param_value(raw: str) -> ParamValue:
    if raw.lower() in ("true", "false"):
        return raw.lower() == "true"
    for kind in (int, float):
        try:
            return kind(raw)
        except ValueError:
            pass
    return raw


@asynccontextmanager
async def _opened(state_dir: Path) -> AsyncIterator[Store]:
    store = await Store.open(state_dir)
    try:
        yield store
    finally:
        await store.close()


@asynccontextmanager
async def _bot(state_dir: Path, name: str) -> AsyncIterator[tuple[Store, BotRecord]]:
    """The store and the named bot; Fail (exit 2) when there is no such bot."""
    async with _opened(state_dir) as store:
        bot = await store.get_bot(name)
        if bot is None:
            raise Fail(f"no bot named {name!r}")
        yield store, bot


def _validated(data: dict[str, Any], config: AppConfig, registry: Any) -> BotSpec:
    spec = validate_bot(data, "bot")
    errors = bot_errors(spec, config, registry, "bot")
    if errors:
        raise ConfigError("bot", errors)
    return spec


@bots_app.command("list")
def bots_list(config: ConfigOpt = None, state_dir: StateOpt = None, strategies_dir: StrategiesOpt = None,
              as_json: Annotated[bool, typer.Option("--json", help="JSON instead of a table")] = False) -> None:
    """Every bot with its state, risk settings, position and P&L."""

    async def body() -> None:
        cfg, state, _ = context(config, state_dir, strategies_dir)
        async with _opened(state) as store:
            rows = await _bot_rows(store, cfg)
        if as_json:
            typer.echo(json.dumps(rows, indent=2))
            return
        if not rows:
            typer.echo("no bots")
            return
        cols = ["name", "symbol", "tf", "strategy", "state", "risk", "limits", "capital", "position", "realized", "fees", "trades"]
        widths = {c: max(len(c), *(len(str(r[c])) for r in rows)) for c in cols}
        typer.echo("  ".join(c.upper().ljust(widths[c]) for c in cols))
        for r in rows:
            typer.echo("  ".join(str(r[c]).ljust(widths[c]) for c in cols))

    run(body)


def risk_limits(p: RiskProfile) -> str:
    """Stop management, gates and automatic pauses of a profile, compactly; "-" when none is set."""
    parts = [f"BE {p.breakeven_r:g}R"] if p.breakeven_r else []
    if p.trail_atr_mult:
        parts.append(f"trail {p.trail_atr_mult:g}xATR from {p.trail_activation_r:g}R")
    if p.time_stop_bars:
        parts.append(f"time {p.time_stop_bars} bars")
    if p.max_open_positions:
        parts.append(f"open<={p.max_open_positions}")
    if p.daily_loss_pct:
        parts.append(f"day -{p.daily_loss_pct:g}%{'' if p.daily_loss_resume == 'next_day' else ' (operator)'}")
    if p.max_drawdown_pct:
        parts.append(f"DD -{p.max_drawdown_pct:g}%{' (next day)' if p.drawdown_resume == 'next_day' else ''}")
    if p.cooldown_losses:
        parts.append(f"cooldown {p.cooldown_losses}L/{p.cooldown_candles}c")
    return ", ".join(parts) or "-"


async def _bot_rows(store: Store, cfg: AppConfig) -> list[dict[str, Any]]:
    ledgers = await store.ledgers()
    positions = {p.bot_id: p for p in await store.positions()}
    rows = []
    for bot in await store.list_bots():
        profile = cfg.profile(bot.spec.risk_profile)
        lg = ledgers.get(bot.id)
        pos = positions.get(bot.id)
        risk = (f"{bot.spec.risk_profile} ({profile.risk_per_trade_pct:g}%/trade, stop {profile.stop_atr_mult:g}xATR,"
                f" TP {profile.take_profit_r:g}R, lev {profile.max_leverage:g}x, pos {profile.max_position_pct:g}%)"
                ) if profile else bot.spec.risk_profile
        rows.append({
            "name": bot.name, "symbol": bot.spec.symbol, "tf": bot.spec.timeframe.value, "strategy": bot.spec.strategy,
            "params": bot.spec.params, "confirmations": bot.spec.confirmations,
            "state": bot.state.value + (f" ({bot.state_reason})" if bot.state_reason and bot.state is not BotState.RUNNING else ""),
            "risk": risk, "limits": risk_limits(profile) if profile else "",
            "risk_settings": profile.model_dump(mode="json") if profile else None, "capital": str(bot.spec.capital),
            "position": f"{pos.qty:+} @ {pos.entry_price:.8g}" if pos and pos.qty else "flat",
            "realized": f"{lg.realized_pnl:+.2f}" if lg else "+0.00", "fees": f"{lg.fees:.2f}" if lg else "0.00",
            "trades": lg.trades if lg else 0,
        })
    return rows


@bots_app.command("add")
def bots_add(
    name: Annotated[str, typer.Option("--name")],
    symbol: Annotated[str, typer.Option("--symbol")],
    timeframe: Annotated[str, typer.Option("--timeframe")],
    capital: Annotated[str, typer.Option("--capital", help="virtual capital in USDT")],
    strategy: Annotated[str, typer.Option("--strategy")],
    risk_profile: Annotated[str, typer.Option("--risk-profile")] = "balanced",
    param: Annotated[list[str] | None, typer.Option("--param", help="strategy parameter key=value (repeatable)")] = None,
    confirmations: Annotated[int, typer.Option("--confirmations")] = 0,
    config: ConfigOpt = None, state_dir: StateOpt = None, strategies_dir: StrategiesOpt = None,
) -> None:
    """Add a bot (a running engine picks it up within its control poll interval)."""

    async def body() -> None:
        cfg, state, registry = context(config, state_dir, strategies_dir)
        spec = _validated({"name": name, "symbol": symbol, "timeframe": timeframe, "capital": capital,
                           "strategy": strategy, "risk_profile": risk_profile, "params": parse_params(param or []),
                           "confirmations": confirmations}, cfg, registry)
        async with _opened(state) as store:
            try:
                await store.add_bot(spec, _now())
            except BotExists as exc:
                raise Fail(str(exc)) from None
        typer.echo(f"added {spec.name}")

    run(body)


@bots_app.command("edit")
def bots_edit(
    name: Annotated[str, typer.Argument()],
    symbol: Annotated[str | None, typer.Option("--symbol")] = None,
    timeframe: Annotated[str | None, typer.Option("--timeframe")] = None,
    capital: Annotated[str | None, typer.Option("--capital")] = None,
    strategy: Annotated[str | None, typer.Option("--strategy")] = None,
    risk_profile: Annotated[str | None, typer.Option("--risk-profile")] = None,
    param: Annotated[list[str] | None, typer.Option("--param", help="set a strategy parameter key=value (repeatable)")] = None,
    confirmations: Annotated[int | None, typer.Option("--confirmations")] = None,
    config: ConfigOpt = None, state_dir: StateOpt = None, strategies_dir: StrategiesOpt = None,
) -> None:
    """Change a bot's settings; symbol, timeframe and strategy only while it holds nothing."""

    async def body() -> None:
        cfg, state, registry = context(config, state_dir, strategies_dir)
        async with _bot(state, name) as (store, bot):
            data = bot.spec.model_dump(mode="json")
            changes = {"symbol": symbol, "timeframe": timeframe, "capital": capital, "strategy": strategy,
                       "risk_profile": risk_profile, "confirmations": confirmations}
            data.update({k: v for k, v in changes.items() if v is not None})
            if strategy is not None and strategy != bot.spec.strategy:
                data["params"] = {}
            data["params"] = {**data["params"], **parse_params(param or [])}
            spec = _validated(data, cfg, registry)
            structural = (spec.symbol, spec.timeframe, spec.strategy) != (bot.spec.symbol, bot.spec.timeframe, bot.spec.strategy)
            if structural and await _holds_anything(store, bot.id):
                raise Fail(f"{name} holds a position or working orders; flatten it before changing symbol, timeframe or strategy")
            await store.update_bot(bot.id, spec, _now())
        typer.echo(f"updated {name}")

    run(body)


async def _holds_anything(store: Store, bot_id: int) -> bool:
    positions = [p for p in await store.positions() if p.bot_id == bot_id and p.qty]
    return bool(positions or await store.orders(open_only=True, bot_id=bot_id))


@bots_app.command("remove")
def bots_remove(name: Annotated[str, typer.Argument()], config: ConfigOpt = None, state_dir: StateOpt = None,
                strategies_dir: StrategiesOpt = None) -> None:
    """Remove a bot (refused while it holds a position or working orders); its history stays."""

    async def body() -> None:
        _, state, _ = context(config, state_dir, strategies_dir)
        async with _bot(state, name) as (store, bot):
            if await _holds_anything(store, bot.id):
                raise Fail(f"{name} holds a position or working orders; flatten it first")
            await store.remove_bot(bot.id, _now())
        typer.echo(f"removed {name}")

    run(body)


def _state_command(command: str, name: str, config: Path | None, state_dir: Path | None, strategies_dir: Path | None,
                   reason: str) -> None:
    async def body() -> None:
        from tui_trader.engine.runtime import refusal

        _, state, _ = context(config, state_dir, strategies_dir)
        async with _bot(state, name) as (store, bot):
            if why := refusal(command, name, bot.state):
                raise Fail(why)
            if engine_running(state):
                cid = await store.queue_command(_now(), bot.id, command, "operator:cli", reason)
                status, result = await _wait_applied(store, cid)
                if status == "rejected":
                    raise Fail(result)
                typer.echo(result if status == "applied" else "queued; the running engine applies it within seconds")
                return
            to = BotState.PAUSED if command == "pause" else BotState.RUNNING
            await store.set_bot_state(bot.id, to, reason or f"{command}d by cli", _now())
            await store.conn.execute(
                "INSERT INTO control_events (ts, bot_id, command, source, reason, from_state, to_state, status)"
                " VALUES (?, ?, ?, 'operator:cli', ?, ?, ?, 'applied')", (_now(), bot.id, command, reason, bot.state.value, to.value))
        typer.echo(f"{name}: {bot.state.value} -> {to.value} (no engine running; applied to the database)")

    run(body)


async def _wait_applied(store: Store, command_id: int, timeout: float = 10.0) -> tuple[str, str]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status, result = await store.command_status(command_id)
        if status != "pending":
            return status, result
        await asyncio.sleep(0.1)
    return "pending", ""


@bots_app.command("pause")
def bots_pause(name: Annotated[str, typer.Argument()], reason: Annotated[str, typer.Option("--reason")] = "",
               config: ConfigOpt = None, state_dir: StateOpt = None, strategies_dir: StrategiesOpt = None) -> None:
    """Pause a bot: reduce-only; open positions are still managed, no new entries."""
    _state_command("pause", name, config, state_dir, strategies_dir, reason)


@bots_app.command("resume")
def bots_resume(name: Annotated[str, typer.Argument()], reason: Annotated[str, typer.Option("--reason")] = "",
                config: ConfigOpt = None, state_dir: StateOpt = None, strategies_dir: StrategiesOpt = None) -> None:
    """Resume a paused, halted, stopped or failed bot."""
    _state_command("resume", name, config, state_dir, strategies_dir, reason)


# -- strategies -----------------------------------------------------------------------------------------

strategies_app = typer.Typer(help="The strategy plugins.", no_args_is_help=True)
app.add_typer(strategies_app, name="strategies")


@strategies_app.command("list")
def strategies_list(strategies_dir: StrategiesOpt = None,
                    as_json: Annotated[bool, typer.Option("--json", help="JSON instead of text")] = False) -> None:
    """Every strategy with its parameters (default and bounds) and confirmations; broken plugins too."""
    from tui_trader.strategy import describe

    registry = load_strategies(strategies_dir)
    described = [describe(registry.strategies[name]) for name in registry.names()]
    broken = [{"source": e.source, "error": e.error} for e in registry.errors]
    if as_json:
        typer.echo(json.dumps({"strategies": described, "broken": broken}, indent=2))
        return
    for info in described:
        typer.echo(f"{info['name']}: {info['description']}")
        typer.echo(f"  timeframes: own{' + higher' if info['multi_timeframe'] else ''}"
                   f"{'; always in the market (reverses)' if info['always_in_market'] else ''}"
                   f"{'; built from ' + ', '.join(info['delegates']) if info['delegates'] else ''}")
        for p in info["params"]:
            bounds = " ".join(f"{k} {v}" for k, v in p["bounds"].items())
            typer.echo(f"  {p['name']:<18} {p['type']:<6} default {p['default']!s:<8} {bounds:<22} {p['description']}".rstrip())
        typer.echo(f"  confirmations: {', '.join(info['confirmations']) or 'none'}")
    for b in broken:
        typer.echo(f"broken plugin {b['source']}: {b['error']}", err=True)


# -- decisions -------------------------------------------------------------------------------------------


@app.command("decisions")
def decisions(
    bot: Annotated[str, typer.Argument(help="bot name")],
    follow: Annotated[bool, typer.Option("--follow", "-f", help="keep printing new decisions")] = False,
    types: Annotated[list[str] | None, typer.Option("--type", help="only this decision type (repeatable)")] = None,
    limit: Annotated[int, typer.Option("--limit", help="how many recent decisions to show first")] = 50,
    config: ConfigOpt = None, state_dir: StateOpt = None, strategies_dir: StrategiesOpt = None,
) -> None:
    """A bot's decisions, oldest first: what it did and why it did not."""
    wanted = [t.upper() for t in types or []]
    unknown = [t for t in wanted if t not in DecisionType.__members__]
    if unknown:
        typer.echo(f"error: --type: unknown {', '.join(unknown)} (known: {', '.join(DecisionType.__members__)})", err=True)
        raise typer.Exit(2)

    async def body() -> None:
        from tui_trader.headless import iso

        _, state, _ = context(config, state_dir, strategies_dir)
        async with _bot(state, bot) as (store, record):
            rows = await store.decisions(record.id, types=wanted, limit=limit, newest=True)
            last = 0
            while True:
                for row_id, d in rows:
                    typer.echo(f"{iso(d.ts)}  {d.phase.value:<8} {d.decision_type.value:<15} {d.summary}")
                    last = row_id
                if not follow:
                    return
                await asyncio.sleep(0.5)
                rows = await store.decisions(record.id, after_id=last, types=wanted, limit=1000)

    try:
        run(body)
    except KeyboardInterrupt:
        raise typer.Exit(0) from None


def _now() -> int:
    return int(time.time() * 1000)


def main() -> None:
    app()
