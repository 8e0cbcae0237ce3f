"""A test strategy plugin whose every answer is scripted by its parameters.

The parameters name candles by their open time `ts` (ms), as comma-separated
lists. On the close of such a candle of the bot's own timeframe:

- `long_at` / `short_at`: `scan` proposes a setup on that side, with the two
  confirmations "always" (passes) and "never" (fails) and `atr` as its ATR;
- `exit_at`: `exit` asks to leave the open position;
- `raise_at`: `scan` and `exit` raise RuntimeError (plugin failure);
- `emit_at`: `scan` emits an event (a STRATEGY_SWITCHED decision);
- `broken_indicators_at`: `indicators` raises RuntimeError (after the scan's decisions began).

Everything else: NoSetup("scripted: nothing") and hold. Warm-up is two bars.
"""

from __future__ import annotations

from pydantic import Field

from tui_trader.model import Candle, Side
from tui_trader.strategy import Confirmation, MarketContext, NoSetup, Setup, Strategy, StrategyParams


def _ts_set(text: str) -> frozenset[int]:
    return frozenset(int(part) for part in text.replace(" ", "").split(",") if part)


class ScriptedParams(StrategyParams):
    long_at: str = Field(default="", description="candle open times (ms) on whose close a long setup is found")
    short_at: str = Field(default="", description="candle open times (ms) on whose close a short setup is found")
    exit_at: str = Field(default="", description="candle open times (ms) on whose close an open position is exited")
    raise_at: str = Field(default="", description="candle open times (ms) on whose close scan/exit raise")
    emit_at: str = Field(default="", description="candle open times (ms) on whose close scan emits an event")
    broken_indicators_at: str = Field(default="", description="candle open times (ms) on whose close indicators raise")
    atr: float = Field(default=10.0, gt=0, description="the ATR every setup reports")


class Scripted(Strategy):
    name = "scripted"
    description = "test strategy: setups, exits and failures on scripted candles"
    Params = ScriptedParams
    confirmations = ("always", "never")

    def __init__(self, params: StrategyParams, timeframe: str) -> None:
        super().__init__(params, timeframe)
        p: ScriptedParams = params  # type: ignore[assignment]
        self.p = p
        self.long_at = _ts_set(p.long_at)
        self.short_at = _ts_set(p.short_at)
        self.exit_at = _ts_set(p.exit_at)
        self.raise_at = _ts_set(p.raise_at)
        self.emit_at = _ts_set(p.emit_at)
        self.broken_indicators_at = _ts_set(p.broken_indicators_at)
        self.seen = 0
        self.last_ts: int | None = None

    @property
    def warmup(self) -> int:
        return 2

    def update(self, candle: Candle) -> None:
        if candle.timeframe != self.timeframe:
            return
        self.seen += 1
        self.last_ts = candle.ts

    def ready(self) -> bool:
        return self.seen >= self.warmup

    def _maybe_raise(self) -> None:
        if self.last_ts in self.raise_at:
            raise RuntimeError(f"scripted failure at {self.last_ts}")

    def scan(self, ctx: MarketContext) -> Setup | NoSetup:
        self._maybe_raise()
        ts = self.last_ts
        if ts in self.emit_at:
            self.emit(f"scripted event at {ts}", at=ts)
        side = Side.BUY if ts in self.long_at else Side.SELL if ts in self.short_at else None
        if side is None:
            return NoSetup("scripted: nothing")
        checks = (Confirmation("always", True, "always passes"), Confirmation("never", False, "never passes"))
        return Setup(side, f"scripted {side.value.lower()} at {ts}", checks, atr=self.p.atr)

    def exit(self, ctx: MarketContext) -> str | None:
        self._maybe_raise()
        if self.last_ts in self.exit_at:
            return f"scripted exit at {self.last_ts}"
        return None

    def indicators(self) -> dict[str, float]:
        if self.last_ts in self.broken_indicators_at:
            raise RuntimeError(f"scripted broken indicators at {self.last_ts}")
        return {"atr": self.p.atr}
