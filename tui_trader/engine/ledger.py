"""A bot's own books: its position, realized P&L, fees and closed trades, kept
exactly (Decimal) from the fills the exchange reports. Pure.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal

from tui_trader.model import ZERO, Fill, Position, Side, Trade, to_usdt
from tui_trader.store.records import LedgerRecord


@dataclass(slots=True)
class BotLedger:
    bot_id: int
    symbol: str
    capital: Decimal
    realized_pnl: Decimal = ZERO
    fees: Decimal = ZERO
    trades: int = 0
    wins: int = 0
    high_water: Decimal = ZERO  # highest equity seen (the drawdown limit's base)
    day_start: int = 0  # UTC midnight (ms) of the current trading day; 0 before the first candle
    day_start_equity: Decimal = ZERO  # equity when that day began (the daily loss limit's base)
    loss_streak: int = 0
    cooldown_until: int = 0
    position: Position = field(init=False)

    def __post_init__(self) -> None:
        self.position = Position(self.bot_id, self.symbol)
        self.high_water = max(self.high_water, self.capital)
        self.day_start_equity = self.day_start_equity or self.capital

    @property
    def wallet(self) -> Decimal:
        """Capital plus realized P&L minus fees: what the bot's account holds in cash."""
        return self.capital + self.realized_pnl - self.fees

    def equity(self, mark: Decimal | None) -> Decimal:
        return self.wallet + (self.position.unrealized_pnl(mark) if mark is not None else ZERO)

    def record(self) -> LedgerRecord:
        return LedgerRecord(self.bot_id, self.realized_pnl, self.fees, self.trades, self.wins, self.high_water,
                            self.day_start, self.day_start_equity, self.loss_streak, self.cooldown_until)

    def restore(self, record: LedgerRecord, position: Position | None) -> None:
        self.realized_pnl, self.fees = record.realized_pnl, record.fees
        self.trades, self.wins, self.high_water = record.trades, record.wins, record.high_water
        self.day_start, self.day_start_equity = record.day_start, record.day_start_equity or self.wallet
        self.loss_streak, self.cooldown_until = record.loss_streak, record.cooldown_until
        if position is not None:
            self.position = position

    def apply_fill(self, fill: Fill, exit_reason: str) -> list[Trade]:
        """Book a fill; return the trades it closed (one, or none when it opens or adds)."""
        pos = self.position
        self.fees += fill.fee
        signed = fill.qty * fill.side.sign
        if pos.qty == 0 or (pos.qty > 0) == (signed > 0):
            self._add(fill, signed, fill.fee)
            return []
        closing = min(abs(pos.qty), fill.qty)
        closing_fee = to_usdt(fill.fee * closing / fill.qty)
        entry_fee_share = to_usdt(pos.entry_fees * closing / abs(pos.qty))
        entry_side = Side.BUY if pos.qty > 0 else Side.SELL
        pnl = to_usdt((fill.price - pos.entry_price) * closing * entry_side.sign)
        trade = Trade(self.bot_id, self.symbol, entry_side, closing, pos.entry_price, fill.price, pos.opened_ts, fill.ts,
                      pnl, entry_fee_share + closing_fee, exit_reason)
        self.realized_pnl += pnl
        self.trades += 1
        self.wins += trade.net_pnl > 0
        self.loss_streak = self.loss_streak + 1 if trade.net_pnl < 0 else 0
        remaining = abs(pos.qty) - closing
        if remaining:
            pos.qty = remaining * entry_side.sign
            pos.entry_fees -= entry_fee_share
        else:
            self.position = Position(self.bot_id, self.symbol)
            leftover = fill.qty - closing
            if leftover:  # the fill flipped the position: the rest opens the other side
                self._add(fill, leftover * fill.side.sign, fill.fee - closing_fee)
        return [trade]

    def _add(self, fill: Fill, signed: Decimal, fee: Decimal) -> None:
        pos = self.position
        if pos.qty == 0:
            pos.qty, pos.entry_price, pos.opened_ts, pos.entry_fees = signed, fill.price, fill.ts, fee
            return
        total = pos.qty + signed
        pos.entry_price = (pos.entry_price * pos.qty + fill.price * signed) / total
        pos.qty = total
        pos.entry_fees += fee
