"""The command line (typer): the only place that parses arguments. One module per command group.

Exit codes: 0 done, 1 runtime failure, 2 bad input (config, arguments, refused command).
"""

from __future__ import annotations

import logging
from typing import Annotated

import typer

from tui_trader.cli.backtest import backtest
from tui_trader.cli.bots import bots_app
from tui_trader.cli.common import ConfigOpt, StateOpt, StrategiesOpt, context, run, setup_logging
from tui_trader.cli.data import data_app
from tui_trader.cli.decisions import decisions
from tui_trader.cli.strategies import strategies_app

app = typer.Typer(add_completion=False, no_args_is_help=False, help="Run and operate a portfolio of trading bots.")
app.add_typer(bots_app, name="bots")
app.add_typer(strategies_app, name="strategies")
app.add_typer(data_app, name="data")
app.command("decisions")(decisions)
app.command("backtest")(backtest)


@app.callback(invoke_without_command=True)
def main_command(
    ctx: typer.Context,
    config: ConfigOpt = None,
    state_dir: StateOpt = None,
    strategies_dir: StrategiesOpt = None,
    no_ui: Annotated[bool, typer.Option("--no-ui", help="run headless: one line per decision on stdout")] = False,
    log_format: Annotated[str | None, typer.Option("--log-format", help="text or json (default: app.log_format)")] = None,
    ui_hz: Annotated[float, typer.Option("--ui-hz", help="console refreshes per second", min=0.5, max=20)] = 4.0,
    color: Annotated[str, typer.Option("--color", help="auto, truecolor, 256 or 16")] = "auto",
    no_mouse: Annotated[bool, typer.Option("--no-mouse", help="leave the mouse to the terminal (select and copy)")] = False,
) -> None:
    """Without a command: run the engine with the console (headless with --no-ui)."""
    if ctx.invoked_subcommand is not None:
        return
    if log_format not in (None, "text", "json"):
        typer.echo("error: --log-format: choose text or json", err=True)
        raise typer.Exit(2)
    if color not in ("auto", "truecolor", "256", "16"):
        typer.echo("error: --color: choose auto, truecolor, 256 or 16", err=True)
        raise typer.Exit(2)

    async def body() -> int:
        cfg, state, registry = context(config, state_dir, strategies_dir)
        setup_logging(state, cfg.app.log_level, console=no_ui)
        for error in registry.errors:
            logging.getLogger("tui_trader.plugins").error("strategy plugin %s skipped: %s", error.source, error.error)
        if no_ui:
            from tui_trader.headless import run_headless  # the headless path never imports textual

            return await run_headless(cfg, state, registry, log_format or cfg.app.log_format)
        from tui_trader.ui.launcher import run_console

        return await run_console(cfg, state, registry, ui_hz=ui_hz, color=color, mouse=not no_mouse)

    raise typer.Exit(run(body))


def main() -> None:
    app()
