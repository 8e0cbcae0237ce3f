"""Adaptive: asks the regime classifier (the engine's tracker for this symbol and
timeframe, in `MarketContext.regime`) and delegates to the strategy that suits it:
a trend to ema_trend, a range to range_reversion, a volatile market to
donchian_breakout. Every sub-strategy sees every candle, so a switch finds it warm.
Each switch is logged (STRATEGY_SWITCHED). An open position is managed by the
sub-strategy that opened it, whatever the regime has become since.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from pydantic import Field

from tui_trader.model import Candle, Regime
from tui_trader.strategy import MarketContext, NoSetup, Setup, Strategy, StrategyParams

SUB_FOR_REGIME = {
    Regime.TREND_UP: "ema_trend",
    Regime.TREND_DOWN: "ema_trend",
    Regime.RANGE: "range_reversion",
    Regime.VOLATILE: "donchian_breakout",
}


class AdaptiveParams(StrategyParams):
    trade_unknown: bool = Field(default=False, description="scan with ema_trend while the regime is still unknown")


class Adaptive(Strategy):
    name = "adaptive"
    description = "regime switcher: trend -> ema_trend, range -> range_reversion, volatile -> donchian_breakout"
    Params = AdaptiveParams
    delegates = ("ema_trend", "range_reversion", "donchian_breakout")

    def __init__(self, params: StrategyParams, timeframe: str) -> None:
        super().__init__(params, timeframe)
        self.p: AdaptiveParams = params  # type: ignore[assignment]
        self.subs: dict[str, Strategy] = {}
        self.active: str | None = None  # the sub-strategy the regime calls for
        self.owner: str | None = None  # the one whose setup opened the position
        self._ready = False

    def attach(self, delegates: Mapping[str, Strategy]) -> None:
        self.subs = dict(delegates)

    @property
    def warmup(self) -> int:
        return max(sub.warmup for sub in self.subs.values())

    def update(self, candle: Candle) -> None:
        for sub in self.subs.values():
            sub.update(candle)

    def warm_up(self, candles: Mapping[str, Sequence[Candle]]) -> None:
        for sub in self.subs.values():
            sub.warm_up(candles)

    def ready(self) -> bool:
        if not self._ready:  # once every sub-strategy is ready it stays ready
            self._ready = all(sub.ready() for sub in self.subs.values())
        return self._ready

    def _select(self, ctx: MarketContext) -> str | None:
        wanted = SUB_FOR_REGIME.get(ctx.regime, "ema_trend" if self.p.trade_unknown else None)
        if wanted != self.active:
            self.emit(f"switched {self.active or 'none'} -> {wanted or 'none'} (regime {ctx.regime.value})",
                      regime=ctx.regime.value, sub_strategy=wanted or "none", previous=self.active or "none")
            self.active = wanted
        return wanted

    def scan(self, ctx: MarketContext) -> Setup | NoSetup:
        name = self._select(ctx)
        if name is None:
            return NoSetup(f"regime {ctx.regime.value}: no sub-strategy trades it")
        found = self.subs[name].scan(ctx)
        if isinstance(found, NoSetup):
            return NoSetup(f"[{name}] {found.reason}")
        self.owner = name
        # (a strategy's name has no "%": the prefix keeps a template a template)
        return Setup(found.side, f"[{name}] {found.reason}", found.confirmations, found.stop, found.target, found.atr,
                     found.reason_args)

    def exit(self, ctx: MarketContext) -> str | None:
        self._select(ctx)
        owner = self.subs.get(self.owner or "") or self.subs.get(self.active or "")
        if owner is None:
            return None
        reason = owner.exit(ctx)
        return f"[{owner.name}] {reason}" if reason else None

    def indicators(self) -> dict[str, float]:
        return self.subs[self.active].indicators() if self.active in self.subs else {}

    def get_state(self) -> dict[str, Any]:
        return {"active": self.active, "owner": self.owner}

    def set_state(self, state: Mapping[str, Any]) -> None:
        self.active, self.owner = state.get("active"), state.get("owner")
