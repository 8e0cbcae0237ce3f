"""The CandleFeed protocol the engine reads from."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from typing import Protocol

from tui_trader.model import Candle


class CandleFeed(Protocol):
    """Closed base-timeframe candles for a set of symbols, in time order."""

    base_timeframe: str
    symbols: Sequence[str]

    def history(self, symbol: str, bars: int) -> list[Candle]:
        """Up to `bars` closed base candles that precede the first live candle, oldest first."""
        ...

    def stream(self) -> AsyncIterator[list[Candle]]:
        """Yield, per base interval, the closed candles of every symbol (one per symbol)."""
        ...
