"""Backtest equals live: the same bot fed the same candles through the live engine
(store, paper exchange, replay feed, orchestrator) and through the backtest loop
makes the same decisions and the same trades. And the backtest's fast path (bars
skipped when only the routine can happen) equals its every-bar path."""

from __future__ import annotations

from collections import Counter
from decimal import Decimal
from pathlib import Path

import pytest

from tests.engine_harness import SYMBOL, make_config, open_harness, registry
from tui_trader.backtest.results import ROUTINE, RunResult
from tui_trader.backtest.runner import Backtest
from tui_trader.backtest.session import FillSettings
from tui_trader.backtest.series import Bars
from tui_trader.engine.warmup import bot_profile, needed_base_bars
from tui_trader.market.replay import load_csv
from tui_trader.model import BotState, Candle, DecisionType
from tui_trader.risk import Valuation
from tui_trader.setup import instruments

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
HISTORY = 501  # what the engine replays for a 1m sma_cross bot: (500 + 1) bars
LIVE = 2500
BIG = {"stop_pct": 100, "max_exposure_pct": 100_000, "max_symbol_net_pct": 100_000}  # no portfolio rule in the way


@pytest.fixture(scope="module")
def btc_1m() -> list[Candle]:
    path = DATA / "bybit_BTCUSDT_1m.csv.gz"
    if not path.exists():
        pytest.skip(f"{path} is missing")
    return load_csv(path, SYMBOL, "1m")[:HISTORY + LIVE]


def spec(strategy: str = "sma_cross", confirmations: int = 0, timeframe: str = "1m", **params: object) -> dict[str, object]:
    return {"name": "bt", "symbol": SYMBOL, "timeframe": timeframe, "capital": "10000", "risk_profile": "exact",
            "strategy": strategy, "params": params, "confirmations": confirmations}


def backtest(config, candles: list[Candle], fast: bool, history: int = HISTORY) -> RunResult:  # noqa: ANN001
    bot = config.bots[0]
    instrument = instruments(config, [SYMBOL])[SYMBOL]
    profile = bot_profile(config, bot, 1, instrument)
    strategy = registry().make(bot.strategy, bot.params, bot.timeframe.value)
    fills = FillSettings("paper", config.exchange.taker_fee, config.exchange.maker_fee, config.exchange.slippage_bps)
    return Backtest(Bars.from_candles(candles, SYMBOL, "1m"), profile, strategy, fills, start=history, fast=fast).run()


RISKS = {
    "plain": {},
    # stop management, a time stop, loss limits with automatic pauses and cooldowns: every path of the risk pass
    "managed": {"breakeven_r": 0.5, "trail_activation_r": 0.8, "trail_atr_mult": 1.0, "time_stop_bars": 40,
                "daily_loss_pct": 4, "max_drawdown_pct": 5, "drawdown_resume": "next_day",
                "cooldown_losses": 2, "cooldown_candles": 15},
}


@pytest.mark.parametrize("risk", list(RISKS))
async def test_backtest_makes_the_live_engines_decisions_and_trades(tmp_path: Path, btc_1m: list[Candle], risk: str) -> None:
    config = make_config([spec()], slippage_bps="2", risk=RISKS[risk], portfolio=BIG)
    h = await open_harness(tmp_path / "state", config, btc_1m, history_bars=HISTORY)
    try:
        assert needed_base_bars(h.engine.bots.values(), "1m")[SYMBOL] == HISTORY
        await h.run(btc_1m[HISTORY:])
        live = h.decisions("bt")
        live_trades = await h.store.trades(h.bot("bt").id)
    finally:
        await h.close()

    full = backtest(config, btc_1m, fast=False)
    assert full.decisions == live  # every decision, in order, with its text and details
    assert full.trades == live_trades
    assert len(live_trades) > (20 if risk == "plain" else 10)
    kinds = Counter(d.decision_type for d in live)
    assert kinds[DecisionType.TRADE_ENTERED] and kinds[DecisionType.REGIME_CHANGED]
    if risk == "managed":  # the scenario reaches what it is meant to exercise
        assert kinds[DecisionType.STOP_MOVED] and kinds[DecisionType.STATE_CHANGED] and kinds[DecisionType.COOLDOWN]
        assert any(d.summary.startswith(f"{BotState.RUNNING.value} -> {BotState.PAUSED.value}") for d in live)

    fast = backtest(config, btc_1m, fast=True)
    assert fast.trades == full.trades
    assert [d for d in fast.decisions if d.decision_type not in ROUTINE] == [
        d for d in full.decisions if d.decision_type not in ROUTINE]
    assert fast.decision_counts() == full.decision_counts()
    assert fast.final_equity == full.final_equity
    if risk == "plain":
        assert fast.bars_processed < LIVE / 2  # it did skip


class _Valued(Backtest):
    """Keeps each valuation the cycle gets with the exact mark and equity the orchestrator would give it."""

    def _valuation(self, exact: bool) -> Valuation:
        value = super()._valuation(exact)
        mark = self.instrument.round_price(self._close)
        self.valued.append((value, mark, self.ledger.equity(mark) if self.ledger.position.qty else self.ledger.wallet))
        return value


@pytest.mark.parametrize("risk", list(RISKS))
def test_the_cycles_valuation_is_the_engines_when_read_however_late(btc_1m: list[Candle], risk: str) -> None:
    """A backtest values its bot from the books' floats and computes the exact values only when read: they
    are the mark and equity of their tick digit for digit even when read after the run, and the floats are
    within a few ulps of them."""
    config = make_config([spec()], slippage_bps="2", risk=RISKS[risk], portfolio=BIG)
    bot = config.bots[0]
    instrument = instruments(config, [SYMBOL])[SYMBOL]
    fills = FillSettings("paper", config.exchange.taker_fee, config.exchange.maker_fee, config.exchange.slippage_bps)
    run = _Valued(Bars.from_candles(btc_1m, SYMBOL, "1m"), bot_profile(config, bot, 1, instrument),
                  registry().make(bot.strategy, bot.params, bot.timeframe.value), fills, start=HISTORY)
    run.valued = []
    result = run.run()
    assert len(result.trades) > 10 and len(run.valued) > 100
    if risk == "plain":  # (loss limits' risk pass values the bot exactly on most ticks)
        assert sum(value._exact is None for value, _, _ in run.valued) > 100  # the cycle read no exact value of these
    for value, mark, equity in run.valued:
        assert value.exact() == (mark, equity, equity)
        assert (str(value.mark), str(value.equity)) == (str(mark), str(equity))
        mark_f, equity_f, available_f = value.floats()
        assert mark_f == pytest.approx(float(mark), rel=1e-15)
        assert equity_f == pytest.approx(float(equity), rel=1e-14) and available_f == equity_f


def test_equity_curve_follows_the_books(btc_1m: list[Candle]) -> None:
    config = make_config([spec()], slippage_bps="0", portfolio=BIG)
    result = backtest(config, btc_1m, fast=True)
    curve = result.equity_curve()
    assert len(curve) == LIVE
    assert curve[0] == pytest.approx(10_000)
    assert curve[-1] == pytest.approx(float(result.final_equity), abs=0.05)  # the close vs the tick-rounded mark
    wallet = Decimal(10_000) + sum((t.pnl - t.fees for t in result.trades), Decimal(0))
    open_fees = sum((f.fee for f in result.fills), Decimal(0)) - sum((t.fees for t in result.trades), Decimal(0))
    assert result.wallet == wallet - open_fees  # realized P&L minus every fee paid, exactly


async def test_a_multi_timeframe_strategy_backtests_as_it_runs_live(tmp_path: Path) -> None:
    """mtf_stochrsi on 1m reads closed 15m candles: the backtest builds them as the live aggregator does
    (every bar through the cycle: the batch interface covers one timeframe)."""
    path = DATA / "bybit_BTCUSDT_1m.csv.gz"
    if not path.exists():
        pytest.skip(f"{path} is missing")
    config = make_config([spec("mtf_stochrsi", confirmations=1)], slippage_bps="2", portfolio=BIG)
    probe = registry().make("mtf_stochrsi", {}, "1m")
    history = (max(probe.warmup, 500) + 1) * 15
    candles = load_csv(path, SYMBOL, "1m")[:history + LIVE]
    h = await open_harness(tmp_path / "state", config, candles, history_bars=history)
    try:
        assert needed_base_bars(h.engine.bots.values(), "1m")[SYMBOL] == history
        await h.run(candles[history:])
        live = h.decisions("bt")
        live_trades = await h.store.trades(h.bot("bt").id)
    finally:
        await h.close()
    result = backtest(config, candles, fast=True, history=history)
    assert result.bars_processed == LIVE  # no fast path for two timeframes
    assert result.decisions == live
    assert result.trades == live_trades and len(live_trades) >= 3


async def test_a_5m_bot_on_1m_candles_fast_and_live(tmp_path: Path) -> None:
    """The exchange matches every 1m bar, the bot sees 5m candles; the fast path skips 1m bars too."""
    path = DATA / "bybit_BTCUSDT_1m.csv.gz"
    if not path.exists():
        pytest.skip(f"{path} is missing")
    config = make_config([spec(timeframe="5m", fast=5, slow=12)], slippage_bps="2", risk=RISKS["managed"], portfolio=BIG)
    history = 501 * 5
    candles = load_csv(path, SYMBOL, "1m")[:history + 4 * LIVE]
    h = await open_harness(tmp_path / "state", config, candles, history_bars=history)
    try:
        await h.run(candles[history:])
        live = h.decisions("bt")
        live_trades = await h.store.trades(h.bot("bt").id)
    finally:
        await h.close()
    full = backtest(config, candles, fast=False, history=history)
    fast = backtest(config, candles, fast=True, history=history)
    assert full.decisions == live and full.trades == live_trades and len(live_trades) > 10
    assert fast.trades == full.trades and fast.decision_counts() == full.decision_counts()
    assert [d for d in fast.decisions if d.decision_type not in ROUTINE] == [
        d for d in full.decisions if d.decision_type not in ROUTINE]
    assert fast.bars_processed < full.bars_processed
