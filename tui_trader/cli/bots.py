"""`tui-trader bots`: list, add, edit, remove, pause and resume bots."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import Annotated, Any

import typer

from tui_trader.cli.common import (
    ConfigOpt,
    Fail,
    StateOpt,
    StrategiesOpt,
    context,
    named_bot,
    now_ms,
    opened,
    parse_params,
    run,
)
from tui_trader.config import AppConfig, BotSpec, ConfigError, validate_bot
from tui_trader.model import BotState
from tui_trader.setup import bot_errors, engine_running
from tui_trader.store import BotExists, Store

bots_app = typer.Typer(help="List, add, edit, remove, pause and resume bots.", no_args_is_help=True)


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
        async with opened(state) as store:
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


async def _bot_rows(store: Store, cfg: AppConfig) -> list[dict[str, Any]]:
    ledgers = await store.ledgers()
    positions = {p.bot_id: p for p in await store.positions()}
    rows = []
    for bot in await store.list_bots():
        profile = cfg.profile(bot.spec.risk_profile)
        lg = ledgers.get(bot.id)
        pos = positions.get(bot.id)
        risk = f"{bot.spec.risk_profile} ({profile.sizing_text()})" if profile else bot.spec.risk_profile
        rows.append({
            "name": bot.name, "symbol": bot.spec.symbol, "tf": bot.spec.timeframe.value, "strategy": bot.spec.strategy,
            "params": bot.spec.params, "confirmations": bot.spec.confirmations,
            "state": bot.state.value + (f" ({bot.state_reason})" if bot.state_reason and bot.state is not BotState.RUNNING else ""),
            "risk": risk, "limits": profile.limits_text() if profile else "",
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
        async with opened(state) as store:
            try:
                await store.add_bot(spec, now_ms())
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
        async with named_bot(state, name) as (store, bot):
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
            await store.update_bot(bot.id, spec, now_ms())
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
        async with named_bot(state, name) as (store, bot):
            if await _holds_anything(store, bot.id):
                raise Fail(f"{name} holds a position or working orders; flatten it first")
            await store.remove_bot(bot.id, now_ms())
        typer.echo(f"removed {name}")

    run(body)


def _state_command(command: str, name: str, config: Path | None, state_dir: Path | None, strategies_dir: Path | None,
                   reason: str) -> None:
    async def body() -> None:
        from tui_trader.engine.runtime import refusal

        _, state, _ = context(config, state_dir, strategies_dir)
        async with named_bot(state, name) as (store, bot):
            if why := refusal(command, name, bot.state):
                raise Fail(why)
            if engine_running(state):
                cid = await store.queue_command(now_ms(), bot.id, command, "operator:cli", reason)
                status, result = await _wait_applied(store, cid)
                if status == "rejected":
                    raise Fail(result)
                typer.echo(result if status == "applied" else "queued; the running engine applies it within seconds")
                return
            to = BotState.PAUSED if command == "pause" else BotState.RUNNING
            await store.set_bot_state(bot.id, to, reason or f"{command}d by cli", now_ms())
            await store.conn.execute(
                "INSERT INTO control_events (ts, bot_id, command, source, reason, from_state, to_state, status)"
                " VALUES (?, ?, ?, 'operator:cli', ?, ?, ?, 'applied')", (now_ms(), bot.id, command, reason, bot.state.value, to.value))
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
