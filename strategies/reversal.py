"""Exhaustion reversal: a reversal candle after an RSI divergence or an RSI extreme.

The pattern bars are this bar and the previous one; their lowest low (highest
high) and lowest (highest) RSI are the pattern's. Long when a bullish reversal
candle closes AND (a bullish divergence OR RSI at an extreme); short mirrored.

- Bullish divergence: the pattern low is below the last swing low, whose pivot
  bar is at most `lookback` bars back, while the pattern RSI is above the RSI at
  that pivot. A swing low is the lowest low of the 2 x `swing` + 1 bars centred
  on it, strictly below the `swing` bars before it; it is known `swing` bars
  later (causal).
- RSI extreme: pattern RSI <= `extreme_low` (long), >= `extreme_high` (short).
- Bullish candle: engulfing (previous bar bearish, this one bullish with its
  body covering the previous body and larger: open <= previous close, close >=
  previous open) or hammer (range > 0, lower wick >= 2 x body, upper wick <=
  0.25 x range). Bearish: engulfing mirrored, or shooting star (upper wick >=
  2 x body, lower wick <= 0.25 x range).

Exit: a long when RSI reaches `extreme_high`, a short when it reaches
`extreme_low`. Stop and target come from the bot's risk profile (ATR, R).

Confirmations (what passed): divergence, rsi_extreme, reversal_candle (always,
it is required), volume_climax (volume above `volume_mult` x its average over
the previous `volume_period` bars).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping, Sequence

from pydantic import Field, model_validator

from tui_trader.indicators import Stream, is_nan, update_all
from tui_trader.model import BUY, SELL, Candle, Side
from tui_trader.strategy import Confirmation, MarketContext, NoSetup, Setup, Strategy, StrategyParams

NAN = float("nan")
WICK_TO_BODY = 2.0  # hammer / shooting star: the long wick is at least this many bodies
SHORT_WICK_MAX = 0.25  # ... and the opposite wick at most this fraction of the range


class ReversalParams(StrategyParams):
    rsi_period: int = Field(default=14, ge=2, le=100)
    extreme_low: float = Field(default=30.0, ge=0, lt=50, description="rsi_extreme (long): RSI at or below this")
    extreme_high: float = Field(default=70.0, gt=50, le=100, description="rsi_extreme (short): RSI at or above this")
    lookback: int = Field(default=30, ge=3, le=200, description="divergence: the swing's pivot at most this many bars back")
    swing: int = Field(default=2, ge=1, le=10, description="bars each side of a swing pivot")
    volume_period: int = Field(default=20, ge=2, le=500, description="bars in the volume average")
    volume_mult: float = Field(default=2.0, gt=0, le=20, description="volume_climax: volume above this multiple of its average")
    atr_period: int = Field(default=14, ge=2, le=100)

    @model_validator(mode="after")
    def _lookback_beyond_swing(self) -> ReversalParams:
        if self.lookback <= self.swing:
            raise ValueError(f"lookback ({self.lookback}) must exceed swing ({self.swing})")
        return self


def hammer(c: Candle) -> bool:
    body, span = abs(c.close - c.open), c.high - c.low
    lower, upper = min(c.open, c.close) - c.low, c.high - max(c.open, c.close)
    return span > 0 and lower >= WICK_TO_BODY * body and upper <= SHORT_WICK_MAX * span


def shooting_star(c: Candle) -> bool:
    body, span = abs(c.close - c.open), c.high - c.low
    lower, upper = min(c.open, c.close) - c.low, c.high - max(c.open, c.close)
    return span > 0 and upper >= WICK_TO_BODY * body and lower <= SHORT_WICK_MAX * span


def bullish_engulfing(prev: Candle, c: Candle) -> bool:
    return c.open <= prev.close < prev.open <= c.close and c.close - c.open > prev.open - prev.close


def bearish_engulfing(prev: Candle, c: Candle) -> bool:
    return c.open >= prev.close > prev.open >= c.close and c.open - c.close > prev.close - prev.open


class Reversal(Strategy):
    name = "reversal"
    description = "Reversal candle after an RSI divergence or extreme, with a volume-climax confirmation"
    Params = ReversalParams
    confirmations = ("divergence", "rsi_extreme", "reversal_candle", "volume_climax")
    shareable = True

    def __init__(self, params: StrategyParams, timeframe: str) -> None:
        super().__init__(params, timeframe)
        p: ReversalParams = params  # type: ignore[assignment]
        self.p = p
        self.rsi = Stream("RSI", timeperiod=p.rsi_period)
        self.volume_avg = Stream("SMA", source="volume", timeperiod=p.volume_period)
        self.atr = Stream("ATR", timeperiod=p.atr_period)
        self._streams = (self.rsi, self.volume_avg, self.atr)
        self.window: deque[tuple[float, float, float]] = deque(maxlen=2 * p.swing + 1)  # (low, high, rsi)
        self.bar = 0  # index of the newest bar
        self.swing_low: tuple[int, float, float] | None = None  # (bar, low, rsi) of the last pivot low
        self.swing_high: tuple[int, float, float] | None = None
        self.prev: Candle | None = None
        self.candle: Candle | None = None
        self.prev_rsi = self.rsi_now = self.volume_avg_prev = NAN
        self._ready = False

    @property
    def warmup(self) -> int:
        return max(500, 2 * self.p.volume_period)

    def update(self, candle: Candle) -> None:
        if candle.timeframe != self.timeframe:
            return
        self.volume_avg_prev = self.volume_avg.value  # type: ignore[assignment]
        update_all(self._streams, candle)
        self.prev, self.candle = self.candle, candle
        self.prev_rsi, self.rsi_now = self.rsi_now, self.rsi.value  # type: ignore[assignment]
        self.bar += 1
        window = self.window
        window.append((candle.low, candle.high, self.rsi_now))
        if len(window) == window.maxlen:
            s = self.p.swing
            bars = tuple(window)
            low, high, rsi = bars[s]
            if rsi != rsi:  # no RSI at the pivot yet: nothing to diverge from
                return
            # loops, not all(): per bot per candle, and they mostly stop at the first bar
            for other in bars[:s]:
                if not low < other[0]:
                    break
            else:
                for other in bars[s + 1:]:
                    if not low <= other[0]:
                        break
                else:
                    self.swing_low = (self.bar - s, low, rsi)
            for other in bars[:s]:
                if not high > other[1]:
                    break
            else:
                for other in bars[s + 1:]:
                    if not high >= other[1]:
                        break
                else:
                    self.swing_high = (self.bar - s, high, rsi)

    def warm_up(self, candles: Mapping[str, Sequence[Candle]]) -> None:
        # the last bars replayed one by one cover every swing that can still count
        self.fill_and_replay(self._streams, candles.get(self.timeframe, []), self.p.lookback + 2 * self.p.swing + 2)

    def ready(self) -> bool:
        if not self._ready:
            self._ready = (not any(is_nan(s.value) for s in self._streams) and not is_nan(self.prev_rsi)
                           and not is_nan(self.volume_avg_prev))
        return self._ready

    def indicators(self) -> dict[str, float]:
        return {"rsi": self.rsi_now, "atr": self.atr.value, "volume_avg": self.volume_avg_prev}  # type: ignore[dict-item]

    def _divergence(self, side: Side) -> Confirmation:
        prev: Candle = self.prev  # type: ignore[assignment]
        c: Candle = self.candle  # type: ignore[assignment]
        long = side is BUY
        swing = self.swing_low if long else self.swing_high
        kind = "low" if long else "high"
        if swing is None or self.bar - swing[0] > self.p.lookback:
            return Confirmation("divergence", False, f"no swing {kind} in the last {self.p.lookback} bars")
        _, level, swing_rsi = swing
        if long:
            price, rsi = min(c.low, prev.low), min(self.rsi_now, self.prev_rsi)
            passed = price < level and rsi > swing_rsi
        else:
            price, rsi = max(c.high, prev.high), max(self.rsi_now, self.prev_rsi)
            passed = price > level and rsi < swing_rsi
        detail = f"{kind} {price:.6g} vs swing {kind} {level:.6g}, RSI {rsi:.1f} vs {swing_rsi:.1f}"
        return Confirmation("divergence", passed, detail)

    def _extreme(self, side: Side) -> Confirmation:
        if side is BUY:
            rsi = min(self.rsi_now, self.prev_rsi)
            return Confirmation("rsi_extreme", rsi <= self.p.extreme_low, f"RSI {rsi:.1f} vs {self.p.extreme_low:g} or below")
        rsi = max(self.rsi_now, self.prev_rsi)
        return Confirmation("rsi_extreme", rsi >= self.p.extreme_high, f"RSI {rsi:.1f} vs {self.p.extreme_high:g} or above")

    def scan(self, ctx: MarketContext) -> Setup | NoSetup:
        prev: Candle = self.prev  # type: ignore[assignment]
        c: Candle = self.candle  # type: ignore[assignment]
        bullish = "bullish engulfing" if bullish_engulfing(prev, c) else "hammer" if hammer(c) else None
        bearish = "bearish engulfing" if bearish_engulfing(prev, c) else "shooting star" if shooting_star(c) else None
        if bullish is None and bearish is None:  # most candles
            return NoSetup(f"no reversal candle (RSI {self.rsi_now:.1f})")
        missed = None
        for side, pattern in ((BUY, bullish), (SELL, bearish)):
            if pattern is None:
                continue
            divergence, extreme = self._divergence(side), self._extreme(side)
            if not (divergence.passed or extreme.passed):
                missed = missed or f"{pattern} without divergence or RSI extreme ({divergence.detail}; {extreme.detail})"
                continue
            climax = Confirmation("volume_climax", c.volume > self.p.volume_mult * self.volume_avg_prev,
                                  f"volume {c.volume:.4g} vs {self.p.volume_mult:g} x avg {self.volume_avg_prev:.4g}")
            why = " and ".join(x.name for x in (divergence, extreme) if x.passed)
            checks = (divergence, extreme, Confirmation("reversal_candle", True, pattern), climax)
            return Setup(side, f"{pattern} with {why}", checks, atr=self.atr.value)  # type: ignore[arg-type]
        return NoSetup(missed)  # type: ignore[arg-type]

    def exit(self, ctx: MarketContext) -> str | None:
        if ctx.position_side is BUY and self.rsi_now >= self.p.extreme_high:
            return f"RSI {self.rsi_now:.1f} reached {self.p.extreme_high:g}"
        if ctx.position_side is SELL and self.rsi_now <= self.p.extreme_low:
            return f"RSI {self.rsi_now:.1f} reached {self.p.extreme_low:g}"
        return None
