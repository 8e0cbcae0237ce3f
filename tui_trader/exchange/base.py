"""The Exchange protocol the engine trades through."""

from __future__ import annotations

from decimal import Decimal
from typing import Protocol

from tui_trader.model import Fill, Instrument, Order, OrderRequest, OrderUpdate, Position


class ExchangeListener(Protocol):
    """Receives what happens on the exchange; called in the event loop's thread."""

    def on_fill(self, fill: Fill) -> None: ...

    def on_order_update(self, update: OrderUpdate) -> None: ...


class Exchange(Protocol):
    """What the engine needs from a venue. Accounts are keyed by bot id: the paper
    exchange keeps one sub-account per bot; a real account maps them onto one."""

    name: str
    supports_trading_stop: bool  # position stop-loss / take-profit kept on the exchange

    def set_listener(self, listener: ExchangeListener) -> None: ...

    def instrument(self, symbol: str) -> Instrument: ...

    async def open_account(self, bot_id: int, balance: Decimal, leverage: Decimal) -> None:
        """Make sure the bot's (sub-)account exists with this wallet balance and leverage."""
        ...

    async def place_order(self, request: OrderRequest) -> OrderUpdate:
        """Accept (status NEW) or reject (REJECTED, with the reason). Fills arrive via the listener."""
        ...

    async def cancel_order(self, bot_id: int, client_order_id: str) -> OrderUpdate: ...

    async def cancel_all(self, bot_id: int, symbol: str) -> list[OrderUpdate]: ...

    async def set_trading_stop(self, bot_id: int, symbol: str, stop: Decimal | None, target: Decimal | None) -> None:
        """Set or clear (None) the position's stop-loss and take-profit."""
        ...

    async def get_order(self, client_order_id: str) -> OrderUpdate | None: ...

    async def open_orders(self) -> list[Order]: ...

    async def positions(self) -> list[Position]: ...
