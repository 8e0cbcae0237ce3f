"""Range mean reversion: fade a close at or beyond a Bollinger band when RSI is
stretched, but only while the Choppiness Index says the market ranges. Long at or
below the lower band with RSI at or below `oversold`, short at or above the upper
band with RSI at or above `overbought`. The stop sits `stop_atr` ATRs beyond the
band (or the candle's extreme, whichever is further out); the target is the middle
band. Leave when the close gets back to the middle band or RSI reaches 50.

CHOP below `chop_min` is a hard filter (a trend, no setup). Confirmations: RSI
beyond the stricter extreme levels; the candle closes in the reversal direction;
volume is not a breakout spike against the average of the bars before it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from pydantic import Field, model_validator

from tui_trader.indicators import Chop, Stream, is_nan, update_all
from tui_trader.model import BUY, SELL, Candle
from tui_trader.strategy import Confirmation, MarketContext, NoSetup, Setup, Strategy, StrategyParams

NAN = float("nan")


class RangeReversionParams(StrategyParams):
    bb_period: int = Field(default=20, ge=5, le=200, description="Bollinger band period")
    bb_dev: float = Field(default=2.0, gt=0, le=5, description="band width in population standard deviations")
    rsi_period: int = Field(default=14, ge=2, le=100)
    oversold: float = Field(default=30.0, ge=1, le=50, description="RSI at or below this allows a long")
    overbought: float = Field(default=70.0, ge=50, le=99, description="RSI at or above this allows a short")
    extreme_oversold: float = Field(default=25.0, ge=0, le=50, description="rsi_extreme confirms a long at or below this")
    extreme_overbought: float = Field(default=75.0, ge=50, le=100, description="rsi_extreme confirms a short at or above this")
    chop_period: int = Field(default=14, ge=2, le=200)
    # CHOP includes the signal bar, whose push to the band lowers it: on BTCUSDT 1h (2020-2025) the classic
    # 61.8 coincided with a setup once in 5.7 years, 55 fifteen times, 50 64 times and 45 209 times.
    chop_min: float = Field(default=45.0, ge=0, le=100, description="trade only while CHOP is at or above this (range)")
    atr_period: int = Field(default=14, ge=2, le=100)
    stop_atr: float = Field(default=1.0, gt=0, le=10, description="stop distance beyond the band, in ATRs")
    volume_period: int = Field(default=20, ge=2, le=200)
    volume_spike: float = Field(default=2.0, gt=0, le=20, description="volume above this multiple of its average is a spike")
    exit_on_rsi_mid: bool = Field(default=True, description="also leave when RSI gets back to 50")

    @model_validator(mode="after")
    def _levels_ordered(self) -> RangeReversionParams:
        if not self.extreme_oversold <= self.oversold < self.overbought <= self.extreme_overbought:
            raise ValueError("need extreme_oversold <= oversold < overbought <= extreme_overbought, got "
                             f"{self.extreme_oversold:g}, {self.oversold:g}, {self.overbought:g}, {self.extreme_overbought:g}")
        return self


class RangeReversion(Strategy):
    name = "range_reversion"
    description = "Bollinger band + RSI mean reversion while the Choppiness Index says range; target the middle band"
    Params = RangeReversionParams
    confirmations = ("rsi_extreme", "reversal_candle", "volume_normal")
    shareable = True

    def __init__(self, params: StrategyParams, timeframe: str) -> None:
        super().__init__(params, timeframe)
        p: RangeReversionParams = params  # type: ignore[assignment]
        self.p = p
        self.bands = Stream("BBANDS", timeperiod=p.bb_period, nbdevup=p.bb_dev, nbdevdn=p.bb_dev, matype=0)
        self.rsi = Stream("RSI", timeperiod=p.rsi_period)
        self.atr = Stream("ATR", timeperiod=p.atr_period)
        self.chop = Chop(p.chop_period)
        self.volume_avg = Stream("SMA", source="volume", timeperiod=p.volume_period)
        self._streams: tuple[Stream | Chop, ...] = (self.bands, self.rsi, self.atr, self.chop, self.volume_avg)
        self.candle: Candle | None = None
        self.prior_volume_avg = NAN  # average of the volume_period bars before the last candle
        self._ready = False

    @property
    def warmup(self) -> int:
        # Wilder smoothing (RSI, ATR) weighs its seed by ((n-1)/n)^bars < e^-35 ~ 6e-16 after 35n bars.
        return max(500, 35 * max(self.p.rsi_period, self.p.atr_period))

    def update(self, candle: Candle) -> None:
        if candle.timeframe != self.timeframe:
            return
        self.prior_volume_avg = self.volume_avg.value  # type: ignore[assignment]
        update_all(self._streams, candle)
        self.candle = candle

    def warm_up(self, candles: Mapping[str, Sequence[Candle]]) -> None:
        # the last bar replayed sets prior_volume_avg and the last candle
        self.fill_and_replay(self._streams, candles.get(self.timeframe, []), 1)

    def ready(self) -> bool:
        if not self._ready:  # once every stream has its lookback it stays ready
            self._ready = all(s.ready for s in self._streams) and not is_nan(self.prior_volume_avg)
        return self._ready

    def indicators(self) -> dict[str, float]:
        upper, middle, lower = self.bands.value  # type: ignore[misc]
        return {
            "bb_upper": upper,
            "bb_middle": middle,
            "bb_lower": lower,
            "rsi": self.rsi.value,  # type: ignore[dict-item]
            "chop": self.chop.value,
            "atr": self.atr.value,  # type: ignore[dict-item]
        }

    def scan(self, ctx: MarketContext) -> Setup | NoSetup:
        p, candle = self.p, self.candle
        assert candle is not None  # ready() needs candles
        chop = self.chop.value
        if chop < p.chop_min:
            return NoSetup(f"trending: CHOP {chop:.1f} < {p.chop_min:g}")
        upper, middle, lower = self.bands.value  # type: ignore[misc]
        rsi: float = self.rsi.value  # type: ignore[assignment]
        close = candle.close
        if close <= lower and rsi <= p.oversold:
            side = BUY
        elif close >= upper and rsi >= p.overbought:
            side = SELL
        elif close <= lower or close >= upper:
            band, level = ("lower", f"> {p.oversold:g}") if close <= lower else ("upper", f"< {p.overbought:g}")
            return NoSetup(f"close {close:.6g} beyond the {band} band but RSI {rsi:.1f} {level}")
        else:
            return NoSetup(f"close {close:.6g} inside the bands {lower:.6g}..{upper:.6g} (RSI {rsi:.1f})")
        if upper <= lower:
            return NoSetup("the bands have no width: nothing to revert to")
        atr: float = self.atr.value  # type: ignore[assignment]
        long = side is BUY
        extreme = rsi <= p.extreme_oversold if long else rsi >= p.extreme_overbought
        reversal = candle.close > candle.open if long else candle.close < candle.open
        spike_limit = p.volume_spike * self.prior_volume_avg
        checks = (
            Confirmation("rsi_extreme", extreme,
                         f"RSI {rsi:.1f} vs {p.extreme_oversold if long else p.extreme_overbought:g}"),
            Confirmation("reversal_candle", reversal,
                         f"close {candle.close:.6g} {'>' if long else '<'} open {candle.open:.6g}: "
                         f"{'is' if reversal else 'not'} a {'bullish' if long else 'bearish'} candle"),
            Confirmation("volume_normal", candle.volume <= spike_limit,
                         f"volume {candle.volume:.4g} vs {p.volume_spike:g}x avg {self.prior_volume_avg:.4g}"),
        )
        if long:
            stop = min(lower, candle.low) - p.stop_atr * atr
            reason = f"close {close:.6g} at/below lower band {lower:.6g}, RSI {rsi:.1f} <= {p.oversold:g}, CHOP {chop:.1f}"
        else:
            stop = max(upper, candle.high) + p.stop_atr * atr
            reason = f"close {close:.6g} at/above upper band {upper:.6g}, RSI {rsi:.1f} >= {p.overbought:g}, CHOP {chop:.1f}"
        return Setup(side, reason, checks, stop=stop, target=middle, atr=atr)

    def exit(self, ctx: MarketContext) -> str | None:
        if ctx.position_side is None or self.candle is None:
            return None
        middle: float = self.bands.value[1]  # type: ignore[index]
        rsi: float = self.rsi.value  # type: ignore[assignment]
        close = self.candle.close
        if ctx.position_side is BUY:
            if close >= middle:
                return f"close {close:.6g} back at the middle band {middle:.6g}"
            if self.p.exit_on_rsi_mid and rsi >= 50:
                return f"RSI {rsi:.1f} back to 50"
        else:
            if close <= middle:
                return f"close {close:.6g} back at the middle band {middle:.6g}"
            if self.p.exit_on_rsi_mid and rsi <= 50:
                return f"RSI {rsi:.1f} back to 50"
        return None
