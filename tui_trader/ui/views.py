"""What the console shows, computed from the engine's state: table cells, the status
line and the decision log's lines. No widgets here, so every figure is testable alone.
"""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime
from decimal import Decimal

from rich.text import Text

from tui_trader.engine.orchestrator import Engine
from tui_trader.engine.runtime import BotRuntime
from tui_trader.model import ZERO, BotState, Decision, DecisionType

STATE_STYLE = {
    BotState.RUNNING: "bold green", BotState.PAUSED: "bold yellow", BotState.HALTED: "bold red",
    BotState.FLATTENING: "bold magenta", BotState.STOPPED: "dim", BotState.ERROR: "bold white on red",
}
BADGE_STYLE = {
    BotState.RUNNING: "bold black on green", BotState.PAUSED: "bold black on yellow",
    BotState.HALTED: "bold white on red", BotState.FLATTENING: "bold white on magenta",
}
ENV_STYLE = {"paper": "bold black on cyan", "testnet": "bold black on yellow", "demo": "bold black on yellow",
             "mainnet": "bold white on red"}
DECISION_STYLE = {
    DecisionType.TRADE_ENTERED: "bold green", DecisionType.TRADE_EXITED: "bold cyan", DecisionType.ORDER_PLACED: "green",
    DecisionType.RISK_BLOCKED: "yellow", DecisionType.SETUP_REJECTED: "yellow", DecisionType.ORDER_REJECTED: "red",
    DecisionType.ERROR: "bold red", DecisionType.STATE_CHANGED: "magenta", DecisionType.STOP_MOVED: "cyan",
    DecisionType.SETUP_FOUND: "bold", DecisionType.COOLDOWN: "yellow", DecisionType.EXIT_SIGNAL: "cyan",
    DecisionType.NO_SETUP: "dim", DecisionType.HOLD: "dim", DecisionType.WARMING_UP: "dim",
}

BOT_COLUMNS = ("name", "symbol", "tf", "strategy", "risk", "state", "position", "upnl", "realized", "dd", "last")
BOT_HEADERS = ("Bot", "Symbol", "TF", "Strategy", "Risk", "State", "Position", "uPnL", "Realized", "DD%", "Last decision")
NARROW_BOT_COLUMNS = ("name", "tf", "state", "position", "upnl", "realized", "dd")  # fits 80 columns; the rest is a key away
# Fixed widths: a column re-measure on every changed cell costs time, and a live table must not jitter.
BOT_WIDTHS = {"name": 16, "symbol": 9, "tf": 3, "strategy": 17, "risk": 10, "state": 10, "position": 12, "upnl": 9,
              "realized": 9, "dd": 4}  # "last" takes the rest
# Fits 80 columns: the side is the quantity's sign (and colour); the symbol is the bot's.
POSITION_COLUMNS = ("bot", "qty", "entry", "mark", "stop", "target", "upnl")
POSITION_HEADERS = ("Bot", "Qty", "Entry", "Mark", "Stop", "Target", "uPnL")
POSITION_WIDTHS = (14, 8, 8, 8, 8, 8, 8)


def hhmmss(ts_ms: int) -> str:
    return datetime.fromtimestamp(ts_ms / 1000, UTC).strftime("%H:%M:%S")


def month_day_time(ts_ms: int) -> str:
    return datetime.fromtimestamp(ts_ms / 1000, UTC).strftime("%m-%d %H:%M:%S")


def signed(value: Decimal) -> Text:
    return Text(f"{value:+,.2f}", style="green" if value > 0 else "red" if value < 0 else "")


def price(value: Decimal | None) -> str:
    return "-" if value is None else f"{value:.8g}"


def bot_cells(engine: Engine, bot: BotRuntime, last: Decision | None) -> tuple[str | Text, ...]:
    ledger, spec = bot.ledger, bot.record.spec
    position = ledger.position
    mark = engine.marks.get(bot.profile.symbol)
    if position.is_open:
        held = Text(f"{'long' if position.qty > 0 else 'short'} {abs(position.qty)}", style="green" if position.qty > 0 else "red")
        upnl: str | Text = signed(position.unrealized_pnl(mark) if mark is not None else ZERO)
    else:
        held, upnl = Text("flat", style="dim"), "-"
    drawdown = (ledger.high_water - bot.equity) / ledger.high_water * 100 if ledger.high_water else ZERO
    return (
        bot.name, spec.symbol, spec.timeframe.value, spec.strategy, spec.risk_profile,
        Text(bot.state.value, style=STATE_STYLE.get(bot.state, "")), held, upnl, signed(ledger.realized_pnl - ledger.fees),
        f"{max(drawdown, ZERO):.1f}", last_decision(last),
    )


def last_decision(decision: Decision | None) -> Text:
    if decision is None:
        return Text("-", style="dim")
    return Text(f"{decision.decision_type.value}: {decision.summary}"[:60],
                style=DECISION_STYLE.get(decision.decision_type, ""))


def position_cells(engine: Engine, bot: BotRuntime) -> tuple[str | Text, ...]:
    position = bot.ledger.position
    mark = engine.marks.get(position.symbol)
    return (bot.name, Text(f"{position.qty:+}", style="green" if position.qty > 0 else "red"),
            price(position.entry_price), price(mark), price(position.stop_price), price(position.target_price),
            signed(position.unrealized_pnl(mark) if mark is not None else ZERO))


def with_name(bot_name: str, line: str) -> str:
    """A one-bot log line (from decision_line) with the bot's name after the time."""
    return f"{line[:9]}{bot_name:<16.16} {line[9:]}"


def decision_line(bot_name: str | None, decision: Decision, dated: bool = False) -> str:
    """A log line; without the bot's name when the log shows one bot only."""
    who = f"{bot_name:<16.16} " if bot_name is not None else ""
    when = datetime.fromtimestamp(decision.ts / 1000, UTC).strftime("%Y-%m-%d %H:%M:%S") if dated else hhmmss(decision.ts)
    return f"{when} {who}{decision.decision_type.value:<15} {decision.summary}"


def status_line(engine: Engine, market: str) -> Text:
    """The header: portfolio state badge, equity, today's P&L, exposure, bots by state, market and environment."""
    risk = engine.risk_snapshot()
    today = sum((b.equity - b.ledger.day_start_equity for b in engine.bots.values()), ZERO)
    counts = Counter(b.state for b in engine.bots.values())
    env = engine.config.exchange.kind
    by_state = " ".join(f"{n} {s.value.lower()}" for s, n in sorted(counts.items(), key=lambda kv: kv[0].value))
    exposure = f"{risk.exposure.value / risk.capital * 100:.0f}%" if risk.capital else "-"
    # Most important first: at 80 columns the end of the line (the market) is what gets cut.
    return Text.assemble(
        (f" {engine.global_state.value} ", BADGE_STYLE.get(engine.global_state, "bold")), " ",
        (f" {env.upper()} ", ENV_STYLE.get(env, "bold")), " ",
        f"equity {risk.equity:,.2f} ", "today ", signed(today), f"  exp {exposure}  ",
        (f"{len(engine.bots)} bots: {by_state}", "dim"), "  ", (market, "dim"),
    )
