"""SQLite schema, one forward migration per `PRAGMA user_version`.

Money and quantities are decimal strings (exact); market prices of candles are REAL.
"""

from __future__ import annotations

MIGRATIONS: list[str] = [
    # 1: the initial schema
    """
    CREATE TABLE bots (
        id INTEGER PRIMARY KEY,
        name TEXT NOT NULL,
        symbol TEXT NOT NULL,
        timeframe TEXT NOT NULL,
        strategy TEXT NOT NULL,
        params TEXT NOT NULL,
        risk_profile TEXT NOT NULL,
        capital TEXT NOT NULL,
        confirmations INTEGER NOT NULL,
        state TEXT NOT NULL,
        state_reason TEXT NOT NULL DEFAULT '',
        version INTEGER NOT NULL DEFAULT 1,
        created_ts INTEGER NOT NULL,
        updated_ts INTEGER NOT NULL,
        removed_ts INTEGER
    );
    CREATE UNIQUE INDEX bots_live_name ON bots(name) WHERE removed_ts IS NULL;

    CREATE TABLE bot_decisions (
        id INTEGER PRIMARY KEY,
        bot_id INTEGER NOT NULL REFERENCES bots(id),
        ts INTEGER NOT NULL,
        phase TEXT NOT NULL,
        decision_type TEXT NOT NULL,
        summary TEXT NOT NULL,
        details TEXT NOT NULL
    );
    -- No index on bot_id: with hundreds of bots each index insert dirties its own page and
    -- multiplies the bytes written per tick ~20x. Per-bot reads walk the rowid backwards.

    CREATE TABLE control_events (
        id INTEGER PRIMARY KEY,
        ts INTEGER NOT NULL,
        bot_id INTEGER REFERENCES bots(id),
        command TEXT NOT NULL,
        source TEXT NOT NULL,
        reason TEXT NOT NULL,
        from_state TEXT,
        to_state TEXT,
        status TEXT NOT NULL,          -- pending (queued by the CLI for a running engine), applied, rejected
        result TEXT NOT NULL DEFAULT ''
    );
    CREATE INDEX control_events_pending ON control_events(status) WHERE status = 'pending';

    CREATE TABLE orders (
        client_order_id TEXT PRIMARY KEY,
        bot_id INTEGER NOT NULL REFERENCES bots(id),
        seq INTEGER NOT NULL,
        symbol TEXT NOT NULL,
        side TEXT NOT NULL,
        order_type TEXT NOT NULL,
        qty TEXT NOT NULL,
        price TEXT,
        trigger_price TEXT,
        reduce_only INTEGER NOT NULL,
        purpose TEXT NOT NULL,
        stop_loss TEXT,
        take_profit TEXT,
        status TEXT NOT NULL,
        filled_qty TEXT NOT NULL,
        avg_fill_price TEXT,
        reason TEXT NOT NULL,
        created_ts INTEGER NOT NULL,
        updated_ts INTEGER NOT NULL
    );
    CREATE INDEX orders_open ON orders(status) WHERE status IN ('PendingSubmit', 'New', 'PartiallyFilled');
    CREATE INDEX orders_bot ON orders(bot_id, seq);

    CREATE TABLE fills (
        fill_id TEXT PRIMARY KEY,
        client_order_id TEXT NOT NULL,
        bot_id INTEGER NOT NULL REFERENCES bots(id),
        symbol TEXT NOT NULL,
        side TEXT NOT NULL,
        qty TEXT NOT NULL,
        price TEXT NOT NULL,
        fee TEXT NOT NULL,
        liquidity TEXT NOT NULL,
        purpose TEXT NOT NULL,
        reduce_only INTEGER NOT NULL,
        ts INTEGER NOT NULL
    );
    CREATE INDEX fills_bot ON fills(bot_id, ts);

    CREATE TABLE positions (
        bot_id INTEGER NOT NULL REFERENCES bots(id),
        symbol TEXT NOT NULL,
        qty TEXT NOT NULL,
        entry_price TEXT NOT NULL,
        stop_price TEXT,
        target_price TEXT,
        opened_ts INTEGER NOT NULL,
        entry_fees TEXT NOT NULL,
        PRIMARY KEY (bot_id, symbol)
    );

    CREATE TABLE trades (
        id INTEGER PRIMARY KEY,
        bot_id INTEGER NOT NULL REFERENCES bots(id),
        symbol TEXT NOT NULL,
        side TEXT NOT NULL,
        qty TEXT NOT NULL,
        entry_price TEXT NOT NULL,
        exit_price TEXT NOT NULL,
        entry_ts INTEGER NOT NULL,
        exit_ts INTEGER NOT NULL,
        pnl TEXT NOT NULL,
        fees TEXT NOT NULL,
        exit_reason TEXT NOT NULL
    );
    CREATE INDEX trades_bot ON trades(bot_id, exit_ts);

    CREATE TABLE ledgers (
        bot_id INTEGER PRIMARY KEY REFERENCES bots(id),
        realized_pnl TEXT NOT NULL,
        fees TEXT NOT NULL,
        trades INTEGER NOT NULL,
        wins INTEGER NOT NULL,
        high_water TEXT NOT NULL,
        updated_ts INTEGER NOT NULL
    );

    CREATE TABLE equity_snapshots (
        bot_id INTEGER NOT NULL REFERENCES bots(id),
        ts INTEGER NOT NULL,
        equity TEXT NOT NULL,
        realized_pnl TEXT NOT NULL,
        unrealized_pnl TEXT NOT NULL,
        fees TEXT NOT NULL,
        PRIMARY KEY (ts, bot_id)  -- time first: a tick's rows land on adjacent pages
    ) WITHOUT ROWID;

    CREATE TABLE strategy_state (
        bot_id INTEGER PRIMARY KEY REFERENCES bots(id),
        state TEXT NOT NULL,
        updated_ts INTEGER NOT NULL
    );

    CREATE TABLE candles (
        symbol TEXT NOT NULL,
        timeframe TEXT NOT NULL,
        ts INTEGER NOT NULL,
        open REAL NOT NULL,
        high REAL NOT NULL,
        low REAL NOT NULL,
        close REAL NOT NULL,
        volume REAL NOT NULL,
        PRIMARY KEY (symbol, timeframe, ts)
    ) WITHOUT ROWID;

    CREATE TABLE meta (
        key TEXT PRIMARY KEY,
        value TEXT NOT NULL
    );
    """,
    # 2: the risk engine: a position's initial stop (its R), a ledger's trading day, loss streak and cooldown
    """
    ALTER TABLE positions ADD COLUMN initial_stop TEXT;
    ALTER TABLE ledgers ADD COLUMN day_start INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE ledgers ADD COLUMN day_start_equity TEXT;
    ALTER TABLE ledgers ADD COLUMN loss_streak INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE ledgers ADD COLUMN cooldown_until INTEGER NOT NULL DEFAULT 0;
    """,
]

SCHEMA_VERSION = len(MIGRATIONS)
