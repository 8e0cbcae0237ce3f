"""Position sizing and protective levels. Pure: no I/O, no clock.

quantity = risk amount / stop distance, where the risk amount is the profile's
share of the bot's equity; then capped by the maximum position notional, by the
leverage allowed on the bot's equity and by the margin still available, and
rounded down to the instrument's qty step. Below the instrument minimums the
setup is blocked with that reason.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal

from tui_trader.config import RiskProfile
from tui_trader.model import Instrument, Side


@dataclass(frozen=True, slots=True)
class Sizing:
    qty: Decimal  # zero when blocked
    stop: Decimal
    target: Decimal
    blocked: str = ""  # the reason no order can be sized
    details: dict[str, str] = field(default_factory=dict)


def protective_levels(side: Side, entry: Decimal, profile: RiskProfile, instrument: Instrument,
                      atr: float | None, stop: float | None, target: float | None) -> tuple[Decimal, Decimal] | str:
    """(stop, target) on the tick grid, or the reason they cannot be set."""
    if stop is None:
        if atr is None or not atr > 0:
            return "no ATR to place the stop"
        offset = Decimal(repr(atr)) * Decimal(repr(profile.stop_atr_mult))
        stop_price = entry - offset if side is Side.BUY else entry + offset
    else:
        stop_price = Decimal(repr(stop))
    stop_price = instrument.round_price(stop_price)
    distance = (entry - stop_price) * side.sign
    if distance <= 0:
        return f"stop {stop_price} is not on the losing side of entry {entry}"
    if target is None:
        target_price = entry + side.sign * distance * Decimal(repr(profile.take_profit_r))
    else:
        target_price = Decimal(repr(target))
    target_price = instrument.round_price(target_price)
    if (target_price - entry) * side.sign <= 0:
        return f"target {target_price} is not on the winning side of entry {entry}"
    if stop_price <= 0:
        return f"stop {stop_price} is not a positive price"
    return stop_price, target_price


def size_position(side: Side, entry: Decimal, stop: Decimal, target: Decimal, equity: Decimal, capital: Decimal,
                  available: Decimal, profile: RiskProfile, instrument: Instrument, taker_fee: Decimal) -> Sizing:
    distance = abs(entry - stop)
    risk_amount = equity * Decimal(repr(profile.risk_per_trade_pct)) / 100
    leverage = min(Decimal(repr(profile.max_leverage)), instrument.max_leverage)
    caps = {
        "risk": risk_amount / distance,
        "max_position": capital * Decimal(repr(profile.max_position_pct)) / 100 / entry,
        "leverage": equity * leverage / entry,
        "margin": max(available, Decimal(0)) / (entry / leverage + entry * taker_fee),
    }
    binding = min(caps, key=lambda k: caps[k])
    qty = instrument.floor_qty(caps[binding])
    details = {
        "risk_amount": f"{risk_amount:.2f}",
        "stop_distance": str(distance),
        "binding_cap": binding,
        **{f"cap_{k}": f"{v:.8f}" for k, v in caps.items()},
    }
    if qty < instrument.min_qty:
        return Sizing(Decimal(0), stop, target, f"size {qty} (capped by {binding}) is below the minimum qty {instrument.min_qty}", details)
    if qty * entry < instrument.min_notional:
        return Sizing(Decimal(0), stop, target,
                      f"notional {qty * entry:.2f} USDT (capped by {binding}) is below the minimum {instrument.min_notional} USDT", details)
    return Sizing(qty, stop, target, "", details)
