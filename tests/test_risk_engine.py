"""The risk engine through the real engine (SQLite store, paper exchange, scripted
strategy): cooldown after a loss streak, the daily loss limit pausing a bot and the
next trading day resuming it, the portfolio stop flattening everything and blocking
a signal of the same cycle, stop management, and the same-tick open-position cap.

Bots trade BTCUSDT 1m with 10 000 USDT under the "exact" profile (see
engine_harness) plus each test's risk settings; the scripted ATR of 50 puts the
stop 100 below a 1000 entry, so 1% risk is 1 BTC.
"""

from __future__ import annotations

import json

import pytest

from tests.engine_harness import SYMBOL, D, Harness, at, bar, bot_spec, flat, history, make_config, open_harness, ts
from tui_trader.model import BotState, DecisionType, Side

DT = DecisionType
MIDNIGHT_BAR = 106  # ts(106) is 2023-11-15 00:00 UTC: bar 105 is the last of its day


@pytest.fixture
async def harnesses():
    opened: list[Harness] = []
    yield opened
    for h in opened:
        await h.close()


async def start(harnesses: list[Harness], tmp_path, bots, live, **config) -> Harness:  # noqa: ANN001
    h = await open_harness(tmp_path / "state", make_config(bots, **config), history() + live)
    harnesses.append(h)
    return h


def gates(h: Harness, name: str) -> list[str]:
    return [d.details["gate"] for d in h.decisions(name, DT.RISK_BLOCKED)]


async def control_events(h: Harness) -> list[tuple[str, str, str]]:
    return [tuple(r) for r in await h.rows("SELECT command, source, to_state FROM control_events ORDER BY id")]


async def test_a_loss_streak_starts_a_cooldown(harnesses: list[Harness], tmp_path) -> None:
    # Flat bars: every round trip loses its two fees. Two losses start a 5-candle cooldown.
    spec = bot_spec("streak", long_at=at(1, 5, 9, 14), exit_at=at(3, 7), atr=50.0)
    live = [flat(i) for i in range(17)]
    h = await start(harnesses, tmp_path, [spec], live, risk={"cooldown_losses": 2, "cooldown_candles": 5})
    await h.run(live)
    (cooldown,) = h.decisions("streak", DT.COOLDOWN)
    assert cooldown.ts == ts(8) and cooldown.summary.startswith("2 consecutive losses: no entries for 5 candles")
    assert cooldown.details["until"] == ts(8) + 5 * 60_000
    blocked = h.decisions("streak", DT.RISK_BLOCKED)
    assert [d.details["gate"] for d in blocked] == ["cooldown"] and blocked[0].ts == ts(10)  # bar 9's close
    assert "no entries for 3 more candles" in blocked[0].summary
    entries = [d.ts for d in h.decisions("streak", DT.ORDER_PLACED) if "entry" in d.summary]
    assert entries == [ts(2), ts(6), ts(15)]  # the signal after the cooldown trades
    (row,) = await h.rows("SELECT loss_streak, cooldown_until FROM ledgers")
    assert row == (0, ts(13))


@pytest.mark.parametrize("resume", ["next_day", "operator"])
async def test_daily_loss_pauses_and_the_next_day_resumes(harnesses: list[Harness], tmp_path, resume: str) -> None:
    # 1 BTC long from 1000; bar 2 falls to 940: today's loss 60 + fees >= 0.5% of 10 000 = 50.
    live = [flat(0), flat(1), bar(2, 1000.0, 1001.0, 939.0, 940.0)] + [flat(i, 940.0) for i in range(3, 112)]
    spec = bot_spec("daily", long_at=at(1, 6, 108), exit_at=at(4), atr=50.0)
    h = await start(harnesses, tmp_path, [spec], live, risk={"daily_loss_pct": 0.5, "daily_loss_resume": resume})
    for candle in live[:3]:
        await h.tick(candle)
    bot = h.bot("daily")
    assert bot.state is BotState.PAUSED and bot.state_reason.startswith("daily_loss: today's loss 60.55 USDT reached the limit 50.00")
    for candle in live[3:50]:
        await h.tick(candle)
    assert not bot.ledger.position.is_open  # the exit still went out while paused (reduce-only)
    (blocked,) = h.decisions("daily", DT.RISK_BLOCKED)
    assert blocked.ts == ts(7) and blocked.details["gate"] == "daily_loss" and "61.07 USDT reached the limit 50.00 (0.5%" in blocked.summary
    for candle in live[50:MIDNIGHT_BAR]:
        await h.tick(candle)
    for candle in live[MIDNIGHT_BAR:]:
        await h.tick(candle)
    placed = [d.ts for d in h.decisions("daily", DT.ORDER_PLACED) if "entry" in d.summary]
    events = await control_events(h)
    if resume == "next_day":
        assert bot.state is BotState.RUNNING
        assert events == [("pause", "risk:daily_loss", "PAUSED"), ("resume", "risk:new_day", "RUNNING")]
        assert placed == [ts(2), ts(109)]
    else:
        assert bot.state is BotState.PAUSED and events == [("pause", "risk:daily_loss", "PAUSED")]
        assert placed == [ts(2)] and gates(h, "daily")[-1] == "bot_state"  # new day: no loss yet, but still paused
    (day_start, day_equity), = await h.rows("SELECT day_start, day_start_equity FROM ledgers")
    assert day_start == ts(MIDNIGHT_BAR) and D(day_equity) == bot.ledger.day_start_equity


async def test_drawdown_pause_and_the_operator_resume_that_accepts_it(harnesses: list[Harness], tmp_path) -> None:
    # 1 BTC long from 1000 falls to 940: a drawdown of 60.55 USDT (with the entry fee) >= 0.5% of the 10 000 high-water mark.
    live = [flat(0), flat(1), bar(2, 1000.0, 1001.0, 939.0, 940.0)] + [flat(i, 940.0) for i in range(3, 8)]
    h = await start(harnesses, tmp_path, [bot_spec("dd", long_at=at(1), atr=50.0)], live, risk={"max_drawdown_pct": 0.5})
    await h.run(live[:4])
    bot = h.bot("dd")
    assert bot.state is BotState.PAUSED and bot.state_reason.startswith("drawdown: drawdown 60.55 USDT reached the limit 50.00")
    await h.engine.command("resume", "dd", "operator:cli")
    (stored,), = await h.rows("SELECT high_water FROM ledgers")
    assert D(stored) == bot.ledger.high_water == bot.equity < 9940  # the limit now counts from here, durably
    await h.run(live[4:])
    assert bot.state is BotState.RUNNING  # not paused again by the loss the operator accepted
    assert [e[1] for e in await control_events(h)] == ["risk:drawdown", "operator:cli"]


async def test_portfolio_stop_flattens_all_halts_and_blocks_the_same_cycle(harnesses: list[Harness], tmp_path) -> None:
    # a and b go 10 BTC long at 1000 (10% risk, stop 100 away); bar 2 falls to 920: together they lose
    # 1600 + fees, over 5% of the 30 000 the three bots hold. c signals on that same bar, and again later.
    live = [flat(0), flat(1), bar(2, 1000.0, 1001.0, 919.0, 920.0)] + [flat(i, 920.0) for i in range(3, 8)]
    bots = [bot_spec("a", long_at=at(1), atr=50.0), bot_spec("b", long_at=at(1), atr=50.0),
            bot_spec("c", long_at=at(2, 5), atr=50.0)]
    h = await start(harnesses, tmp_path, bots, live, risk={"risk_per_trade_pct": 10}, portfolio={"stop_pct": 5})
    await h.run(live[:3])
    engine = h.engine
    assert engine.global_state is BotState.FLATTENING and engine.global_reason.startswith("portfolio_stop: total equity")
    (blocked,) = h.decisions("c", DT.RISK_BLOCKED)
    assert blocked.ts == ts(3) and blocked.details["gate"] == "portfolio_stop" and "5% = 1500.00" in blocked.summary
    await h.run(live[3:])
    assert engine.global_state is BotState.HALTED
    assert all(not engine.bot(n).ledger.position.is_open and not engine.bot(n).orders for n in "abc")
    assert gates(h, "c") == ["portfolio_stop", "portfolio_stop"]
    assert not [d for d in h.decisions("c", DT.ORDER_PLACED)]
    exits = [t.exit_reason for t in await h.store.trades()]
    assert exits == ["flatten", "flatten"]
    assert (await control_events(h))[0] == ("flatten_all", "risk:portfolio_stop", "FLATTENING")
    assert (await h.store.meta())["global_state"] == "HALTED"
    snapshot = engine.risk_snapshot()
    assert snapshot.state is BotState.HALTED and snapshot.drawdown.used is not None and snapshot.drawdown.used >= 1
    assert snapshot.stop_distance == 0 and snapshot.open_positions == 0
    # The operator resumes: the stop's high-water mark restarts at today's equity, so it does not trip again.
    await engine.command("resume_all", None, "operator:cli", "reviewed")
    assert D((await h.store.meta())["portfolio_high_pnl"]) == engine.portfolio_high_pnl < -1600
    await h.tick(flat(8, 920.0))
    after = engine.risk_snapshot()
    assert engine.global_state is BotState.RUNNING and after.high_water == after.equity < 28400
    assert after.stop_distance == after.high_water * D("0.05")


async def test_breakeven_then_trailing_tighten_the_stop_on_the_exchange(harnesses: list[Harness], tmp_path) -> None:
    # Long 1 BTC from 1000 with its stop at 900 (R = 100). Bar 3 closes 0.6R up: break-even. Bar 4 closes
    # 1.5R up: the stop trails 1 ATR under the high. Bar 5 is lower: no move (never looser). Bar 6 hits it.
    live = [flat(0), flat(1), flat(2), bar(3, 1000.0, 1061.0, 999.0, 1060.0), bar(4, 1060.0, 1160.0, 1059.0, 1150.0),
            bar(5, 1150.0, 1151.0, 1120.0, 1130.0), bar(6, 1130.0, 1131.0, 1000.0, 1010.0), flat(7, 1010.0)]
    spec = bot_spec("trail", long_at=at(1), atr=50.0)
    h = await start(harnesses, tmp_path, [spec], live,
                    risk={"breakeven_r": 0.5, "trail_activation_r": 1.0, "trail_atr_mult": 1.0})
    await h.run(live[:4])
    (moved,) = h.decisions("trail", DT.STOP_MOVED)
    assert moved.details == {"rule": "breakeven", "old": "900.0", "new": "1001.1"}  # 1000 * (1 + 2 * 0.00055), up to the tick
    await h.run(live[4:5])
    atr = h.engine.regimes[(SYMBOL, "1m")].atr
    trailed = h.decisions("trail", DT.STOP_MOVED)[-1]
    expected = h.engine.factory.instrument(SYMBOL).round_price(1160.0 - atr, Side.SELL)
    assert trailed.details["rule"] == "trailing" and D(trailed.details["new"]) == expected
    ((stored,),) = await h.rows("SELECT stop_price FROM positions")
    assert D(stored) == expected == h.exchange.position(h.bot("trail").id, SYMBOL).stop_price
    await h.run(live[5:6])
    assert len(h.decisions("trail", DT.STOP_MOVED)) == 2  # bar 5's lower high would loosen it: no move
    await h.run(live[6:])
    (trade,) = await h.store.trades()
    assert trade.exit_reason == "stop" and trade.exit_price == expected and trade.pnl > 0


async def test_open_position_cap_counts_entries_of_the_same_tick(harnesses: list[Harness], tmp_path) -> None:
    bots = [bot_spec(n, long_at=at(1), atr=50.0) for n in ("p1", "p2", "p3")]
    live = [flat(i) for i in range(4)]
    h = await start(harnesses, tmp_path, bots, live, risk={"max_open_positions": 2})
    await h.run(live)
    assert [len(h.decisions(n, DT.ORDER_PLACED)) for n in ("p1", "p2", "p3")] == [1, 1, 0]
    (blocked,) = h.decisions("p3", DT.RISK_BLOCKED)
    assert blocked.details["gate"] == "max_open_positions" and "2 positions open across the portfolio (limit 2)" in blocked.summary
    details = json.loads((await h.rows("SELECT details FROM bot_decisions WHERE decision_type = 'RISK_BLOCKED'"))[0][0])
    assert details["gate"] == "max_open_positions"
