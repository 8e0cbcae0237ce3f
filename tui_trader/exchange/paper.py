"""The paper exchange: a simulated Bybit-like venue for USDT linear perpetuals.

Every bot trades in its own sub-account, so positions of different bots on one
symbol never net. Time moves only through `process_candle`, which is fed every
closed base candle of every symbol in time order; on a candle of symbol S:

1. market orders accepted since S's previous candle fill at its open;
2. inside the bar, first whatever the open already trades through fills at the
   open; then position stop-losses and stop orders; then limit orders and
   position take-profits. Stops come before targets (pessimistic), so a bar that
   holds both a position's stop and its target stops it out;
3. the close becomes S's mark price.

Within a step, positions go before orders and orders in the order they were
accepted. Market, stop and stop-loss fills pay the taker fee and `slippage_bps`
against the order; limit fills pay the maker fee at their price, or at the open
when it is better; take-profits fill at their price (or a better open) with the
taker fee and no slippage, like Bybit's market TP.

A bar whose range holds both a position's stop and its target (and whose open
is beyond neither) is ambiguous: candles do not say which traded first. Such bars
are counted in `ambiguous_bars`; `optimistic=True` resolves them to the target
instead (backtests run both ways to show how much the assumption matters).

Simplifications: orders fill whole (no partial fills); margin is checked when an
order is placed, not at fill time; no funding, no liquidation.

The async methods are the `Exchange` protocol; the synchronous ones they call
(`ensure_account`, `submit`, `cancel`, `cancel_symbol`, `set_stop`) are for a caller without an
event loop: the backtest's plain loop.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from decimal import Decimal

from tui_trader.exchange.base import ExchangeListener
from tui_trader.model import (
    ZERO,
    Candle,
    Fill,
    Instrument,
    Liquidity,
    Order,
    OrderPurpose,
    OrderRequest,
    OrderStatus,
    OrderType,
    OrderUpdate,
    Position,
    Side,
    to_usdt,
)

BPS = Decimal(10_000)
NOTHING_TO_REDUCE = "reduce-only order had nothing to reduce"


@dataclass(slots=True)
class _Account:
    wallet: Decimal
    leverage: Decimal
    positions: dict[str, Position] = field(default_factory=dict)  # open ones, by symbol
    orders: dict[str, Order] = field(default_factory=dict)  # resting ones, by client order id


@dataclass(frozen=True, slots=True)
class _Bar:
    ts: int
    open: Decimal
    high: Decimal
    low: Decimal

    def reach(self, rising: bool) -> Decimal:
        """The furthest price the bar traded in that direction."""
        return self.high if rising else self.low


def _beyond(price: Decimal, level: Decimal, rising: bool) -> bool:
    """Whether `price` is at or past `level` for a leg waiting for the price to rise (or fall)."""
    return price >= level if rising else price <= level


def _exit_side(position: Position) -> Side:
    return Side.SELL if position.qty > 0 else Side.BUY


def _dec(value: float) -> Decimal:
    return Decimal(repr(value))


def _usdt(amount: Decimal) -> str:
    return f"{to_usdt(amount).normalize():f}"


class PaperExchange:
    """Implements `Exchange`, plus candle-driven matching and paper-only helpers."""

    name = "paper"
    supports_trading_stop = True

    def __init__(self, instruments: dict[str, Instrument], maker_fee: Decimal, taker_fee: Decimal, slippage_bps: Decimal,
                 optimistic: bool = False) -> None:
        self._instruments = dict(instruments)
        self.optimistic = optimistic
        self.ambiguous_bars = 0
        self._fee_rates = {Liquidity.MAKER: maker_fee, Liquidity.TAKER: taker_fee}
        slip = slippage_bps / BPS
        self._slip = {Side.BUY: 1 + slip, Side.SELL: 1 - slip}
        self._listener: ExchangeListener | None = None
        self._accounts: dict[int, _Account] = {}
        self._book: dict[str, dict[str, Order]] = {}  # resting orders by symbol, then client order id
        self._held: dict[str, dict[int, Position]] = {}  # open positions by symbol, then bot id
        self._marks: dict[str, Decimal] = {}
        self._status: dict[str, OrderUpdate] = {}  # latest update of every client order id ever used
        self._now = 0  # close time (ms) of the latest candle

    # --- Exchange protocol -------------------------------------------------

    def set_listener(self, listener: ExchangeListener) -> None:
        self._listener = listener

    def instrument(self, symbol: str) -> Instrument:
        try:
            return self._instruments[symbol]
        except KeyError:
            raise KeyError(f"unknown symbol {symbol!r}: the paper exchange has no instrument for it") from None

    async def open_account(self, bot_id: int, balance: Decimal, leverage: Decimal) -> None:
        self.ensure_account(bot_id, balance, leverage)

    def ensure_account(self, bot_id: int, balance: Decimal, leverage: Decimal) -> None:
        """Create the bot's sub-account; if it exists, only its leverage changes."""
        if leverage <= 0:
            raise ValueError(f"leverage must be positive, got {leverage}")
        account = self._accounts.get(bot_id)
        if account is None:
            self._accounts[bot_id] = _Account(balance, leverage)
        else:
            account.leverage = leverage

    def transfer(self, bot_id: int, amount: Decimal) -> None:
        """Deposit (positive) or withdraw (negative) virtual capital, as when a bot's capital is edited."""
        self._account(bot_id).wallet += amount

    async def place_order(self, request: OrderRequest) -> OrderUpdate:
        return self.submit(request)

    async def cancel_order(self, bot_id: int, client_order_id: str) -> OrderUpdate:
        return self.cancel(bot_id, client_order_id)

    async def cancel_all(self, bot_id: int, symbol: str) -> list[OrderUpdate]:
        return self.cancel_symbol(bot_id, symbol)

    async def set_trading_stop(self, bot_id: int, symbol: str, stop: Decimal | None, target: Decimal | None) -> None:
        self.set_stop(bot_id, symbol, stop, target)

    def submit(self, request: OrderRequest) -> OrderUpdate:
        cid = request.client_order_id
        if cid in self._status:
            return OrderUpdate(cid, request.bot_id, OrderStatus.REJECTED, self._now, "duplicate client order id")
        reason = self._rejection(request)
        if reason is None:
            self._rest(Order(request, OrderStatus.NEW, self._now, self._now))
            update = OrderUpdate(cid, request.bot_id, OrderStatus.NEW, self._now)
        else:
            update = OrderUpdate(cid, request.bot_id, OrderStatus.REJECTED, self._now, reason)
        self._status[cid] = update
        return update

    def cancel(self, bot_id: int, client_order_id: str) -> OrderUpdate:
        """Cancel a resting order (emitted to the listener); a refusal is only returned."""
        account = self._accounts.get(bot_id)
        order = account.orders.get(client_order_id) if account is not None else None
        if order is not None:
            self._remove(order)
            return self._publish(client_order_id, bot_id, OrderStatus.CANCELLED, self._now)
        known = self._status.get(client_order_id)
        reason = "order already closed" if known is not None and known.bot_id == bot_id else "unknown order"
        return OrderUpdate(client_order_id, bot_id, OrderStatus.REJECTED, self._now, reason)

    def cancel_symbol(self, bot_id: int, symbol: str) -> list[OrderUpdate]:
        account = self._accounts.get(bot_id)
        if account is None:
            return []
        mine = [o for o in account.orders.values() if o.request.symbol == symbol]
        return [self.cancel(bot_id, o.client_order_id) for o in mine]

    def set_stop(self, bot_id: int, symbol: str, stop: Decimal | None, target: Decimal | None) -> None:
        """Set or clear (None) the position's stop and target; each must lie on its side of the mark."""
        account = self._accounts.get(bot_id)
        position = account.positions.get(symbol) if account is not None else None
        if position is None:
            raise ValueError(f"bot {bot_id} has no open position on {symbol}")
        mark = self._marks.get(symbol)
        if mark is not None:
            long = position.qty > 0
            kind = "long" if long else "short"
            if stop is not None and (stop >= mark if long else stop <= mark):
                raise ValueError(f"stop {stop} must be {'below' if long else 'above'} the mark price {mark} for a {kind} position")
            if target is not None and (target <= mark if long else target >= mark):
                raise ValueError(f"target {target} must be {'above' if long else 'below'} the mark price {mark} for a {kind} position")
        position.stop_price = stop
        position.target_price = target

    async def get_order(self, client_order_id: str) -> OrderUpdate | None:
        return self._status.get(client_order_id)

    async def open_orders(self) -> list[Order]:
        return [replace(o) for book in self._book.values() for o in book.values()]

    async def positions(self) -> list[Position]:
        return [replace(p) for held in self._held.values() for p in held.values()]

    # --- paper-only --------------------------------------------------------

    def mark(self, symbol: str) -> Decimal | None:
        """The last close of the symbol, None before its first candle."""
        return self._marks.get(symbol)

    def wallet(self, bot_id: int) -> Decimal:
        return self._account(bot_id).wallet

    def position(self, bot_id: int, symbol: str) -> Position:
        """A copy of the bot's position on the symbol (a flat one if it has none)."""
        account = self._accounts.get(bot_id)
        position = account.positions.get(symbol) if account is not None else None
        return replace(position) if position is not None else Position(bot_id, symbol)

    def restore(
        self,
        balances: dict[int, tuple[Decimal, Decimal]],
        positions: list[Position],
        orders: list[Order],
        marks: dict[str, Decimal],
    ) -> None:
        """Replace the whole state with what the engine persisted.

        `balances` maps bot id to (wallet, leverage); `orders` are the resting ones,
        and their client order ids count as used.
        """
        self._accounts = {bot_id: _Account(wallet, leverage) for bot_id, (wallet, leverage) in balances.items()}
        self._book, self._held, self._status = {}, {}, {}
        self._marks = dict(marks)
        for position in positions:
            if position.qty:
                self.instrument(position.symbol)
                self._hold(self._account(position.bot_id), replace(position))
        for order in orders:
            self.instrument(order.request.symbol)
            self._account(order.request.bot_id)
            self._rest(replace(order, status=OrderStatus.NEW))
            self._status[order.client_order_id] = OrderUpdate(order.client_order_id, order.request.bot_id, OrderStatus.NEW, order.updated_ts)
            self._now = max(self._now, order.updated_ts)

    def process_candle(self, candle: Candle) -> None:
        """Match the resting orders and positions of the candle's symbol against it, then mark to its close."""
        symbol = candle.symbol
        self._now = max(self._now, candle.close_ts)
        if self._book.get(symbol) or self._held.get(symbol):
            bar = _Bar(candle.ts, _dec(candle.open), _dec(candle.high), _dec(candle.low))
            self._match(self.instrument(symbol), bar)
        self._marks[symbol] = _dec(candle.close)

    # --- matching ----------------------------------------------------------

    def _match(self, instrument: Instrument, bar: _Bar) -> None:
        symbol, ts, taker, maker = instrument.symbol, bar.ts, Liquidity.TAKER, Liquidity.MAKER
        for order in self._resting(symbol):
            if order.request.order_type is OrderType.MARKET:
                self._fill_order(order, self._slipped(instrument, bar.open, order.request.side), taker, ts)

        # (a) what the open already trades through fills at the open
        for position in self._open_positions(symbol):
            side = _exit_side(position)
            if position.stop_price is not None and _beyond(bar.open, position.stop_price, side is Side.BUY):
                self._exit(position, OrderPurpose.STOP, self._slipped(instrument, bar.open, side), ts)
            elif position.target_price is not None and _beyond(bar.open, position.target_price, side is Side.SELL):
                self._exit(position, OrderPurpose.TARGET, instrument.round_price(bar.open, side), ts)
        for order in self._resting(symbol):
            r = order.request
            if r.order_type is OrderType.STOP and r.trigger_price is not None and _beyond(bar.open, r.trigger_price, r.side is Side.BUY):
                self._fill_order(order, self._slipped(instrument, bar.open, r.side), taker, ts)
            elif r.order_type is OrderType.LIMIT and r.price is not None and _beyond(bar.open, r.price, r.side is Side.SELL):
                self._fill_order(order, instrument.round_price(bar.open, r.side), maker, ts)

        # (b) stops, before limits and targets: nobody knows the path inside the bar
        for position in self._open_positions(symbol):
            side = _exit_side(position)
            rising = side is Side.BUY
            if position.stop_price is not None and _beyond(bar.reach(rising), position.stop_price, rising):
                target = position.target_price
                if target is not None and _beyond(bar.reach(not rising), target, not rising):
                    self.ambiguous_bars += 1
                    if self.optimistic:
                        self._exit(position, OrderPurpose.TARGET, instrument.round_price(target, side), ts)
                        continue
                self._exit(position, OrderPurpose.STOP, self._slipped(instrument, position.stop_price, side), ts)
        for order in self._resting(symbol):
            r = order.request
            rising = r.side is Side.BUY
            if r.order_type is OrderType.STOP and r.trigger_price is not None and _beyond(bar.reach(rising), r.trigger_price, rising):
                self._fill_order(order, self._slipped(instrument, r.trigger_price, r.side), taker, ts)

        # (c) limits, then take-profits
        for order in self._resting(symbol):
            r = order.request
            rising = r.side is Side.SELL
            if r.order_type is OrderType.LIMIT and r.price is not None and _beyond(bar.reach(rising), r.price, rising):
                self._fill_order(order, r.price, maker, ts)
        for position in self._open_positions(symbol):
            side = _exit_side(position)
            rising = side is Side.SELL
            if position.target_price is not None and _beyond(bar.reach(rising), position.target_price, rising):
                self._exit(position, OrderPurpose.TARGET, instrument.round_price(position.target_price, side), ts)

    def _slipped(self, instrument: Instrument, price: Decimal, side: Side) -> Decimal:
        return instrument.round_price(price * self._slip[side], side)

    def _fill_order(self, order: Order, price: Decimal, liquidity: Liquidity, ts: int) -> None:
        r = order.request
        qty = r.qty
        self._remove(order)
        if r.reduce_only:
            position = self._accounts[r.bot_id].positions.get(r.symbol)
            if position is None or position.side is r.side:
                self._publish(r.client_order_id, r.bot_id, OrderStatus.CANCELLED, ts, NOTHING_TO_REDUCE)
                return
            qty = min(qty, abs(position.qty))
        self._execute(r, qty, price, liquidity, ts)

    def _exit(self, position: Position, purpose: OrderPurpose, price: Decimal, ts: int) -> None:
        """Close the position through its exchange-side stop-loss or take-profit."""
        tag = "sl" if purpose is OrderPurpose.STOP else "tp"
        base = f"tt{position.bot_id}-{position.symbol}-{tag}-{ts}"
        cid, n = base, 1
        while cid in self._status:  # the bot reopened and exited again within this bar
            n += 1
            cid = f"{base}-{n}"
        qty = abs(position.qty)
        request = OrderRequest(cid, position.bot_id, position.symbol, _exit_side(position), OrderType.MARKET, qty, purpose, reduce_only=True)
        self._execute(request, qty, price, Liquidity.TAKER, ts)

    def _execute(self, r: OrderRequest, qty: Decimal, price: Decimal, liquidity: Liquidity, ts: int) -> None:
        account = self._accounts[r.bot_id]
        fee = to_usdt(qty * price * self._fee_rates[liquidity])
        account.wallet += self._apply(account, r, qty, price, fee, ts) - fee
        if self._listener is not None:
            fill = Fill(
                f"{r.client_order_id}-f1", r.client_order_id, r.bot_id, r.symbol, r.side, qty, price, fee, liquidity, ts, r.purpose, r.reduce_only
            )
            self._listener.on_fill(fill)
        self._publish(r.client_order_id, r.bot_id, OrderStatus.FILLED, ts)

    def _apply(self, account: _Account, r: OrderRequest, qty: Decimal, price: Decimal, fee: Decimal, ts: int) -> Decimal:
        """Book a fill on the position; returns the realized P&L."""
        position = account.positions.get(r.symbol) or Position(r.bot_id, r.symbol)
        realized = ZERO
        opened = qty
        if position.qty and position.side is not r.side:
            held = abs(position.qty)
            closed = min(qty, held)
            realized = to_usdt((price - position.entry_price) * closed * (1 if position.qty > 0 else -1))
            position.entry_fees = to_usdt(position.entry_fees * (held - closed) / held)
            position.qty += closed * r.side.sign
            opened = qty - closed
            if not position.qty:
                position.entry_price, position.stop_price, position.target_price = ZERO, None, None
        if opened:  # opens, adds to, or flips into a position on the order's side
            size = abs(position.qty)
            position.entry_price = (size * position.entry_price + opened * price) / (size + opened)
            position.entry_fees += to_usdt(fee * opened / qty)
            if not position.qty:
                position.opened_ts = ts
            position.qty += opened * r.side.sign
            if r.stop_loss is not None:
                position.stop_price = r.stop_loss
            if r.take_profit is not None:
                position.target_price = r.take_profit
        if position.qty:
            self._hold(account, position)
        else:
            del account.positions[r.symbol]
            del self._held[r.symbol][r.bot_id]
        return realized

    # --- bookkeeping -------------------------------------------------------

    def _account(self, bot_id: int) -> _Account:
        try:
            return self._accounts[bot_id]
        except KeyError:
            raise KeyError(f"no paper account for bot {bot_id}") from None

    def _rejection(self, r: OrderRequest) -> str | None:
        """Why the order is refused, or None to accept it."""
        account = self._accounts.get(r.bot_id)
        if account is None:
            return f"no paper account for bot {r.bot_id}"
        instrument = self._instruments.get(r.symbol)
        if instrument is None:
            return f"unknown symbol {r.symbol}"
        if r.order_type is OrderType.LIMIT and r.price is None:
            return "limit order without a price"
        if r.order_type is OrderType.STOP and r.trigger_price is None:
            return "stop order without a trigger price"
        ref = self._reference_price(r)
        if ref is None:
            return "no market price yet"
        reason = instrument.check_order(r.qty, ref)
        if reason is not None:
            return reason
        if r.reduce_only:
            position = account.positions.get(r.symbol)
            if position is None:
                return "reduce-only order but there is no position to reduce"
            if position.side is r.side:
                return f"reduce-only {r.side} order would increase the {'long' if position.qty > 0 else 'short'} position"
            return None
        # As in Bybit's one-way mode, the part of an order that closes the opposite position needs
        # no margin and frees that position's margin: only the part that opens is margined.
        position = account.positions.get(r.symbol)
        closing = min(abs(position.qty), r.qty) if position is not None and position.side is not r.side else ZERO
        opening = r.qty - closing
        need = opening * ref / account.leverage + r.qty * ref * self._fee_rates[Liquidity.TAKER]
        available = self._available(account)
        if closing:
            available += closing * position.entry_price / account.leverage  # type: ignore[union-attr]
        if need > available:
            return f"insufficient margin: need {_usdt(need)} USDT, available {_usdt(available)} USDT"
        return None

    def _reference_price(self, r: OrderRequest) -> Decimal | None:
        """The price an order is checked and margined at: its limit, its trigger, or the mark."""
        if r.order_type is OrderType.LIMIT:
            return r.price
        if r.order_type is OrderType.STOP:
            return r.trigger_price
        mark = self._marks.get(r.symbol)
        return None if mark is None else self._instruments[r.symbol].round_price(mark)

    def _available(self, account: _Account) -> Decimal:
        """Wallet minus the initial margin of open positions and resting non-reduce-only orders."""
        notional = sum((abs(p.qty) * p.entry_price for p in account.positions.values()), ZERO)
        for order in account.orders.values():
            if not order.request.reduce_only:
                notional += order.request.qty * (self._reference_price(order.request) or ZERO)
        return account.wallet - notional / account.leverage

    def _rest(self, order: Order) -> None:
        r = order.request
        self._accounts[r.bot_id].orders[r.client_order_id] = order
        self._book.setdefault(r.symbol, {})[r.client_order_id] = order

    def _remove(self, order: Order) -> None:
        r = order.request
        del self._accounts[r.bot_id].orders[r.client_order_id]
        del self._book[r.symbol][r.client_order_id]

    def _hold(self, account: _Account, position: Position) -> None:
        account.positions[position.symbol] = position
        self._held.setdefault(position.symbol, {})[position.bot_id] = position

    def _resting(self, symbol: str) -> list[Order]:
        return list(self._book.get(symbol, {}).values())

    def _open_positions(self, symbol: str) -> list[Position]:
        return list(self._held.get(symbol, {}).values())

    def _publish(self, client_order_id: str, bot_id: int, status: OrderStatus, ts: int, reason: str = "") -> OrderUpdate:
        update = OrderUpdate(client_order_id, bot_id, status, ts, reason)
        self._status[client_order_id] = update
        if self._listener is not None:
            self._listener.on_order_update(update)
        return update
