"""Market regime of one symbol and timeframe: trend up, trend down, range or volatile.

Features: ADX (trend strength), NATR against its own slow average (volatility
expansion), Bollinger width against its slow average (squeeze) and the slope of
a 50-bar EMA (direction). Hysteresis keeps it from flapping: ADX enters a trend
above `adx_trend` and leaves it below `adx_exit`, and a new regime must hold for
`confirm_bars` closed bars before it replaces the current one.

Pure: one tracker per (symbol, timeframe), shared by every bot that trades it.
"""

from __future__ import annotations

import math

from dataclasses import dataclass

from tui_trader.indicators import Stream, is_nan
from tui_trader.model import Candle, Regime


@dataclass(frozen=True, slots=True)
class RegimeSettings:
    adx_trend: float = 25.0
    adx_exit: float = 20.0
    volatile_ratio: float = 1.6  # NATR at this multiple of its slow average is volatile
    calm_ratio: float = 1.2  # ...and must fall below this to stop being volatile
    slope_bars: int = 5
    min_slope_pct: float = 0.05  # EMA move over slope_bars, in % of price, to call a direction
    confirm_bars: int = 5
    baseline_alpha: float = 2 / 201  # slow averages of NATR and Bollinger width (~200 bars)


@dataclass(frozen=True, slots=True)
class RegimeFeatures:
    adx: float
    natr_ratio: float
    bb_width_ratio: float
    slope_pct: float

    def as_dict(self) -> dict[str, float]:
        return {"adx": round(self.adx, 2), "natr_ratio": round(self.natr_ratio, 3),
                "bb_width_ratio": round(self.bb_width_ratio, 3), "slope_pct": round(self.slope_pct, 4)}


class RegimeTracker:
    __slots__ = ("settings", "regime", "features", "features_dict", "_adx", "_natr", "_bb", "_ema", "_emas",
                 "_natr_base", "_width_base", "_candidate", "_candidate_bars", "bars", "_last_close")

    def __init__(self, settings: RegimeSettings | None = None) -> None:
        self.settings = settings or RegimeSettings()
        self.regime = Regime.UNKNOWN
        self.features: RegimeFeatures | None = None
        self.features_dict: dict[str, float] | None = None  # for decision details, built once per candle
        self._adx = Stream("ADX", timeperiod=14)
        self._natr = Stream("NATR", timeperiod=14)
        self._bb = Stream("BBANDS", timeperiod=20, nbdevup=2.0, nbdevdn=2.0, matype=0)
        self._ema = Stream("EMA", timeperiod=50)
        self._emas: list[float] = []
        self._natr_base = 0.0
        self._width_base = 0.0
        self._candidate = Regime.UNKNOWN
        self._candidate_bars = 0
        self.bars = 0
        self._last_close = math.nan

    @property
    def atr(self) -> float:
        """The last candle's ATR(14) in price units (NaN until warm), for stop management."""
        natr = self._natr.value
        return natr * self._last_close / 100 if isinstance(natr, float) else math.nan

    def update(self, candle: Candle) -> Regime:
        """Take a closed candle; return the (possibly new) regime."""
        self._last_close = candle.close
        self.bars += 1
        adx = self._adx.update(candle)
        natr = self._natr.update(candle)
        upper, middle, lower = self._bb.update(candle)  # type: ignore[misc]
        ema = self._ema.update(candle)
        if is_nan(ema):
            return self.regime
        self._emas.append(ema)  # type: ignore[arg-type]
        if len(self._emas) > self.settings.slope_bars + 1:
            del self._emas[0]
        if is_nan(adx) or is_nan(natr) or is_nan(upper) or len(self._emas) <= self.settings.slope_bars:
            return self.regime
        width = (upper - lower) / middle if middle else 0.0
        a = self.settings.baseline_alpha
        if self._natr_base == 0.0:
            self._natr_base, self._width_base = natr, width  # type: ignore[assignment]
        else:
            self._natr_base += a * (natr - self._natr_base)  # type: ignore[operator]
            self._width_base += a * (width - self._width_base)
        slope = (self._emas[-1] - self._emas[0]) / self._emas[0] * 100 if self._emas[0] else 0.0
        self.features = RegimeFeatures(
            adx=adx,  # type: ignore[arg-type]
            natr_ratio=natr / self._natr_base if self._natr_base else 1.0,  # type: ignore[operator]
            bb_width_ratio=width / self._width_base if self._width_base else 1.0,
            slope_pct=slope,
        )
        self.features_dict = self.features.as_dict()
        return self._settle(self._classify(self.features))

    def _classify(self, f: RegimeFeatures) -> Regime:
        s = self.settings
        volatile_threshold = s.calm_ratio if self.regime is Regime.VOLATILE else s.volatile_ratio
        if f.natr_ratio >= volatile_threshold:
            return Regime.VOLATILE
        # A trend is entered on ADX >= adx_trend and a clear slope, and kept while ADX >= adx_exit
        # and the slope keeps its sign.
        if self.regime is Regime.TREND_UP and f.adx >= s.adx_exit and f.slope_pct > 0:
            return Regime.TREND_UP
        if self.regime is Regime.TREND_DOWN and f.adx >= s.adx_exit and f.slope_pct < 0:
            return Regime.TREND_DOWN
        if f.adx >= s.adx_trend and f.slope_pct >= s.min_slope_pct:
            return Regime.TREND_UP
        if f.adx >= s.adx_trend and f.slope_pct <= -s.min_slope_pct:
            return Regime.TREND_DOWN
        return Regime.RANGE

    def _settle(self, observed: Regime) -> Regime:
        if observed is self.regime:
            self._candidate_bars = 0
            return self.regime
        if observed is self._candidate:
            self._candidate_bars += 1
        else:
            self._candidate, self._candidate_bars = observed, 1
        if self._candidate_bars >= self.settings.confirm_bars or self.regime is Regime.UNKNOWN:
            self.regime = observed
            self._candidate_bars = 0
        return self.regime
