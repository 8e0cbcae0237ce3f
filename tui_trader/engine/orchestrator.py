"""The async shell around the pure bot cycle.

Per base tick: the exchange sees the candles (the paper exchange matches on
them), fills are booked into each bot's ledger, higher-timeframe candles that
closed are built, every bot whose candle closed runs its cycle, and the
cycle's state (order intents as PendingSubmit, fills, ledgers, positions,
candles) is committed in one transaction BEFORE any order is sent;
acknowledgements follow in a second commit. So a crash never leaves an order on
the exchange that the database does not know by its client order id. The tick's
decision log and equity rows are queued after them without waiting: nothing a
restore needs is in them, and writing them overlaps the next tick.

Operator commands change state synchronously (so no entry can slip in after a
flatten), then carry out their orders; an entry intent is re-checked against the
bot's state just before it is sent.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import math
from collections import defaultdict
from collections.abc import Iterable, Iterator, Sequence
from decimal import Decimal

from tui_trader.config import AppConfig
from tui_trader.engine.booking import book_fill, order_cancelled, order_placed, order_rejected, trade_entered, trade_exited
from tui_trader.engine.cycle import CancelOrders, CycleContext, CycleResult, Intent, MoveStop, PlaceOrder
from tui_trader.engine.events import DecisionEvent, EventBus, FillEvent, TickEvent, TradeEvent
from tui_trader.engine.history import EngineHistory
from tui_trader.engine.restore import restore_engine
from tui_trader.engine.risk_control import RiskControl
from tui_trader.engine.runtime import BotRuntime, effective_state
from tui_trader.engine.warmup import BotFactory
from tui_trader.exchange.base import Exchange
from tui_trader.market.aggregate import CandleAggregator
from tui_trader.market.base import CandleFeed
from tui_trader.model import (
    TIMEFRAME_MINUTES,
    BotState,
    Candle,
    Decision,
    DecisionType,
    EquitySnapshot,
    Fill,
    Order,
    OrderPurpose,
    OrderStatus,
    OrderUpdate,
    Phase,
)
from tui_trader.regime import RegimeTracker
from tui_trader.risk import Exposure, Valuation
from tui_trader.store import Batch, Store
from tui_trader.strategy import StrategyRegistry

log = logging.getLogger(__name__)


@contextlib.contextmanager
def collector_paused() -> Iterator[None]:
    """No cyclic-GC pass in the middle of a tick: a tick of 1,000 bots allocates ~100k short-lived
    objects, and passes over them while the batch still holds them showed up as p99 spikes. After
    the tick the batch is gone, so the pass that follows is over few objects."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


class Engine(EngineHistory, RiskControl):
    def __init__(self, config: AppConfig, store: Store, exchange: Exchange, feed: CandleFeed,
                 registry: StrategyRegistry) -> None:
        super().__init__()
        self.config = config
        self.store = store
        self.exchange = exchange
        self.feed = feed
        self.factory = BotFactory(config, registry, exchange)
        self.bus = EventBus()
        self.bots: dict[int, BotRuntime] = {}
        self.marks: dict[str, Decimal] = {}
        self.now_ts = 0
        base = TIMEFRAME_MINUTES[feed.base_timeframe]
        self.aggregator = CandleAggregator(
            [tf for tf, minutes in TIMEFRAME_MINUTES.items() if minutes > base and minutes % base == 0], feed.base_timeframe)
        self.regimes: dict[tuple[str, str], RegimeTracker] = {}
        self._own: dict[tuple[str, str], list[BotRuntime]] = defaultdict(list)  # bots scanning on this candle
        self._reads: dict[tuple[str, str], list[BotRuntime]] = defaultdict(list)  # bots that also read it
        self._fills: list[Fill] = []
        self._updates: list[OrderUpdate] = []
        self._log: Batch | None = None  # the decision log of the tick in progress, from its first commit on
        self._lock = asyncio.Lock()
        self._stop = asyncio.Event()
        self.bots_version: tuple[int, int] = (0, 0)
        exchange.set_listener(self)

    # -- exchange listener ----------------------------------------------------------------------------

    def on_fill(self, fill: Fill) -> None:
        self._fills.append(fill)

    def on_order_update(self, update: OrderUpdate) -> None:
        self._updates.append(update)

    # -- lifecycle ---------------------------------------------------------------------------------------

    async def start(self) -> None:
        """Restore every bot, position, order, ledger and strategy state; warm up; reconcile."""
        await restore_engine(self)

    def request_stop(self) -> None:
        self._stop.set()

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    async def run(self) -> None:
        """Process the feed until it ends or a stop is requested; the tick in progress always completes."""
        poller = asyncio.create_task(self._poll_control(), name="control-poll")
        stream = self.feed.stream().__aiter__()
        stop_waiter = asyncio.create_task(self._stop.wait())
        try:
            while not self._stop.is_set():
                next_tick = asyncio.ensure_future(anext(stream))
                done, _ = await asyncio.wait({next_tick, stop_waiter}, return_when=asyncio.FIRST_COMPLETED)
                if next_tick not in done:
                    next_tick.cancel()
                    with contextlib.suppress(asyncio.CancelledError, StopAsyncIteration):
                        await next_tick
                    break
                try:
                    candles = next_tick.result()
                except StopAsyncIteration:
                    break
                await self.process_tick(candles)
        finally:
            stop_waiter.cancel()
            poller.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await poller
            await self.apply_pending_commands()

    async def _poll_control(self) -> None:
        while True:
            await asyncio.sleep(self.config.app.control_poll_seconds)
            try:
                await self.apply_pending_commands()
                await self.reload_bots()
            except Exception:
                log.exception("reading operator changes failed; retrying")

    # -- the tick ---------------------------------------------------------------------------------------------

    async def process_tick(self, candles: Sequence[Candle]) -> None:
        with collector_paused():
            closed = await self._process_tick(candles)
        if self.bus:
            self.bus.publish(TickEvent(tuple(closed)))

    async def _process_tick(self, candles: Sequence[Candle]) -> list[Candle]:
        """The tick; returns every candle that closed in it (base and higher timeframes)."""
        async with self._lock:
            batch = Batch()
            closed: list[Candle] = []
            for candle in candles:
                self.exchange.process_candle(candle)  # type: ignore[attr-defined]
                self.marks[candle.symbol] = self.factory.instrument(candle.symbol).round_price(candle.close)
                self.now_ts = max(self.now_ts, candle.close_ts)
                closed.append(candle)
                closed.extend(self.aggregator.add(candle))
            batch.candles.extend(closed)
            self._book_exchange_events(batch)
            pending: list[tuple[BotRuntime, Intent]] = []
            exposure = self.risk_pass(batch, pending)
            self._run_cycles(closed, batch, pending, exposure)
            log = self._log = batch.take_log()
            try:
                await self.store.commit(batch)
                await self.send(pending, log)
            finally:
                self._log = None
            self.store.commit_soon(log)  # written while the loop goes on; ordered before the next commit
            return closed

    def _run_cycles(self, closed: Iterable[Candle], batch: Batch, pending: list[tuple[BotRuntime, Intent]],
                    exposure: Exposure) -> None:
        closed = list(closed)
        for candle in closed:
            key = (candle.symbol, candle.timeframe)
            tracker = self.regimes.get(key)
            if tracker is not None:
                tracker.update(candle)
            for bot in self._reads.get(key, ()):
                if bot.cycle is not None and bot.state is not BotState.ERROR:
                    bot.cycle.on_other_timeframe(candle)
        every = self.config.store.equity_every_candles
        idle = (BotState.STOPPED, BotState.ERROR)
        record, stage = self.record_decision, self.stage
        listening = bool(self.bus)
        # Every bot's cycle appends to one result: its decisions are the tick's (or, with listeners,
        # recorded and published one bot at a time); its intents are staged after each bot.
        out = CycleResult([] if listening else batch.decisions, [])
        decisions, intents = out.decisions, out.intents
        portfolio_running = self.global_state is BotState.RUNNING
        now = self.now_ts
        for candle in closed:
            key = (candle.symbol, candle.timeframe)
            bots = self._own.get(key)
            if not bots:
                continue
            tracker = self.regimes.get(key)
            regime = tracker.regime if tracker else None
            features = tracker.features_dict if tracker else None
            atr = tracker.atr if tracker else math.nan
            close = self.factory.instrument(candle.symbol).round_price(candle.close)  # once, not per bot
            close_ts = candle.close_ts
            for bot in bots:
                cycle = bot.cycle
                if cycle is None or bot.state in idle:
                    continue
                state = bot.state if portfolio_running else effective_state(bot.state, self.global_state)
                ledger = bot.ledger
                equity = bot.equity  # at this tick's marks (risk_pass)
                # Margin only sizes a flat bot's entry (a reversal sizes on equity); a flat bot's is its wallet.
                working = bot.orders
                # positional: this runs per bot per candle (field order of CycleContext)
                ctx = CycleContext(
                    now, state, bot.state_reason if state is bot.state else self.global_reason, ledger.position,
                    Valuation.exactly(close, equity, equity), regime or cycle.regime, features,
                    bool(working) and bot.has_open(OrderPurpose.ENTRY),
                    bool(working) and bot.has_open(OrderPurpose.EXIT, OrderPurpose.FLATTEN), bot.next_seq,
                    ledger.day_start_equity, ledger.high_water, ledger.cooldown_until, exposure, atr,
                )
                before = len(decisions)
                try:
                    cycle.run(candle, ctx, out)
                except Exception as exc:
                    del decisions[before:]  # what a failing cycle decided is dropped, as its intents are
                    intents.clear()
                    log.exception("bot %s raised in its cycle", bot.name)
                    self.fail_bot(bot, exc, batch)
                    continue
                if listening:
                    for decision in decisions:
                        record(bot, decision, batch)
                    decisions.clear()
                if intents:
                    for intent in intents:
                        stage(bot, intent, batch, pending)
                    intents.clear()
                bot.candles_seen += 1
                if equity != bot.last_equity or bot.candles_seen % every == 0:
                    self._snapshot(bot, close_ts, equity, batch)
                if bot.stateful:
                    state_now = cycle.strategy.get_state()
                    if state_now != bot.last_strategy_state:
                        bot.last_strategy_state = state_now
                        batch.strategy_state.append((bot.id, state_now, close_ts))

    def _snapshot(self, bot: BotRuntime, ts: int, equity: Decimal, batch: Batch) -> None:
        """An equity row when equity moved (and at least every `equity_every_candles`)."""
        ledger = bot.ledger
        bot.last_equity = equity
        batch.equity.append(EquitySnapshot(bot.id, ts, equity, ledger.realized_pnl, equity - ledger.wallet, ledger.fees))

    # -- intents -----------------------------------------------------------------------------------------------

    def stage(self, bot: BotRuntime, intent: Intent, batch: Batch, pending: list[tuple[BotRuntime, Intent]]) -> None:
        """Record an intent in the batch (orders as PendingSubmit) and queue it for sending after the commit."""
        if isinstance(intent, PlaceOrder):
            order = Order(intent.request, OrderStatus.PENDING_SUBMIT, self.now_ts, self.now_ts)
            bot.orders[order.client_order_id] = order
            bot.order_seqs[order.client_order_id] = intent.seq
            bot.next_seq = max(bot.next_seq, intent.seq + 1)
            batch.orders.append((order, intent.seq))
        elif isinstance(intent, MoveStop):  # the ledger's stop is the one the engine manages; saved before it is sent
            position = bot.ledger.position
            position.stop_price = intent.stop
            batch.positions.append(position)
        pending.append((bot, intent))

    async def send(self, pending: Sequence[tuple[BotRuntime, Intent]], log: Batch | None = None) -> None:
        """Send the intents and commit the acknowledgements; with `log`, their decisions and equity
        rows go there instead (after the cycle's own, in order)."""
        if not pending:
            return
        batch = Batch()
        for bot, intent in pending:
            if isinstance(intent, CancelOrders):
                await self._cancel_all(bot, batch)
            elif isinstance(intent, MoveStop):
                if self.exchange.supports_trading_stop and bot.ledger.position.is_open:
                    await self.exchange.set_trading_stop(intent.bot_id, intent.symbol, intent.stop, intent.target)
            else:
                await self._place(bot, intent, batch)
        self._book_exchange_events(batch)
        if log is not None:
            batch.take_log(log)
        await self.store.commit(batch)

    async def _place(self, bot: BotRuntime, intent: PlaceOrder, batch: Batch) -> None:
        request = intent.request
        order = bot.orders.get(request.client_order_id)
        if order is None:  # cancelled before it could be sent (a flatten got there first)
            return
        state = effective_state(bot.state, self.global_state)
        if not (state.allows_exits if request.reduce_only else state.allows_entries):
            self.close_order(bot, order, OrderStatus.CANCELLED, f"not sent: bot is {state.value}", batch)
            self.record_decision(bot, Decision(bot.id, self.now_ts, Phase.GUARD, DecisionType.RISK_BLOCKED,
                                               f"bot_state: {state.value} since the cycle ran; {request.purpose.value} order not sent",
                                               {"gate": "bot_state", "client_order_id": request.client_order_id}), batch)
            return
        ack = await self.exchange.place_order(request)
        if ack.status is OrderStatus.REJECTED:
            self.close_order(bot, order, OrderStatus.REJECTED, ack.reason, batch)
            self.record_decision(bot, order_rejected(bot.id, self.now_ts, request, ack.reason), batch)
            return
        order.status, order.updated_ts = OrderStatus.NEW, self.now_ts
        batch.orders.append((order, bot.order_seqs[order.client_order_id]))
        self.record_decision(bot, order_placed(bot.id, self.now_ts, request), batch)

    async def _cancel_all(self, bot: BotRuntime, batch: Batch) -> None:
        for order in list(bot.orders.values()):
            # Never sent: nothing to cancel on the exchange. The flatten's own close order stays.
            if order.status is OrderStatus.PENDING_SUBMIT and order.request.purpose is not OrderPurpose.FLATTEN:
                self.close_order(bot, order, OrderStatus.CANCELLED, "cancelled before it was sent", batch)
        if any(o.status is not OrderStatus.PENDING_SUBMIT for o in bot.orders.values()):
            await self.exchange.cancel_all(bot.id, bot.profile.symbol)

    def close_order(self, bot: BotRuntime, order: Order, status: OrderStatus, reason: str, batch: Batch) -> None:
        order.status, order.reason, order.updated_ts = status, reason, self.now_ts
        batch.orders.append((order, bot.order_seqs.get(order.client_order_id, 0)))
        bot.orders.pop(order.client_order_id, None)

    # -- exchange events ---------------------------------------------------------------------------------------------

    def _book_exchange_events(self, batch: Batch) -> None:
        fills, self._fills = self._fills, []
        updates, self._updates = self._updates, []
        for fill in fills:
            bot = self.bots.get(fill.bot_id)
            if bot is None:
                log.warning("fill %s for unknown bot %s ignored", fill.fill_id, fill.bot_id)
                continue
            self._book_fill(bot, fill, batch)
        for update in updates:
            bot = self.bots.get(update.bot_id)
            order = bot.orders.get(update.client_order_id) if bot else None
            if bot is None or order is None:
                continue
            if update.status in (OrderStatus.CANCELLED, OrderStatus.REJECTED):
                self.close_order(bot, order, update.status, update.reason, batch)
                self.record_decision(bot, order_cancelled(bot.id, update.ts, order, update.status, update.reason), batch)
            elif update.status is OrderStatus.FILLED:
                self.close_order(bot, order, OrderStatus.FILLED, "", batch)
        self.finish_flattening(batch)

    def _book_fill(self, bot: BotRuntime, fill: Fill, batch: Batch) -> None:
        ledger, profile = bot.ledger, bot.profile
        trades, entered, cooldown = book_fill(ledger, bot.orders.get(fill.client_order_id), fill, profile.risk,
                                              profile.timeframe_ms, bot.id)
        if cooldown is not None:
            self.record_decision(bot, cooldown, batch)
        position = ledger.position
        batch.fills.append(fill)
        batch.trades.extend(trades)
        batch.positions.append(position)
        batch.ledgers.append((ledger.record(), fill.ts))
        self.bus.publish(FillEvent(bot.name, fill))
        for trade in trades:
            self.bus.publish(TradeEvent(bot.name, trade))
            self.record_decision(bot, trade_exited(bot.id, trade), batch)
        if entered:
            self.record_decision(bot, trade_entered(bot.id, fill, position, self.marks.get(profile.symbol, fill.price)), batch)

    # -- decisions ----------------------------------------------------------------------------------------------------

    def record_decision(self, bot: BotRuntime, decision: Decision, batch: Batch) -> None:
        # While a tick awaits its commits, a decision (the tick's acknowledgements, or a command's that
        # runs meanwhile) joins the tick's log: published after the tick's own, it is stored after them.
        (batch if self._log is None else self._log).decisions.append(decision)
        if self.bus:
            self.bus.publish(DecisionEvent(bot.name, decision))
