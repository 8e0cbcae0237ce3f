"""Start-up: rebuild the engine from the database, rebuild the paper exchange from
the same state, settle intents that a crash left unsent, and warm up."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from decimal import Decimal
from typing import TYPE_CHECKING

from tui_trader.engine.cycle import PlaceOrder, close_position
from tui_trader.engine.runtime import BotRuntime
from tui_trader.engine.sharing import share_strategies
from tui_trader.engine.warmup import marks_from, needed_base_bars, warm_up
from tui_trader.exchange.paper import PaperExchange
from tui_trader.model import BotState, Candle, Decision, DecisionType, OrderPurpose, OrderStatus, Phase, timeframe_ms
from tui_trader.store import Batch

if TYPE_CHECKING:
    from tui_trader.engine.orchestrator import Engine

log = logging.getLogger(__name__)


async def restore_engine(engine: Engine) -> None:
    store = engine.store
    meta = await store.meta()
    engine.global_state = BotState(meta.get("global_state", BotState.RUNNING.value))
    engine.global_reason = meta.get("global_reason", "")
    engine.portfolio_high_pnl = Decimal(meta.get("portfolio_high_pnl", "0"))
    ledgers = await store.ledgers()
    positions = {p.bot_id: p for p in await store.positions()}
    open_orders = await store.orders(open_only=True)
    seqs = await store.max_order_seq()
    strategy_states = await store.strategy_states()

    for record in await store.list_bots():
        bot = engine.factory.build(record)
        if record.id in ledgers:
            bot.ledger.restore(ledgers[record.id], positions.get(record.id))
            bot.equity = bot.ledger.wallet
        bot.next_seq = seqs.get(record.id, 0) + 1
        if bot.cycle is not None and record.id in strategy_states:
            bot.cycle.strategy.set_state(strategy_states[record.id])
            bot.last_strategy_state = strategy_states[record.id]
        engine.bots[record.id] = bot
    for order, seq in open_orders:
        bot = engine.bots.get(order.request.bot_id)
        if bot is not None:
            bot.orders[order.client_order_id] = order
            bot.order_seqs[order.client_order_id] = seq
    engine.index_bots()
    engine.flattening = {b.id for b in engine.bots.values() if b.state is BotState.FLATTENING}
    engine.bots_version = await store.bots_version()

    history = _history(engine)
    batch = Batch(candles=[c for candles in history.values() for c in candles])
    instruments = {s: engine.factory.instrument(s) for s in history}
    engine.marks.update(marks_from(history, instruments))
    engine.now_ts = max((c[-1].close_ts for c in history.values() if c), default=0)
    await _restore_exchange(engine)
    pending = await _settle_unsent(engine, batch)
    warm_up(list(engine.bots.values()), history, engine.feed.base_timeframe, engine.regimes)
    share_strategies(engine.bots.values())  # warmed together on the same history: equal ones become one
    _prime_aggregator(engine, history)
    await store.commit(batch)
    await engine.send(pending)
    log.info("restored %d bots (%d open positions, %d working orders); portfolio %s",
             len(engine.bots), sum(b.ledger.position.is_open for b in engine.bots.values()),
             sum(len(b.orders) for b in engine.bots.values()), engine.global_state.value)


def _history(engine: Engine) -> dict[str, list[Candle]]:
    need = needed_base_bars(engine.bots.values(), engine.feed.base_timeframe)
    return {symbol: engine.feed.history(symbol, bars) for symbol, bars in need.items()}


def _prime_aggregator(engine: Engine, history: dict[str, list[Candle]]) -> None:
    """Feed the live aggregator the tail of history, so the buckets the first live candles
    fall in are complete."""
    span = timeframe_ms("1d") // timeframe_ms(engine.feed.base_timeframe)
    for candles in history.values():
        for candle in candles[-span:]:
            engine.aggregator.add(candle)


async def _restore_exchange(engine: Engine) -> None:
    exchange = engine.exchange
    bots = list(engine.bots.values())
    if isinstance(exchange, PaperExchange):
        exchange.restore(
            balances={b.id: (b.ledger.wallet, b.leverage) for b in bots},
            positions=[b.ledger.position for b in bots if b.ledger.position.is_open],
            orders=[o for b in bots for o in b.orders.values() if o.status is not OrderStatus.PENDING_SUBMIT],
            marks=dict(engine.marks),
        )
        return
    for bot in bots:
        await exchange.open_account(bot.id, bot.ledger.wallet, bot.leverage)


async def _settle_unsent(engine: Engine, batch: Batch) -> Sequence[tuple[BotRuntime, PlaceOrder]]:
    """Intents persisted but not acknowledged before the last stop: adopt what the exchange
    knows; never re-send a stale entry; re-send an exit while the position is still open."""
    pending: list[tuple[BotRuntime, PlaceOrder]] = []
    for bot in engine.bots.values():
        for order in [o for o in bot.orders.values() if o.status is OrderStatus.PENDING_SUBMIT]:
            known = await engine.exchange.get_order(order.client_order_id)
            if known is not None:
                order.status = known.status
                batch.orders.append((order, bot.order_seqs[order.client_order_id]))
                if not known.status.is_open:
                    bot.orders.pop(order.client_order_id)
                continue
            purpose = order.request.purpose
            if purpose in (OrderPurpose.EXIT, OrderPurpose.FLATTEN) and bot.ledger.position.is_open:
                engine.close_order(bot, order, OrderStatus.CANCELLED, "replaced after restart", batch)
                intent = close_position(bot.profile, bot.ledger.position, bot.next_seq, purpose)
                engine.stage(bot, intent, batch, pending)  # type: ignore[arg-type]
                reason = "exit intent was not sent before the stop; re-sent"
            else:
                engine.close_order(bot, order, OrderStatus.CANCELLED, "not sent before the stop; a stale entry is not re-sent", batch)
                reason = "entry intent was not sent before the stop; dropped as stale"
            engine.record_decision(bot, Decision(bot.id, engine.now_ts, Phase.EXECUTE, DecisionType.ORDER_CANCELLED,
                                                 reason, {"client_order_id": order.client_order_id}), batch)
    return pending
