"""What an exchange event does to a bot's books, and the decisions that say so: one
implementation for the live orchestrator and the backtest session, so the two cannot
drift. Pure: the callers record the decisions (live: the tick's log; a backtest: its list).
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

from tui_trader.config import RiskProfile
from tui_trader.engine.cycle import describe_position
from tui_trader.engine.ledger import BotLedger
from tui_trader.model import (
    ZERO,
    Decision,
    DecisionType,
    Fill,
    Order,
    OrderPurpose,
    OrderRequest,
    OrderStatus,
    Phase,
    Position,
    Trade,
)

_ENTRY = OrderPurpose.ENTRY  # enum member lookups are slow on 3.11; these run per fill
# A closed trade's exit reason, by the purpose of the fill that closed it (an entry that closes flips).
_EXIT_REASON = {purpose: purpose.value for purpose in OrderPurpose} | {_ENTRY: "reverse"}
_FILL, _TRADE_EXITED, _TRADE_ENTERED = Phase.FILL, DecisionType.TRADE_EXITED, DecisionType.TRADE_ENTERED


def book_fill(ledger: BotLedger, order: Order | None, fill: Fill, risk: RiskProfile, timeframe_ms: int,
              bot_id: int) -> tuple[list[Trade], bool, Decision | None]:
    """Book a fill of `order` (None: not one the bot tracks, e.g. a position stop) into the ledger.

    Returns the trades it closed; whether it opened a position or turned one to the other side
    (a TRADE_ENTERED decision is due); and the COOLDOWN decision a losing streak started, if any.
    An entry's fill gives the position the stop and target the order carried."""
    before = ledger.position.qty
    trades = ledger.apply_fill(fill, _EXIT_REASON[fill.purpose])
    position = ledger.position
    qty = position.qty
    if order is not None:
        order.filled_qty += fill.qty
        order.avg_fill_price = fill.price
        request = order.request
        if qty and request.purpose is _ENTRY:
            position.stop_price, position.target_price = request.stop_loss, request.take_profit
            position.initial_stop = request.stop_loss
    cooldown = start_cooldown(ledger, risk, timeframe_ms, bot_id, fill.ts) if trades and risk.cooldown_losses else None
    entered = bool(qty) and (not trades or (qty > ZERO) is not (before > ZERO))
    return trades, entered, cooldown


def start_cooldown(ledger: BotLedger, risk: RiskProfile, timeframe_ms: int, bot_id: int, ts: int) -> Decision | None:
    """After a closed trade: a loss streak that reached the profile's count pauses entries."""
    if not risk.cooldown_losses or ledger.loss_streak < risk.cooldown_losses:
        return None
    streak, ledger.loss_streak = ledger.loss_streak, 0
    ledger.cooldown_until = ts + risk.cooldown_candles * timeframe_ms
    until = datetime.fromtimestamp(ledger.cooldown_until / 1000, UTC).strftime("%Y-%m-%d %H:%M UTC")
    return Decision(bot_id, ts, Phase.FILL, DecisionType.COOLDOWN,
                    f"{streak} consecutive losses: no entries for {risk.cooldown_candles} candles (until {until})",
                    {"losses": streak, "until": ledger.cooldown_until})


# -- the decisions of exchange events --------------------------------------------------------------------------


def trade_exited(bot_id: int, trade: Trade) -> Decision:
    side = "long" if trade.side.sign > 0 else "short"
    return Decision(bot_id, trade.exit_ts, _FILL, _TRADE_EXITED,
                    f"closed {side} {trade.qty} @ {trade.exit_price} ({trade.exit_reason}): P&L {trade.net_pnl:+.2f}"
                    f" after {trade.fees:.2f} fees", {"pnl": str(trade.pnl), "fees": str(trade.fees),
                                                      "reason": trade.exit_reason, "entry_price": str(trade.entry_price),
                                                      "exit_price": str(trade.exit_price)})


def trade_entered(bot_id: int, fill: Fill, position: Position, mark: Decimal) -> Decision:
    return Decision(bot_id, fill.ts, _FILL, _TRADE_ENTERED, f"entered {describe_position(position, mark)}",
                    {"price": str(fill.price), "qty": str(fill.qty), "fee": str(fill.fee)})


def order_placed(bot_id: int, ts: int, request: OrderRequest) -> Decision:
    levels = f", stop {request.stop_loss}, target {request.take_profit}" if request.stop_loss else ""
    return Decision(
        bot_id, ts, Phase.EXECUTE, DecisionType.ORDER_PLACED,
        f"{request.purpose.value}: {request.order_type.value.lower()} {request.side.value.lower()} {request.qty}"
        f" {request.symbol}{' reduce-only' if request.reduce_only else ''}{levels}",
        {"client_order_id": request.client_order_id, "qty": str(request.qty)})


def order_rejected(bot_id: int, ts: int, request: OrderRequest, reason: str) -> Decision:
    return Decision(bot_id, ts, Phase.EXECUTE, DecisionType.ORDER_REJECTED, f"{request.purpose.value} order rejected: {reason}",
                    {"client_order_id": request.client_order_id})


def order_cancelled(bot_id: int, ts: int, order: Order, status: OrderStatus, reason: str) -> Decision:
    """An order the exchange cancelled or rejected after accepting it."""
    return Decision(bot_id, ts, Phase.EXECUTE, DecisionType.ORDER_CANCELLED,
                    f"{order.request.purpose.value} order {status.value.lower()}: {reason}",
                    {"client_order_id": order.client_order_id})
