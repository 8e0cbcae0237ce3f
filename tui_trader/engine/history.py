"""What the engine has recorded, read back for the console: decisions, trades, equity and
candles by bot name. The console reads history only through these, never the store itself."""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal

from tui_trader.engine.runtime import BotRuntime
from tui_trader.model import Candle, Decision, Trade
from tui_trader.store import Store


class EngineHistory:
    # Provided by the Engine.
    store: Store
    bots: dict[int, BotRuntime]

    async def recent_decisions(self, bot: BotRuntime | None = None, types: Sequence[str] = (),
                               limit: int = 1000) -> list[tuple[str, Decision]]:
        """(bot name, decision), oldest first: the newest `limit` of every loaded bot's, or of one bot's."""
        names = {b.id: b.name for b in self.bots.values()}
        rows = await self.store.decisions(bot.id if bot else None, types=types, limit=limit, newest=True)
        return [(names[d.bot_id], d) for _, d in rows if d.bot_id in names]

    async def closed_trades(self, bot: BotRuntime) -> list[Trade]:
        return await self.store.trades(bot.id)

    async def equity_curve(self, bot: BotRuntime) -> list[tuple[int, Decimal]]:
        return await self.store.equity_curve(bot.id)

    async def recent_candles(self, symbol: str, timeframe: str, limit: int) -> list[Candle]:
        return await self.store.candles(symbol, timeframe, limit=limit)
