"""One bot as the live orchestrator handles it, without an event loop or a database:
booking the exchange's fills and order updates into the ledger (with the same
decisions), the risk pass, running the cycle on a candle, sending its intents.
The backtest loop (runner.py) drives it bar by bar.

Fills are booked by the engine's own `book_fill`, with its decisions. Beyond the
orchestrator: exact equity is computed only where it can matter (a float bound first),
the high-water mark and the day's starting equity are kept only for a bot with loss
limits (nothing else reads them), and the decisions of exchange events are kept as
`Deferred` until read.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal

from tui_trader.backtest.btpy import BacktestingPyBroker
from tui_trader.backtest.results import BookSeries, Deferred
from tui_trader.engine.booking import book_fill, order_cancelled, order_placed, order_rejected, trade_entered, trade_exited
from tui_trader.engine.cycle import (
    BotCycle,
    BotProfile,
    CancelOrders,
    CycleContext,
    CycleResult,
    MoveStop,
    PlaceOrder,
    setup_found,
)
from tui_trader.engine.ledger import BotLedger
from tui_trader.exchange.paper import PaperExchange
from tui_trader.model import (
    BotState,
    Candle,
    Decision,
    DecisionType,
    Fill,
    Instrument,
    Order,
    OrderPurpose,
    OrderStatus,
    OrderUpdate,
    Phase,
    Position,
    Regime,
    Trade,
)
from tui_trader.risk import Exact, Valuation, loss_breach
from tui_trader.strategy import Setup, Strategy

DAY_MS = 86_400_000
FILL_MODELS = ("paper", "backtesting-py")
Intent = PlaceOrder | MoveStop | CancelOrders
# Enum members are looked up through the metaclass (~70 ns on 3.11): these run per fill or order.
_ENTRY, _EXIT, _FLATTEN = OrderPurpose.ENTRY, OrderPurpose.EXIT, OrderPurpose.FLATTEN
_CANCELLED, _REJECTED, _NEW, _PENDING = OrderStatus.CANCELLED, OrderStatus.REJECTED, OrderStatus.NEW, OrderStatus.PENDING_SUBMIT
_TRADE_EXITED, _TRADE_ENTERED, _ORDER_PLACED = DecisionType.TRADE_EXITED, DecisionType.TRADE_ENTERED, DecisionType.ORDER_PLACED
_SETUP_FOUND = DecisionType.SETUP_FOUND
_RUNNING = BotState.RUNNING


@dataclass(frozen=True, slots=True)
class FillSettings:
    model: str = "paper"  # paper | backtesting-py
    taker_fee: Decimal = Decimal("0.00055")  # fraction per leg (backtesting-py: its commission)
    maker_fee: Decimal = Decimal("0.0002")
    slippage_bps: Decimal = Decimal(2)  # paper: market and stop fills; backtesting-py: its spread, entries only
    optimistic: bool = False  # paper: an ambiguous bar goes to the target

    def __post_init__(self) -> None:
        if self.model not in FILL_MODELS:
            raise ValueError(f"unknown fill model {self.model!r} (known: {', '.join(FILL_MODELS)})")


def _entered(bot_id: int, fill: Fill, qty: Decimal, entry: Decimal, stop: Decimal | None, target: Decimal | None,
             instrument: Instrument, close: float) -> Decision:
    """TRADE_ENTERED as the orchestrator writes it, marked at the tick's close on the tick grid (the
    fill's price before any tick), for the position as it was at the fill (what its text reads of it)."""
    position = Position(bot_id, fill.symbol, qty, entry, stop, target)
    return trade_entered(bot_id, fill, position, instrument.round_price(close) if close == close else fill.price)


def _exact_valuation(instrument: Instrument, close: float, capital: Decimal, realized: Decimal, fees: Decimal, qty: Decimal,
                     entry: Decimal) -> Exact:
    """The exact valuation at a close from the books at the time: the mark, and the equity at it as
    `_equity` computes it (the wallet, plus the position's unrealized P&L as `BotLedger.equity` adds it)."""
    mark = instrument.round_price(close)
    wallet = capital + realized - fees
    equity = wallet + (mark - entry) * qty if qty else wallet
    return mark, equity, equity


class _DeferringResult(CycleResult):
    """The cycle's result with SETUP_FOUND kept unbuilt until read (its setup and indicators are its own)."""

    __slots__ = ()

    def setup_found(self, bot_id: int, ts: int, found: Setup, reversing: bool, indicators: dict[str, float]) -> None:
        deferred: Deferred = (_SETUP_FOUND, setup_found, bot_id, ts, found, reversing, indicators)
        self.decisions.append(deferred)  # type: ignore[arg-type]


class _Listener:
    """Collects the exchange's events for booking: the ExchangeListener methods are the lists' appends."""

    __slots__ = ("fills", "updates", "on_fill", "on_order_update")

    def __init__(self) -> None:
        self.fills: list[Fill] = []
        self.updates: list[OrderUpdate] = []
        self.on_fill = self.fills.append
        self.on_order_update = self.updates.append


class BotSession:
    def __init__(self, profile: BotProfile, strategy: Strategy, fills: FillSettings) -> None:
        self.profile, self.strategy, self.settings = profile, strategy, fills
        self.instrument = profile.instrument
        self.bot_id = profile.bot_id
        self.symbol = profile.symbol
        self.cycle = BotCycle(profile, strategy)
        self.ledger = BotLedger(profile.bot_id, profile.symbol, profile.capital)
        self.state, self.state_reason = BotState.RUNNING, ""
        self.orders: dict[str, Order] = {}
        self.next_seq = 1
        self.equity: Decimal | None = profile.capital
        self._close = math.nan  # of the tick being processed
        self._tick_f = float(profile.instrument.tick_size)
        self._high_water_f = float(profile.capital) * (1 - 1e-12)
        # Only loss limits read the high-water mark and the day's starting equity: without them the
        # risk pass has nothing to do (and can pause nothing).
        self.watch_limits = profile.limits.daily_loss is not None or profile.limits.drawdown is not None
        self.now_ts = 0
        self.mark: Decimal | None = None
        self.decisions: list[Decision | Deferred] = []
        self.routine: Counter[DecisionType] = Counter()
        self.trades: list[Trade] = []
        self.fills: list[Fill] = []
        self.books = BookSeries()
        self._intents: list[Intent] = []
        # The cycle appends straight to these (its result's decisions take deferred ones too).
        self._out = _DeferringResult(self.decisions, self._intents)  # type: ignore[arg-type]
        self.listener = _Listener()
        self.exchange: PaperExchange | BacktestingPyBroker
        if fills.model == "paper":
            self.exchange = PaperExchange({profile.symbol: profile.instrument}, fills.maker_fee, fills.taker_fee,
                                          fills.slippage_bps, optimistic=fills.optimistic)
        else:
            self.exchange = BacktestingPyBroker(profile.instrument, fills.taker_fee, fills.slippage_bps / 10_000)
        self.exchange.set_listener(self.listener)
        self.exchange.ensure_account(profile.bot_id, profile.capital, profile.leverage)
        self._risk, self._timeframe_ms = profile.risk, profile.timeframe_ms

    def _decide(self, decision: Decision) -> None:
        self.decisions.append(decision)

    def _book(self) -> bool:
        """Book what the exchange reported; True when anything was."""
        listener = self.listener
        fills, updates = listener.fills, listener.updates
        if not fills and not updates:
            return False
        if fills:
            ledger, bot_id, orders, risk, timeframe_ms = self.ledger, self.bot_id, self.orders, self._risk, self._timeframe_ms
            decide, keep_trade = self.decisions.append, self.trades.append
            for fill in fills:
                trades, entered, cooldown = book_fill(ledger, orders.get(fill.client_order_id), fill, risk, timeframe_ms,
                                                      bot_id)
                if cooldown is not None:
                    decide(cooldown)
                for trade in trades:
                    keep_trade(trade)
                    decide((_TRADE_EXITED, trade_exited, bot_id, trade))
                if entered:
                    p = ledger.position  # what the decision reads of it, as it is now (a stop may move later)
                    decide((_TRADE_ENTERED, _entered, bot_id, fill, p.qty, p.entry_price, p.stop_price, p.target_price,
                            self.instrument, self._close))
            self.fills += fills
            fills.clear()
        orders = self.orders
        for update in updates:
            order = orders.pop(update.client_order_id, None)
            if order is not None and (update.status is _CANCELLED or update.status is _REJECTED):
                self._decide(order_cancelled(self.bot_id, update.ts, order, update.status, update.reason))
        updates.clear()
        return True

    def _set_state(self, to: BotState, command: str, source: str, reason: str) -> None:
        before = self.state
        self.state, self.state_reason = to, reason
        self._decide(Decision(self.bot_id, self.now_ts, Phase.CONTROL, DecisionType.STATE_CHANGED,
                              f"{before.value} -> {to.value} by {source}{': ' + reason if reason else ''}",
                              {"command": command, "source": source}))

    def _mark(self) -> Decimal:
        if self.mark is None:
            self.mark = self.instrument.round_price(self._close)
        return self.mark

    def _equity(self) -> Decimal:
        """The bot's equity at this tick's mark, as the orchestrator's risk pass computes it."""
        if self.equity is None:
            ledger = self.ledger
            self.equity = ledger.equity(self._mark()) if ledger.position.qty else ledger.wallet
        return self.equity

    def _valuation(self, exact: bool) -> Valuation:
        """The bot's valuation at this tick's close, for the cycle: its floats from the books' (recorded after
        every booking), its exact values computed when read from the books as they are now. Exact at once
        where the caller says the cycle reads it (`exact`), the risk pass valued the bot already, or the
        close is a hair from half a tick."""
        if not exact and self.equity is None:
            mark_f = self.instrument.round_price_f(self._close)
            if mark_f is not None:
                books = self.books
                qty = books.qty[-1]
                equity_f = books.wallet[-1] + qty * (mark_f - books.entry[-1]) if qty else books.wallet[-1]
                ledger = self.ledger
                position = ledger.position
                return Valuation((mark_f, equity_f, equity_f), None, (
                    _exact_valuation, self.instrument, self._close, ledger.capital, ledger.realized_pnl, ledger.fees,
                    position.qty, position.entry_price))
        equity = self._equity()
        return Valuation(None, (self._mark(), equity, equity))

    def _risk_pass(self) -> None:
        """The orchestrator's risk pass for a bot with loss limits (`watch_limits`)."""
        now = self.now_ts
        day = now - now % DAY_MS
        ledger = self.ledger
        self.equity = None
        qty = ledger.position.qty
        if qty:
            # Exactly only where it can matter: a float bound first (a tick of slack for the mark's rounding).
            books = self.books  # the books as floats, recorded after every booking
            q, entry, wallet = books.qty[-1], books.entry[-1], books.wallet[-1]
            near = wallet + q * (self._close - entry) + abs(q) * self._tick_f >= self._high_water_f
            if near and self._equity() > ledger.high_water:
                ledger.high_water = self._equity()  # the value just computed (not self.equity: mypy, and so mypyc, narrow it to None)
                self._high_water_f = float(ledger.high_water) * (1 - 1e-12)
        elif ledger.wallet > ledger.high_water:
            ledger.high_water = ledger.wallet
            self._high_water_f = float(ledger.high_water) * (1 - 1e-12)
        if ledger.day_start != day:
            equity = self._equity()
            first = ledger.day_start == 0
            ledger.day_start, ledger.day_start_equity = day, equity
            if not first and self.state is BotState.PAUSED:
                risk = self.profile.risk
                gate = self.state_reason.partition(":")[0]
                if (gate == "daily_loss" and risk.daily_loss_resume == "next_day") or (
                        gate == "drawdown" and risk.drawdown_resume == "next_day"):
                    ledger.high_water = equity
                    self._high_water_f = float(equity) * (1 - 1e-12)
                    date = datetime.fromtimestamp(day / 1000, UTC).date().isoformat()
                    self._set_state(BotState.RUNNING, "resume", "risk:new_day", f"trading day {date} began: {gate} limit reset")
        if self.state is _RUNNING:
            breach = loss_breach(self._equity(), ledger.day_start_equity, ledger.high_water, self.profile.limits)
            if breach is not None:
                gate, reason = breach
                self._set_state(BotState.PAUSED, "pause", f"risk:{gate}", f"{gate}: {reason}")

    def _run_cycle(self, candle: Candle, regime: Regime, features: dict[str, float] | None, atr: float,
                   signal: bool) -> bool:
        """The bot's cycle on a candle of its timeframe, with the regime tracker's view of it, and its
        intents carried out: each is recorded and sent in turn, as the orchestrator persists and sends them
        (a backtest persists nothing). True when the exchange reported fills or order updates. `signal`:
        the strategy may signal on the candle; where it cannot and a position is open, the cycle marks the
        position (its HOLD row, its stop rules), so the valuation is made exact at once."""
        ledger = self.ledger
        orders = self.orders
        value = self._valuation(not signal and bool(ledger.position.qty))
        ctx = CycleContext(
            self.now_ts, self.state, self.state_reason, ledger.position, value, regime, features,
            bool(orders) and any(o.request.purpose is _ENTRY for o in orders.values()),
            bool(orders) and any(o.request.purpose is _EXIT or o.request.purpose is _FLATTEN for o in orders.values()),
            self.next_seq, ledger.day_start_equity, ledger.high_water, ledger.cooldown_until, None, atr)
        self.cycle.run(candle, ctx, self._out)
        intents = self._intents
        if not intents:
            return False
        for intent in intents:
            if type(intent) is PlaceOrder:
                request = intent.request
                order = orders[request.client_order_id] = Order(request, _PENDING, self.now_ts, self.now_ts)
                if intent.seq >= self.next_seq:
                    self.next_seq = intent.seq + 1
                self._place(order)
            elif type(intent) is MoveStop:
                ledger.position.stop_price = intent.stop
                if ledger.position.qty:
                    self.exchange.set_stop(intent.bot_id, intent.symbol, intent.stop, intent.target)
            else:
                for cid in [c for c, o in orders.items() if o.status is _PENDING]:
                    orders.pop(cid)
                self.exchange.cancel_symbol(self.bot_id, self.symbol)
        intents.clear()
        listener = self.listener
        return self._book() if listener.fills or listener.updates else False

    def _place(self, order: Order) -> None:
        request = order.request
        ack = self.exchange.submit(request)
        if ack.status is _REJECTED:
            self.orders.pop(request.client_order_id)
            self._decide(order_rejected(self.bot_id, self.now_ts, request, ack.reason))
            return
        order.status, order.updated_ts = _NEW, self.now_ts
        self.decisions.append((_ORDER_PLACED, order_placed, self.bot_id, self.now_ts, request))
