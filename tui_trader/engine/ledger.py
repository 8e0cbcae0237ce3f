"""A bot's own books: its position, realized P&L, fees and closed trades, kept
exactly (Decimal) from the fills the exchange reports. Pure.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import ROUND_HALF_EVEN, Decimal

from tui_trader.model import BUY, SELL, USDT_STEP, ZERO, Fill, Position, Trade
from tui_trader.store.records import LedgerRecord

_MINUS_ONE = Decimal(-1)  # a Decimal operand: an int one is converted on every use


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
        fee, qty = fill.fee, fill.qty
        self.fees += fee
        buy = fill.side is BUY
        held = pos.qty
        if not held:  # opens (as `_add` would, without the call)
            pos.qty, pos.entry_price, pos.opened_ts, pos.entry_fees = qty if buy else -qty, fill.price, fill.ts, fee
            return []
        long = held > ZERO  # Decimal to Decimal: an int operand is converted per comparison
        if long is buy:
            self._add(fill, qty if buy else -qty, fee)
            return []
        size = abs(held)
        closing = size if size <= qty else qty
        # The closed part's shares of the fees (a whole one without the pro-rating), to_usdt inlined.
        closing_fee = (fee if closing == qty else fee * closing / qty).quantize(USDT_STEP, ROUND_HALF_EVEN)
        entry_fee_share = (pos.entry_fees if closing == size else pos.entry_fees * closing / size).quantize(
            USDT_STEP, ROUND_HALF_EVEN)
        price, entry = fill.price, pos.entry_price
        gross = (price - entry) * closing
        # A short's sign flipped by a multiply, not -gross: that keeps the sign of a zero P&L (-0).
        pnl = (gross if long else gross * _MINUS_ONE).quantize(USDT_STEP, ROUND_HALF_EVEN)
        fees = entry_fee_share + closing_fee
        trade = Trade(self.bot_id, self.symbol, BUY if long else SELL, closing, entry, price, pos.opened_ts, fill.ts, pnl,
                      fees, exit_reason)
        net = pnl - fees
        self.realized_pnl += pnl
        self.trades += 1
        self.wins += net > ZERO
        self.loss_streak = self.loss_streak + 1 if net < ZERO else 0
        remaining = size - closing
        if remaining:
            pos.qty = remaining if long else -remaining
            pos.entry_fees -= entry_fee_share
        else:
            self.position = Position(self.bot_id, self.symbol)
            leftover = qty - closing
            if leftover:  # the fill flipped the position: the rest opens the other side
                self._add(fill, leftover if buy else -leftover, fee - closing_fee)
        return [trade]

    def _add(self, fill: Fill, signed: Decimal, fee: Decimal) -> None:
        pos = self.position
        if not pos.qty:
            pos.qty, pos.entry_price, pos.opened_ts, pos.entry_fees = signed, fill.price, fill.ts, fee
            return
        total = pos.qty + signed
        pos.entry_price = (pos.entry_price * pos.qty + fill.price * signed) / total
        pos.qty = total
        pos.entry_fees += fee
