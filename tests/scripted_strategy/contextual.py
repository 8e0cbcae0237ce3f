"""A shareable test strategy whose answers name the market context they were given.

On the close of a candle whose open time `ts` (ms) is in `long_at`, `scan` proposes a
long with one confirmation that never passes; otherwise it says it found nothing, naming
the position side and bars the context gave. Always in the market, so a bot holding a
position asks it too (with its own context). On a candle in `raise_at`, `update` raises
RuntimeError. Warm-up is two bars.
"""

from __future__ import annotations

from pydantic import Field

from tui_trader.model import BUY, Candle
from tui_trader.strategy import Confirmation, MarketContext, NoSetup, Setup, Strategy, StrategyParams


class ContextualParams(StrategyParams):
    long_at: str = Field(default="", description="candle open times (ms) on whose close a long setup is found")
    raise_at: str = Field(default="", description="candle open times (ms) on which update raises")


class Contextual(Strategy):
    name = "contextual"
    description = "test strategy: scripted longs; its answers name the context it was asked in"
    Params = ContextualParams
    confirmations = ("never",)
    always_in_market = True
    shareable = True

    def __init__(self, params: StrategyParams, timeframe: str) -> None:
        super().__init__(params, timeframe)
        p: ContextualParams = params  # type: ignore[assignment]
        self.long_at, self.raise_at = (frozenset(int(t) for t in text.replace(" ", "").split(",") if t)
                                       for text in (p.long_at, p.raise_at))
        self.seen = 0
        self.last_ts: int | None = None

    @property
    def warmup(self) -> int:
        return 2

    def update(self, candle: Candle) -> None:
        if candle.timeframe == self.timeframe:
            if candle.ts in self.raise_at:
                raise RuntimeError(f"contextual failure at {candle.ts}")
            self.seen += 1
            self.last_ts = candle.ts

    def ready(self) -> bool:
        return self.seen >= self.warmup

    def scan(self, ctx: MarketContext) -> Setup | NoSetup:
        if self.last_ts in self.long_at:
            return Setup(BUY, f"scripted long at {self.last_ts}", (Confirmation("never", False, "never passes"),), atr=10.0)
        return NoSetup(f"nothing ({ctx.position_side or 'flat'}, {ctx.bars_in_position} bars in position)")
