"""What a flatten would do, before the operator confirms it: the working orders it
cancels, the reduce-only market order it sends, and that order's estimated fill, fee
and P&L at the current mark (the paper exchange's slippage and taker fee). Pure."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from tui_trader.engine.runtime import BotRuntime
from tui_trader.model import Order, Side, to_usdt


@dataclass(frozen=True, slots=True)
class CloseEstimate:
    side: Side
    qty: Decimal
    mark: Decimal
    price: Decimal  # the mark moved against the order by the slippage, on the tick grid
    fee: Decimal
    pnl: Decimal  # gross, on the closed quantity


@dataclass(frozen=True, slots=True)
class FlattenPreview:
    bot: str
    cancels: tuple[Order, ...]
    close: CloseEstimate | None  # None when the bot holds nothing

    @property
    def empty(self) -> bool:
        return not self.cancels and self.close is None


def flatten_preview(bot: BotRuntime, mark: Decimal | None, slippage_bps: Decimal, taker_fee: Decimal) -> FlattenPreview:
    position = bot.ledger.position
    cancels = tuple(o for o in bot.orders.values())
    if not position.is_open:
        return FlattenPreview(bot.name, cancels, None)
    side = Side.SELL if position.qty > 0 else Side.BUY
    qty = abs(position.qty)
    mark = mark if mark is not None else position.entry_price
    moved = mark * (1 + side.sign * slippage_bps / Decimal(10_000))
    price = bot.profile.instrument.round_price(moved, side)
    fee = to_usdt(qty * price * taker_fee)
    pnl = to_usdt((price - position.entry_price) * position.qty)
    return FlattenPreview(bot.name, cancels, CloseEstimate(side, qty, mark, price, fee, pnl))
