"""The `backtesting-py` fill model: backtesting.py 0.6.6's broker rules, in its
float arithmetic, behind the same interface as the paper exchange.

Rules (reference/backtesting-py-semantics.md, with bt:L line numbers of its source):

* A market order fills at the next bar's open (bt:L916-919). An order that
  reverses a position first closes it at the open (FIFO, no spread), then opens
  the rest at the spread-adjusted price open * (1 +/- spread) (bt:L961, L982-1004),
  as `position.close(); buy()` does. Legs at one price (no spread) are reported as
  one fill of the whole order, as an exchange reports it; at two prices, as two fills.
* Commission `fee` * |qty| * price on every leg, at the leg's price; the entry's
  at the spread-adjusted price (bt:L1089-1103). No tick rounding of any price.
  The broker's cash takes it in backtesting.py's float arithmetic (its margin and
  out-of-money checks are backtesting.py's); the fills report it exactly (Decimal
  qty * price * fee), so the ledger books a reversal's one fill as its two legs.
* An entry larger than the margin available at the bar (equity at its close,
  minus the margin of open trades, times leverage) is cancelled (bt:L1007-1014).
* The position's stop-loss is a stop-market order, its take-profit a limit
  order, both checked on every bar including the entry bar (bt:L1028-1030):
  the stop fills at min(open, stop) for a long (a gap fills at the open), the
  target at max(open, target); with both inside one bar the stop wins (bt:L811).
* `finish`: after the last bar, open trades close at that bar's open, and orders
  placed on the last bar are processed on the same bar (finalize_trades=True,
  bt:L1356-1364).
* Equity at or below zero closes everything at the close and ends the run (bt:L866-873).
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from tui_trader.exchange.base import ExchangeListener
from tui_trader.model import (
    Candle,
    Fill,
    Instrument,
    Liquidity,
    OrderPurpose,
    OrderRequest,
    OrderStatus,
    OrderType,
    OrderUpdate,
    Side,
)


_TAKER, _EXIT, _STOP, _TARGET = Liquidity.TAKER, OrderPurpose.EXIT, OrderPurpose.STOP, OrderPurpose.TARGET
_FILLED, _CANCELLED, _NEW, _MARKET = OrderStatus.FILLED, OrderStatus.CANCELLED, OrderStatus.NEW, OrderType.MARKET
_BUY, _SELL = Side.BUY, Side.SELL


class OutOfMoney(Exception):
    """Equity fell to zero or below: backtesting.py stops the run there."""


@dataclass(slots=True)
class _Trade:
    qty: float  # signed
    entry: float
    stop: float | None
    target: float | None
    request: OrderRequest
    stop_d: Decimal | None  # the levels as the order or the last stop move set them: a fill at one is at it exactly
    target_d: Decimal | None


def _dec(x: float) -> Decimal:
    return Decimal(repr(x))


class BacktestingPyBroker:
    name = "backtesting-py"
    supports_trading_stop = True

    def __init__(self, instrument: Instrument, fee: Decimal, spread: Decimal) -> None:
        self._instrument = instrument
        self._fee, self._fee_rate = float(fee), fee
        self._spread = float(spread)
        self._listener: ExchangeListener | None = None
        self._bot_id = 0
        self._sl_id = self._tp_id = ""  # the prefixes of the position stop's and target's fill ids
        self._cash = 0.0
        self._leverage = 1.0
        self._trade: _Trade | None = None
        self._queue: list[OrderRequest] = []
        self._used: set[str] = set()
        self._now = 0
        self._n_fills = 0
        self._sizes: dict[float, tuple[Decimal, Decimal]] = {}
        self.ambiguous_bars = 0  # not modelled: backtesting.py assumes the stop

    def set_listener(self, listener: ExchangeListener) -> None:
        self._listener = listener

    def instrument(self, symbol: str) -> Instrument:
        return self._instrument

    def ensure_account(self, bot_id: int, balance: Decimal, leverage: Decimal) -> None:
        self._bot_id, self._cash, self._leverage = bot_id, float(balance), float(leverage)
        self._sl_id, self._tp_id = f"tt{bot_id}-sl-", f"tt{bot_id}-tp-"

    # -- orders --------------------------------------------------------------------------------------

    def submit(self, request: OrderRequest) -> OrderUpdate:
        cid = request.client_order_id
        if cid in self._used:
            return OrderUpdate(cid, request.bot_id, OrderStatus.REJECTED, self._now, "duplicate client order id")
        self._used.add(cid)
        if request.order_type is not _MARKET:
            return OrderUpdate(cid, request.bot_id, OrderStatus.REJECTED, self._now,
                               "the backtesting-py fill model takes market orders only")
        self._queue.append(request)
        return OrderUpdate(cid, request.bot_id, _NEW, self._now)

    def cancel_symbol(self, bot_id: int, symbol: str) -> list[OrderUpdate]:
        queue, self._queue = self._queue, []
        return [self._publish(r, _CANCELLED, self._now, "cancelled") for r in queue]

    def set_stop(self, bot_id: int, symbol: str, stop: Decimal | None, target: Decimal | None) -> None:
        if self._trade is not None:
            self._trade.stop = None if stop is None else float(stop)
            self._trade.target = None if target is None else float(target)
            self._trade.stop_d, self._trade.target_d = stop, target

    def levels(self) -> tuple[float | None, float | None] | None:
        """The open trade's stop and target as the matching compares them (None: none set), or None when
        nothing is open."""
        trade = self._trade
        return None if trade is None else (trade.stop, trade.target)

    # -- matching ------------------------------------------------------------------------------------

    def process_candle(self, candle: Candle) -> None:
        self.process_bar(candle.ts, candle.close_ts, candle.open, candle.high, candle.low, candle.close)

    def process_bar(self, ts: int, close_ts: int, open_: float, high: float, low: float, close: float) -> None:
        """`process_candle` from the candle's numbers (a backtest has them without a Candle)."""
        self._now = close_ts
        if self._queue:
            queue, self._queue = self._queue, []
            for request in queue:
                self._market(request, ts, open_, close)
        trade = self._trade
        if trade is None:
            if self._cash + 0.0 <= 0:
                self._out_of_money(self._cash + 0.0, ts, close)
            return
        # The position's stop and target, a trade opened at this open included (its entry bar).
        long = trade.qty > 0
        stop, target = trade.stop, trade.target
        if stop is not None and (low <= stop if long else high >= stop):
            if target is not None and (high >= target if long else low <= target):
                self.ambiguous_bars += 1
            price = min(open_, stop) if long else max(open_, stop)
            self._close(trade.request, price, ts, _STOP, f"{self._sl_id}{ts}", trade.stop_d if price == stop else None)
        elif target is not None and (high >= target if long else low <= target):
            price = max(open_, target) if long else min(open_, target)
            self._close(trade.request, price, ts, _TARGET, f"{self._tp_id}{ts}", trade.target_d if price == target else None)
        trade = self._trade
        equity = self._cash + (close * trade.qty - trade.qty * trade.entry if trade is not None else 0.0)
        if equity <= 0:
            self._out_of_money(equity, ts, close)

    def finish(self, last: Candle) -> None:
        """finalize_trades: close what is open at the last bar's open, processing the last bar's orders too."""
        if self._trade is not None:
            exit_side = Side.SELL if self._trade.qty > 0 else Side.BUY
            close = OrderRequest(f"tt{self._bot_id}-final", self._bot_id, last.symbol, exit_side, OrderType.MARKET,
                                 _dec(abs(self._trade.qty)), _EXIT, reduce_only=True)
            self._queue.insert(0, close)
        self.process_bar(last.ts, self._now, last.open, last.high, last.low, last.close)

    def _out_of_money(self, equity: float, ts: int, close: float) -> None:
        """Equity at or below zero: what is open closes at the close, and the run ends."""
        if self._trade is not None:
            self._close(self._trade.request, close, ts, _EXIT, self._trade.request.client_order_id + "-out")
        raise OutOfMoney(f"equity {equity:.2f} at {ts}: backtesting.py ends the run")

    def _market(self, r: OrderRequest, ts: int, open_: float, close: float) -> None:
        """Fill a market order at the open."""
        qty = float(r.qty) * (1 if r.side is _BUY else -1)
        trade = self._trade
        closed = 0.0  # of the open trade: its leg is reported with the opening one when they share a price
        if trade is not None and trade.qty * qty < 0:
            closed = min(abs(qty), abs(trade.qty))
            self._settle(closed, open_)
            qty += closed * (1 if qty < 0 else -1)
        elif r.reduce_only:
            self._publish(r, _CANCELLED, ts, "reduce-only order had nothing to reduce")
            return
        if r.reduce_only or qty == 0:
            if closed:
                self._emit(r, r.side, closed, open_, ts, r.purpose, r.client_order_id, True)
            self._publish(r, _FILLED, ts)
            return
        size = abs(qty)
        price = open_ * (1 + (self._spread if qty > 0 else -self._spread))
        per_unit = price + size * open_ * self._fee / size  # bt: adjusted price + commission(size, open) / |size|
        trade = self._trade
        unrealized = close * trade.qty - trade.qty * trade.entry if trade is not None else 0.0
        used = abs(trade.qty) * close / self._leverage if trade is not None else 0.0
        margin = max(0.0, self._cash + unrealized - used)
        if size * per_unit > margin * self._leverage:
            if closed:
                self._emit(r, r.side, closed, open_, ts, r.purpose, r.client_order_id, True)
            self._publish(r, _CANCELLED, ts, "insufficient margin at the fill (backtesting.py cancels it)")
            return
        self._cash -= size * price * self._fee
        self._trade = _Trade(qty, price, None if r.stop_loss is None else float(r.stop_loss),
                             None if r.take_profit is None else float(r.take_profit), r, r.stop_loss, r.take_profit)
        if closed and price != open_:
            self._emit(r, r.side, closed, open_, ts, r.purpose, r.client_order_id, True)
            closed = 0.0
        self._emit(r, r.side, closed + size, price, ts, r.purpose, r.client_order_id, False)
        if self._listener is not None:
            self._listener.on_order_update(OrderUpdate(r.client_order_id, r.bot_id, _FILLED, ts))

    def _settle(self, size: float, price: float) -> None:
        """Close `size` of the open trade at `price` in the broker's cash (backtesting.py's arithmetic)."""
        trade = self._trade
        assert trade is not None
        sign = 1.0 if trade.qty > 0 else -1.0
        self._cash += sign * size * (price - trade.entry) - size * price * self._fee
        remaining = abs(trade.qty) - size
        self._trade = None if remaining <= 0 else _Trade(sign * remaining, trade.entry, trade.stop, trade.target, trade.request,
                                                                 trade.stop_d, trade.target_d)

    def _close(self, r: OrderRequest, price: float, ts: int, purpose: OrderPurpose, cid: str,
               price_d: Decimal | None = None) -> None:
        """Close the whole open trade at `price` (`price_d`: it exactly, when known), reported as a fill."""
        trade = self._trade
        assert trade is not None
        size, side = abs(trade.qty), _SELL if trade.qty > 0 else _BUY
        self._settle(size, price)
        self._emit(r, side, size, price, ts, purpose, cid, True, price_d)

    def _emit(self, r: OrderRequest, side: Side, qty: float, price: float, ts: int, purpose: OrderPurpose,
              cid: str, reduce_only: bool, price_d: Decimal | None = None) -> None:
        listener = self._listener
        if listener is None:
            return
        n = self._n_fills = self._n_fills + 1
        sized = self._sizes.get(qty)  # the few sizes a run trades: as Decimals, and their fee per unit of price
        if sized is None:
            size_d = Decimal(repr(qty))
            sized = self._sizes[qty] = (size_d, size_d * self._fee_rate)
        if price_d is None:
            price_d = Decimal(repr(price))
        listener.on_fill(Fill(f"{cid}-f{n}", cid, r.bot_id, r.symbol, side, sized[0], price_d, sized[1] * price_d, _TAKER,
                              ts, purpose, reduce_only))

    def _publish(self, r: OrderRequest, status: OrderStatus, ts: int, reason: str = "") -> OrderUpdate:
        update = OrderUpdate(r.client_order_id, r.bot_id, status, ts, reason)
        if self._listener is not None:
            self._listener.on_order_update(update)
        return update
