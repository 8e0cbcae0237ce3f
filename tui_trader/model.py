"""Plain domain types shared by every layer.

Market observations (candle OHLCV) are floats: they come from the exchange as
decimal strings but are only ever fed to TA-Lib's double arithmetic. Everything
that is money or an amount we trade -- order prices and quantities, fills, fees,
positions, ledgers -- is `Decimal`, rounded to the instrument's steps.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from decimal import ROUND_CEILING, ROUND_DOWN, ROUND_FLOOR, ROUND_HALF_EVEN, Decimal
from typing import Any

ZERO = Decimal(0)
USDT_STEP = Decimal("0.00000001")  # ledger precision: 1e-8 USDT

TIMEFRAME_MINUTES: dict[str, int] = {"1m": 1, "5m": 5, "15m": 15, "1h": 60, "4h": 240, "1d": 1440}
MINUTE_MS = 60_000


def timeframe_ms(timeframe: str) -> int:
    return TIMEFRAME_MINUTES[timeframe] * MINUTE_MS


class Side(enum.StrEnum):
    BUY = "Buy"
    SELL = "Sell"

    @property
    def sign(self) -> int:
        return 1 if self is BUY else -1

    @property
    def opposite(self) -> Side:
        return SELL if self is BUY else BUY


# Side's members as constants: an enum member is looked up through the metaclass (~70 ns on 3.11),
# and sides are compared per bot per candle (here, in the cycle and in strategies).
BUY, SELL = Side.BUY, Side.SELL


class OrderType(enum.StrEnum):
    MARKET = "Market"
    LIMIT = "Limit"
    STOP = "Stop"  # stop-market: becomes a market order once the trigger trades


class OrderStatus(enum.StrEnum):
    PENDING_SUBMIT = "PendingSubmit"  # intent persisted, not yet acknowledged by the exchange
    NEW = "New"
    PARTIALLY_FILLED = "PartiallyFilled"
    FILLED = "Filled"
    CANCELLED = "Cancelled"
    REJECTED = "Rejected"

    @property
    def is_open(self) -> bool:
        return self in _OPEN_STATUSES


_OPEN_STATUSES = (OrderStatus.PENDING_SUBMIT, OrderStatus.NEW, OrderStatus.PARTIALLY_FILLED)


class OrderPurpose(enum.StrEnum):
    ENTRY = "entry"
    EXIT = "exit"  # strategy or manage-phase exit
    FLATTEN = "flatten"  # operator or risk flatten
    STOP = "stop"  # position stop-loss triggered on the exchange
    TARGET = "target"  # position take-profit triggered on the exchange


class Liquidity(enum.StrEnum):
    MAKER = "maker"
    TAKER = "taker"


class BotState(enum.StrEnum):
    RUNNING = "RUNNING"  # trades normally
    PAUSED = "PAUSED"  # reduce-only: exits and stops managed, no entries or increases
    HALTED = "HALTED"  # no new orders; cancels allowed
    FLATTENING = "FLATTENING"  # reduce-only exits in flight, entries blocked
    STOPPED = "STOPPED"  # not evaluated at all
    ERROR = "ERROR"  # its code raised; isolated until the operator resumes it

    @property
    def allows_entries(self) -> bool:
        return self is _RUNNING

    @property
    def allows_exits(self) -> bool:
        return self in _EXITING_STATES


_RUNNING = BotState.RUNNING
_EXITING_STATES = (BotState.RUNNING, BotState.PAUSED, BotState.FLATTENING)


class Phase(enum.StrEnum):
    SYNC = "sync"
    REGIME = "regime"
    MANAGE = "manage"
    SCAN = "scan"
    CONFIRM = "confirm"
    SIZE = "size"
    GUARD = "guard"
    EXECUTE = "execute"
    FILL = "fill"  # exchange events applied to the ledger
    CONTROL = "control"  # operator and automatic state changes


class DecisionType(enum.StrEnum):
    WARMING_UP = "WARMING_UP"
    NO_SETUP = "NO_SETUP"
    HOLD = "HOLD"
    SETUP_FOUND = "SETUP_FOUND"
    SETUP_REJECTED = "SETUP_REJECTED"
    RISK_BLOCKED = "RISK_BLOCKED"
    EXIT_SIGNAL = "EXIT_SIGNAL"
    ORDER_PLACED = "ORDER_PLACED"
    ORDER_REJECTED = "ORDER_REJECTED"
    ORDER_CANCELLED = "ORDER_CANCELLED"
    TRADE_ENTERED = "TRADE_ENTERED"
    TRADE_EXITED = "TRADE_EXITED"
    STOP_MOVED = "STOP_MOVED"
    COOLDOWN = "COOLDOWN"  # a loss streak started a pause in entries
    REGIME_CHANGED = "REGIME_CHANGED"
    STRATEGY_SWITCHED = "STRATEGY_SWITCHED"
    STATE_CHANGED = "STATE_CHANGED"
    ERROR = "ERROR"


class Regime(enum.StrEnum):
    UNKNOWN = "unknown"
    TREND_UP = "trend_up"
    TREND_DOWN = "trend_down"
    RANGE = "range"
    VOLATILE = "volatile"


@dataclass(slots=True)  # one per symbol per tick, and per candle a backtest runs the cycle on: not frozen for speed (frozen init costs ~4x); treated as read-only
class Candle:
    """A closed candle; `ts` is its open time in ms UTC."""

    symbol: str
    timeframe: str
    ts: int
    open: float
    high: float
    low: float
    close: float
    volume: float

    @property
    def close_ts(self) -> int:
        return self.ts + timeframe_ms(self.timeframe)


@dataclass(frozen=True, slots=True)
class Instrument:
    """Trading rules of one USDT perpetual, as Bybit's instruments-info gives them."""

    symbol: str
    tick_size: Decimal
    qty_step: Decimal
    min_qty: Decimal
    min_notional: Decimal
    max_leverage: Decimal = Decimal(50)
    # As floats, for the float counts of sizing and levels (per entry): derived, set once.
    tick_f: float = field(init=False, repr=False, compare=False)
    qty_step_f: float = field(init=False, repr=False, compare=False)
    max_leverage_f: float = field(init=False, repr=False, compare=False)
    min_notional_f: float = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "tick_f", float(self.tick_size))
        object.__setattr__(self, "qty_step_f", float(self.qty_step))
        object.__setattr__(self, "max_leverage_f", float(self.max_leverage))
        object.__setattr__(self, "min_notional_f", float(self.min_notional))

    def round_price_f(self, price: float) -> float | None:
        """`round_price(price)` (to nearest) as a float, within an ulp or two, or None where the exact
        rounding could go either way (a price a hair from half a tick, or beyond 2**50 ticks)."""
        q = price / self.tick_f  # within ~2.2e-16 * |q| of the exact quotient
        if not abs(q) < 2 ** 50:  # (NaN too)
            return None
        n = round(q)
        return None if abs(abs(q - n) - 0.5) < 1e-6 + 1e-15 * abs(q) else n * self.tick_f

    def round_price(self, price: Decimal | float, side: Side | None = None) -> Decimal:
        """Round to the tick grid: against us for a side (buy up, sell down), else to nearest."""
        p = price if isinstance(price, Decimal) else Decimal(repr(price))
        rounding = ROUND_HALF_EVEN if side is None else (ROUND_CEILING if side is BUY else ROUND_FLOOR)
        return (p / self.tick_size).to_integral_value(rounding) * self.tick_size

    def floor_qty(self, qty: Decimal) -> Decimal:
        return (qty / self.qty_step).to_integral_value(ROUND_DOWN) * self.qty_step

    def check_order(self, qty: Decimal, price: Decimal) -> str | None:
        """The reason an order breaks the instrument rules, or None."""
        if qty <= 0:
            return "quantity must be positive"
        if qty % self.qty_step != 0:
            return f"quantity {qty} is not a multiple of the qty step {self.qty_step}"
        if qty < self.min_qty:
            return f"quantity {qty} is below the minimum {self.min_qty}"
        if price <= 0:
            return "price must be positive"
        if price % self.tick_size != 0:
            return f"price {price} is not a multiple of the tick size {self.tick_size}"
        notional = qty * price
        if notional < self.min_notional:
            return f"notional {notional:.2f} USDT is below the minimum {self.min_notional} USDT"
        return None


def to_usdt(amount: Decimal) -> Decimal:
    return amount.quantize(USDT_STEP, ROUND_HALF_EVEN)


@dataclass(slots=True)  # one per order: not frozen for speed (frozen init costs ~4x); treated as read-only
class OrderRequest:
    """An order a bot wants; the engine persists it before sending it."""

    client_order_id: str
    bot_id: int
    symbol: str
    side: Side
    order_type: OrderType
    qty: Decimal
    purpose: OrderPurpose
    price: Decimal | None = None  # limit price
    trigger_price: Decimal | None = None  # stop trigger
    reduce_only: bool = False
    stop_loss: Decimal | None = None  # attached to the position once the entry fills
    take_profit: Decimal | None = None


@dataclass(slots=True)
class Order:
    """An order as the engine tracks it (request plus exchange status)."""

    request: OrderRequest
    status: OrderStatus
    created_ts: int
    updated_ts: int
    filled_qty: Decimal = ZERO
    avg_fill_price: Decimal | None = None
    reason: str = ""

    @property
    def client_order_id(self) -> str:
        return self.request.client_order_id


@dataclass(slots=True)  # one per fill: not frozen for speed (frozen init costs ~4x); treated as read-only
class Fill:
    fill_id: str
    client_order_id: str
    bot_id: int
    symbol: str
    side: Side
    qty: Decimal
    price: Decimal
    fee: Decimal
    liquidity: Liquidity
    ts: int
    purpose: OrderPurpose
    reduce_only: bool = False


@dataclass(slots=True)  # one or two per order: not frozen for speed (frozen init costs ~4x); treated as read-only
class OrderUpdate:
    """An exchange-side status change of an order (accepted, cancelled, rejected, filled)."""

    client_order_id: str
    bot_id: int
    status: OrderStatus
    ts: int
    reason: str = ""


@dataclass(slots=True)
class Position:
    """A bot's net position on one symbol; qty is signed (+long, -short)."""

    bot_id: int
    symbol: str
    qty: Decimal = ZERO
    entry_price: Decimal = ZERO
    stop_price: Decimal | None = None
    target_price: Decimal | None = None
    opened_ts: int = 0
    entry_fees: Decimal = ZERO  # fees paid on the legs that opened what is still open
    initial_stop: Decimal | None = None  # the stop it was opened with: entry to it is 1R

    @property
    def is_open(self) -> bool:
        return self.qty != 0

    @property
    def side(self) -> Side | None:
        if self.qty == 0:
            return None
        return BUY if self.qty > 0 else SELL

    def unrealized_pnl(self, mark: Decimal) -> Decimal:
        return (mark - self.entry_price) * self.qty if self.qty else ZERO


@dataclass(slots=True)  # one per closed trade: not frozen for speed (frozen init costs ~4x); treated as read-only
class Trade:
    """A closed (or partly closed) round trip."""

    bot_id: int
    symbol: str
    side: Side  # side of the entry
    qty: Decimal
    entry_price: Decimal
    exit_price: Decimal
    entry_ts: int
    exit_ts: int
    pnl: Decimal  # gross price P&L
    fees: Decimal  # entry share plus exit fees
    exit_reason: str

    @property
    def net_pnl(self) -> Decimal:
        return self.pnl - self.fees


@dataclass(slots=True)  # one or more per bot per candle: not frozen for speed; treated as read-only
class Decision:
    bot_id: int
    ts: int  # market time (ms) of the candle or event that led to it
    phase: Phase
    decision_type: DecisionType
    summary: str
    details: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class ControlEvent:
    """A state change of a bot (bot_id set) or of the whole portfolio (bot_id None)."""

    ts: int
    bot_id: int | None
    command: str
    source: str  # operator:cli, operator:ui, risk:<gate>, engine
    reason: str
    from_state: BotState | None
    to_state: BotState | None


@dataclass(frozen=True, slots=True)
class EquitySnapshot:
    bot_id: int
    ts: int
    equity: Decimal
    realized_pnl: Decimal
    unrealized_pnl: Decimal
    fees: Decimal
