"""A bot as the orchestrator holds it: record, cycle, ledger, working orders."""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal

from tui_trader.engine.cycle import BotCycle, BotProfile
from tui_trader.engine.ledger import BotLedger
from tui_trader.model import BotState, Order, OrderPurpose
from tui_trader.store.records import BotRecord
from tui_trader.strategy import Strategy

# How a portfolio state overrides a bot's: the stricter one wins.
_STRICTNESS = {BotState.RUNNING: 0, BotState.PAUSED: 1, BotState.HALTED: 2, BotState.FLATTENING: 3}


def refusal(command: str, name: str, state: BotState) -> str | None:
    """Why a pause / resume / stop cannot apply to a bot in this state, or None."""
    if command == "pause" and state is not BotState.RUNNING:
        return f"{name} is {state.value}; only a RUNNING bot can be paused"
    if command == "resume" and state in (BotState.RUNNING, BotState.FLATTENING):
        return f"{name} is {state.value}; nothing to resume"
    if command == "stop" and state is BotState.STOPPED:
        return f"{name} is already STOPPED"
    return None


_RUNNING = BotState.RUNNING  # enum member lookups are slow on 3.11; this runs per bot per tick


def effective_state(bot: BotState, portfolio: BotState) -> BotState:
    if portfolio is _RUNNING or bot not in _STRICTNESS:
        return bot
    return bot if _STRICTNESS[bot] >= _STRICTNESS.get(portfolio, 0) else portfolio


@dataclass(slots=True)
class BotRuntime:
    record: BotRecord
    profile: BotProfile
    cycle: BotCycle | None  # None when the strategy could not be built (the bot is in ERROR)
    ledger: BotLedger
    state: BotState
    state_reason: str
    next_seq: int = 1
    orders: dict[str, Order] = field(default_factory=dict)  # working orders by client id
    order_seqs: dict[str, int] = field(default_factory=dict)
    candles_seen: int = 0
    last_equity: Decimal | None = None  # of the last equity snapshot
    equity: Decimal = field(init=False)  # at the last tick's marks (RiskControl.risk_pass)
    stateful: bool = field(init=False, default=False)
    last_strategy_state: dict[str, object] = field(default_factory=dict)

    @property
    def id(self) -> int:
        return self.record.id

    @property
    def name(self) -> str:
        return self.record.name

    def __post_init__(self) -> None:
        self.equity = self.ledger.wallet
        self.refresh()

    def refresh(self) -> None:
        """Recompute what is derived from the cycle (call after replacing it)."""
        # Whether the strategy keeps state beyond its indicators (worth comparing each candle).
        self.stateful = self.cycle is not None and type(self.cycle.strategy).get_state is not Strategy.get_state

    @property
    def timeframes(self) -> tuple[str, ...]:
        return self.cycle.strategy.timeframes() if self.cycle else (self.profile.timeframe,)

    def has_open(self, *purposes: OrderPurpose) -> bool:
        return any(o.request.purpose in purposes for o in self.orders.values())

    @property
    def leverage(self) -> Decimal:
        return self.profile.leverage
