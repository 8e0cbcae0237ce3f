"""The Store: an aiosqlite connection for reads, operator edits and forward migrations, and
a Writer that commits the engine's batches in order on a thread of its own.
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
from collections.abc import Sequence
from decimal import Decimal
from pathlib import Path
from typing import Any

import aiosqlite

from tui_trader.config import BotSpec
from tui_trader.model import (
    BotState,
    Candle,
    Decision,
    DecisionType,
    Fill,
    Liquidity,
    Order,
    OrderPurpose,
    OrderRequest,
    OrderStatus,
    OrderType,
    Phase,
    Position,
    Side,
    Trade,
)
from tui_trader.store.batch import Batch
from tui_trader.store.records import BotExists, BotRecord, LedgerRecord, PendingCommand
from tui_trader.store.schema import MIGRATIONS, SCHEMA_VERSION
from tui_trader.store.writer import Writer

DB_NAME = "tui-trader.sqlite3"


class SchemaError(RuntimeError):
    pass


def _d(value: str | None) -> Decimal | None:
    return None if value is None else Decimal(value)


class Store:
    def __init__(self, conn: aiosqlite.Connection, path: Path, synchronous: str = "normal") -> None:
        self.conn = conn
        self.path = path
        self.writer = Writer(path, synchronous)

    @classmethod
    async def open(cls, state_dir: Path, synchronous: str = "normal") -> Store:
        state_dir.mkdir(parents=True, exist_ok=True)
        path = state_dir / DB_NAME
        conn = await aiosqlite.connect(path, isolation_level=None)
        try:
            await conn.execute("PRAGMA journal_mode=WAL")
            await conn.execute(f"PRAGMA synchronous={'FULL' if synchronous == 'full' else 'NORMAL'}")
            await conn.execute("PRAGMA busy_timeout=10000")
            await conn.execute("PRAGMA foreign_keys=ON")
            await conn.execute("PRAGMA wal_autocheckpoint=20000")  # see writer.connect
            await _migrate(conn, path)
        except BaseException:
            await conn.close()
            raise
        return cls(conn, path, synchronous)

    async def close(self) -> None:
        await self.writer.close()
        await self.conn.close()

    async def commit(self, batch: Batch) -> None:
        """Write the batch in one transaction, after everything queued before it, and wait for it."""
        await self.writer.commit(batch)

    def commit_soon(self, batch: Batch) -> None:
        """Queue the batch in order without waiting (the decision log and equity rows of a tick)."""
        self.writer.commit_soon(batch)

    async def flush(self) -> None:
        """Wait for every queued commit: reads after this see them."""
        await self.writer.flush()

    # -- bots --------------------------------------------------------------------------------------

    async def list_bots(self, include_removed: bool = False) -> list[BotRecord]:
        where = "" if include_removed else "WHERE removed_ts IS NULL"
        async with self.conn.execute(f"SELECT * FROM bots {where} ORDER BY id") as cur:
            return [_bot(row) for row in await cur.fetchall()]

    async def get_bot(self, name: str) -> BotRecord | None:
        async with self.conn.execute("SELECT * FROM bots WHERE name = ? AND removed_ts IS NULL", (name,)) as cur:
            row = await cur.fetchone()
        return _bot(row) if row else None

    async def add_bot(self, spec: BotSpec, ts: int, state: BotState = BotState.RUNNING) -> BotRecord:
        try:
            cur = await self.conn.execute(
                "INSERT INTO bots (name, symbol, timeframe, strategy, params, risk_profile, capital, confirmations,"
                " state, created_ts, updated_ts) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (spec.name, spec.symbol, spec.timeframe.value, spec.strategy, json.dumps(spec.params), spec.risk_profile,
                 str(spec.capital), spec.confirmations, state.value, ts, ts),
            )
        except sqlite3.IntegrityError:
            raise BotExists(f"a bot named {spec.name!r} already exists") from None
        assert cur.lastrowid is not None
        return BotRecord(cur.lastrowid, spec, state, "", 1)

    async def update_bot(self, bot_id: int, spec: BotSpec, ts: int) -> None:
        try:
            await self.conn.execute(
                "UPDATE bots SET name = ?, symbol = ?, timeframe = ?, strategy = ?, params = ?, risk_profile = ?,"
                " capital = ?, confirmations = ?, version = version + 1, updated_ts = ? WHERE id = ?",
                (spec.name, spec.symbol, spec.timeframe.value, spec.strategy, json.dumps(spec.params), spec.risk_profile,
                 str(spec.capital), spec.confirmations, ts, bot_id),
            )
        except sqlite3.IntegrityError:
            raise BotExists(f"a bot named {spec.name!r} already exists") from None

    async def remove_bot(self, bot_id: int, ts: int) -> None:
        await self.conn.execute("UPDATE bots SET removed_ts = ?, version = version + 1, updated_ts = ? WHERE id = ?", (ts, ts, bot_id))

    async def set_bot_state(self, bot_id: int, state: BotState, reason: str, ts: int) -> None:
        await self.conn.execute("UPDATE bots SET state = ?, state_reason = ?, updated_ts = ? WHERE id = ?",
                                (state.value, reason, ts, bot_id))

    async def bots_version(self) -> tuple[int, int]:
        """(count, sum of versions) over all bots: changes whenever a bot is added, edited or removed."""
        async with self.conn.execute("SELECT COUNT(*), COALESCE(SUM(version), 0) FROM bots") as cur:
            row = await cur.fetchone()
        assert row is not None
        return int(row[0]), int(row[1])

    # -- operator commands ---------------------------------------------------------------------------

    async def queue_command(self, ts: int, bot_id: int | None, command: str, source: str, reason: str) -> int:
        cur = await self.conn.execute(
            "INSERT INTO control_events (ts, bot_id, command, source, reason, status) VALUES (?, ?, ?, ?, ?, 'pending')",
            (ts, bot_id, command, source, reason))
        assert cur.lastrowid is not None
        return cur.lastrowid

    async def pending_commands(self) -> list[PendingCommand]:
        async with self.conn.execute(
            "SELECT id, ts, bot_id, command, source, reason FROM control_events WHERE status = 'pending' ORDER BY id"
        ) as cur:
            return [PendingCommand(*row) for row in await cur.fetchall()]

    async def command_status(self, command_id: int) -> tuple[str, str]:
        async with self.conn.execute("SELECT status, result FROM control_events WHERE id = ?", (command_id,)) as cur:
            row = await cur.fetchone()
        return (row[0], row[1]) if row else ("missing", "")

    # -- engine state ----------------------------------------------------------------------------------

    async def ledgers(self) -> dict[int, LedgerRecord]:
        async with self.conn.execute("SELECT bot_id, realized_pnl, fees, trades, wins, high_water, day_start,"
                                     " day_start_equity, loss_streak, cooldown_until FROM ledgers") as cur:
            return {r[0]: LedgerRecord(r[0], Decimal(r[1]), Decimal(r[2]), r[3], r[4], Decimal(r[5]), r[6], _d(r[7]), r[8], r[9])
                    for r in await cur.fetchall()}

    async def positions(self) -> list[Position]:
        async with self.conn.execute("SELECT bot_id, symbol, qty, entry_price, stop_price, target_price, opened_ts,"
                                     " entry_fees, initial_stop FROM positions") as cur:
            return [Position(r[0], r[1], Decimal(r[2]), Decimal(r[3]), _d(r[4]), _d(r[5]), r[6], Decimal(r[7]), _d(r[8]))
                    for r in await cur.fetchall()]

    async def orders(self, open_only: bool = True, bot_id: int | None = None) -> list[tuple[Order, int]]:
        clauses, args = [], []
        if open_only:
            clauses.append("status IN ('PendingSubmit', 'New', 'PartiallyFilled')")
        if bot_id is not None:
            clauses.append("bot_id = ?")
            args.append(bot_id)
        where = f"WHERE {' AND '.join(clauses)}" if clauses else ""
        async with self.conn.execute(f"SELECT * FROM orders {where} ORDER BY bot_id, seq", args) as cur:
            return [_order(r) for r in await cur.fetchall()]

    async def max_order_seq(self) -> dict[int, int]:
        async with self.conn.execute("SELECT bot_id, MAX(seq) FROM orders GROUP BY bot_id") as cur:
            return {r[0]: r[1] for r in await cur.fetchall()}

    async def fills(self, bot_id: int | None = None) -> list[Fill]:
        where, args = ("WHERE bot_id = ?", (bot_id,)) if bot_id is not None else ("", ())
        async with self.conn.execute(f"SELECT * FROM fills {where} ORDER BY ts, fill_id", args) as cur:
            return [Fill(r[0], r[1], r[2], r[3], Side(r[4]), Decimal(r[5]), Decimal(r[6]), Decimal(r[7]),
                         Liquidity(r[8]), r[11], OrderPurpose(r[9]), bool(r[10])) for r in await cur.fetchall()]

    async def trades(self, bot_id: int | None = None) -> list[Trade]:
        where, args = ("WHERE bot_id = ?", (bot_id,)) if bot_id is not None else ("", ())
        async with self.conn.execute(f"SELECT * FROM trades {where} ORDER BY id", args) as cur:
            return [Trade(r[1], r[2], Side(r[3]), Decimal(r[4]), Decimal(r[5]), Decimal(r[6]), r[7], r[8],
                          Decimal(r[9]), Decimal(r[10]), r[11]) for r in await cur.fetchall()]

    async def equity_curve(self, bot_id: int) -> list[tuple[int, Decimal]]:
        """The bot's equity rows (ts, equity), oldest first. The key is time first, so this scans the
        table; the console asks for it once, when its detail screen opens."""
        await self.flush()
        async with self.conn.execute("SELECT ts, equity FROM equity_snapshots WHERE bot_id = ? ORDER BY ts", (bot_id,)) as cur:
            return [(r[0], Decimal(r[1])) for r in await cur.fetchall()]

    async def strategy_states(self) -> dict[int, dict[str, Any]]:
        async with self.conn.execute("SELECT bot_id, state FROM strategy_state") as cur:
            return {r[0]: json.loads(r[1]) for r in await cur.fetchall()}

    async def meta(self) -> dict[str, str]:
        async with self.conn.execute("SELECT key, value FROM meta") as cur:
            return {r[0]: r[1] for r in await cur.fetchall()}

    async def decisions(self, bot_id: int | None = None, after_id: int = 0, types: Sequence[str] = (),
                        limit: int = 1000, newest: bool = False) -> list[tuple[int, Decision]]:
        """(row id, decision), oldest first; with newest=True the last `limit` of them."""
        await self.flush()
        clauses, args = ["id > ?"], [after_id]
        if bot_id is not None:
            clauses.append("bot_id = ?")
            args.append(bot_id)
        if types:
            clauses.append(f"decision_type IN ({', '.join('?' * len(types))})")
            args.extend(types)
        order = "DESC" if newest else "ASC"
        sql = f"SELECT * FROM bot_decisions WHERE {' AND '.join(clauses)} ORDER BY id {order} LIMIT ?"
        async with self.conn.execute(sql, [*args, limit]) as cur:
            rows = await cur.fetchall()
        if newest:
            rows = list(reversed(rows))
        return [(r[0], Decision(r[1], r[2], Phase(r[3]), DecisionType(r[4]), r[5], json.loads(r[6]))) for r in rows]

    async def candles(self, symbol: str, timeframe: str, since_ts: int = 0, limit: int | None = None) -> list[Candle]:
        """Candles from since_ts on, oldest first; with a limit, the newest `limit` of them."""
        where = "WHERE symbol = ? AND timeframe = ? AND ts >= ?"
        args: list[Any] = [symbol, timeframe, since_ts]
        sql = f"SELECT * FROM candles {where} ORDER BY ts"
        if limit is not None:
            sql = f"SELECT * FROM (SELECT * FROM candles {where} ORDER BY ts DESC LIMIT ?) ORDER BY ts"
            args.append(limit)
        async with self.conn.execute(sql, args) as cur:
            return [Candle(*r) for r in await cur.fetchall()]

    async def last_candle_ts(self, symbol: str, timeframe: str = "1m") -> int | None:
        async with self.conn.execute("SELECT MAX(ts) FROM candles WHERE symbol = ? AND timeframe = ?", (symbol, timeframe)) as cur:
            row = await cur.fetchone()
        return row[0] if row and row[0] is not None else None

    async def count(self, table: str) -> int:
        async with self.conn.execute(f"SELECT COUNT(*) FROM {table}") as cur:  # table names are ours, never input
            row = await cur.fetchone()
        return int(row[0]) if row else 0


async def _migrate(conn: aiosqlite.Connection, path: Path) -> None:
    async with conn.execute("PRAGMA user_version") as cur:
        row = await cur.fetchone()
    version = int(row[0]) if row else 0
    if version > SCHEMA_VERSION:
        raise SchemaError(f"{path} has schema version {version}; this tui-trader knows up to {SCHEMA_VERSION}. Upgrade tui-trader.")
    for number in range(version, SCHEMA_VERSION):
        await conn.execute("BEGIN IMMEDIATE")
        try:
            for statement in _statements(MIGRATIONS[number]):
                await conn.execute(statement)
            await conn.execute(f"PRAGMA user_version = {number + 1}")
            await conn.execute("COMMIT")
        except BaseException:
            with contextlib.suppress(sqlite3.Error):
                await conn.execute("ROLLBACK")
            raise


def _statements(script: str) -> list[str]:
    """Split a migration into statements (executescript would commit behind our back)."""
    out, current = [], []
    for line in script.splitlines():
        current.append(line.split("--", 1)[0])
        joined = "\n".join(current)
        if sqlite3.complete_statement(joined):
            if joined.strip():
                out.append(joined.strip())
            current = []
    return out


def _bot(row: Any) -> BotRecord:
    spec = BotSpec(name=row[1], symbol=row[2], timeframe=row[3], strategy=row[4], params=json.loads(row[5]),
                   risk_profile=row[6], capital=Decimal(row[7]), confirmations=row[8])
    return BotRecord(row[0], spec, BotState(row[9]), row[10], row[11])


def _order(r: Any) -> tuple[Order, int]:
    request = OrderRequest(
        client_order_id=r[0], bot_id=r[1], symbol=r[3], side=Side(r[4]), order_type=OrderType(r[5]), qty=Decimal(r[6]),
        purpose=OrderPurpose(r[10]), price=_d(r[7]), trigger_price=_d(r[8]), reduce_only=bool(r[9]),
        stop_loss=_d(r[11]), take_profit=_d(r[12]),
    )
    order = Order(request, OrderStatus(r[13]), created_ts=r[17], updated_ts=r[18], filled_qty=Decimal(r[14]),
                  avg_fill_price=_d(r[15]), reason=r[16])
    return order, r[2]
