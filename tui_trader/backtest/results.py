"""What a backtest run produced: trades, fills, decisions (the orchestrator's kind written
only when read), the books over time for the equity curve."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from functools import cached_property
from typing import Any

import numpy as np

from tui_trader.backtest.series import Bars
from tui_trader.model import BotState, Decision, DecisionType, Fill, Trade

ROUTINE = (DecisionType.NO_SETUP, DecisionType.HOLD, DecisionType.WARMING_UP)


@dataclass(slots=True)
class Segment:
    """The bot's books from base bar `start` on, until the next segment: the ledger's own Decimals
    (immutable, so held as they are; converted only when the equity curve is read)."""

    start: int
    realized_pnl: Decimal
    fees: Decimal
    qty: Decimal  # signed; zero when flat
    entry: Decimal


@dataclass
class RunResult:
    bars: Bars  # the base bars of the run (trading part)
    bot_bars: Bars  # the bot's timeframe
    start: int  # first traded base bar
    capital: Decimal
    trades: list[Trade]
    fills: list[Fill]
    raw_decisions: list[Decision | Deferred]  # everything but the routine decisions of the bars not run
    routine: Counter[DecisionType]  # routine decisions of the bars the fast path did not run the cycle on
    segments: list[Segment]
    final_equity: Decimal
    wallet: Decimal
    open_position: tuple[Decimal, Decimal] | None  # (signed qty, entry) left open at the end
    ambiguous_bars: int
    bars_processed: int
    state: BotState  # at the end: a loss limit that waits for an operator leaves the bot PAUSED for good
    state_reason: str
    out_of_money: bool = False

    @cached_property
    def decisions(self) -> list[Decision]:
        """Every decision made, in order (the routine ones of skipped bars are only counted)."""
        return [d if type(d) is Decision else d.build() for d in self.raw_decisions]  # type: ignore[union-attr]

    def decision_counts(self) -> Counter[DecisionType]:
        counts = Counter(d.decision_type for d in self.raw_decisions)
        counts.update(self.routine)
        return counts

    def equity_curve(self) -> np.ndarray:
        """Equity at each base bar's close (float), from the booked segments."""
        close = self.bars.close[self.start:]
        segments, capital = self.segments, self.capital
        n = len(segments)
        starts = np.fromiter((s.start for s in segments), np.int64, n) - self.start
        wallet = np.fromiter((float(capital + s.realized_pnl - s.fees) for s in segments), np.float64, n)
        qty = np.fromiter((float(s.qty) for s in segments), np.float64, n)
        entry = np.fromiter((float(s.entry) if s.qty else 0.0 for s in segments), np.float64, n)
        counts = np.diff(np.append(starts, len(close)))
        return np.repeat(wallet, counts) + np.repeat(qty, counts) * (close - np.repeat(entry, counts))


@dataclass(slots=True)  # one per fill and order: not frozen for speed; treated as read-only
class Deferred:
    """A decision of the orchestrator's kind, its text written only when someone reads it: the
    arguments are snapshots, so the text is the one it would have had when it was made."""

    decision_type: DecisionType
    build_fn: Callable[..., Decision]
    args: tuple[Any, ...]

    def build(self) -> Decision:
        return self.build_fn(*self.args)

