"""`tui-trader strategies`: the strategy plugins."""

from __future__ import annotations

import json
from typing import Annotated

import typer

from tui_trader.cli.common import StrategiesOpt
from tui_trader.setup import load_strategies

strategies_app = typer.Typer(help="The strategy plugins.", no_args_is_help=True)


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
