"""The sma_cross bot written as a backtesting.py strategy, for the parity test and the benchmark.

Signals are backtesting.py's own `crossover` on TA-Lib SMAs (sma_cross's rule: strict on
both bars); stop, target and size come from the same pure function the bot cycle calls
(tui_trader.risk), on backtesting.py's equity. An opposite cross closes the position and
opens the other side (`position.close(); buy()`), as the always-in-market bot reverses;
a cross whose entry cannot be sized only closes it, as the cycle exits on a blocked reversal.
Sizes are whole units: use an instrument whose qty step is 1.
"""

from __future__ import annotations

from decimal import Decimal

import pandas as pd
import talib
from backtesting import Strategy
from backtesting.lib import crossover

from tui_trader.backtest.series import Bars
from tui_trader.config import RiskProfile
from tui_trader.model import Instrument, Side
from tui_trader.risk import Exact, Valuation, entry_sizing


def frame(bars: Bars) -> pd.DataFrame:
    index = pd.to_datetime(bars.ts, unit="ms")
    return pd.DataFrame({"Open": bars.open, "High": bars.high, "Low": bars.low, "Close": bars.close,
                         "Volume": bars.volume}, index=index)


def _exact(instrument: Instrument, close: float, equity: float) -> Exact:
    exact = Decimal(repr(equity))
    return instrument.round_price(close), exact, exact


def mirror(risk: RiskProfile, instrument: Instrument, capital: Decimal, taker_fee: Decimal, fast: int = 10,
           slow: int = 20, atr_period: int = 14) -> type[Strategy]:
    class SmaCrossMirror(Strategy):
        def init(self) -> None:
            close, high, low = self.data.Close, self.data.High, self.data.Low
            self.fast = self.I(talib.SMA, close, fast)
            self.slow = self.I(talib.SMA, close, slow)
            self.atr = self.I(talib.ATR, high, low, close, atr_period)

        def next(self) -> None:
            up = crossover(self.fast, self.slow)
            if not up and not crossover(self.slow, self.fast):
                return
            if self.position and self.position.is_long == up:
                return  # already on that side: the cycle holds
            side = Side.BUY if up else Side.SELL
            close, equity = float(self.data.Close[-1]), float(self.equity)
            mark = instrument.round_price_f(close)  # as the backtest's session values its bot: exact when read
            value = (Valuation((mark, equity, equity), None, (_exact, instrument, close, equity)) if mark is not None
                     else Valuation.exactly(*_exact(instrument, close, equity)))
            sizing = entry_sizing(side, value, True, float(self.atr[-1]), None, None, capital, risk, instrument, taker_fee)
            self.position.close()
            if isinstance(sizing, str) or sizing.blocked:
                return
            order = self.buy if up else self.sell
            order(size=int(sizing.qty / instrument.qty_step), sl=float(sizing.stop), tp=float(sizing.target))

    return SmaCrossMirror
