"""Every bundled strategy through the real engine (store, paper exchange, replay feed)
on real Bybit candles: it trades, and its decisions name its confirmations.
The adaptive strategy follows the synthetic market's regimes and logs each switch."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest
import talib

from tests.engine_harness import RISK_PROFILE, SYMBOL, open_harness
from tui_trader.config import SyntheticSymbol, parse_config
from tui_trader.engine.warmup import needed_base_bars
from tui_trader.indicators import candle_arrays
from tui_trader.market.aggregate import aggregate
from tui_trader.market.replay import load_csv
from tui_trader.market.synthetic import SyntheticFeed
from tui_trader.model import DecisionType
from tui_trader.setup import load_strategies

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
BUNDLED = [n for n in load_strategies().names()]
RISK = {"risk_per_trade_pct": 1, "stop_atr_mult": 2, "take_profit_r": 2, "max_leverage": 5, "max_position_pct": 300}
LIVE_BARS = 2500


def config_for(bots: list[dict]) -> object:
    return parse_config({
        "market": {"source": "replay"},
        "exchange": {"kind": "paper", "slippage_bps": "2"},
        "risk_profiles": {RISK_PROFILE: RISK},
        "bots": bots,
    }, "test")


def bot(name: str, strategy: str, timeframe: str = "1h", confirmations: int = 1) -> dict:
    return {"name": name, "symbol": SYMBOL, "timeframe": timeframe, "capital": "10000", "risk_profile": RISK_PROFILE,
            "strategy": strategy, "confirmations": confirmations}


@pytest.fixture(scope="module")
def btc_1h() -> list:
    path = DATA / "bybit_BTCUSDT_1h.csv.gz"
    if not path.exists():
        pytest.skip(f"{path} is missing")
    return load_csv(path, SYMBOL, "1h")


async def test_every_strategy_trades_on_real_data_and_names_its_confirmations(tmp_path: Path, btc_1h: list) -> None:
    registry = load_strategies()
    bots = [bot(f"b-{name}", name, confirmations=min(1, len(registry.strategies[name].confirmations))) for name in BUNDLED]
    config = config_for(bots)
    history = 4 * 501  # the longest need: a 4h higher timeframe over 1h candles
    candles = btc_1h[-(history + LIVE_BARS):]
    h = await open_harness(tmp_path / "state", config, candles, history_bars=history)
    try:
        engine = h.engine
        assert max(needed_base_bars(engine.bots.values(), "1h").values()) <= history
        await h.run(candles[history:])
        await h.assert_books_consistent()
        for name in BUNDLED:
            runtime = h.bot(f"b-{name}")
            assert runtime.state.value == "RUNNING", (name, runtime.state_reason)
            found = h.decisions(f"b-{name}", DecisionType.SETUP_FOUND)
            entered = h.decisions(f"b-{name}", DecisionType.TRADE_ENTERED)
            exited = h.decisions(f"b-{name}", DecisionType.TRADE_EXITED)
            assert entered and exited, f"{name}: {len(found)} setups, {len(entered)} entries, {len(exited)} exits"
            cls = load_strategies().get(name)
            assert cls is not None
            named = {c for d in found for c in d.details["confirmations"]}
            if cls.confirmations:
                assert named == set(cls.confirmations), (name, named)
            for d in found:
                for check in d.details["confirmations"].values():
                    assert isinstance(check["passed"], bool) and check["detail"]
            rejected = h.decisions(f"b-{name}", DecisionType.SETUP_REJECTED)
            for d in rejected:
                assert "failed:" in d.summary
        # warm-up: the live values equal TA-Lib over the whole file (2020 on), not just the warm-up window
        strategy = h.bot("b-ema_trend").cycle.strategy
        arrays = candle_arrays(btc_1h, ["high", "low", "close"])
        full = {"fast": talib.EMA(arrays[2], timeperiod=12)[-1], "slow": talib.EMA(arrays[2], timeperiod=26)[-1],
                "atr": talib.ATR(*arrays, timeperiod=14)[-1], "adx": talib.ADX(*arrays, timeperiod=14)[-1]}
        for key, expected in full.items():
            assert getattr(strategy, key).value == pytest.approx(expected, rel=1e-9, abs=1e-9), key
    finally:
        await h.close()


async def test_adaptive_follows_the_synthetic_regimes_and_logs_each_switch(tmp_path: Path) -> None:
    start = 1_795_000_000_000 // 300_000 * 300_000  # a 5m boundary
    feed = SyntheticFeed([SyntheticSymbol(symbol=SYMBOL, start_price=60000, volatility=0.0012)], 7, 1.0, start)
    history, live = 600, 6 * 24 * 12  # 5m bars: warm-up, then six days
    base = feed.candles(SYMBOL, start - history * 300_000, (history + live) * 5)
    candles = aggregate(base, "5m")
    h = await open_harness(tmp_path / "state", config_for([bot("adaptive", "adaptive", "5m", 0)]), candles, history_bars=history)
    try:
        await h.run(candles[history:])
        switches = h.decisions("adaptive", DecisionType.STRATEGY_SWITCHED)
        assert len(switches) >= 6
        assert {s.details["sub_strategy"] for s in switches} >= {"ema_trend", "range_reversion", "donchian_breakout"}
        # the active sub-strategy follows the generator's regime far more often than chance
        wanted = {"trend_up": "ema_trend", "trend_down": "ema_trend", "range": "range_reversion", "volatile": "donchian_breakout"}
        active, agree, total = None, Counter(), 0
        events = sorted(switches, key=lambda d: d.ts)
        i = 0
        for candle in candles[history:]:
            while i < len(events) and events[i].ts <= candle.close_ts:
                active = events[i].details["sub_strategy"]
                i += 1
            total += 1
            agree[active == wanted[feed.regime_at(SYMBOL, candle.ts)]] += 1
        assert agree[True] / total > 0.5, agree
        assert h.decisions("adaptive", DecisionType.TRADE_ENTERED)
    finally:
        await h.close()
