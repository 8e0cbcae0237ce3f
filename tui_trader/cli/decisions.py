"""`tui-trader decisions`: a bot's decision log."""

from __future__ import annotations

import asyncio
from typing import Annotated

import typer

from tui_trader.cli.common import ConfigOpt, StateOpt, StrategiesOpt, context, named_bot, run
from tui_trader.model import DecisionType


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
        async with named_bot(state, bot) as (store, record):
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
