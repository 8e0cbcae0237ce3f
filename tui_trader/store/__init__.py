"""SQLite persistence (aiosqlite, WAL): migrations, one batching writer, typed reads."""

from tui_trader.store.batch import Batch
from tui_trader.store.db import SchemaError, Store
from tui_trader.store.records import BotExists, BotRecord, LedgerRecord, PendingCommand

__all__ = ["Batch", "BotExists", "BotRecord", "LedgerRecord", "PendingCommand", "SchemaError", "Store"]
