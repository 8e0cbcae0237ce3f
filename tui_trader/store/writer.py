"""The write path: one writer task commits each batch, with every other batch already waiting,
in one transaction (group commit), in the order they were committed. All of a transaction's
statements are queued to the connection's thread at once. WAL checkpoints run from a second
connection right after commits, never inside one.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sqlite3
import time
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiosqlite

from tui_trader.store.batch import Batch

log = logging.getLogger(__name__)


@dataclass(slots=True)
class _Pending:
    batch: Batch
    done: asyncio.Future[None]


class Transaction:
    """Statements queued to the connection's thread inside an open transaction.

    `add` starts one executemany per statement; each enqueues its work the next time the event
    loop runs it, in order, so a batch costs one round trip to the thread, not one per statement
    (~0.3 ms each)."""

    def __init__(self, conn: aiosqlite.Connection) -> None:
        self._conn = conn
        self._calls: list[asyncio.Future[Any]] = []
        self.waiters: list[asyncio.Future[None]] = []  # the committed batches' callers, resolved at the end

    def add(self, batch: Batch) -> None:
        for sql, rows in batch.statements():
            self._calls.append(asyncio.ensure_future(self._conn.executemany(sql, rows)))

    async def finish(self, raise_failure: bool = True) -> None:
        """Wait for every queued statement; raise the first failure."""
        calls, self._calls = self._calls, []
        results = await asyncio.gather(*calls, return_exceptions=True)
        failure = next((r for r in results if isinstance(r, BaseException)), None)
        if failure is not None and raise_failure:
            raise failure

    def settle(self, error: BaseException | None) -> None:
        for waiter in self.waiters:
            if waiter.done():
                continue
            if error is None:
                waiter.set_result(None)
            else:
                waiter.set_exception(error if isinstance(error, Exception) else RuntimeError("transaction cancelled"))


class Writer:
    CHECKPOINT_SECONDS = 0.5  # at most this often, each right after a commit

    def __init__(self, conn: aiosqlite.Connection, path: Path) -> None:
        self.conn = conn
        self.path = path
        self._waiting: deque[_Pending] = deque()
        self._wakeup = asyncio.Event()
        self._closing = False
        self._task: asyncio.Task[None] | None = None
        self._checkpointer: asyncio.Task[None] | None = None
        self._checkpoint_due = asyncio.Event()
        self._last_checkpoint = 0.0

    async def commit(self, batch: Batch) -> None:
        if not batch:
            return
        await self._start()
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiting.append(_Pending(batch, done))
        self._wakeup.set()
        await asyncio.shield(done)  # a cancelled caller does not undo a queued commit

    async def close(self) -> None:
        if self._task is not None:
            self._closing = True
            self._wakeup.set()
            await self._task
            self._task = None
        if self._checkpointer is not None:
            self._checkpointer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._checkpointer
            self._checkpointer = None
            await self.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")

    def _take_waiting(self) -> list[_Pending]:
        taken = list(self._waiting)
        self._waiting.clear()
        return taken

    async def _start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._loop(), name="store-writer")
            # Checkpoints are the writer's now: the automatic one stays only as a backstop.
            await self.conn.execute("PRAGMA wal_autocheckpoint=20000")
            self._checkpointer = asyncio.create_task(self._checkpoint_loop(), name="store-checkpoint")

    async def _loop(self) -> None:
        while True:
            await self._wakeup.wait()
            self._wakeup.clear()
            group = self._take_waiting()  # group commit: everything waiting goes in
            if group:
                await self._write_group(group)
            if self._closing and not self._waiting:
                return

    async def _write_group(self, group: list[_Pending]) -> None:
        tx = Transaction(self.conn)
        tx.waiters = [p.done for p in group]
        try:
            await self.conn.execute("BEGIN IMMEDIATE")  # alone: were it to fail, queued statements would autocommit
            for pending in group:
                tx.add(pending.batch)
            await tx.finish()
        except Exception as exc:  # report to every waiter; the writer stays alive
            with contextlib.suppress(sqlite3.Error):
                await self.conn.execute("ROLLBACK")
            tx.settle(exc)
            return
        await self.conn.execute("COMMIT")
        tx.settle(None)
        self._committed()

    def _committed(self) -> None:
        now = time.monotonic()
        if now - self._last_checkpoint >= self.CHECKPOINT_SECONDS:
            self._last_checkpoint = now
            self._checkpoint_due.set()

    async def _checkpoint_loop(self) -> None:
        """PASSIVE checkpoints on a second connection (its own thread), started right after a
        commit: SQLite's automatic checkpoint would run inside a commit and fsync there, a 20-30 ms
        stall every few ticks with hundreds of bots."""
        conn = await aiosqlite.connect(self.path, isolation_level=None)
        try:
            await conn.execute("PRAGMA busy_timeout=10000")
            while True:
                await self._checkpoint_due.wait()
                self._checkpoint_due.clear()
                try:
                    await conn.execute("PRAGMA wal_checkpoint(PASSIVE)")
                except sqlite3.Error as exc:  # a busy database: try again next round
                    log.warning("WAL checkpoint failed: %s", exc)
        finally:
            await conn.close()

