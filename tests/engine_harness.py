"""Shared helpers for engine scenario tests: hand-made candles, a config with a
hand-computable risk profile, and the real engine (Store on SQLite in a temp
directory, PaperExchange, ReplayFeed, Engine) driven one candle at a time.

Nothing of ours is mocked: the harness only assembles the pieces the way
`tui_trader.setup.open_engine` does, with a ReplayFeed over the test's candles
so that the history (warm-up) and the live part are the test's to choose.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

from tui_trader.config import AppConfig, parse_config
from tui_trader.engine.events import DecisionEvent, EngineEvent
from tui_trader.engine.orchestrator import Engine
from tui_trader.exchange.paper import PaperExchange
from tui_trader.market.replay import ReplayFeed
from tui_trader.model import MINUTE_MS, BotState, Candle, Decision, DecisionType, Order, Position
from tui_trader.setup import check_config, instruments, load_strategies, sync_config_bots
from tui_trader.store import Store
from tui_trader.strategy import StrategyRegistry

D = Decimal
SYMBOL = "BTCUSDT"  # built-in rules: tick 0.1, qty step 0.001, min qty 0.001, min notional 5, max leverage 100
T0 = 1_700_000_040_000  # a minute boundary
HISTORY = 520  # flat history candles (the engine asks for 501 1m bars: (500 + 1) * 1)
SCRIPTED_DIR = Path(__file__).parent / "scripted_strategy"
RISK_PROFILE = "exact"
RISK = {"risk_per_trade_pct": 1, "stop_atr_mult": 2, "take_profit_r": 2, "max_leverage": 10, "max_position_pct": 1000}
TAKER = D("0.00055")
MAKER = D("0.0002")

_registry: StrategyRegistry | None = None


def registry() -> StrategyRegistry:
    """Bundled strategies plus the scripted test plugin (loaded once)."""
    global _registry
    if _registry is None:
        _registry = load_strategies(SCRIPTED_DIR)
        assert _registry.errors == [], _registry.errors
        assert "scripted" in _registry.names()
    return _registry


# -- candles -------------------------------------------------------------------------------------------


def ts(i: int) -> int:
    """Open time of live bar i (history bars have negative i)."""
    return T0 + i * MINUTE_MS


def bar(i: int, open_: float, high: float, low: float, close: float, volume: float = 1.0) -> Candle:
    assert low <= min(open_, close) and high >= max(open_, close), "not a valid candle"
    return Candle(SYMBOL, "1m", ts(i), open_, high, low, close, volume)


def flat(i: int, price: float = 1000.0) -> Candle:
    """A quiet bar: open = close = price, one unit either side."""
    return bar(i, price, price + 1.0, price - 1.0, price)


def history(n: int = HISTORY, price: float = 1000.0) -> list[Candle]:
    """n quiet bars before live bar 0, with a small deterministic wiggle."""
    out = []
    for k in range(n):
        i = k - n
        close = price + (0.3 if k % 2 else -0.3)
        out.append(bar(i, price, price + 1.0, price - 1.0, close))
    return out


def at(*indexes: int) -> str:
    """A scripted-strategy parameter naming live bars by their open time."""
    return ",".join(str(ts(i)) for i in indexes)


# -- config ---------------------------------------------------------------------------------------------


def bot_spec(name: str, *, capital: str = "10000", confirmations: int = 0, **params: Any) -> dict[str, Any]:
    return {"name": name, "symbol": SYMBOL, "timeframe": "1m", "capital": capital, "risk_profile": RISK_PROFILE,
            "strategy": "scripted", "params": params, "confirmations": confirmations}


def make_config(bots: Sequence[dict[str, Any]], *, slippage_bps: str = "0", taker_fee: Decimal = TAKER,
                maker_fee: Decimal = MAKER, risk: dict[str, Any] | None = None,
                portfolio: dict[str, Any] | None = None) -> AppConfig:
    """`risk` adds to (or overrides) the "exact" profile; `portfolio` is the [portfolio] table."""
    return parse_config({
        "market": {"source": "replay", "replay": {"timeframe": "1m"}},
        "exchange": {"kind": "paper", "maker_fee": str(maker_fee), "taker_fee": str(taker_fee), "slippage_bps": slippage_bps},
        "risk_profiles": {RISK_PROFILE: {**RISK, **(risk or {})}},
        "portfolio": portfolio or {},
        "bots": list(bots),
    }, "test")


# -- the engine -----------------------------------------------------------------------------------------


@dataclass
class Harness:
    engine: Engine
    store: Store
    exchange: PaperExchange
    config: AppConfig
    state_dir: Path
    log: list[tuple[str, Decision]] = field(default_factory=list)  # every DecisionEvent, in publish order
    closed: bool = False
    decisions_before: int = 0  # the last bot_decisions row id written before this engine started

    def on_event(self, event: EngineEvent) -> None:
        if isinstance(event, DecisionEvent):
            self.log.append((event.bot_name, event.decision))

    async def tick(self, candle: Candle) -> dict[str, list[str]]:
        """Process one base candle; the decision types each bot got during it (regime changes left out)."""
        start = len(self.log)
        await self.engine.process_tick([candle])
        return self.types_since(start)

    async def run(self, candles: Iterable[Candle]) -> list[dict[str, list[str]]]:
        return [await self.tick(c) for c in candles]

    def types_since(self, start: int) -> dict[str, list[str]]:
        out: dict[str, list[str]] = {}
        for name, d in self.log[start:]:
            if d.decision_type is not DecisionType.REGIME_CHANGED:
                out.setdefault(name, []).append(d.decision_type.value)
        return out

    def decisions(self, name: str, *types: DecisionType) -> list[Decision]:
        return [d for n, d in self.log if n == name and (not types or d.decision_type in types)]

    def bot(self, name: str):  # noqa: ANN201 - BotRuntime
        return self.engine.bot(name)

    async def rows(self, sql: str, *args: Any) -> list[tuple[Any, ...]]:
        await self.store.flush()
        async with self.store.conn.execute(sql, args) as cur:
            return list(await cur.fetchall())

    async def close(self) -> None:
        if not self.closed:
            self.closed = True
            await self.store.close()

    # -- invariants ------------------------------------------------------------------------------------

    async def assert_books_consistent(self) -> None:
        """For every bot: the ledger wallet equals the paper exchange's, the fills' fees add up to the
        ledger's fees, the trades' P&L to its realized P&L, the position agrees with the exchange's,
        the database holds what memory holds, and every published decision was committed."""
        ledgers = await self.store.ledgers()
        db_positions = {p.bot_id: p for p in await self.store.positions()}
        for bot in self.engine.bots.values():
            ledger = bot.ledger
            assert ledger.wallet == ledger.capital + ledger.realized_pnl - ledger.fees
            assert ledger.wallet == self.exchange.wallet(bot.id), bot.name
            fills = await self.store.fills(bot.id)
            assert sum((f.fee for f in fills), D(0)) == ledger.fees, bot.name
            trades = await self.store.trades(bot.id)
            assert sum((t.pnl for t in trades), D(0)) == ledger.realized_pnl, bot.name
            assert len(trades) == ledger.trades, bot.name
            assert same_position(self.exchange.position(bot.id, SYMBOL), ledger.position), bot.name
            if fills:
                record = ledgers[bot.id]
                assert (record.realized_pnl, record.fees, record.trades) == (ledger.realized_pnl, ledger.fees, ledger.trades)
                assert same_position(db_positions[bot.id], ledger.position), bot.name
            db = [d for _, d in await self.store.decisions(bot.id, after_id=self.decisions_before, limit=100_000)]
            assert db == self.decisions(bot.name), f"{bot.name}: published decisions differ from the committed ones"


def same_position(a: Position, b: Position) -> bool:
    """Equal as positions: both flat, or the same qty, entry, stop, target, open time and entry fees."""
    if not a.is_open and not b.is_open:
        return True
    return (a.qty, a.entry_price, a.stop_price, a.target_price, a.opened_ts, a.entry_fees) == \
           (b.qty, b.entry_price, b.stop_price, b.target_price, b.opened_ts, b.entry_fees)


async def open_harness(state_dir: Path, config: AppConfig, candles: Sequence[Candle], history_bars: int = HISTORY,
                       listen: bool = True) -> Harness:
    """What `open_engine` does, with a ReplayFeed whose first `history_bars` candles are the history.
    Without `listen` nothing subscribes to the engine's events (the harness's log stays empty)."""
    store = await Store.open(state_dir, "normal")
    try:
        check_config(config, registry(), "test")
        await sync_config_bots(store, config)
        rules = instruments(config, [SYMBOL])
        exchange = PaperExchange(rules, config.exchange.maker_fee, config.exchange.taker_fee, config.exchange.slippage_bps)
        feed = ReplayFeed({SYMBOL: list(candles)}, history_bars=history_bars)
        engine = Engine(config, store, exchange, feed, registry())
        harness = Harness(engine, store, exchange, config, state_dir)
        async with store.conn.execute("SELECT COALESCE(MAX(id), 0) FROM bot_decisions") as cur:
            harness.decisions_before = (await cur.fetchone())[0]
        if listen:
            engine.bus.subscribe(harness.on_event)
        await engine.start()
    except BaseException:
        await store.close()
        raise
    return harness


# -- snapshots for comparing engines ------------------------------------------------------------------------


def order_view(order: Order) -> tuple[Any, ...]:
    return (order.client_order_id, order.request, order.status, order.filled_qty, order.avg_fill_price)


async def snapshot(h: Harness) -> dict[str, Any]:
    """Everything a restart must preserve, per bot name."""
    out: dict[str, Any] = {"global": h.engine.global_state}
    for bot in h.engine.bots.values():
        lg = bot.ledger
        pos = lg.position
        ex_pos = h.exchange.position(bot.id, SYMBOL)
        out[bot.name] = {
            "state": bot.state,
            "ledger": (lg.capital, lg.realized_pnl, lg.fees, lg.trades, lg.wins, lg.high_water),
            "position": (pos.qty, pos.entry_price, pos.stop_price, pos.target_price, pos.opened_ts, pos.entry_fees)
            if pos.is_open else None,
            "orders": sorted((order_view(o) for o in bot.orders.values()), key=lambda v: v[0]),
            "exchange_wallet": h.exchange.wallet(bot.id),
            "exchange_position": (ex_pos.qty, ex_pos.entry_price, ex_pos.stop_price, ex_pos.target_price)
            if ex_pos.is_open else None,
            "exchange_orders": sorted(((o.client_order_id, o.request, o.status) for o in await h.exchange.open_orders()
                                       if o.request.bot_id == bot.id), key=lambda v: v[0]),
            "next_seq": bot.next_seq,
        }
    return out


__all__ = ["D", "SYMBOL", "T0", "HISTORY", "TAKER", "MAKER", "BotState", "Harness", "at", "bar", "bot_spec", "flat",
           "history", "make_config", "open_harness", "registry", "same_position", "snapshot", "ts"]
