"""EMA crossover trend following: enter on a cross of the fast EMA over the slow
one while ADX says the market trends, leave on the opposite cross. The stop sits
ATR multiples away (the bot's risk profile says how many) and the target R
multiples beyond the entry.

Filter: ADX at or above `adx_min` (a cross in a trendless market is no setup).
Confirmations: the directional indicators agree (+DI above -DI for a long); the
close is beyond the slow EMA; volume is above its 20-bar average.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from pydantic import Field, model_validator

from tui_trader.indicators import Stream, is_nan, update_all
from tui_trader.model import BUY, SELL, Candle
from tui_trader.strategy import Confirmation, MarketContext, NoSetup, Setup, Strategy, StrategyParams


class EmaTrendParams(StrategyParams):
    fast: int = Field(default=12, ge=2, le=200, description="fast EMA period")
    slow: int = Field(default=26, ge=3, le=400, description="slow EMA period")
    atr_period: int = Field(default=14, ge=2, le=100)
    adx_period: int = Field(default=14, ge=2, le=100)
    adx_min: float = Field(default=20.0, ge=0, le=100, description="no setup while ADX is below this (0: no filter)")
    exit_on_cross: bool = Field(default=True, description="leave on the opposite cross")

    @model_validator(mode="after")
    def _fast_below_slow(self) -> EmaTrendParams:
        if self.fast >= self.slow:
            raise ValueError(f"fast ({self.fast}) must be below slow ({self.slow})")
        return self


class EmaTrend(Strategy):
    name = "ema_trend"
    description = "EMA crossover trend with an ADX filter, ATR stop and R-multiple target"
    Params = EmaTrendParams
    confirmations = ("di_agrees", "close_beyond_slow", "volume_above_average")
    shareable = True

    def __init__(self, params: StrategyParams, timeframe: str) -> None:
        super().__init__(params, timeframe)
        p: EmaTrendParams = params  # type: ignore[assignment]
        self.p = p
        self.fast = Stream("EMA", timeperiod=p.fast)
        self.slow = Stream("EMA", timeperiod=p.slow)
        self.atr = Stream("ATR", timeperiod=p.atr_period)
        self.adx = Stream("ADX", timeperiod=p.adx_period)
        self.plus_di = Stream("PLUS_DI", timeperiod=p.adx_period)
        self.minus_di = Stream("MINUS_DI", timeperiod=p.adx_period)
        self.volume_avg = Stream("SMA", source="volume", timeperiod=20)
        self._streams = (self.fast, self.slow, self.atr, self.adx, self.plus_di, self.minus_di, self.volume_avg)
        self.prev_diff = float("nan")
        self.diff = float("nan")
        self.close = float("nan")
        self.volume = float("nan")
        self._ready = False

    @property
    def warmup(self) -> int:
        return max(500, 10 * self.p.slow)

    def update(self, candle: Candle) -> None:
        if candle.timeframe != self.timeframe:
            return
        update_all(self._streams, candle)
        self.prev_diff = self.diff
        self.diff = self.fast.value - self.slow.value  # type: ignore[operator]
        self.close = candle.close
        self.volume = candle.volume

    def warm_up(self, candles: Mapping[str, Sequence[Candle]]) -> None:
        # the last bar replayed sets prev_diff and diff
        self.fill_and_replay(self._streams, candles.get(self.timeframe, []), 1)

    def ready(self) -> bool:
        if not self._ready:  # once every stream has its lookback it stays ready
            self._ready = not any(is_nan(s.value) for s in self._streams) and self.prev_diff == self.prev_diff
        return self._ready

    def indicators(self) -> dict[str, float]:
        return {
            "ema_fast": self.fast.value,  # type: ignore[dict-item]
            "ema_slow": self.slow.value,  # type: ignore[dict-item]
            "atr": self.atr.value,  # type: ignore[dict-item]
            "adx": self.adx.value,  # type: ignore[dict-item]
        }

    def scan(self, ctx: MarketContext) -> Setup | NoSetup:
        crossed_up = self.prev_diff <= 0 < self.diff
        crossed_down = self.prev_diff >= 0 > self.diff
        if not (crossed_up or crossed_down):
            side = "above" if self.diff > 0 else "below"
            return NoSetup(f"no cross: fast EMA {self.fast.value:.6g} {side} slow {self.slow.value:.6g}")
        side = BUY if crossed_up else SELL
        direction = "above" if crossed_up else "below"
        adx: float = self.adx.value  # type: ignore[assignment]
        if adx < self.p.adx_min:
            return NoSetup(f"fast EMA crossed {direction} slow, but no trend: ADX {adx:.1f} < {self.p.adx_min:g}")
        slow: float = self.slow.value  # type: ignore[assignment]
        beyond = self.close > slow if side is BUY else self.close < slow
        vol_avg: float = self.volume_avg.value  # type: ignore[assignment]
        plus_di: float = self.plus_di.value  # type: ignore[assignment]
        minus_di: float = self.minus_di.value  # type: ignore[assignment]
        di_agrees = plus_di > minus_di if side is BUY else minus_di > plus_di
        checks = (
            Confirmation("di_agrees", di_agrees, f"+DI {plus_di:.1f} vs -DI {minus_di:.1f}"),
            Confirmation("close_beyond_slow", beyond, f"close {self.close:.6g} vs slow EMA {slow:.6g}"),
            Confirmation("volume_above_average", self.volume > vol_avg, f"volume {self.volume:.4g} vs avg {vol_avg:.4g}"),
        )
        return Setup(side, f"fast EMA crossed {direction} slow (ADX {adx:.1f})", checks, atr=self.atr.value)  # type: ignore[arg-type]

    def exit(self, ctx: MarketContext) -> str | None:
        if not self.p.exit_on_cross or ctx.position_side is None:
            return None
        if ctx.position_side is BUY and self.diff < 0:
            return "fast EMA crossed below slow"
        if ctx.position_side is SELL and self.diff > 0:
            return "fast EMA crossed above slow"
        return None
