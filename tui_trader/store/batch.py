"""One cycle's writes, committed by the writer task in one transaction."""

from __future__ import annotations

import orjson
from collections.abc import Iterable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from tui_trader.model import Candle, ControlEvent, Decision, EquitySnapshot, Fill, Order, Position, Trade
from tui_trader.store.records import LedgerRecord


def dec(value: Decimal | None) -> str | None:
    return None if value is None else str(value)


def _json_default(value: Any) -> Any:
    if isinstance(value, Decimal):
        return str(value)
    raise TypeError(f"cannot store {type(value).__name__} in decision details")


def to_json(value: Any) -> str:
    return json_array(value).decode()


def json_array(value: Any) -> bytes:
    # orjson: ~10x json.dumps; numpy floats (indicator values) and Decimals (as strings) included.
    return orjson.dumps(value, default=_json_default, option=orjson.OPT_SERIALIZE_NUMPY)


@dataclass(slots=True)
class Batch:
    candles: list[Candle] = field(default_factory=list)
    decisions: list[Decision] = field(default_factory=list)
    orders: list[tuple[Order, int]] = field(default_factory=list)  # (order, seq); upserted by client id
    fills: list[Fill] = field(default_factory=list)
    positions: list[Position] = field(default_factory=list)
    trades: list[Trade] = field(default_factory=list)
    ledgers: list[tuple[LedgerRecord, int]] = field(default_factory=list)  # (ledger, ts)
    equity: list[EquitySnapshot] = field(default_factory=list)
    strategy_state: list[tuple[int, dict[str, Any], int]] = field(default_factory=list)  # (bot_id, state, ts)
    control_events: list[ControlEvent] = field(default_factory=list)
    bot_states: list[tuple[int, str, str, int]] = field(default_factory=list)  # (bot_id, state, reason, ts)
    applied_commands: list[tuple[int, str, str]] = field(default_factory=list)  # (control_events id, status, result)
    meta: dict[str, str] = field(default_factory=dict)

    def __bool__(self) -> bool:
        return any(getattr(self, name) for name in self.__slots__)  # type: ignore[attr-defined]

    def take_log(self, into: Batch | None = None) -> Batch:
        """Move the decisions and equity rows (records of what happened, not state a restore
        needs) out of this batch, appended to `into` or a new batch."""
        log = into if into is not None else Batch()
        log.decisions.extend(self.decisions)
        log.equity.extend(self.equity)
        self.decisions, self.equity = [], []
        return log

    def statements(self) -> Iterable[tuple[str, list[tuple[Any, ...]]]]:
        """(SQL, rows) pairs for executemany, parents before children."""
        if self.bot_states:
            yield ("UPDATE bots SET state = ?, state_reason = ?, updated_ts = ? WHERE id = ?",
                   [(s, r, ts, b) for b, s, r, ts in self.bot_states])
        if self.candles:
            yield ("INSERT OR IGNORE INTO candles VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                   [(c.symbol, c.timeframe, c.ts, c.open, c.high, c.low, c.close, c.volume) for c in self.candles])
        if self.orders:
            yield (ORDER_UPSERT, [_order_row(o, seq) for o, seq in self.orders])
        if self.fills:
            yield ("INSERT OR IGNORE INTO fills VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                   [(f.fill_id, f.client_order_id, f.bot_id, f.symbol, f.side.value, str(f.qty), str(f.price), str(f.fee),
                     f.liquidity.value, f.purpose.value, int(f.reduce_only), f.ts) for f in self.fills])
        if self.positions:
            yield ("INSERT OR REPLACE INTO positions (bot_id, symbol, qty, entry_price, stop_price, target_price, opened_ts,"
                   " entry_fees, initial_stop) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                   [(p.bot_id, p.symbol, str(p.qty), str(p.entry_price), dec(p.stop_price), dec(p.target_price),
                     p.opened_ts, str(p.entry_fees), dec(p.initial_stop)) for p in self.positions])
        if self.trades:
            yield ("INSERT INTO trades (bot_id, symbol, side, qty, entry_price, exit_price, entry_ts, exit_ts, pnl, fees, exit_reason)"
                   " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                   [(t.bot_id, t.symbol, t.side.value, str(t.qty), str(t.entry_price), str(t.exit_price), t.entry_ts,
                     t.exit_ts, str(t.pnl), str(t.fees), t.exit_reason) for t in self.trades])
        if self.ledgers:
            yield ("INSERT OR REPLACE INTO ledgers (bot_id, realized_pnl, fees, trades, wins, high_water, updated_ts,"
                   " day_start, day_start_equity, loss_streak, cooldown_until) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                   [(lg.bot_id, str(lg.realized_pnl), str(lg.fees), lg.trades, lg.wins, str(lg.high_water), ts,
                     lg.day_start, dec(lg.day_start_equity), lg.loss_streak, lg.cooldown_until) for lg, ts in self.ledgers])
        if self.equity:
            yield (EQUITY_FROM_JSON, [(json_array([(e.bot_id, e.ts, str(e.equity), str(e.realized_pnl), str(e.unrealized_pnl),
                                                    str(e.fees)) for e in self.equity]),)])
        if self.strategy_state:
            yield ("INSERT OR REPLACE INTO strategy_state VALUES (?, ?, ?)",
                   [(b, to_json(s), ts) for b, s, ts in self.strategy_state])
        if self.decisions:
            # tuples: orjson encodes a slots dataclass ~5x slower; `_value_` skips the enum's property
            yield (DECISIONS_FROM_JSON, [(json_array([(d.bot_id, d.ts, d.phase._value_, d.decision_type._value_, d.summary,
                                                       d.details) for d in self.decisions]),)])
        if self.control_events:
            yield ("INSERT INTO control_events (ts, bot_id, command, source, reason, from_state, to_state, status)"
                   " VALUES (?, ?, ?, ?, ?, ?, ?, 'applied')",
                   [(e.ts, e.bot_id, e.command, e.source, e.reason, e.from_state and e.from_state.value,
                     e.to_state and e.to_state.value) for e in self.control_events])
        if self.applied_commands:
            yield ("UPDATE control_events SET status = ?, result = ? WHERE id = ?",
                   [(status, result, cid) for cid, status, result in self.applied_commands])
        if self.meta:
            yield ("INSERT OR REPLACE INTO meta VALUES (?, ?)", list(self.meta.items()))


# The two high-volume tables (one decision per bot per candle, an equity row per bot in a position)
# insert from one JSON array of rows: one SQLite step, during which the writer thread releases the
# GIL, where executemany would take it back for every row.
DECISIONS_FROM_JSON = """
INSERT INTO bot_decisions (bot_id, ts, phase, decision_type, summary, details)
SELECT json_extract(value, '$[0]'), json_extract(value, '$[1]'), json_extract(value, '$[2]'),
       json_extract(value, '$[3]'), json_extract(value, '$[4]'), json_extract(value, '$[5]')
FROM json_each(?)
"""
EQUITY_FROM_JSON = """
INSERT OR REPLACE INTO equity_snapshots (bot_id, ts, equity, realized_pnl, unrealized_pnl, fees)
SELECT json_extract(value, '$[0]'), json_extract(value, '$[1]'), json_extract(value, '$[2]'),
       json_extract(value, '$[3]'), json_extract(value, '$[4]'), json_extract(value, '$[5]')
FROM json_each(?)
"""

ORDER_UPSERT = """
INSERT INTO orders VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
ON CONFLICT(client_order_id) DO UPDATE SET
    status = excluded.status, filled_qty = excluded.filled_qty, avg_fill_price = excluded.avg_fill_price,
    reason = excluded.reason, updated_ts = excluded.updated_ts
"""


def _order_row(order: Order, seq: int) -> tuple[Any, ...]:
    r = order.request
    return (r.client_order_id, r.bot_id, seq, r.symbol, r.side.value, r.order_type.value, str(r.qty), dec(r.price),
            dec(r.trigger_price), int(r.reduce_only), r.purpose.value, dec(r.stop_loss), dec(r.take_profit),
            order.status.value, str(order.filled_qty), dec(order.avg_fill_price), order.reason, order.created_ts,
            order.updated_ts)
