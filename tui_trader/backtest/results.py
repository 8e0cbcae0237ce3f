"""What a backtest run produced: trades, fills, decisions (the orchestrator's kind written
only when read), the books over time for the equity curve."""

from __future__ import annotations

from array import array
from collections import Counter
from dataclasses import dataclass
from decimal import Decimal
from functools import cached_property
from typing import Any

import numpy as np

from tui_trader.backtest.series import Bars
from tui_trader.model import BotState, Decision, DecisionType, Fill, Trade

ROUTINE = (DecisionType.NO_SETUP, DecisionType.HOLD, DecisionType.WARMING_UP)


class BookSeries:
    """The bot's books after each booking, for the equity curve: from base bar `start[i]` on (until the
    next entry) the wallet (capital + realized P&L - fees), the signed qty and the entry price (0 when
    flat). Raw number columns, appended as the run books: no object per entry to collect later."""

    __slots__ = ("start", "wallet", "qty", "entry")

    def __init__(self) -> None:
        self.start, self.wallet, self.qty, self.entry = array("q"), array("d"), array("d"), array("d")

    def record(self, k: int, wallet: float, qty: float, entry: float) -> None:
        """The books from bar k on (replacing an entry already made at k)."""
        if self.start and self.start[-1] == k:
            self.wallet[-1], self.qty[-1], self.entry[-1] = wallet, qty, entry
            return
        self.start.append(k)
        self.wallet.append(wallet)
        self.qty.append(qty)
        self.entry.append(entry)


# A decision of the orchestrator's kind kept unbuilt, its text written only when someone reads it:
# (its decision type, the function that builds it, the function's arguments...). The arguments are
# snapshots, so the text is the one it would have had when it was made. A plain tuple: a backtest keeps
# one per setup, order and fill (about 120,000 in the benchmark year), and a tuple costs a quarter of an
# object's construction and less memory (2-3 % of the run's time).
Deferred = tuple[Any, ...]


def built(decision: Decision | Deferred) -> Decision:
    return decision if isinstance(decision, Decision) else decision[1](*decision[2:])


def kind_of(decision: Decision | Deferred) -> DecisionType:
    return decision.decision_type if isinstance(decision, Decision) else decision[0]


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
    books: BookSeries
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
        return list(map(built, self.raw_decisions))

    def decision_counts(self) -> Counter[DecisionType]:
        counts = Counter(map(kind_of, self.raw_decisions))
        counts.update(self.routine)
        return counts

    def equity_curve(self) -> np.ndarray:
        """Equity at each base bar's close (float), from the books after each booking."""
        close = self.bars.close[self.start:]
        books = self.books
        starts = np.frombuffer(books.start, np.int64) - self.start
        wallet, qty, entry = (np.frombuffer(c, np.float64) for c in (books.wallet, books.qty, books.entry))
        counts = np.diff(np.append(starts, len(close)))
        return np.repeat(wallet, counts) + np.repeat(qty, counts) * (close - np.repeat(entry, counts))
