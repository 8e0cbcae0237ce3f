"""Donchian channel breakout (turtle style): go long when the close breaks above the
highest high of the previous `period` bars, short when it breaks below their lowest
low. The channel is the one as of the previous bar, so the breakout bar itself is
never part of the level it breaks.

Exit (turtle exit): leave a long when the close falls below the lowest low of the
previous `exit_period` bars, a short when it rises above their highest high.
Stop and target come from the bot's risk profile (ATR multiples and R multiple).

Confirmations: volume above `volume_mult` x its average over the previous
`volume_period` bars; ATR above its value `atr_lookback` bars ago; the close in
the top (long) or bottom (short) third of its bar's range (a bar with no range
is in neither).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping, Sequence

from pydantic import Field, model_validator

from tui_trader.indicators import Stream, is_nan, update_all
from tui_trader.model import BUY, SELL, Candle
from tui_trader.strategy import Confirmation, MarketContext, NoSetup, Setup, Strategy, StrategyParams

NAN = float("nan")


class DonchianParams(StrategyParams):
    period: int = Field(default=20, ge=2, le=500, description="entry channel: previous bars whose high/low a close breaks")
    exit_period: int = Field(default=10, ge=2, le=500, description="exit channel: previous bars whose low/high ends a long/short")
    atr_period: int = Field(default=14, ge=2, le=100)
    atr_lookback: int = Field(default=5, ge=1, le=100, description="atr_expanding: ATR above its value this many bars ago")
    volume_period: int = Field(default=20, ge=2, le=500, description="bars in the volume average")
    volume_mult: float = Field(default=1.5, gt=0, le=20, description="volume_surge: volume above this multiple of its average")

    @model_validator(mode="after")
    def _exit_inside_entry(self) -> DonchianParams:
        if self.exit_period >= self.period:
            raise ValueError(f"exit_period ({self.exit_period}) must be below period ({self.period})")
        return self


class DonchianBreakout(Strategy):
    name = "donchian_breakout"
    description = "Donchian channel breakout with a turtle exit channel and volume/ATR/close-strength confirmations"
    Params = DonchianParams
    confirmations = ("volume_surge", "atr_expanding", "close_strength")
    shareable = True

    def __init__(self, params: StrategyParams, timeframe: str) -> None:
        super().__init__(params, timeframe)
        p: DonchianParams = params  # type: ignore[assignment]
        self.p = p
        self.channel = Stream("DONCHIAN", timeperiod=p.period)  # (highest high, middle, lowest low)
        self.exit_channel = Stream("DONCHIAN", timeperiod=p.exit_period)
        self.volume_avg = Stream("SMA", source="volume", timeperiod=p.volume_period)
        self.atr = Stream("ATR", timeperiod=p.atr_period)
        self._streams = (self.channel, self.exit_channel, self.volume_avg, self.atr)
        # Levels as of the previous bar (what this bar's close is compared with).
        self.upper_prev = self.lower_prev = self.exit_upper_prev = self.exit_lower_prev = self.volume_avg_prev = NAN
        self.atrs: deque[float] = deque(maxlen=p.atr_lookback + 1)
        self.candle: Candle | None = None
        self._ready = False

    @property
    def warmup(self) -> int:
        return max(500, 2 * self.p.period, 2 * self.p.volume_period)

    def update(self, candle: Candle) -> None:
        if candle.timeframe != self.timeframe:
            return
        self.upper_prev, _, self.lower_prev = self.channel.value  # type: ignore[misc]
        self.exit_upper_prev, _, self.exit_lower_prev = self.exit_channel.value  # type: ignore[misc]
        self.volume_avg_prev = self.volume_avg.value  # type: ignore[assignment]
        update_all(self._streams, candle)
        self.atrs.append(self.atr.value)  # type: ignore[arg-type]
        self.candle = candle

    def warm_up(self, candles: Mapping[str, Sequence[Candle]]) -> None:
        # the last bars replayed one by one fill the ATR history and the previous levels
        self.fill_and_replay(self._streams, candles.get(self.timeframe, []), self.p.atr_lookback + 1)

    def ready(self) -> bool:
        if not self._ready:
            self._ready = (not any(is_nan(s.value) for s in self._streams) and not is_nan(self.upper_prev)
                           and not is_nan(self.volume_avg_prev) and len(self.atrs) == self.atrs.maxlen
                           and not is_nan(self.atrs[0]))
        return self._ready

    def indicators(self) -> dict[str, float]:
        return {"upper": self.upper_prev, "lower": self.lower_prev, "atr": self.atr.value,  # type: ignore[dict-item]
                "volume_avg": self.volume_avg_prev}

    def scan(self, ctx: MarketContext) -> Setup | NoSetup:
        c: Candle = self.candle  # type: ignore[assignment]
        p = self.p
        if c.close > self.upper_prev:
            side, reason = BUY, f"close {c.close:.6g} broke above the {p.period}-bar high {self.upper_prev:.6g}"
        elif c.close < self.lower_prev:
            side, reason = SELL, f"close {c.close:.6g} broke below the {p.period}-bar low {self.lower_prev:.6g}"
        else:
            return NoSetup(f"close {c.close:.6g} inside the {p.period}-bar channel {self.lower_prev:.6g}..{self.upper_prev:.6g}")
        span = c.high - c.low
        where = (c.close - c.low) / span if span > 0 else 0.5
        strong = where >= 2 / 3 if side is BUY else where <= 1 / 3
        atr_now, atr_then = self.atrs[-1], self.atrs[0]
        checks = (
            Confirmation("volume_surge", c.volume > p.volume_mult * self.volume_avg_prev,
                         f"volume {c.volume:.4g} vs {p.volume_mult:g} x avg {self.volume_avg_prev:.4g}"),
            Confirmation("atr_expanding", atr_now > atr_then,
                         f"ATR {atr_now:.6g} vs {atr_then:.6g} {p.atr_lookback} bars ago"),
            Confirmation("close_strength", strong, f"close at {where:.0%} of the bar's range"),
        )
        return Setup(side, reason, checks, atr=atr_now)

    def exit(self, ctx: MarketContext) -> str | None:
        c: Candle = self.candle  # type: ignore[assignment]
        n = self.p.exit_period
        if ctx.position_side is BUY and c.close < self.exit_lower_prev:
            return f"close {c.close:.6g} fell below the {n}-bar low {self.exit_lower_prev:.6g}"
        if ctx.position_side is SELL and c.close > self.exit_upper_prev:
            return f"close {c.close:.6g} rose above the {n}-bar high {self.exit_upper_prev:.6g}"
        return None
