"""Stochastic RSI on the bot's timeframe, confirmed by a higher timeframe.

TA-Lib STOCHRSI: %K = where RSI(`rsi_period`) sits in its range over the last
`stoch_period` bars (0..100, NOT smoothed: this is not TradingView's Stoch RSI),
%D = SMA(`d_period`) of %K.

Long when the own-timeframe %K crosses above %D (previous %K <= previous %D, now
%K > %D) coming from below `oversold` (previous %K < oversold) AND the higher
timeframe agrees (its %K > %D, or its %K rose on its last closed candle). Short
mirrored with `overbought`. The higher timeframe is read only from closed candles
of it, so an open higher candle never influences a decision.

Exit: a long on an own-timeframe %K cross below %D coming from above
`overbought`; a short mirrored. Stop and target come from the risk profile.

Confirmations: higher_tf_agrees and k_cross_in_zone (both required, reported);
trend_filter: the close above (long) / below (short) EMA(`ema_period`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Literal

from pydantic import Field

from tui_trader.indicators import Stream, is_nan
from tui_trader.model import BUY, SELL, TIMEFRAME_MINUTES, Candle, Side
from tui_trader.strategy import Confirmation, MarketContext, NoSetup, ParamsError, Setup, Strategy, StrategyParams

NAN = float("nan")
NEXT_TIMEFRAME = {"1m": "15m", "5m": "1h", "15m": "4h", "1h": "4h", "4h": "1d"}


class MtfStochRsiParams(StrategyParams):
    higher_timeframe: Literal["auto", "5m", "15m", "1h", "4h", "1d"] = Field(
        default="auto", description="confirming timeframe; auto: 1m->15m, 5m->1h, 15m->4h, 1h->4h, 4h->1d")
    rsi_period: int = Field(default=14, ge=2, le=100)
    stoch_period: int = Field(default=14, ge=2, le=100, description="bars of RSI in the %K range")
    d_period: int = Field(default=3, ge=1, le=50, description="SMA of %K giving %D")
    oversold: float = Field(default=20.0, ge=0, lt=50)
    overbought: float = Field(default=80.0, gt=50, le=100)
    ema_period: int = Field(default=50, ge=2, le=400, description="trend_filter EMA on the bot's timeframe")
    atr_period: int = Field(default=14, ge=2, le=100)


class MtfStochRsi(Strategy):
    name = "mtf_stochrsi"
    description = "Stochastic RSI %K/%D cross out of a zone, confirmed by the higher timeframe's StochRSI"
    Params = MtfStochRsiParams
    confirmations = ("higher_tf_agrees", "k_cross_in_zone", "trend_filter")
    shareable = True

    def __init__(self, params: StrategyParams, timeframe: str) -> None:
        super().__init__(params, timeframe)
        p: MtfStochRsiParams = params  # type: ignore[assignment]
        self.p = p
        higher = NEXT_TIMEFRAME.get(timeframe) if p.higher_timeframe == "auto" else p.higher_timeframe
        if higher is None or TIMEFRAME_MINUTES[higher] <= TIMEFRAME_MINUTES[timeframe]:
            raise ParamsError([f"params.higher_timeframe: {higher or 'auto'} is not a timeframe above {timeframe}"])
        self.higher = higher
        stoch = {"timeperiod": p.rsi_period, "fastk_period": p.stoch_period, "fastd_period": p.d_period, "fastd_matype": 0}
        self.stoch = Stream("STOCHRSI", **stoch)
        self.ema = Stream("EMA", timeperiod=p.ema_period)
        self.atr = Stream("ATR", timeperiod=p.atr_period)
        self._streams = (self.stoch, self.ema, self.atr)
        self.higher_stoch = Stream("STOCHRSI", **stoch)
        self.k = self.d = self.prev_k = self.prev_d = self.close = NAN
        self.higher_k = self.higher_d = self.higher_prev_k = NAN
        self._ready = False

    def timeframes(self) -> tuple[str, ...]:
        return (self.timeframe, self.higher)

    @property
    def warmup(self) -> int:
        return max(500, 10 * self.p.ema_period)

    def update(self, candle: Candle) -> None:
        if candle.timeframe == self.timeframe:
            self.prev_k, self.prev_d = self.k, self.d
            self.k, self.d = self.stoch.update(candle)  # type: ignore[misc]
            self.ema.update(candle)
            self.atr.update(candle)
            self.close = candle.close
        elif candle.timeframe == self.higher:
            self.higher_prev_k = self.higher_k
            self.higher_k, self.higher_d = self.higher_stoch.update(candle)  # type: ignore[misc]

    def warm_up(self, candles: Mapping[str, Sequence[Candle]]) -> None:
        higher = candles.get(self.higher, [])
        self.higher_stoch.fill(higher[:-1])
        self.higher_k, self.higher_d = self.higher_stoch.value  # type: ignore[misc]
        own = candles.get(self.timeframe, [])
        for stream in self._streams:
            stream.fill(own[:-1])
        self.k, self.d = self.stoch.value  # type: ignore[misc]
        for candle in (*higher[-1:], *own[-1:]):  # each sets its previous and current values
            self.update(candle)

    def ready(self) -> bool:
        if not self._ready:
            self._ready = not any(is_nan(x) for x in (self.prev_k, self.k, self.ema.value, self.atr.value,  # type: ignore[arg-type]
                                                      self.higher_prev_k, self.higher_k))
        return self._ready

    def indicators(self) -> dict[str, float]:
        return {"k": self.k, "d": self.d, "higher_k": self.higher_k, "higher_d": self.higher_d,
                "ema": self.ema.value, "atr": self.atr.value}  # type: ignore[dict-item]

    def _crossed(self, side: Side) -> bool:
        if side is BUY:
            return self.prev_k <= self.prev_d and self.k > self.d
        return self.prev_k >= self.prev_d and self.k < self.d

    def _in_zone(self, side: Side) -> bool:
        return self.prev_k < self.p.oversold if side is BUY else self.prev_k > self.p.overbought

    def scan(self, ctx: MarketContext) -> Setup | NoSetup:
        p = self.p
        side = BUY if self._crossed(BUY) else SELL if self._crossed(SELL) else None
        if side is None:
            return NoSetup(f"no %K/%D cross: K {self.k:.1f}, D {self.d:.1f}")
        long = side is BUY
        direction, zone, level = ("above", "oversold", p.oversold) if long else ("below", "overbought", p.overbought)
        cross = f"%K crossed {direction} %D from {self.prev_k:.1f}"
        if not self._in_zone(side):
            return NoSetup(f"{cross}, not from {zone} {level:g}")
        hk, hd, hprev = self.higher_k, self.higher_d, self.higher_prev_k
        agrees = (hk > hd or hk > hprev) if long else (hk < hd or hk < hprev)
        higher = f"{self.higher} K {hk:.1f} vs D {hd:.1f}, previous K {hprev:.1f}"
        if not agrees:
            return NoSetup(f"{cross}; {self.higher} StochRSI disagrees ({higher})")
        ema: float = self.ema.value  # type: ignore[assignment]
        checks = (
            Confirmation("higher_tf_agrees", True, higher),
            Confirmation("k_cross_in_zone", True, f"previous K {self.prev_k:.1f} vs {zone} {level:g}"),
            Confirmation("trend_filter", self.close > ema if long else self.close < ema,
                         f"close {self.close:.6g} vs EMA{p.ema_period} {ema:.6g}"),
        )
        return Setup(side, f"{cross} ({zone}), {self.higher} agrees", checks, atr=self.atr.value)  # type: ignore[arg-type]

    def exit(self, ctx: MarketContext) -> str | None:
        if ctx.position_side is None:
            return None
        against = ctx.position_side.opposite
        if self._crossed(against) and self._in_zone(against):
            zone = "overbought" if against is SELL else "oversold"
            return f"%K crossed {'below' if against is SELL else 'above'} %D from {self.prev_k:.1f} ({zone})"
        return None
