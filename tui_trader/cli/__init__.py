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
from tui_trader.cli.decisions import decisions
from tui_trader.cli.strategies import strategies_app

app = typer.Typer(add_completion=False, no_args_is_help=False, help="Run and operate a portfolio of trading bots.")
app.add_typer(bots_app, name="bots")
app.add_typer(strategies_app, name="strategies")
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


def main() -> None:
    app()
