"""The write path: batches are committed in the order they were queued, each in one
transaction, on a thread of their own with their own sqlite3 connection.

A transaction goes to that thread whole (its rows already built), so it needs no turn of the
event loop to finish: a commit nobody waits for (`commit_soon`, the decision log and equity rows
of a tick) proceeds while the loop runs the next tick. Those statements insert from one JSON
array (`json_each`), a single SQLite step during which the thread does not hold the GIL.
WAL checkpoints run from a third connection right after commits, never inside one.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any

from tui_trader.store.batch import Batch

log = logging.getLogger(__name__)

Statements = list[tuple[str, list[tuple[Any, ...]]]]


def connect(path: Path, synchronous: str) -> sqlite3.Connection:
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    conn.execute(f"PRAGMA synchronous={'FULL' if synchronous == 'full' else 'NORMAL'}")
    conn.execute("PRAGMA busy_timeout=10000")
    conn.execute("PRAGMA foreign_keys=ON")
    # Checkpoints are the writer's: the automatic one (inside a commit, with an fsync) stays a backstop.
    conn.execute("PRAGMA wal_autocheckpoint=20000")
    return conn


class Writer:
    CHECKPOINT_SECONDS = 0.5  # at most this often, each right after a commit

    def __init__(self, path: Path, synchronous: str = "normal") -> None:
        self.path = path
        self.synchronous = synchronous
        self._thread = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="store-writer")
        self._checkpointer = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="store-checkpoint")
        self._conn: sqlite3.Connection | None = None  # used on the writer thread only
        self._checkpoint_conn: sqlite3.Connection | None = None  # used on the checkpoint thread only
        self._checkpoint_running = threading.Event()
        self._last_checkpoint = 0.0
        self._last: asyncio.Future[None] | None = None  # the newest queued commit
        self.failures = 0  # commits nobody waited for that failed (each is logged)

    async def commit(self, batch: Batch) -> None:
        """Write the batch in one transaction, after every batch queued before it, and wait for it."""
        if batch:
            await asyncio.shield(self._queue(batch))  # a cancelled caller does not undo a queued commit

    def commit_soon(self, batch: Batch) -> None:
        """Queue the batch without waiting; a failure is logged and counted."""
        if batch:
            self._queue(batch).add_done_callback(self._report)

    async def flush(self) -> None:
        """Wait until everything queued so far is written (failures were reported to their callers)."""
        if self._last is not None:
            await asyncio.wait([self._last])

    async def close(self) -> None:
        await self.flush()
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(self._checkpointer, self._close_checkpointer)
        await loop.run_in_executor(self._thread, self._close_writer)
        self._thread.shutdown()
        self._checkpointer.shutdown()

    def _queue(self, batch: Batch) -> asyncio.Future[None]:
        statements = list(batch.statements())  # rows are built here, on the event loop's thread
        future = asyncio.get_running_loop().run_in_executor(self._thread, self._write, statements)
        self._last = future
        return future

    def _report(self, future: asyncio.Future[None]) -> None:
        if not future.cancelled() and future.exception() is not None:
            self.failures += 1
            log.error("a background commit failed: %s", future.exception())

    # -- on the writer thread ------------------------------------------------------------------------------

    def _write(self, statements: Statements) -> None:
        if self._conn is None:
            self._conn = connect(self.path, self.synchronous)
        conn = self._conn
        conn.execute("BEGIN IMMEDIATE")
        try:
            for sql, rows in statements:
                conn.executemany(sql, rows)
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
        now = time.monotonic()
        if now - self._last_checkpoint >= self.CHECKPOINT_SECONDS and not self._checkpoint_running.is_set():
            self._last_checkpoint = now
            self._checkpoint_running.set()
            self._checkpointer.submit(self._checkpoint)

    def _close_writer(self) -> None:
        if self._conn is None:
            self._conn = connect(self.path, self.synchronous)
        self._conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        self._conn.close()
        self._conn = None

    # -- on the checkpoint thread -------------------------------------------------------------------------

    def _checkpoint(self) -> None:
        """PASSIVE: copies what no reader still needs and never blocks the writer; SQLite's automatic
        checkpoint would run inside a commit and fsync there (20-30 ms with hundreds of bots)."""
        try:
            if self._checkpoint_conn is None:
                self._checkpoint_conn = connect(self.path, self.synchronous)
            self._checkpoint_conn.execute("PRAGMA wal_checkpoint(PASSIVE)")
        except sqlite3.Error as exc:  # a busy database: the next round tries again
            log.warning("WAL checkpoint failed: %s", exc)
        finally:
            self._checkpoint_running.clear()

    def _close_checkpointer(self) -> None:
        if self._checkpoint_conn is not None:
            self._checkpoint_conn.close()
            self._checkpoint_conn = None
