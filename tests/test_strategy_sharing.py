"""Bots of one symbol and timeframe with equal shareable strategies run on one instance
(engine.sharing); each decides exactly as a bot alone with its own instance, including one
stopped and resumed while the others go on."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tests.engine_harness import (
    RISK_PROFILE, SYMBOL, Harness, at, bot_spec, flat, history, make_config, open_harness, ts,
)
from tui_trader.config import SyntheticSymbol, parse_config
from tui_trader.engine.sharing import SharedStrategy
from tui_trader.market.synthetic import SyntheticFeed
from tui_trader.model import DecisionType
from tui_trader.setup import load_strategies

SHAREABLE = sorted(name for name, cls in load_strategies().strategies.items() if cls.shareable)
HISTORY, LIVE = 7600, 600  # 1m bars: mtf_stochrsi warms on 501 15m candles
STOP_AT, RESUME_AT = 200, 400


def config(bots: list[str]) -> Any:
    """Every bot alone with its capital: no portfolio limit that would tie bots together."""
    return parse_config({
        "market": {"source": "replay"},
        "exchange": {"kind": "paper", "slippage_bps": "2"},
        "risk_profiles": {RISK_PROFILE: {"risk_per_trade_pct": 1, "stop_atr_mult": 2, "take_profit_r": 2,
                                         "max_leverage": 5, "max_position_pct": 300}},
        "portfolio": {"stop_pct": 100, "max_exposure_pct": 100_000, "max_symbol_net_pct": 100_000},
        "bots": [{"name": name, "symbol": SYMBOL, "timeframe": "1m", "capital": "10000", "risk_profile": RISK_PROFILE,
                  "strategy": name.rsplit("-", 1)[0], "confirmations": 0} for name in bots],
    }, "test")


def rows(h: Harness, name: str) -> list[tuple[Any, ...]]:
    """A bot's decisions, without what names the bot (its order ids)."""
    return [(d.ts, d.phase, d.decision_type, d.summary, {k: v for k, v in d.details.items() if k != "client_order_id"})
            for d in h.decisions(name)]


async def run(h: Harness, live: list, stopped: list[str]) -> None:
    for i, candle in enumerate(live):
        for name in stopped:
            if i == STOP_AT:
                await h.engine.command("stop", name)
            elif i == RESUME_AT:
                await h.engine.command("resume", name)
        await h.tick(candle)


async def test_bots_on_one_shared_strategy_decide_as_bots_alone(tmp_path: Path) -> None:
    start = 1_795_000_000_000 // 60_000 * 60_000
    feed = SyntheticFeed([SyntheticSymbol(symbol=SYMBOL, start_price=60000, volatility=0.0015)], 11, 1.0, start)
    candles = feed.candles(SYMBOL, start, HISTORY + LIVE)
    live = candles[HISTORY:]
    copies = [f"{name}-{i}" for name in SHAREABLE for i in range(3)]
    shared = await open_harness(tmp_path / "shared", config(copies), candles, history_bars=HISTORY)
    alone = await open_harness(tmp_path / "alone", config([f"{name}-0" for name in SHAREABLE]), candles, history_bars=HISTORY)
    stopped = await open_harness(tmp_path / "stopped", config([f"{name}-1" for name in SHAREABLE]), candles,
                                 history_bars=HISTORY)
    try:
        for name in SHAREABLE:
            one = {id(shared.bot(f"{name}-{i}").cycle.strategy) for i in range(3)}
            assert len(one) == 1 and isinstance(shared.bot(f"{name}-0").cycle.strategy, SharedStrategy), name
            assert not isinstance(alone.bot(f"{name}-0").cycle.strategy, SharedStrategy)
        await run(shared, live, [f"{name}-1" for name in SHAREABLE])
        await run(alone, live, [])
        await run(stopped, live, [f"{name}-1" for name in SHAREABLE])
        for name in SHAREABLE:
            assert rows(shared, f"{name}-0") == rows(alone, f"{name}-0") == rows(shared, f"{name}-2"), name
            assert rows(shared, f"{name}-1") == rows(stopped, f"{name}-1"), name
            assert not isinstance(shared.bot(f"{name}-1").cycle.strategy, SharedStrategy)  # left when stopped
            assert shared.decisions(f"{name}-0", DecisionType.TRADE_ENTERED), f"{name} never traded: a weak test"
        for h in (shared, alone, stopped):
            await h.assert_books_consistent()
    finally:
        for h in (shared, alone, stopped):
            await h.close()


async def test_a_shared_strategy_answers_each_bot_in_its_own_context(tmp_path: Path) -> None:
    """'in' (no confirmation required) enters on bar 1; 'out' (one required, which never passes) stays
    flat. On one instance, asked first by 'in' with its position's context, 'out' still gets the answer
    for a flat bot's context: both decide as each alone."""
    live = [flat(i) for i in range(6)]
    bots = [bot_spec("in", long_at=at(1)), bot_spec("out", long_at=at(1), confirmations=1)]
    for b in bots:
        b["strategy"] = "contextual"
    together = await open_harness(tmp_path / "together", make_config(bots), history() + live)
    alone = [await open_harness(tmp_path / b["name"], make_config([b]), history() + live) for b in bots]
    try:
        assert together.bot("in").cycle.strategy is together.bot("out").cycle.strategy
        for h in (together, *alone):
            await h.run(live)
        for name, h in (("in", alone[0]), ("out", alone[1])):
            assert rows(together, name) == rows(h, name), name
        assert rows(together, "out")[-1][3] == "nothing (flat, 0 bars in position)"
        assert together.decisions("in", DecisionType.TRADE_ENTERED)
    finally:
        for h in (together, *alone):
            await h.close()


async def test_when_a_shared_strategy_raises_every_bot_on_it_fails_as_alone(tmp_path: Path) -> None:
    live = [flat(i) for i in range(4)]
    bots = [{**bot_spec(name, long_at=at(1), raise_at=at(2)), "strategy": "contextual"} for name in ("a", "b")]
    together = await open_harness(tmp_path / "together", make_config(bots), history() + live)
    alone = await open_harness(tmp_path / "alone", make_config(bots[1:]), history() + live)
    try:
        for h in (together, alone):
            await h.run(live)
        assert rows(together, "a") == rows(together, "b") == rows(alone, "b")
        assert [d.decision_type for d in together.decisions("b")][-2:] == [DecisionType.ERROR, DecisionType.STATE_CHANGED]
        assert together.decisions("b", DecisionType.ERROR)[0].details == {"error": f"RuntimeError: contextual failure at {ts(2)}"}
    finally:
        for h in (together, alone):
            await h.close()
