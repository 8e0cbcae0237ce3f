"""Position sizing, protective levels, stop management, loss limits and exposure
caps. Pure: no I/O, no clock; the live engine and backtests use the same code.

quantity = risk amount / stop distance, where the risk amount is the profile's
share of the bot's equity; then capped by the maximum position notional, by the
leverage allowed on the bot's equity and by the margin still available, and
rounded down to the instrument's qty step. Below the instrument minimums the
setup is blocked with that reason.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from decimal import Decimal
from functools import cache
from typing import Any

from tui_trader.config import RiskProfile
from tui_trader.model import BUY, ZERO, Instrument, Side


@cache
def exact(setting: float) -> Decimal:
    """A float setting as the Decimal it reads as (cached: settings are few, and sizing and stops read
    them per bot per candle)."""
    return Decimal(repr(setting))


_CAPS = ("risk", "max_position", "leverage", "margin")  # in the order a tie is resolved
_HUNDRED = Decimal(100)


Exact = tuple[Decimal, Decimal, Decimal]  # a valuation's (mark, equity, available), exactly


class Valuation:
    """What a bot's entry is sized against at a candle: the close on the tick grid (the mark), the bot's
    equity at it and the margin it can still commit. As floats (within a few ulps of the exact values)
    for the float counts of sizing and the guard; exactly, as Decimals, for the exact path of sizing, a
    blocked entry's numbers, a cap the floats leave too close to call. Each form is computed when first
    read: the live engine has the exact values at hand (and most candles size no entry), a backtest has
    the floats from its books and computes the exact values from a snapshot of them only when one is
    read (rounding the close and valuing the position exactly on every signal took 5 % of a run)."""

    __slots__ = ("_exact", "_floats", "_source")

    def __init__(self, floats: tuple[float, float, float] | None, exact: Exact | None, source: tuple[Any, ...] = ()) -> None:
        """Either form, or both; `source` computes the exact one: a function returning (mark, equity,
        available), then its arguments (values that do not change: it may be called long after)."""
        self._floats, self._exact, self._source = floats, exact, source

    @classmethod
    def exactly(cls, mark: Decimal, equity: Decimal, available: Decimal) -> Valuation:
        return cls(None, (mark, equity, available))

    def floats(self) -> tuple[float, float, float]:
        """(mark, equity, available) as floats."""
        floats = self._floats
        if floats is None:
            mark, equity, available = self.exact()
            equity_f = float(equity)
            floats = self._floats = (float(mark), equity_f, equity_f if available is equity else float(available))
        return floats

    def exact(self) -> Exact:
        """(mark, equity, available) exactly."""
        exact = self._exact
        if exact is None:
            source = self._source
            exact = self._exact = source[0](*source[1:])
        return exact

    @property
    def mark(self) -> Decimal:
        exact = self._exact  # (read here first: the cycle reads the mark of every position it holds)
        return (exact if exact is not None else self.exact())[0]

    @property
    def equity(self) -> Decimal:
        return self.exact()[1]


@dataclass(slots=True)  # one per entry sized, per bot: not frozen for speed; treated as read-only
class Sizing:
    qty: Decimal  # zero when blocked
    qty_f: float  # the qty as a float
    stop: Decimal
    target: Decimal
    binding: str  # the smallest cap's name
    basis: tuple[Valuation, bool, Decimal, RiskProfile, Instrument, Decimal]  # (valuation, margin is the equity,
    # capital, profile, instrument, taker fee): what the caps are computed from
    blocked: str = ""  # the reason no order can be sized

    @property
    def details(self) -> dict[str, str]:
        """The numbers for the decision log (computed when read: only a blocked entry's decision has them)."""
        risk_amount, distance, caps = _caps(self.stop, *_exact_basis(*self.basis))
        return {"risk_amount": f"{risk_amount:.2f}", "stop_distance": str(distance), "binding_cap": self.binding,
                **{f"cap_{k}": f"{v:.8f}" for k, v in zip(_CAPS, caps, strict=True)}}


def _exact_basis(value: Valuation, on_equity: bool, capital: Decimal, profile: RiskProfile, instrument: Instrument,
                 taker_fee: Decimal) -> tuple[Decimal, Decimal, Decimal, Decimal, RiskProfile, Instrument, Decimal]:
    """`_caps`' arguments after the stop: (entry, equity, capital, available, profile, instrument, taker fee)."""
    mark, equity, available = value.exact()
    return mark, equity, capital, equity if on_equity else available, profile, instrument, taker_fee


def entry_sizing(side: Side, value: Valuation, on_equity: bool, atr: float | None, stop: float | None,
                 target: float | None, capital: Decimal, profile: RiskProfile, instrument: Instrument,
                 taker_fee: Decimal) -> Sizing | str:
    """`protective_levels` then `size_position` at the valuation's mark: the levels' refusal, or the sizing
    with them. `on_equity`: the margin available is the equity (a reversal frees the margin of the
    position it closes).

    The profile's ATR levels and the size are counted in ticks and qty steps with floats where that
    gives the exact path's numbers (a third of its time: the cycle sizes every entry, a backtest
    tens of thousands); anywhere it might not (a cap within a hair of another or of a qty step, a
    size at or near the minimums, levels the float count refuses), the exact path decides."""
    if stop is None and target is None and atr is not None and 0 < atr < math.inf:
        sizing = _sized_in_steps(side, value, on_equity, atr, capital, profile, instrument, taker_fee)
        if sizing is not None:
            return sizing
    levels = protective_levels(side, value.mark, profile, instrument, atr, stop, target)
    if isinstance(levels, str):
        return levels
    return size_position(side, value, on_equity, levels[0], levels[1], capital, profile, instrument, taker_fee)


def protective_levels(side: Side, entry: Decimal, profile: RiskProfile, instrument: Instrument,
                      atr: float | None, stop: float | None, target: float | None) -> tuple[Decimal, Decimal] | str:
    """(stop, target) on the tick grid, or the reason they cannot be set."""
    if stop is None and target is None and atr is not None and 0 < atr < math.inf:
        tick = instrument.tick_size
        ticks = _atr_ticks(side is BUY, float(entry), instrument.tick_f, profile, atr)
        if ticks is not None:
            return Decimal(ticks[1]) * tick, Decimal(ticks[2]) * tick
    return exact_levels(side, entry, profile, instrument, atr, stop, target)


@cache
def _float(value: Decimal) -> float:
    """A per-bot constant as a float (cached: they are few)."""
    return float(value)


def _atr_ticks(long: bool, entry_f: float, tick_f: float, profile: RiskProfile, atr: float) -> tuple[int, int, int] | None:
    """The profile's ATR stop and R target as `exact_levels` gives them, counted in ticks with floats:
    (entry, stop, target) in ticks. None where the float count could differ from the exact one: a
    level within a hair of a half tick (the rounding could go either way) or of the grid (the exact
    path keeps an on-grid price's own digits), an entry off the grid, or a level it refuses (its
    reason comes from the exact path)."""
    e = entry_f / tick_f
    m = round(e)
    tol = 1e-12 * abs(e) + 1e-9  # float error here is a few ulps of e: far below this
    if abs(e - m) > tol:
        return None
    offset = atr * profile.stop_atr_mult / tick_f
    x = e - offset if long else e + offset
    n = round(x)
    if abs(x - n) < tol or abs(abs(x - n) - 0.5) < tol or n <= 0:
        return None
    distance = m - n if long else n - m
    if distance <= 0:
        return None
    r = profile.take_profit_r
    y = m + distance * r if long else m - distance * r
    t = round(y)
    # A target on a half tick is rounded half to even, as the exact path does, where y is exact: an R
    # multiple of 1/4 (the usual ones: 1.5, 2, 2.5) times a count of ticks.
    if abs(abs(y - t) - 0.5) < tol and not ((r * 4).is_integer() and abs(y) < 2 ** 50):
        return None
    if (t - m if long else m - t) <= 0 or t <= 0:
        return None
    # An R multiple's Decimal has a fractional digit ("3.0"), so the exact target has more digits than
    # the tick and is written as a count of ticks, on the grid or not. A target at or below zero (a
    # short's) is left to the exact path, which keeps its signed zero.
    return m, n, t


def _sized_in_steps(side: Side, value: Valuation, on_equity: bool, atr: float, capital: Decimal, profile: RiskProfile,
                    instrument: Instrument, taker_fee: Decimal) -> Sizing | None:
    """`entry_sizing`'s float count, or None where the exact path must decide."""
    long = side is BUY
    tick_f = instrument.tick_f
    mark_f, equity_f, available_f = value.floats()
    ticks = _atr_ticks(long, mark_f, tick_f, profile, atr)
    if ticks is None:
        return None
    m, n, t = ticks
    e = m * tick_f
    if on_equity:
        available_f = equity_f
    leverage = profile.max_leverage
    if instrument.max_leverage_f < leverage:
        leverage = instrument.max_leverage_f
    # The caps as `_caps` computes them: within ~1e-15 of the exact ones (the Decimal caps are within ~1e-27,
    # the valuation's floats within a few ulps).
    c0 = equity_f * profile.risk_per_trade_pct / 100 / ((m - n if long else n - m) * tick_f)
    c1 = _float(capital) * profile.max_position_pct / 100 / e
    c2 = equity_f * leverage / e
    c3 = (available_f if available_f > 0 else 0.0) / (e / leverage + e * _float(taker_fee))
    smallest, binding = c0, 0
    if c1 < smallest:
        smallest, binding = c1, 1
    if c2 < smallest:
        smallest, binding = c2, 2
    if c3 < smallest:
        smallest, binding = c3, 3
    # Caps a hair apart (the first of equal ones binds) or a hair from a qty step: the exact path decides.
    bound = smallest * (1 + 1e-9)
    if (c0 <= bound) + (c1 <= bound) + (c2 <= bound) + (c3 <= bound) > 1 or not 0 < smallest < math.inf:
        return None
    q = smallest / instrument.qty_step_f
    k = int(q)
    fraction, tol = q - k, 1e-9 * q
    if k < 1 or fraction <= tol or 1 - fraction <= tol or q >= 2 ** 52:
        return None
    # The exact path floors a quotient that is no integer: its integral value has exponent 0, as Decimal(k).
    qty = Decimal(k) * instrument.qty_step
    qty_f = k * instrument.qty_step_f
    # Below the minimums or a hair from the notional's: the exact path decides, and gives the reason.
    if qty < instrument.min_qty or qty_f * e <= instrument.min_notional_f * (1 + 1e-9):
        return None
    tick = instrument.tick_size
    return Sizing(qty, qty_f, Decimal(n) * tick, Decimal(t) * tick, _CAPS[binding],
                  (value, on_equity, capital, profile, instrument, taker_fee))


def exact_levels(side: Side, entry: Decimal, profile: RiskProfile, instrument: Instrument,
                 atr: float | None, stop: float | None, target: float | None) -> tuple[Decimal, Decimal] | str:
    """`protective_levels` in Decimal arithmetic throughout (the reference of the float path)."""
    sign = 1 if side is BUY else -1
    if stop is None:
        if atr is None or not atr > 0:
            return "no ATR to place the stop"
        offset = Decimal(repr(atr)) * exact(profile.stop_atr_mult)
        stop_price = entry - offset if sign > 0 else entry + offset
    else:
        stop_price = Decimal(repr(stop))
    stop_price = instrument.round_price(stop_price)
    distance = (entry - stop_price) * sign
    if distance <= 0:
        return f"stop {stop_price} is not on the losing side of entry {entry}"
    if target is None:
        target_price = entry + sign * distance * exact(profile.take_profit_r)
    else:
        target_price = Decimal(repr(target))
    target_price = instrument.round_price(target_price)
    if (target_price - entry) * sign <= 0:
        return f"target {target_price} is not on the winning side of entry {entry}"
    if stop_price <= 0:
        return f"stop {stop_price} is not a positive price"
    return stop_price, target_price


def _caps(stop: Decimal, entry: Decimal, equity: Decimal, capital: Decimal, available: Decimal, profile: RiskProfile,
          instrument: Instrument, taker_fee: Decimal) -> tuple[Decimal, Decimal, tuple[Decimal, ...]]:
    """(risk amount, stop distance, the quantity each cap allows by _CAPS), exactly."""
    distance = abs(entry - stop)
    risk_amount = equity * exact(profile.risk_per_trade_pct) / _HUNDRED
    leverage = exact(profile.max_leverage)
    if instrument.max_leverage < leverage:
        leverage = instrument.max_leverage
    return risk_amount, distance, (
        risk_amount / distance, capital * exact(profile.max_position_pct) / _HUNDRED / entry, equity * leverage / entry,
        (available if available > ZERO else ZERO) / (entry / leverage + entry * taker_fee))


def size_position(side: Side, value: Valuation, on_equity: bool, stop: Decimal, target: Decimal, capital: Decimal,
                  profile: RiskProfile, instrument: Instrument, taker_fee: Decimal) -> Sizing:
    """The size at the valuation's mark, exactly (`on_equity`: as for `entry_sizing`)."""
    basis = (value, on_equity, capital, profile, instrument, taker_fee)
    entry = value.mark
    caps = _caps(stop, *_exact_basis(*basis))[2]
    smallest, binding = caps[0], _CAPS[0]  # the smallest cap, the first of equal ones (per sizing: no min() and index())
    if caps[1] < smallest:
        smallest, binding = caps[1], _CAPS[1]
    if caps[2] < smallest:
        smallest, binding = caps[2], _CAPS[2]
    if caps[3] < smallest:
        smallest, binding = caps[3], _CAPS[3]
    qty = instrument.floor_qty(smallest)
    if qty < instrument.min_qty:
        return Sizing(ZERO, 0.0, stop, target, binding, basis,
                      f"size {qty} (capped by {binding}) is below the minimum qty {instrument.min_qty}")
    if qty * entry < instrument.min_notional:
        return Sizing(ZERO, 0.0, stop, target, binding, basis,
                      f"notional {qty * entry:.2f} USDT (capped by {binding}) is below the minimum {instrument.min_notional} USDT")
    return Sizing(qty, float(qty), stop, target, binding, basis)


# -- stop management ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class StopMove:
    stop: Decimal
    rule: str  # breakeven | trailing
    detail: str


def tightened_stop(side: Side, entry: Decimal, stop: Decimal | None, initial_stop: Decimal | None, close: Decimal,
                   extreme: float, atr: float, profile: RiskProfile, instrument: Instrument,
                   taker_fee: Decimal) -> StopMove | None:
    """The tighter stop the break-even and trailing rules ask for at this close, or None.

    R is the distance from entry to the initial stop; both rules wait until the close is their
    number of R in favour. Break-even puts the stop at entry plus both legs' taker fees; the
    trailing stop sits `trail_atr_mult` ATR behind the candle's extreme (high for a long). A
    candidate is taken only when it is tighter than the current stop and still on the losing
    side of the close, so a stop never loosens and never triggers on the bar that moved it.
    """
    if stop is None or initial_stop is None or not (profile.breakeven_r or profile.trail_atr_mult):
        return None
    sign = side.sign
    risk = (entry - initial_stop) * sign
    if risk <= 0:
        return None
    gained = (close - entry) * sign  # compared exactly: a rule fires at exactly its R multiple
    breakeven = trailing = None  # the levels of the rules that fire, where they tighten the stop
    if profile.breakeven_r and gained >= risk * exact(profile.breakeven_r):
        level = instrument.round_price(entry * (1 + sign * 2 * taker_fee), side)  # rounds away from the entry
        if _tightens(level, sign, stop, close):
            breakeven = level
    distance = 0.0
    if profile.trail_atr_mult and atr > 0 and gained >= risk * exact(profile.trail_activation_r):
        distance = atr * profile.trail_atr_mult
        level = instrument.round_price(extreme - sign * distance, side.opposite)  # rounds toward the extreme's far side
        if _tightens(level, sign, stop, close) and (breakeven is None or (level - breakeven) * sign > 0):
            trailing = level
    if trailing is None and breakeven is None:  # the common case, per position per candle: no reasons to format
        return None
    favour = float(gained / risk)  # in R, for the reasons
    if trailing is not None:
        return StopMove(trailing, "trailing", f"{profile.trail_atr_mult:g} ATR ({distance:.6g}) from the"
                                              f" {'high' if sign > 0 else 'low'} {extreme:.8g}; close {favour:.2f}R in favour")
    return StopMove(breakeven, "breakeven",  # type: ignore[arg-type]
                    f"close {favour:.2f}R in favour (>= {profile.breakeven_r:g}R): stop to entry {entry} plus fees")


def _tightens(level: Decimal, sign: int, stop: Decimal, close: Decimal) -> bool:
    """A positive level tighter than the stop and still on the losing side of the close."""
    return level > 0 and (level - stop) * sign > 0 and (close - level) * sign > 0


# -- P&L limits ---------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class LossLimits:
    """A profile's loss limits as exact fractions (built once per bot, compared every candle)."""

    daily_loss: Decimal | None
    drawdown: Decimal | None

    @classmethod
    def of(cls, profile: RiskProfile) -> LossLimits:
        return cls(_fraction(profile.daily_loss_pct), _fraction(profile.max_drawdown_pct))


def _fraction(pct: float | None) -> Decimal | None:
    return None if pct is None else Decimal(repr(pct)) / 100


def loss_breach(equity: Decimal, day_start_equity: Decimal, high_water: Decimal,
                limits: LossLimits) -> tuple[str, str] | None:
    """("daily_loss" | "drawdown", reason with the numbers) once a loss reaches its limit (>=)."""
    if limits.daily_loss is not None:
        loss, limit = day_start_equity - equity, day_start_equity * limits.daily_loss
        if loss >= limit:
            return "daily_loss", (f"today's loss {loss:.2f} USDT reached the limit {limit:.2f}"
                                  f" ({float(limits.daily_loss * 100):g}% of the day's starting equity {day_start_equity:.2f})")
    if limits.drawdown is not None:
        drawdown, limit = high_water - equity, high_water * limits.drawdown
        if drawdown >= limit:
            return "drawdown", (f"drawdown {drawdown:.2f} USDT reached the limit {limit:.2f}"
                                f" ({float(limits.drawdown * 100):g}% of the high-water equity {high_water:.2f})")
    return None


# -- portfolio exposure ---------------------------------------------------------------------------------


@dataclass(slots=True)
class Exposure:
    """Open positions across the portfolio at the tick's marks, and the caps the guard checks
    entries against. The engine adds each entry it stages, so bots later in the same tick see it."""

    total_capital: Decimal
    gross_cap: Decimal  # sum of |notional|
    symbol_cap: Decimal  # |net notional| per symbol
    open_positions: int = 0
    gross: Decimal = ZERO
    net: dict[str, Decimal] = field(default_factory=dict)  # signed notional by symbol
    stop_reason: str = ""  # set when the portfolio stop tripped: no entry passes

    def add(self, symbol: str, signed_notional: Decimal, opens: bool) -> None:
        self.gross += abs(signed_notional)
        self.net[symbol] = self.net.get(symbol, ZERO) + signed_notional
        self.open_positions += opens

    def breach(self, symbol: str, signed_before: Decimal, signed_after: Decimal, opens: bool,
               max_open: int | None) -> tuple[str, str] | None:
        """The first portfolio cap an entry moving this bot's notional from before to after breaks."""
        if opens and max_open is not None and self.open_positions >= max_open:
            return "max_open_positions", f"{self.open_positions} positions open across the portfolio (limit {max_open})"
        gross = self.gross - abs(signed_before) + abs(signed_after)
        if gross > self.gross_cap and gross > self.gross:
            return "portfolio_exposure", (f"gross exposure would be {gross:.2f} USDT, above the cap {self.gross_cap:.2f}"
                                          f" (now {self.gross:.2f})")
        net_now = self.net.get(symbol, ZERO)
        net = net_now - signed_before + signed_after
        if abs(net) > self.symbol_cap and abs(net) > abs(net_now):
            return "symbol_exposure", (f"net {symbol} exposure would be {net:+.2f} USDT, beyond the cap"
                                       f" {self.symbol_cap:.2f} (now {net_now:+.2f})")
        return None
