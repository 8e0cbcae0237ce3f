"""What the store reads back: bots, ledgers and queued operator commands."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from tui_trader.config import BotSpec
from tui_trader.model import BotState


class BotExists(ValueError):
    pass


@dataclass(frozen=True, slots=True)
class BotRecord:
    id: int
    spec: BotSpec
    state: BotState
    state_reason: str
    version: int

    @property
    def name(self) -> str:
        return self.spec.name


@dataclass(frozen=True, slots=True)
class LedgerRecord:
    bot_id: int
    realized_pnl: Decimal
    fees: Decimal
    trades: int
    wins: int
    high_water: Decimal
    day_start: int = 0  # UTC midnight (ms) of the trading day the bot is in
    day_start_equity: Decimal | None = None
    loss_streak: int = 0  # consecutive losing trades
    cooldown_until: int = 0  # no entries before this market time (ms)


@dataclass(frozen=True, slots=True)
class PendingCommand:
    """A command the CLI queued for the running engine (a control_events row with status 'pending')."""

    id: int
    ts: int
    bot_id: int | None
    command: str
    source: str
    reason: str
