"""Engine scenarios: hand-made candles through the real engine (Store on SQLite in
tmp_path, PaperExchange, Engine with a ReplayFeed), with a scripted strategy
plugin, asserting the exact decisions, fills, fees, ledgers and database rows.

Every scenario uses the risk profile "exact" (1% risk per trade, stop 2 ATR,
target 2R, 10x max leverage, max position 1000% of capital) and bots with
10 000 USDT of capital on BTCUSDT 1m (tick 0.1, qty step 0.001), taker fee
0.055%, maker fee 0.02% and no slippage unless a test says otherwise.

The common long, worked by hand (used by most scenarios):
  bar 1 closes at 1000.37 -> entry reference 1000.4 (the tick grid, 0.1)
  ATR 7.3 -> stop distance 2 * 7.3 = 14.6 -> stop 985.8, target 1000.4 + 2 * 14.6 = 1029.6
  risk 1% of 10 000 = 100 USDT -> 100 / 14.6 = 6.8493... -> qty 6.849 (qty step 0.001)
  (the other caps are far away: max position 100 BTC, leverage 100 BTC, margin ~99.4 BTC)
  bar 2 opens at 1000.5 -> the market buy fills there; fee 6.849 * 1000.5 * 0.00055
  = 3.768833475 -> 3.76883348 (1e-8 USDT, half-even).
"""

from __future__ import annotations

import asyncio
import tempfile
from decimal import ROUND_HALF_EVEN
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.engine_harness import (
    HISTORY,
    SYMBOL,
    TAKER,
    D,
    Harness,
    at,
    bar,
    bot_spec,
    flat,
    history,
    make_config,
    open_harness,
    snapshot,
    ts,
)
from tui_trader.model import (
    BotState,
    DecisionType,
    Fill,
    Liquidity,
    OrderPurpose,
    OrderStatus,
    Side,
    Trade,
    to_usdt,
)
from tui_trader.store import Store

DT = DecisionType
USDT = D("0.00000001")
ATR = 7.3
QTY = D("6.849")
ENTRY_FILL = D("1000.5")
ENTRY_FEE = D("3.76883348")
STOP, TARGET = D("985.8"), D("1029.6")

# Live bars of the common long: 0 quiet, 1 signals (close 1000.37), 2 fills (open 1000.5), 3 quiet.
SIGNAL_BAR = bar(1, 1000.0, 1001.0, 999.0, 1000.37)
FILL_BAR = bar(2, 1000.5, 1001.0, 999.5, 1000.0)


def fee(qty: D, price: D) -> D:
    return (qty * price * TAKER).quantize(USDT, ROUND_HALF_EVEN)


@pytest.fixture
async def harnesses():
    """Opened harnesses are closed after the test, whatever happens."""
    opened: list[Harness] = []
    yield opened
    for h in opened:
        await h.close()


@pytest.fixture
def start(tmp_path: Path, harnesses: list[Harness]):
    async def _start(bots: list[dict], live: list, *, slippage_bps: str = "0", state: str = "state",
                     history_bars: int = HISTORY, listen: bool = True) -> Harness:
        h = await open_harness(tmp_path / state, make_config(bots, slippage_bps=slippage_bps), history() + live,
                               history_bars, listen)
        harnesses.append(h)
        return h
    return _start


async def orders(h: Harness) -> list[tuple]:
    return await h.rows("SELECT client_order_id, purpose, side, qty, reduce_only, stop_loss, take_profit, status,"
                        " filled_qty, avg_fill_price FROM orders ORDER BY bot_id, seq")


async def control_events(h: Harness) -> list[tuple]:
    return await h.rows("SELECT bot_id, command, source, from_state, to_state, status FROM control_events ORDER BY id")


# --- entry, stop, target ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("slippage_bps", "entry_fill", "stop_fill"),
    [
        ("0", ENTRY_FILL, STOP),
        # 10 bps against the order: buy 1000.5 * 1.001 = 1001.5005 -> up to the tick 1001.6;
        # the stop sells 985.8 * 0.999 = 984.8142 -> down to the tick 984.8.
        ("10", D("1001.6"), D("984.8")),
    ],
)
async def test_long_entry_then_stop_hit(start, slippage_bps, entry_fill, stop_fill):
    stop_bar = bar(3, 990.0, 991.0, 985.0, 986.0)  # low 985.0 crosses the stop 985.8; the open does not
    h = await start([bot_spec("a", long_at=at(1), atr=ATR)], [flat(0), SIGNAL_BAR, FILL_BAR, stop_bar, flat(4, 986.0)],
                    slippage_bps=slippage_bps)
    a = h.bot("a")
    assert await h.tick(flat(0)) == {"a": ["NO_SETUP"]}

    # bar 1: the setup is sized on its close and the entry is sent with its protective levels
    assert await h.tick(SIGNAL_BAR) == {"a": ["SETUP_FOUND", "ORDER_PLACED"]}
    found, placed = h.decisions("a", DT.SETUP_FOUND, DT.ORDER_PLACED)[-2:]
    assert found.ts == placed.ts == ts(2)  # the close time of bar 1
    assert found.details["side"] == "Buy"
    assert found.details["confirmations"] == {"always": {"passed": True, "detail": "always passes"},
                                              "never": {"passed": False, "detail": "never passes"}}
    assert placed.details == {"client_order_id": "tt1-1", "qty": "6.849"}
    assert placed.summary == "entry: market buy 6.849 BTCUSDT, stop 985.8, target 1029.6"
    assert await orders(h) == [("tt1-1", "entry", "Buy", "6.849", 0, "985.8", "1029.6", "New", "0", None)]
    assert not a.ledger.position.is_open  # nothing fills before the next bar

    # bar 2: the market order fills at its open
    assert await h.tick(FILL_BAR) == {"a": ["TRADE_ENTERED", "HOLD"]}
    entry_fee = fee(QTY, entry_fill)
    entered = h.decisions("a", DT.TRADE_ENTERED)[0]
    assert entered.ts == ts(2)
    assert entered.details == {"price": str(entry_fill), "qty": "6.849", "fee": str(entry_fee)}
    pos = a.ledger.position
    assert (pos.qty, pos.entry_price, pos.stop_price, pos.target_price, pos.opened_ts, pos.entry_fees) == \
           (QTY, entry_fill, STOP, TARGET, ts(2), entry_fee)
    ex_pos = h.exchange.position(a.id, SYMBOL)
    assert (ex_pos.qty, ex_pos.entry_price, ex_pos.stop_price, ex_pos.target_price) == (QTY, entry_fill, STOP, TARGET)
    assert await orders(h) == [("tt1-1", "entry", "Buy", "6.849", 0, "985.8", "1029.6", "Filled", "6.849", str(entry_fill))]
    assert a.orders == {}

    # bar 3: the low crosses the stop: the exchange sells at the stop (less slippage)
    assert await h.tick(stop_bar) == {"a": ["TRADE_EXITED", "NO_SETUP"]}
    exit_fee = fee(QTY, stop_fill)
    pnl = to_usdt((stop_fill - entry_fill) * QTY)  # the ledger keeps 1e-8 USDT: "-100.68030000" with no slippage
    exited = h.decisions("a", DT.TRADE_EXITED)[0]
    assert exited.details == {"pnl": str(pnl), "fees": str(entry_fee + exit_fee), "reason": "stop",
                              "entry_price": str(entry_fill), "exit_price": str(stop_fill)}
    assert not a.ledger.position.is_open and not h.exchange.position(a.id, SYMBOL).is_open
    assert (a.ledger.realized_pnl, a.ledger.fees, a.ledger.trades, a.ledger.wins) == (pnl, entry_fee + exit_fee, 1, 0)
    assert a.ledger.wallet == D(10000) + pnl - entry_fee - exit_fee
    sl = f"tt1-BTCUSDT-sl-{ts(3)}"
    assert await h.store.fills(a.id) == [
        Fill("tt1-1-f1", "tt1-1", a.id, SYMBOL, Side.BUY, QTY, entry_fill, entry_fee, Liquidity.TAKER, ts(2),
             OrderPurpose.ENTRY, False),
        Fill(f"{sl}-f1", sl, a.id, SYMBOL, Side.SELL, QTY, stop_fill, exit_fee, Liquidity.TAKER, ts(3), OrderPurpose.STOP, True),
    ]
    assert await h.store.trades(a.id) == [
        Trade(a.id, SYMBOL, Side.BUY, QTY, entry_fill, stop_fill, ts(2), ts(3), pnl, entry_fee + exit_fee, "stop")
    ]
    assert (await h.rows("SELECT qty FROM positions WHERE bot_id = ?", a.id)) == [("0",)]
    assert (await h.rows("SELECT realized_pnl, fees, trades, wins FROM ledgers WHERE bot_id = ?", a.id)) == \
           [(str(pnl), str(entry_fee + exit_fee), 1, 0)]
    assert await h.tick(flat(4, 986.0)) == {"a": ["NO_SETUP"]}  # flat and quiet afterwards
    await h.assert_books_consistent()


@pytest.mark.parametrize(
    ("side", "target", "target_bar"),
    [
        # long: target 1029.6; bar 3 reaches 1030 -> sells at 1029.6, taker fee, no slippage
        ("long", TARGET, bar(3, 1010.0, 1030.0, 1005.0, 1025.0)),
        # short at the same reference: stop 1000.4 + 14.6 = 1015.0, target 1000.4 - 29.2 = 971.2
        ("short", D("971.2"), bar(3, 990.0, 995.0, 971.0, 975.0)),
    ],
)
async def test_entry_then_target_hit(start, side, target, target_bar):
    params = {"long_at": at(1)} if side == "long" else {"short_at": at(1)}
    h = await start([bot_spec("a", atr=ATR, **params)], [SIGNAL_BAR, FILL_BAR, target_bar], slippage_bps="10")
    a = h.bot("a")
    entry_side = Side.BUY if side == "long" else Side.SELL
    # with 10 bps: a buy fills at 1000.5 * 1.001 -> 1001.6 (up), a sell at 1000.5 * 0.999 = 999.4995 -> 999.4 (down)
    entry_fill = D("1001.6") if side == "long" else D("999.4")
    ticks = await h.run([SIGNAL_BAR, FILL_BAR, target_bar])
    assert ticks == [{"a": ["SETUP_FOUND", "ORDER_PLACED"]}, {"a": ["TRADE_ENTERED", "HOLD"]},
                     {"a": ["TRADE_EXITED", "NO_SETUP"]}]
    stop = STOP if side == "long" else D("1015.0")
    assert (await orders(h))[0][1:7] == ("entry", entry_side.value, "6.849", 0, str(stop), str(target))
    entry_fee, exit_fee = fee(QTY, entry_fill), fee(QTY, target)
    pnl = (target - entry_fill) * QTY * entry_side.sign  # long: 28.0 * 6.849; short: 28.2 * 6.849
    assert pnl == (D("191.772") if side == "long" else D("193.1418"))
    tp = f"tt1-BTCUSDT-tp-{ts(3)}"
    fills = await h.store.fills(a.id)
    assert fills[1] == Fill(f"{tp}-f1", tp, a.id, SYMBOL, entry_side.opposite, QTY, target, exit_fee, Liquidity.TAKER,
                            ts(3), OrderPurpose.TARGET, True)
    assert await h.store.trades(a.id) == [
        Trade(a.id, SYMBOL, entry_side, QTY, entry_fill, target, ts(2), ts(3), pnl, entry_fee + exit_fee, "target")
    ]
    assert (a.ledger.realized_pnl, a.ledger.fees, a.ledger.trades, a.ledger.wins) == (pnl, entry_fee + exit_fee, 1, 1)
    assert not a.ledger.position.is_open and not h.exchange.position(a.id, SYMBOL).is_open
    await h.assert_books_consistent()


async def test_a_bar_through_stop_and_target_stops_out(start):
    """Nobody knows the path inside a bar: the paper exchange takes the stop (pessimistic)."""
    both = bar(3, 1000.0, 1031.0, 985.0, 1000.0)
    h = await start([bot_spec("a", long_at=at(1), atr=ATR)], [SIGNAL_BAR, FILL_BAR, both])
    await h.run([SIGNAL_BAR, FILL_BAR])
    assert await h.tick(both) == {"a": ["TRADE_EXITED", "NO_SETUP"]}
    trade = (await h.store.trades())[0]
    assert (trade.exit_price, trade.exit_reason, trade.pnl) == (STOP, "stop", (STOP - ENTRY_FILL) * QTY)
    await h.assert_books_consistent()


# --- confirmations -------------------------------------------------------------------------------------------------


async def test_two_required_confirmations_reject_the_setup(start):
    h = await start([bot_spec("strict", confirmations=2, long_at=at(1), atr=ATR),
                     bot_spec("lenient", confirmations=1, long_at=at(1), atr=ATR)], [SIGNAL_BAR, FILL_BAR])
    assert await h.tick(SIGNAL_BAR) == {"strict": ["SETUP_FOUND", "SETUP_REJECTED"],
                                        "lenient": ["SETUP_FOUND", "ORDER_PLACED"]}
    rejected = h.decisions("strict", DT.SETUP_REJECTED)[0]
    assert rejected.summary == "1 of 2 confirmations passed, 2 required; failed: never"
    assert rejected.details == {"passed": ["always"], "failed": ["never"]}
    assert await h.tick(FILL_BAR) == {"strict": ["NO_SETUP"], "lenient": ["TRADE_ENTERED", "HOLD"]}
    strict = h.bot("strict")
    assert await h.store.orders(open_only=False, bot_id=strict.id) == []
    assert not strict.ledger.position.is_open and not h.exchange.position(strict.id, SYMBOL).is_open
    assert h.bot("lenient").ledger.position.qty == QTY
    await h.assert_books_consistent()


# --- pause ---------------------------------------------------------------------------------------------------------------


async def test_pause_manages_the_open_position_but_opens_nothing(start):
    exit_bar = flat(3, 1001.0)
    exit_fill_bar = bar(4, 1003.0, 1004.0, 1002.0, 1003.0)
    signal_again = flat(5, 1003.0)
    h = await start([bot_spec("a", long_at=at(1, 5), exit_at=at(3), atr=ATR)],
                    [SIGNAL_BAR, FILL_BAR, exit_bar, exit_fill_bar, signal_again, flat(6, 1003.0)])
    a = h.bot("a")
    await h.run([SIGNAL_BAR, FILL_BAR])
    assert a.ledger.position.qty == QTY

    mark = len(h.log)
    assert await h.engine.command("pause", "a", "operator:test", "lunch") == \
        "a paused: open positions are still managed, no new entries"
    assert h.types_since(mark) == {"a": ["STATE_CHANGED"]}
    assert a.state is BotState.PAUSED
    assert await h.rows("SELECT state, state_reason FROM bots WHERE id = ?", a.id) == [("PAUSED", "lunch")]

    # the exit signal is acted on while paused
    assert await h.tick(exit_bar) == {"a": ["EXIT_SIGNAL", "ORDER_PLACED"]}
    assert h.decisions("a", DT.EXIT_SIGNAL)[0].summary == f"exit: scripted exit at {ts(3)}"
    assert h.decisions("a", DT.ORDER_PLACED)[-1].summary == "exit: market sell 6.849 BTCUSDT reduce-only"
    assert await h.tick(exit_fill_bar) == {"a": ["TRADE_EXITED", "NO_SETUP"]}
    pnl = (D("1003.0") - ENTRY_FILL) * QTY  # 2.5 * 6.849 = 17.1225
    exit_fee = fee(QTY, D("1003.0"))  # 6869.547 * 0.00055 = 3.77825085
    assert (pnl, exit_fee) == (D("17.1225"), D("3.77825085"))
    assert await h.store.trades(a.id) == [
        Trade(a.id, SYMBOL, Side.BUY, QTY, ENTRY_FILL, D("1003.0"), ts(2), ts(4), pnl, ENTRY_FEE + exit_fee, "exit")
    ]
    assert not h.exchange.position(a.id, SYMBOL).is_open

    # a new setup while paused is blocked at the guard
    assert await h.tick(signal_again) == {"a": ["SETUP_FOUND", "RISK_BLOCKED"]}
    blocked = h.decisions("a", DT.RISK_BLOCKED)[0]
    assert blocked.details["gate"] == "bot_state"
    assert blocked.summary == "bot_state: PAUSED (lunch): no new entries"
    assert await h.tick(flat(6, 1003.0)) == {"a": ["NO_SETUP"]}
    assert [(r[0], r[1], r[7]) for r in await orders(h)] == [("tt1-1", "entry", "Filled"), ("tt1-2", "exit", "Filled")]
    assert await h.exchange.open_orders() == []
    await h.assert_books_consistent()


# --- flatten all -----------------------------------------------------------------------------------------------------


async def test_flatten_all_when_flat_halts_and_blocks_the_next_signal(start):
    h = await start([bot_spec("a", long_at=at(1, 3), atr=ATR)], [SIGNAL_BAR, FILL_BAR, flat(3), flat(4)])
    a = h.bot("a")
    assert await h.engine.command("flatten_all", None, "operator:cli", "risk off") == \
        "portfolio flattening: every bot's orders cancelled and positions closing, then HALTED"
    assert h.engine.global_state is BotState.HALTED  # nothing was open: the flatten is complete at once
    assert (await h.store.meta())["global_state"] == "HALTED"
    assert await control_events(h) == [(None, "flatten_all", "operator:cli", "RUNNING", "FLATTENING", "applied"),
                                       (None, "flatten_all", "engine", "FLATTENING", "HALTED", "applied")]

    assert await h.tick(SIGNAL_BAR) == {"a": ["SETUP_FOUND", "RISK_BLOCKED"]}
    blocked = h.decisions("a", DT.RISK_BLOCKED)[0]
    assert blocked.details == {"gate": "bot_state", "qty": "6.849"}
    assert blocked.summary == "bot_state: HALTED (risk off; flatten complete: every bot is flat): no new entries"
    assert await h.tick(FILL_BAR) == {"a": ["NO_SETUP"]}
    assert await orders(h) == []
    assert not a.ledger.position.is_open and await h.exchange.open_orders() == []

    # resume_all: the bot trades again
    assert await h.engine.command("resume_all", None, "operator:cli") == "portfolio resumed"
    assert await h.tick(flat(3)) == {"a": ["SETUP_FOUND", "ORDER_PLACED"]}
    assert await h.tick(flat(4)) == {"a": ["TRADE_ENTERED", "HOLD"]}
    assert a.ledger.position.qty == QTY  # reference 1000.0, stop 985.4: the same 14.6 distance, 6.849
    await h.assert_books_consistent()


async def race_flatten_all_with_signal(h: Harness, how: str) -> None:
    """Process SIGNAL_BAR and, while that tick awaits the commit of its staged entry, issue flatten_all."""
    a = h.bot("a")
    if how == "interleaved":
        tick = asyncio.create_task(h.tick(SIGNAL_BAR))
        await asyncio.sleep(0)  # the tick runs up to its first real suspension: the store commit
        assert h.engine._lock.locked()
        assert [(o.client_order_id, o.status) for o in a.orders.values()] == [("tt1-1", OrderStatus.PENDING_SUBMIT)]
        assert await h.exchange.open_orders() == []
        result = await h.engine.command("flatten_all", None, "operator:ui", "panic")
        assert result.startswith("portfolio flattening")
        await tick
    else:
        await asyncio.gather(h.tick(SIGNAL_BAR), h.engine.command("flatten_all", None, "operator:ui", "panic"))


@pytest.mark.parametrize("how", ["interleaved", "gather"])
async def test_flatten_all_racing_the_tick_that_signals_sends_no_entry(start, how):
    """The cycle stages the entry (PendingSubmit) and awaits its commit; a flatten_all arrives in that gap:
    the entry is re-checked before sending, never reaches the exchange, and the portfolio ends HALTED."""
    h = await start([bot_spec("a", long_at=at(1), atr=ATR)], [SIGNAL_BAR, FILL_BAR])
    a = h.bot("a")
    await race_flatten_all_with_signal(h, how)

    assert h.types_since(0) == {"a": ["SETUP_FOUND", "RISK_BLOCKED"]}
    blocked = h.decisions("a", DT.RISK_BLOCKED)[0]
    assert blocked.details == {"gate": "bot_state", "client_order_id": "tt1-1"}
    assert blocked.summary == "bot_state: FLATTENING since the cycle ran; entry order not sent"
    assert await h.rows("SELECT client_order_id, status, reason FROM orders") == \
        [("tt1-1", "Cancelled", "not sent: bot is FLATTENING")]
    assert await h.exchange.get_order("tt1-1") is None  # never sent
    assert await h.exchange.open_orders() == [] and a.orders == {}
    assert h.engine.global_state is BotState.HALTED
    assert sorted(await control_events(h)) == [(None, "flatten_all", "engine", "FLATTENING", "HALTED", "applied"),
                                               (None, "flatten_all", "operator:ui", "RUNNING", "FLATTENING", "applied")]
    assert await h.tick(FILL_BAR) == {"a": ["NO_SETUP"]}  # nothing fills on the next open
    assert not a.ledger.position.is_open and not h.exchange.position(a.id, SYMBOL).is_open
    assert await h.store.fills() == []
    await h.assert_books_consistent()


async def test_flatten_all_racing_a_tick_persists_the_final_portfolio_state(start):
    h = await start([bot_spec("a", long_at=at(1), atr=ATR)], [SIGNAL_BAR, FILL_BAR])
    await race_flatten_all_with_signal(h, "gather")
    assert h.engine.global_state is BotState.HALTED
    assert await control_events(h) == [(None, "flatten_all", "operator:ui", "RUNNING", "FLATTENING", "applied"),
                                       (None, "flatten_all", "engine", "FLATTENING", "HALTED", "applied")]
    assert (await h.store.meta())["global_state"] == "HALTED"
    await h.close()
    again = await start([bot_spec("a", long_at=at(1), atr=ATR)], [SIGNAL_BAR, FILL_BAR], history_bars=HISTORY + 1)
    assert again.engine.global_state is BotState.HALTED


async def test_flatten_all_closes_open_positions_then_halts(start):
    close_bar = bar(3, 1002.0, 1003.0, 1001.0, 1002.0)
    h = await start([bot_spec("a", long_at=at(1), atr=ATR), bot_spec("idle")], [SIGNAL_BAR, FILL_BAR, close_bar, flat(4)])
    a = h.bot("a")
    await h.run([SIGNAL_BAR, FILL_BAR])
    mark = len(h.log)
    await h.engine.command("flatten_all", None, "operator:ui", "panic")
    assert h.engine.global_state is BotState.FLATTENING
    assert h.types_since(mark) == {"a": ["ORDER_PLACED"]}
    assert h.decisions("a", DT.ORDER_PLACED)[-1].summary == "flatten: market sell 6.849 BTCUSDT reduce-only"
    # the reduce-only close fills at the next open: 1002.0
    assert await h.tick(close_bar) == {"a": ["TRADE_EXITED", "NO_SETUP"], "idle": ["NO_SETUP"]}
    pnl, exit_fee = (D("1002.0") - ENTRY_FILL) * QTY, fee(QTY, D("1002.0"))
    assert await h.store.trades(a.id) == [
        Trade(a.id, SYMBOL, Side.BUY, QTY, ENTRY_FILL, D("1002.0"), ts(2), ts(3), pnl, ENTRY_FEE + exit_fee, "flatten")
    ]
    assert not a.ledger.position.is_open and not h.exchange.position(a.id, SYMBOL).is_open
    assert h.engine.global_state is BotState.HALTED
    assert (await h.store.meta())["global_state"] == "HALTED"
    assert await control_events(h) == [(None, "flatten_all", "operator:ui", "RUNNING", "FLATTENING", "applied"),
                                       (None, "flatten_all", "engine", "FLATTENING", "HALTED", "applied")]
    await h.assert_books_consistent()


# --- flatten one bot -------------------------------------------------------------------------------------------------


async def test_flatten_bot_with_a_working_entry_cancels_it_halts_and_resume_trades_again(start):
    """Flatten while the entry is accepted but not yet filled: the exchange cancels it, the bot is flat,
    so it is HALTED at once; resume makes it RUNNING and it trades on its next signal."""
    h = await start([bot_spec("a", long_at=at(1, 3), atr=ATR), bot_spec("b", long_at=at(1), atr=ATR)],
                    [SIGNAL_BAR, FILL_BAR, flat(3), flat(4)])
    a, b = h.bot("a"), h.bot("b")
    assert await h.tick(SIGNAL_BAR) == {"a": ["SETUP_FOUND", "ORDER_PLACED"], "b": ["SETUP_FOUND", "ORDER_PLACED"]}
    mark = len(h.log)
    assert await h.engine.command("flatten", "a", "operator:cli", "manual") == \
        "a flattening: orders cancelled, position closing reduce-only, then HALTED"
    assert h.types_since(mark) == {"a": ["STATE_CHANGED", "ORDER_CANCELLED", "STATE_CHANGED"]}
    assert a.state is BotState.HALTED and h.engine.global_state is BotState.RUNNING
    assert await h.exchange.get_order("tt1-1") is not None
    assert [(o.client_order_id, o.status) for o in await h.exchange.open_orders()] == [("tt2-1", OrderStatus.NEW)]

    assert await h.tick(FILL_BAR) == {"a": ["NO_SETUP"], "b": ["TRADE_ENTERED", "HOLD"]}
    assert not a.ledger.position.is_open and not h.exchange.position(a.id, SYMBOL).is_open
    assert b.ledger.position.qty == QTY  # the other bot is untouched
    assert await h.rows("SELECT client_order_id, status FROM orders WHERE bot_id = ?", a.id) == [("tt1-1", "Cancelled")]
    assert await control_events(h) == [(a.id, "flatten", "operator:cli", "RUNNING", "FLATTENING", "applied"),
                                       (a.id, "flatten", "engine", "FLATTENING", "HALTED", "applied")]

    assert await h.engine.command("resume", "a") == "a resumed"
    assert a.state is BotState.RUNNING
    assert await h.rows("SELECT state FROM bots WHERE id = ?", a.id) == [("RUNNING",)]
    assert (await h.tick(flat(3)))["a"] == ["SETUP_FOUND", "ORDER_PLACED"]
    assert (await h.tick(flat(4)))["a"] == ["TRADE_ENTERED", "HOLD"]
    assert a.ledger.position.qty == QTY  # reference 1000.0, stop 985.4: the same 14.6 distance, 6.849
    await h.assert_books_consistent()


async def test_flatten_bot_with_a_position_closes_it_halts_and_resume_trades_again(start):
    close_bar = bar(3, 1002.0, 1003.0, 1001.0, 1002.0)
    h = await start([bot_spec("a", long_at=at(1, 4), atr=ATR)], [SIGNAL_BAR, FILL_BAR, close_bar, flat(4), flat(5)])
    a = h.bot("a")
    await h.run([SIGNAL_BAR, FILL_BAR])
    mark = len(h.log)
    await h.engine.command("flatten", "a", "operator:cli", "manual")
    assert h.types_since(mark) == {"a": ["STATE_CHANGED", "ORDER_PLACED"]}
    assert a.state is BotState.FLATTENING
    assert await h.tick(close_bar) == {"a": ["TRADE_EXITED", "STATE_CHANGED", "NO_SETUP"]}
    pnl, exit_fee = (D("1002.0") - ENTRY_FILL) * QTY, fee(QTY, D("1002.0"))
    assert (await h.store.trades(a.id))[0].exit_reason == "flatten"
    assert (a.ledger.realized_pnl, a.ledger.fees) == (pnl, ENTRY_FEE + exit_fee)
    assert a.state is BotState.HALTED and not h.exchange.position(a.id, SYMBOL).is_open
    await h.engine.command("resume", "a")
    assert a.state is BotState.RUNNING
    assert (await h.tick(flat(4)))["a"] == ["SETUP_FOUND", "ORDER_PLACED"]
    assert (await h.tick(flat(5)))["a"] == ["TRADE_ENTERED", "HOLD"]
    await h.assert_books_consistent()


# --- ERROR isolation -----------------------------------------------------------------------------------------------------


async def test_a_strategy_that_raises_is_isolated_and_the_other_bot_keeps_trading(start):
    """'bad' holds a long (stop 985.8) when its strategy raises on bar 3: it goes to ERROR, is no longer
    evaluated, but its exchange-side stop still closes the position and the fill is booked. 'good' signals
    on bar 3 (close 1000.0, ATR 5: stop 990.0, target 1020.0, qty 100 / 10 = 10) and trades on."""
    raise_bar = flat(3)
    stop_bar = bar(5, 995.0, 996.0, 985.0, 986.0)  # crosses 985.8 (bad) and 990.0 (good)
    live = [SIGNAL_BAR, FILL_BAR, raise_bar, flat(4), stop_bar, flat(6, 986.0), flat(7, 986.0), flat(8, 986.0)]
    h = await start([bot_spec("bad", long_at=at(1), raise_at=at(3), atr=ATR),
                     bot_spec("good", long_at=at(3, 6), atr=5.0)], live)
    bad, good = h.bot("bad"), h.bot("good")
    ticks = await h.run(live[:-1])
    assert ticks == [
        {"bad": ["SETUP_FOUND", "ORDER_PLACED"], "good": ["NO_SETUP"]},
        {"bad": ["TRADE_ENTERED", "HOLD"], "good": ["NO_SETUP"]},
        {"bad": ["ERROR", "STATE_CHANGED"], "good": ["SETUP_FOUND", "ORDER_PLACED"]},
        {"good": ["TRADE_ENTERED", "HOLD"]},
        {"bad": ["TRADE_EXITED"], "good": ["TRADE_EXITED", "NO_SETUP"]},
        {"good": ["SETUP_FOUND", "ORDER_PLACED"]},
        {"good": ["TRADE_ENTERED", "HOLD"]},
    ]
    error = h.decisions("bad", DT.ERROR)[0]
    assert error.details == {"error": f"RuntimeError: scripted failure at {ts(3)}"}
    assert "Its position stays open under its exchange-side stop." in error.summary
    assert bad.state is BotState.ERROR
    assert await h.rows("SELECT state, state_reason FROM bots WHERE id = ?", bad.id) == \
        [("ERROR", f"RuntimeError: scripted failure at {ts(3)}")]
    assert await control_events(h) == [(bad.id, "error", "engine", "RUNNING", "ERROR", "applied")]
    bad_trade, good_trade = (await h.store.trades(bad.id))[0], (await h.store.trades(good.id))[0]
    assert (bad_trade.exit_price, bad_trade.pnl, bad_trade.exit_reason) == (STOP, (STOP - ENTRY_FILL) * QTY, "stop")
    # good: entered at bar 4's open 1000.0, stopped at 990.0: -10 * 10 = -100
    assert (good_trade.qty, good_trade.entry_price, good_trade.exit_price, good_trade.pnl) == \
        (D("10.000"), D("1000.0"), D("990.0"), D("-100.0000"))
    # good's second entry is sized on its equity after that loss: 1% of (10000 - 100 - fees) / 10
    equity = D(10000) - 100 - fee(D(10), D("1000.0")) - fee(D(10), D("990.0"))
    assert good.ledger.position.qty == (equity / 100 / 10).quantize(D("0.001"), "ROUND_DOWN") == D("9.889")
    await h.assert_books_consistent()

    # resume from ERROR rebuilds the strategy; the bot is evaluated again
    assert await h.engine.command("resume", "bad") == "bad resumed"
    assert bad.state is BotState.RUNNING
    assert await h.tick(live[-1]) == {"bad": ["NO_SETUP"], "good": ["HOLD"]}
    await h.assert_books_consistent()


async def test_a_failing_cycle_leaves_none_of_its_decisions_whether_or_not_anyone_listens(start):
    """Bot 'bad' emits an event on bar 1, then its indicators raise while the setup is logged: the event
    row it had already decided is dropped with the rest of its cycle, as when decisions are published one
    by one; 'good' decides on. The committed rows are the same with and without a listener."""
    live = [flat(0), SIGNAL_BAR, flat(2)]
    bots = [bot_spec("bad", long_at=at(1), emit_at=at(1), broken_indicators_at=at(1)), bot_spec("good", emit_at=at(1))]
    rows = []
    for listen in (True, False):
        h = await start(bots, live, state=f"state-{listen}", listen=listen)
        for candle in live:
            await h.tick(candle)
        rows.append(await h.rows("SELECT b.name, d.ts, d.phase, d.decision_type, d.summary, d.details"
                                 " FROM bot_decisions d JOIN bots b ON b.id = d.bot_id ORDER BY d.id"))
    assert rows[0] == rows[1]
    bar1 = [(name, kind) for name, t, _, kind, _, _ in rows[0] if t == ts(2) and kind != "REGIME_CHANGED"]
    assert bar1 == [("bad", "ERROR"), ("bad", "STATE_CHANGED"), ("good", "STRATEGY_SWITCHED"), ("good", "NO_SETUP")]


async def test_a_command_applied_while_a_tick_commits_is_stored_in_the_order_it_was_published(start):
    """A command that runs while a tick awaits its commits (an operator's pause, the CLI's queue) publishes
    its decision after the tick's; the database holds them in that order too."""
    live = [flat(0), flat(1), flat(2)]
    h = await start([bot_spec("a"), bot_spec("b")], live)
    await h.tick(live[0])
    tick = asyncio.create_task(h.engine.process_tick([live[1]]))
    while not h.types_since(0).get("b", [])[1:]:  # the tick has run every cycle and awaits its first commit
        await asyncio.sleep(0)
    assert not tick.done()
    await h.engine.command("pause", "a", reason="mid-tick")
    await tick
    assert (await h.tick(live[2])) == {"a": ["NO_SETUP"], "b": ["NO_SETUP"]}
    assert [d.decision_type for d in h.decisions("a")] == [DT.NO_SETUP, DT.NO_SETUP, DT.STATE_CHANGED, DT.NO_SETUP]
    await h.assert_books_consistent()  # every bot's committed decisions are the published ones, in order


# --- restart ----------------------------------------------------------------------------------------------------------------

# Two bots over ten bars, with entries, a strategy exit, a stop and a target:
#   a: long on bar 1 (fills bar 2 at 1000.5, stop 985.8, target 1029.6); exit signal bar 4 (fills bar 5 open);
#      long again bar 6 (close 1001.0: stop 986.4, target 1030.2, fills bar 7 at 1001.0), stopped on bar 8.
#   b: short on bar 2 (close 1000.0, ATR 5: stop 1010.0, target 980.0, qty 10), fills bar 3 at 1000.0, target on bar 9.
RESTART_LIVE = [
    flat(0), SIGNAL_BAR, FILL_BAR, flat(3, 1000.0), flat(4, 1001.0), bar(5, 1001.0, 1002.0, 1000.0, 1001.0),
    flat(6, 1001.0), bar(7, 1001.0, 1002.0, 995.0, 996.0), bar(8, 990.0, 992.0, 986.0, 988.0),
    bar(9, 988.0, 989.0, 979.0, 982.0), flat(10, 982.0), flat(11, 982.0),
]
RESTART_BOTS = [bot_spec("a", long_at=at(1, 6), exit_at=at(4), atr=ATR),
                bot_spec("b", short_at=at(2), atr=5.0)]
PAUSE_B_BEFORE = 5  # b is paused before bar 5 (its target still fills on the exchange): a restored state


async def drive(h: Harness, candles: list) -> list[dict[str, list[str]]]:
    out = []
    for candle in candles:
        if candle.ts == ts(PAUSE_B_BEFORE):
            await h.engine.command("pause", "b", "operator:test", "restart test")
        out.append(await h.tick(candle))
    return out


@pytest.mark.parametrize("stop_after", [1, 2, 4, 6, 8])
async def test_restart_restores_everything_and_continues_identically(start, stop_after):
    """stop_after = the last live bar the first engine sees: 1 = entry accepted, not filled; 2 = a long open and
    b's short accepted; 4 = a's exit order working; 6 = a's second entry working; 8 = a just stopped out."""
    # the engine that never stops
    ref = await start(RESTART_BOTS, RESTART_LIVE, state="ref")
    ref_ticks = await drive(ref, RESTART_LIVE)

    # the same, stopped after bar `stop_after` and started again on the same state directory
    first = await start(RESTART_BOTS, RESTART_LIVE, state="restart")
    first_ticks = await drive(first, RESTART_LIVE[:stop_after + 1])
    assert first_ticks == ref_ticks[:stop_after + 1]
    before = await snapshot(first)
    await first.assert_books_consistent()
    await first.close()
    second = await start(RESTART_BOTS, RESTART_LIVE, state="restart", history_bars=HISTORY + stop_after + 1)
    after = await snapshot(second)
    assert after == before
    assert after["b"]["state"] is (BotState.PAUSED if stop_after >= PAUSE_B_BEFORE else BotState.RUNNING)
    assert second.log == []  # nothing to settle: every intent was sent before the stop
    second_ticks = await drive(second, RESTART_LIVE[stop_after + 1:])
    assert second_ticks == ref_ticks[stop_after + 1:]

    assert await second.store.fills() == await ref.store.fills()
    assert await second.store.trades() == await ref.store.trades()
    assert await orders(second) == await orders(ref)
    assert await snapshot(second) == await snapshot(ref)
    await second.assert_books_consistent()
    await ref.assert_books_consistent()
    # the scenario did what the comment says
    assert [(t.bot_id, t.side, t.exit_reason) for t in await ref.store.trades()] == \
        [(1, Side.BUY, "exit"), (1, Side.BUY, "stop"), (2, Side.SELL, "target")]


@pytest.mark.parametrize("purpose", ["entry", "exit"])
async def test_restart_settles_an_intent_persisted_but_never_sent(start, purpose):
    """A crash between the commit of an intent (PendingSubmit) and its sending: on restart a stale entry
    is dropped, an exit is re-sent (with a fresh client order id) while the position is still open."""
    live = [SIGNAL_BAR, FILL_BAR, flat(3, 1001.0), bar(4, 1003.0, 1004.0, 1002.0, 1003.0)]
    first = await start([bot_spec("a", long_at=at(1), exit_at=at(3), atr=ATR)], live, state="s")
    crash_bar = SIGNAL_BAR if purpose == "entry" else flat(3, 1001.0)
    if purpose == "exit":
        await first.run(live[:2])
    tick = asyncio.create_task(first.engine.process_tick([crash_bar]))
    await asyncio.sleep(0)  # staged and queued for commit, not sent
    tick.cancel()  # the "crash": the commit still lands (the writer owns it), the send never happens
    with pytest.raises(asyncio.CancelledError):
        await tick
    await first.close()
    seq = 1 if purpose == "entry" else 2
    stale = await first_rows(first.state_dir, f"tt1-{seq}")
    assert stale == [(f"tt1-{seq}", "PendingSubmit")]

    done = 1 if purpose == "entry" else 3
    second = await start([bot_spec("a", long_at=at(1), exit_at=at(3), atr=ATR)], live, state="s",
                         history_bars=HISTORY + done)
    a = second.bot("a")
    cancelled = second.decisions("a", DT.ORDER_CANCELLED)
    if purpose == "entry":
        assert [d.summary for d in cancelled] == ["entry intent was not sent before the stop; dropped as stale"]
        assert await second.rows("SELECT client_order_id, status FROM orders") == [("tt1-1", "Cancelled")]
        assert await second.exchange.open_orders() == [] and a.orders == {}
        assert await second.tick(FILL_BAR) == {"a": ["NO_SETUP"]}
        assert not a.ledger.position.is_open
    else:
        assert [d.summary for d in cancelled] == ["exit intent was not sent before the stop; re-sent"]
        assert [d.decision_type for d in second.decisions("a")] == [DT.ORDER_CANCELLED, DT.ORDER_PLACED]
        assert await second.rows("SELECT client_order_id, purpose, status FROM orders ORDER BY seq") == \
            [("tt1-1", "entry", "Filled"), ("tt1-2", "exit", "Cancelled"), ("tt1-3", "exit", "New")]
        assert await second.tick(live[3]) == {"a": ["TRADE_EXITED", "NO_SETUP"]}
        trade = (await second.store.trades(a.id))[0]
        assert (trade.exit_price, trade.exit_reason) == (D("1003.0"), "exit")
    await second.assert_books_consistent()


async def first_rows(state_dir: Path, cid: str) -> list[tuple]:
    store = await Store.open(state_dir)
    try:
        async with store.conn.execute("SELECT client_order_id, status FROM orders WHERE client_order_id = ?", (cid,)) as cur:
            return list(await cur.fetchall())
    finally:
        await store.close()


# --- the books always agree (property) ------------------------------------------------------------------------------------


@st.composite
def scenarios(draw):
    """A random walk of candles and random scripted signals for two bots."""
    n = draw(st.integers(min_value=4, max_value=14))
    price, live = 1000.0, []
    for i in range(n):
        move = draw(st.integers(min_value=-25, max_value=25))
        open_ = price
        close = round(max(100.0, price + move), 1)
        wick_up = draw(st.integers(min_value=0, max_value=20))
        wick_down = draw(st.integers(min_value=0, max_value=20))
        live.append(bar(i, open_, max(open_, close) + wick_up, min(open_, close) - wick_down, close))
        price = close
    bars = st.lists(st.integers(min_value=0, max_value=n - 1), max_size=4, unique=True)
    bots = []
    for name in ("p", "q"):
        longs, shorts, exits = draw(bars), draw(bars), draw(bars)
        shorts = [i for i in shorts if i not in longs]
        atr = draw(st.sampled_from([2.0, 5.0, 7.3, 12.5]))
        bots.append(bot_spec(name, long_at=at(*longs), short_at=at(*shorts), exit_at=at(*exits), atr=atr))
    pause_at = draw(st.none() | st.integers(min_value=0, max_value=n - 1))
    return live, bots, draw(st.sampled_from(["0", "7"])), pause_at


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(scenarios())
def test_ledgers_always_match_the_exchange(scenario):
    """After every candle, for every bot: ledger wallet == paper wallet, sum of fill fees == ledger fees,
    sum of trade P&L == realized P&L, ledger position == exchange position, DB == memory."""
    live, bots, slippage, pause_at = scenario

    async def run() -> None:
        with tempfile.TemporaryDirectory() as tmp:
            h = await open_harness(Path(tmp), make_config(bots, slippage_bps=slippage), history() + live)
            try:
                for i, candle in enumerate(live):
                    if i == pause_at and h.bot("p").state is BotState.RUNNING:
                        await h.engine.command("pause", "p")
                    await h.tick(candle)
                    await h.assert_books_consistent()
            finally:
                await h.close()

    asyncio.run(run())
