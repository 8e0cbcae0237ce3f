from __future__ import annotations

import sqlite3
from decimal import Decimal as D
from pathlib import Path

import pytest

from tui_trader.config import BotSpec
from tui_trader.model import (
    BotState, Candle, Decision, DecisionType, EquitySnapshot, Fill, Liquidity, Order, OrderPurpose, OrderRequest, OrderStatus, OrderType,
    Phase, Position, Side,
)
from tui_trader.store import Batch, BotExists, SchemaError, Store
from tui_trader.store.db import DB_NAME
from tui_trader.store.schema import SCHEMA_VERSION

SPEC = BotSpec(name="b1", symbol="BTCUSDT", timeframe="1m", capital=D("1000.5"), strategy="ema_trend", params={"fast": 5})


async def test_migrates_in_wal_and_refuses_newer_schema(tmp_path: Path) -> None:
    store = await Store.open(tmp_path)
    async with store.conn.execute("PRAGMA journal_mode") as cur:
        assert (await cur.fetchone())[0] == "wal"  # type: ignore[index]
    async with store.conn.execute("PRAGMA user_version") as cur:
        assert (await cur.fetchone())[0] == SCHEMA_VERSION  # type: ignore[index]
    await store.close()
    await (await Store.open(tmp_path)).close()  # idempotent
    with sqlite3.connect(tmp_path / DB_NAME) as conn:
        conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    with pytest.raises(SchemaError, match="Upgrade tui-trader"):
        await Store.open(tmp_path)


async def test_bots_round_trip_and_names_are_unique(tmp_path: Path) -> None:
    store = await Store.open(tmp_path)
    bot = await store.add_bot(SPEC, 1)
    with pytest.raises(BotExists):
        await store.add_bot(SPEC, 2)
    got = await store.get_bot("b1")
    assert got is not None and got.spec == SPEC and got.state is BotState.RUNNING
    before = await store.bots_version()
    await store.update_bot(bot.id, SPEC.model_copy(update={"confirmations": 2}), 3)
    assert await store.bots_version() != before
    await store.remove_bot(bot.id, 4)
    assert await store.get_bot("b1") is None
    await store.add_bot(SPEC, 5)  # the name is free again; the old row keeps its history
    assert len(await store.list_bots(include_removed=True)) == 2
    await store.close()


async def test_batch_is_one_transaction_and_exact(tmp_path: Path) -> None:
    store = await Store.open(tmp_path)
    bot = await store.add_bot(SPEC, 1)
    request = OrderRequest("tt1-1", bot.id, "BTCUSDT", Side.BUY, OrderType.MARKET, D("0.001"), OrderPurpose.ENTRY,
                           stop_loss=D("59000.1"), take_profit=D("61000.3"))
    order = Order(request, OrderStatus.PENDING_SUBMIT, 10, 10)
    fill = Fill("tt1-1-f1", "tt1-1", bot.id, "BTCUSDT", Side.BUY, D("0.001"), D("60000.1"), D("0.03300006"),
                Liquidity.TAKER, 20, OrderPurpose.ENTRY)
    batch = Batch(
        candles=[Candle("BTCUSDT", "1m", 0, 1.0, 2.0, 0.5, 1.5, 10.0)],
        decisions=[Decision(bot.id, 10, Phase.SCAN, DecisionType.NO_SETUP, "nothing", {"x": D("1.5")})],
        orders=[(order, 1)], fills=[fill],
        positions=[Position(bot.id, "BTCUSDT", D("0.001"), D("60000.1"), D("59000.1"), None, 20, D("0.03300006"))],
    )
    await store.commit(batch)
    order.status = OrderStatus.FILLED
    await store.commit(Batch(orders=[(order, 1)]))
    (stored, seq), = await store.orders(open_only=False)
    assert stored.status is OrderStatus.FILLED and stored.request == request and seq == 1
    assert await store.fills() == [fill]
    assert (await store.positions())[0].entry_fees == D("0.03300006")
    (_, decision), = await store.decisions(bot.id)
    assert decision.details == {"x": "1.5"}
    # a failing batch leaves nothing behind
    bad = Batch(decisions=[Decision(bot.id, 11, Phase.SCAN, DecisionType.NO_SETUP, "a")], fills=[fill],
                positions=[Position(9999, "BTCUSDT", D(1), D(1))])  # unknown bot: foreign key fails
    with pytest.raises(sqlite3.IntegrityError):
        await store.commit(bad)
    assert len(await store.decisions(bot.id)) == 1
    await store.close()


async def test_queued_log_commits_keep_order_and_survive_a_failure(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    store = await Store.open(tmp_path)
    bot = await store.add_bot(SPEC, 1)

    def decision(ts: int, bot_id: int = bot.id) -> Decision:
        return Decision(bot_id, ts, Phase.SCAN, DecisionType.NO_SETUP, f"at {ts}", {"ts": ts} if ts % 2 else {})

    store.commit_soon(Batch(decisions=[decision(1), decision(2)],
                            equity=[EquitySnapshot(bot.id, 2, D("1000.50"), D("0.5"), D("-0.25"), D("0.00000001"))]))
    store.commit_soon(Batch(decisions=[decision(3, bot_id=9999)]))  # unknown bot: fails, nobody waits for it
    store.commit_soon(Batch(decisions=[decision(4)]))
    await store.commit(Batch(decisions=[decision(5)]))  # waits for its own transaction, queued last
    async with store.conn.execute("SELECT ts, summary, details FROM bot_decisions ORDER BY id") as cur:
        assert await cur.fetchall() == [(1, "at 1", '{"ts":1}'), (2, "at 2", "{}"), (4, "at 4", "{}"), (5, "at 5", '{"ts":5}')]
    async with store.conn.execute("SELECT equity, realized_pnl, unrealized_pnl, fees FROM equity_snapshots") as cur:
        assert await cur.fetchall() == [("1000.50", "0.5", "-0.25", "1E-8")]  # Decimal strings, unchanged
    assert store.writer.failures == 1 and "background commit failed" in caplog.text
    store.commit_soon(Batch(decisions=[decision(6)]))
    assert [d.ts for _, d in await store.decisions(bot.id)] == [1, 2, 4, 5, 6]  # reads flush first
    await store.close()


async def test_commands_queue_for_a_running_engine(tmp_path: Path) -> None:
    store = await Store.open(tmp_path)
    bot = await store.add_bot(SPEC, 1)
    cid = await store.queue_command(5, bot.id, "pause", "operator:cli", "")
    (pending,) = await store.pending_commands()
    assert (pending.id, pending.command) == (cid, "pause")
    await store.commit(Batch(applied_commands=[(cid, "applied", "b1 paused")]))
    assert await store.pending_commands() == []
    assert await store.command_status(cid) == ("applied", "b1 paused")
    await store.close()


async def test_candles_newest_window(tmp_path: Path) -> None:
    store = await Store.open(tmp_path)
    await store.commit(Batch(candles=[Candle("BTCUSDT", "1m", i * 60_000, 1, 1, 1, 1, 1) for i in range(10)]))
    assert [c.ts for c in await store.candles("BTCUSDT", "1m", limit=3)] == [420_000, 480_000, 540_000]
    assert await store.last_candle_ts("BTCUSDT") == 540_000
    await store.close()
