"""Unit tests of the bundled strategies donchian_breakout, reversal, mtf_stochrsi and
sma_cross: hand-made candles force each rule and each confirmation both ways; real
BTC 1h data checks the rules against TA-Lib batch values, no look-ahead, warm-up
equivalence and that every strategy trades."""

from __future__ import annotations

import math
import random
import sys
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import talib

from tui_trader.market.aggregate import aggregate
from tui_trader.market.replay import load_csv
from tui_trader.model import Candle, Side
from tui_trader.setup import load_strategies
from tui_trader.regime import RegimeTracker
from tui_trader.strategy import MarketContext, NoSetup, ParamsError, Setup, Strategy

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
H = 3_600_000
T0 = 1_700_000_000_000 // (4 * H) * (4 * H)  # aligned to 4h
FLAT = MarketContext()
LONG = MarketContext(position_side=Side.BUY)
SHORT = MarketContext(position_side=Side.SELL)
NAMES = ("donchian_breakout", "reversal", "mtf_stochrsi", "sma_cross")
EVERY = (*NAMES, "ema_trend", "range_reversion", "adaptive")  # the no-look-ahead and warm-up properties hold for all
REGISTRY = load_strategies()


def make(name: str, params: dict[str, Any] | None = None, timeframe: str = "1h") -> Strategy:
    return REGISTRY.make(name, params or {}, timeframe)


def bars(rows: Sequence[tuple[float, float, float, float, float]], tf: str = "1h", i0: int = 0) -> list[Candle]:
    """Candles from (open, high, low, close, volume) rows, consecutive from bar i0."""
    step = 4 * H if tf == "4h" else H
    return [Candle("BTCUSDT", tf, T0 + (i0 + i) * step, *row) for i, row in enumerate(rows)]


def from_closes(closes: Sequence[float], tf: str = "1h", i0: int = 0, start: float = 100.0, volume: float = 10.0) -> list[Candle]:
    """Candles opening at the previous close, with 0.1 wicks beyond open and close."""
    rows, o = [], start
    for c in closes:
        rows.append((o, max(o, c) + 0.1, min(o, c) - 0.1, c, volume))
        o = c
    return bars(rows, tf, i0)


def feed(strategy: Strategy, *series: Sequence[Candle]) -> Strategy:
    for candles in series:
        for candle in candles:
            strategy.update(candle)
    assert strategy.ready()
    return strategy


def then(strategy: Strategy, candle: Candle) -> Setup | NoSetup:
    """One more closed candle of the bot's timeframe, then the scan."""
    strategy.update(candle)
    return strategy.scan(FLAT)


def after(candles: Sequence[Candle], *rows: tuple[float, float, float, float, float]) -> list[Candle]:
    """Candles following `candles`, from rows."""
    return bars(rows, candles[-1].timeframe, (candles[-1].ts - T0) // H + 1)


def checks(setup: Setup | NoSetup) -> dict[str, bool]:
    assert isinstance(setup, Setup), setup
    return {c.name: c.passed for c in setup.confirmations}


def norm(result: Setup | NoSetup) -> tuple[Any, ...]:
    if isinstance(result, NoSetup):
        return ("none", result.reason)
    return (result.side.value, result.text, tuple((c.name, c.passed, c.detail) for c in result.confirmations))


def drive(strategy: Strategy, own: Sequence[Candle], higher: Sequence[Candle] = (),
          tracker: RegimeTracker | None = None) -> list[tuple[Any, ...]]:
    """Feed candles in the engine's order (by close time; a higher candle before the own candle
    closing with it) and scan after each own candle, with the regime the engine's tracker gives."""
    events = sorted([(c.close_ts, 1, i, c) for i, c in enumerate(own)] + [(c.close_ts, 0, i, c) for i, c in enumerate(higher)],
                    key=lambda e: e[:3])
    tracker = tracker or RegimeTracker()
    out: list[tuple[Any, ...]] = []
    for _, is_own, _, candle in events:
        strategy.update(candle)
        if is_own:
            ctx = MarketContext(tracker.update(candle))
            out.append(norm(strategy.scan(ctx)) if strategy.ready() else ("warming",))
    return out


def higher_of(strategy: Strategy, own: Sequence[Candle]) -> list[Candle]:
    tfs = strategy.timeframes()
    return aggregate(own, tfs[1]) if len(tfs) > 1 else []


@pytest.fixture(scope="module")
def btc() -> list[Candle]:
    path = DATA / "bybit_BTCUSDT_1h.csv.gz"
    if not path.exists():
        pytest.skip(f"{path} not available")
    candles = load_csv(path, "BTCUSDT", "1h")[-6000:]
    start = next(i for i, c in enumerate(candles) if c.ts % (4 * H) == 0)
    return candles[start:start + 5000]


# -- registry and parameters ------------------------------------------------------------------------------------


def test_the_strategies_load_without_errors() -> None:
    assert set(NAMES) <= set(REGISTRY.names())
    assert REGISTRY.errors == []
    assert make("sma_cross").always_in_market
    assert not any(make(n).always_in_market for n in NAMES[:3])


@pytest.mark.parametrize(("name", "params", "timeframe", "message"), [
    ("sma_cross", {"fast": 20, "slow": 20}, "1h", "params: fast (20) must be below slow (20)"),
    ("sma_cross", {"fast": 1}, "1h", "params.fast: Input should be greater than or equal to 2"),
    ("donchian_breakout", {"period": 10, "exit_period": 10}, "1h", "params: exit_period (10) must be below period (10)"),
    ("donchian_breakout", {"volume_mult": 0}, "1h", "params.volume_mult: Input should be greater than 0"),
    ("reversal", {"extreme_low": 55}, "1h", "params.extreme_low: Input should be less than 50"),
    ("reversal", {"lookback": 3, "swing": 3}, "1h", "params: lookback (3) must exceed swing (3)"),
    ("reversal", {"bogus": 1}, "1h", "params.bogus: Extra inputs are not permitted"),
    ("mtf_stochrsi", {"higher_timeframe": "1h"}, "1h", "params.higher_timeframe: 1h is not a timeframe above 1h"),
    ("mtf_stochrsi", {"higher_timeframe": "15m"}, "1h", "params.higher_timeframe: 15m is not a timeframe above 1h"),
    ("mtf_stochrsi", {}, "1d", "params.higher_timeframe: auto is not a timeframe above 1d"),
    ("mtf_stochrsi", {"higher_timeframe": "2h"}, "1h", "params.higher_timeframe: Input should be 'auto', '5m'"),
])
def test_bad_parameters_are_rejected_with_the_field(name: str, params: dict[str, Any], timeframe: str, message: str) -> None:
    with pytest.raises(ParamsError) as info:
        make(name, params, timeframe)
    assert info.value.lines[0].startswith(message), info.value.lines


@pytest.mark.parametrize(("own", "higher"), [("1m", "15m"), ("5m", "1h"), ("15m", "4h"), ("1h", "4h"), ("4h", "1d")])
def test_mtf_higher_timeframe_defaults_to_the_next_sensible_step(own: str, higher: str) -> None:
    assert make("mtf_stochrsi", {}, own).timeframes() == (own, higher)
    assert make("mtf_stochrsi", {"higher_timeframe": "1d"}, own).timeframes() == (own, "1d")


# -- sma_cross --------------------------------------------------------------------------------------------------

SMA = {"fast": 2, "slow": 3, "atr_period": 2}


def test_sma_cross_fires_exactly_on_the_cross() -> None:
    s = feed(make("sma_cross", SMA), from_closes([10.0] * 8, start=10.0))
    assert s.scan(FLAT) == NoSetup("no cross: fast SMA 10 equal to slow 10")
    # fast 10.5 > slow 10.33, but they were equal before: not a cross (backtesting.py's strict crossover)
    assert then(s, from_closes([11.0], i0=8, start=10.0)[0]) == NoSetup("no cross: fast SMA 10.5 above slow 10.3333")
    assert then(s, from_closes([11.0], i0=9, start=11.0)[0]) == NoSetup("no cross: fast SMA 11 above slow 10.6667")
    down = then(s, from_closes([9.0], i0=10, start=11.0)[0])  # fast 10 < slow 10.33, previously 11 > 10.67
    assert isinstance(down, Setup) and down.side is Side.SELL
    assert then(s, from_closes([9.0], i0=11, start=9.0)[0]) == NoSetup("no cross: fast SMA 9 below slow 9.66667")
    up = then(s, from_closes([12.0], i0=12, start=9.0)[0])  # fast 10.5 > slow 10, previously 9 < 9.67
    assert isinstance(up, Setup) and up.side is Side.BUY and up.confirmations == () and up.atr and up.atr > 0
    assert up.text == "fast SMA 10.5 crossed above slow 10"
    assert s.exit(LONG) is None and s.exit(SHORT) is None  # always in market: the opposite cross reverses


def test_sma_cross_matches_the_textbook_rule_on_talib_batch_values(btc: list[Candle]) -> None:
    closes = np.array([c.close for c in btc])
    fast, slow = talib.SMA(closes, timeperiod=10), talib.SMA(closes, timeperiod=20)
    got = drive(make("sma_cross"), btc)
    for i in range(20, len(btc)):
        want = ("Buy" if fast[i - 1] < slow[i - 1] and fast[i] > slow[i]
                else "Sell" if fast[i - 1] > slow[i - 1] and fast[i] < slow[i] else "none")
        assert got[i][0] == want, i


# -- donchian_breakout ------------------------------------------------------------------------------------------

DON = {"period": 5, "exit_period": 3, "atr_period": 3, "atr_lookback": 2, "volume_period": 5}
QUIET = (100.0, 101.0, 99.0, 100.0, 10.0)


def test_donchian_long_breakout_with_every_confirmation() -> None:
    history = bars([QUIET] * 12)
    s = feed(make("donchian_breakout", DON), history)
    assert s.scan(FLAT) == NoSetup("close 100 inside the 5-bar channel 99..101")
    found = then(s, after(history, (100.0, 104.0, 100.0, 103.8, 30.0))[0])
    assert isinstance(found, Setup) and found.side is Side.BUY
    assert found.reason == "close 103.8 broke above the 5-bar high 101"  # the channel before this bar's high of 104
    assert checks(found) == {"volume_surge": True, "atr_expanding": True, "close_strength": True}
    assert found.stop is None and found.target is None and found.atr and found.atr > 0
    assert s.indicators()["upper"] == 101.0


def test_donchian_short_breakout() -> None:
    history = bars([QUIET] * 12)
    found = then(feed(make("donchian_breakout", DON), history), after(history, (100.0, 100.0, 96.0, 96.2, 30.0))[0])
    assert isinstance(found, Setup) and found.side is Side.SELL
    assert found.reason == "close 96.2 broke below the 5-bar low 99"
    assert checks(found) == {"volume_surge": True, "atr_expanding": True, "close_strength": True}


def test_donchian_confirmations_fail_on_a_weak_breakout() -> None:
    # Wide bars, then quiet ones: ATR falls; the breakout bar has average volume and closes mid-range.
    history = bars([(100.0, 105.0, 95.0, 100.0, 10.0)] * 10 + [QUIET] * 6)
    found = then(feed(make("donchian_breakout", DON), history), after(history, (100.0, 103.0, 100.5, 101.5, 10.0))[0])
    assert isinstance(found, Setup) and found.side is Side.BUY
    assert checks(found) == {"volume_surge": False, "atr_expanding": False, "close_strength": False}
    details = {c.name: c.detail for c in found.confirmations}
    assert details["close_strength"] == "close at 40% of the bar's range"
    assert details["volume_surge"] == "volume 10 vs 1.5 x avg 10"


def test_donchian_turtle_exit_on_the_exit_channel() -> None:
    history = bars([QUIET] * 12)
    s = feed(make("donchian_breakout", DON), history)
    assert s.exit(LONG) is None and s.exit(SHORT) is None and s.exit(FLAT) is None
    s.update(after(history, (100.0, 100.5, 98.0, 98.5, 10.0))[0])
    assert s.exit(LONG) == "close 98.5 fell below the 3-bar low 99"
    assert s.exit(SHORT) is None
    s = feed(make("donchian_breakout", DON), history)
    s.update(after(history, (100.0, 102.0, 100.0, 101.5, 10.0))[0])
    assert s.exit(SHORT) == "close 101.5 rose above the 3-bar high 101"
    assert s.exit(LONG) is None


# -- reversal ---------------------------------------------------------------------------------------------------

REV = {"rsi_period": 5, "lookback": 15, "volume_period": 5, "atr_period": 3}
RANGE = [100.0, 101.0] * 10  # equal lows and highs: no swing pivots
DECLINE = from_closes(RANGE + [99.0, 98.0, 97.0, 96.0, 95.0, 94.0, 93.0, 92.0])
RISE = from_closes(RANGE + [102.0, 103.0, 104.0, 105.0, 106.0, 107.0, 108.0, 109.0])


def test_reversal_hammer_at_an_rsi_extreme() -> None:
    for volume, climax in ((50.0, True), (10.0, False)):
        found = then(feed(make("reversal", REV), DECLINE), after(DECLINE, (92.0, 92.15, 91.0, 92.1, volume))[0])
        assert isinstance(found, Setup) and found.side is Side.BUY and found.reason == "hammer with rsi_extreme"
        assert checks(found) == {"divergence": False, "rsi_extreme": True, "reversal_candle": True, "volume_climax": climax}
        assert found.confirmations[0].detail == "no swing low in the last 15 bars"


def test_reversal_bullish_divergence_without_an_extreme() -> None:
    # A drop to a swing low (RSI 29), then a lower low on a hammer while RSI stays higher (34).
    history = from_closes(RANGE + [98, 96, 94, 92, 93, 94, 95, 96, 95.5, 94.5, 95, 94, 93, 93.5, 92.5, 93.0, 92.7])
    found = then(feed(make("reversal", REV), history), after(history, (92.7, 92.95, 91.6, 92.9, 25.0))[0])
    assert isinstance(found, Setup) and found.side is Side.BUY and found.reason == "hammer with divergence"
    assert checks(found) == {"divergence": True, "rsi_extreme": False, "reversal_candle": True, "volume_climax": True}
    assert found.confirmations[0].detail == "low 91.6 vs swing low 92.4, RSI 34.4 vs 29.0"


def test_reversal_engulfing_patterns_and_the_short_side() -> None:
    found = then(feed(make("reversal", REV), DECLINE), after(DECLINE, (91.95, 93.2, 91.9, 93.1, 10.0))[0])
    assert isinstance(found, Setup) and found.side is Side.BUY and found.reason == "bullish engulfing with rsi_extreme"
    found = then(feed(make("reversal", REV), RISE), after(RISE, (109.05, 109.1, 107.8, 107.9, 10.0))[0])
    assert isinstance(found, Setup) and found.side is Side.SELL and found.reason == "bearish engulfing with rsi_extreme"
    found = then(feed(make("reversal", REV), RISE), after(RISE, (109.0, 110.1, 108.85, 108.9, 10.0))[0])
    assert isinstance(found, Setup) and found.side is Side.SELL and found.reason == "shooting star with rsi_extreme"


def test_reversal_needs_the_candle_and_a_trigger() -> None:
    flat = from_closes(RANGE)
    s = feed(make("reversal", REV), flat)
    assert s.scan(FLAT).reason.startswith("no reversal candle (RSI ")  # type: ignore[union-attr]
    missed = then(s, after(flat, (101.0, 101.2, 99.0, 101.1, 10.0))[0])  # a hammer with RSI mid-range
    assert isinstance(missed, NoSetup)
    assert missed.reason.startswith("hammer without divergence or RSI extreme (no swing low in the last 15 bars; RSI ")
    plain = then(feed(make("reversal", REV), DECLINE), after(DECLINE, (92.0, 92.2, 91.0, 91.2, 10.0))[0])
    assert isinstance(plain, NoSetup) and plain.reason.startswith("no reversal candle")  # oversold, but no pattern


def test_reversal_candle_shapes_at_their_thresholds() -> None:
    mod = sys.modules[type(make("reversal")).__module__]

    def c(o: float, h: float, lo: float, cl: float) -> Candle:
        return Candle("X", "1h", 0, o, h, lo, cl, 1.0)

    assert mod.hammer(c(10, 11, 8, 11))  # lower wick 2 = 2 x body, no upper wick
    assert not mod.hammer(c(10, 11, 8.01, 11))  # lower wick 1.99
    assert mod.hammer(c(10, 12, 8, 11))  # upper wick 1 = 0.25 x range 4
    assert not mod.hammer(c(10, 12.1, 8, 11))  # upper wick 1.1 > 0.25 x 4.1
    assert not mod.hammer(c(10, 10, 10, 10))  # no range
    assert mod.shooting_star(c(11, 13, 10, 10)) and not mod.shooting_star(c(11, 12.99, 10, 10))
    prev_down, prev_up = c(11, 11, 10, 10), c(10, 11, 10, 11)
    assert not mod.bullish_engulfing(prev_down, c(10, 11, 10, 11))  # same body: not larger
    assert mod.bullish_engulfing(prev_down, c(10, 11.5, 10, 11.5))
    assert not mod.bullish_engulfing(prev_down, c(10.1, 11.5, 10.1, 11.5))  # opens above the previous close
    assert mod.bearish_engulfing(prev_up, c(11, 11, 9.5, 9.5)) and not mod.bearish_engulfing(prev_up, c(11, 11, 10, 10))


def test_reversal_exits_at_the_opposite_extreme() -> None:
    s = feed(make("reversal", REV), RISE)
    assert s.exit(LONG) is not None and s.exit(LONG).startswith("RSI ")  # type: ignore[union-attr]
    assert s.exit(SHORT) is None
    s = feed(make("reversal", REV), DECLINE)
    assert s.exit(SHORT) is not None and s.exit(LONG) is None


# -- mtf_stochrsi -----------------------------------------------------------------------------------------------

MTF = {"rsi_period": 3, "stoch_period": 3, "d_period": 2, "ema_period": 5, "atr_period": 3}
HIGHER_UP = from_closes([100.0 - i for i in range(10)] + [95.0], "4h")  # last 4h bar jumps: K 100 > D 50
HIGHER_DOWN = from_closes([100.0 + i for i in range(10)] + [108.0, 107.0], "4h")  # K 0, D 0, not rising
SLIDE_THEN_UP = from_closes([100.0 - i for i in range(20)] + [81.5], i0=100)  # K 0 -> 100 over D; close below EMA
TREND_DIP_UP = from_closes([100.0 + 2 * i for i in range(21)] + [139.5, 139.0, 142.0], i0=100)  # close above EMA


def test_mtf_long_setup_on_a_zone_cross_the_higher_timeframe_confirms() -> None:
    found = feed(make("mtf_stochrsi", MTF), HIGHER_UP, SLIDE_THEN_UP).scan(FLAT)
    assert isinstance(found, Setup) and found.side is Side.BUY
    assert found.reason == "%K crossed above %D from 0.0 (oversold), 4h agrees"
    assert checks(found) == {"higher_tf_agrees": True, "k_cross_in_zone": True, "trend_filter": False}
    assert {c.name: c.detail for c in found.confirmations}["trend_filter"] == "close 81.5 vs EMA5 82.5"
    found = feed(make("mtf_stochrsi", MTF), HIGHER_UP, TREND_DIP_UP).scan(FLAT)
    assert checks(found) == {"higher_tf_agrees": True, "k_cross_in_zone": True, "trend_filter": True}


def test_mtf_core_conditions_give_readable_reasons() -> None:
    s = feed(make("mtf_stochrsi", MTF), HIGHER_DOWN, SLIDE_THEN_UP)
    assert s.scan(FLAT) == NoSetup("%K crossed above %D from 0.0; 4h StochRSI disagrees (4h K 0.0 vs D 0.0, previous K 0.0)")
    own = from_closes(RANGE + [99.0, 100.0, 99.0, 100.0], i0=100)  # %K crosses %D from 25, above the oversold zone
    assert feed(make("mtf_stochrsi", MTF), HIGHER_UP, own).scan(FLAT) == NoSetup("%K crossed above %D from 25.3, not from oversold 20")
    s = feed(make("mtf_stochrsi", MTF), HIGHER_UP, SLIDE_THEN_UP[:-1])
    assert s.scan(FLAT) == NoSetup("no %K/%D cross: K 0.0, D 0.0")


def test_mtf_short_setup() -> None:
    own = from_closes(RANGE + [99.0, 97.0, 98.0, 96.0], i0=100)
    higher = from_closes(RANGE[:10] + [98.0], "4h")  # last 4h bar drops: K 0 < D 48
    found = feed(make("mtf_stochrsi", MTF), higher, own).scan(FLAT)
    assert isinstance(found, Setup) and found.side is Side.SELL
    assert found.reason == "%K crossed below %D from 100.0 (overbought), 4h agrees"
    assert checks(found) == {"higher_tf_agrees": True, "k_cross_in_zone": True, "trend_filter": True}
    assert isinstance(feed(make("mtf_stochrsi", MTF), HIGHER_UP, own).scan(FLAT), NoSetup)  # 4h rising: disagrees


def test_mtf_exit_on_the_opposite_zone_cross() -> None:
    s = feed(make("mtf_stochrsi", MTF), HIGHER_UP, from_closes(RANGE + [99.0, 97.0, 98.0, 96.0], i0=100))
    assert s.exit(LONG) == "%K crossed below %D from 100.0 (overbought)" and s.exit(SHORT) is None
    s = feed(make("mtf_stochrsi", MTF), HIGHER_UP, from_closes(RANGE + [99.0, 97.0, 95.0, 96.0], i0=100))
    assert s.exit(SHORT) == "%K crossed above %D from 0.0 (oversold)" and s.exit(LONG) is None
    assert s.exit(FLAT) is None


def test_mtf_a_higher_candle_counts_only_once_it_is_fed() -> None:
    s = feed(make("mtf_stochrsi", MTF), HIGHER_DOWN, SLIDE_THEN_UP[:-4])
    before = {k: v for k, v in s.indicators().items() if k.startswith("higher")}
    for candle in SLIDE_THEN_UP[-4:]:  # own candles inside the still open 4h bucket
        s.update(candle)
        assert {k: v for k, v in s.indicators().items() if k.startswith("higher")} == before
    assert isinstance(s.scan(FLAT), NoSetup)  # the closed 4h candles disagree
    s.update(from_closes([125.0], "4h", i0=len(HIGHER_DOWN), start=107.0)[0])  # the 4h candle closes: a jump
    assert s.indicators()["higher_k"] == 100.0
    assert isinstance(s.scan(FLAT), Setup)  # same own state, the newly closed 4h candle agrees


def test_mtf_reads_only_closed_higher_candles_on_real_data(btc: list[Candle]) -> None:
    own = btc[:1500]
    higher = aggregate(own, "4h")
    k, _ = talib.STOCHRSI(np.array([c.close for c in higher]), timeperiod=14, fastk_period=14, fastd_period=3, fastd_matype=0)
    s = make("mtf_stochrsi")
    events = sorted([(c.close_ts, 1, c) for c in own] + [(c.close_ts, 0, c) for c in higher], key=lambda e: e[:2])
    closed = -1  # index of the newest 4h candle closed by now
    for close_ts, is_own, candle in events:
        s.update(candle)
        if not is_own:
            closed += 1
        elif closed >= 0 and not math.isnan(k[closed]):
            assert s.indicators()["higher_k"] == pytest.approx(k[closed], abs=1e-6), close_ts
            assert higher[closed].close_ts <= close_ts


# -- all four ---------------------------------------------------------------------------------------------------


def random_walk_after(candles: Sequence[Candle], t: int, seed: int) -> list[Candle]:
    """The candles up to index t, then garbage with the same times."""
    rng = random.Random(seed)
    out, price = list(candles[:t + 1]), candles[t].close
    for c in candles[t + 1:]:
        o, price = price, price * math.exp(rng.gauss(0, 0.03))
        out.append(Candle(c.symbol, c.timeframe, c.ts, o, max(o, price) * (1 + 0.01 * rng.random()),
                          min(o, price) * (1 - 0.01 * rng.random()), price, 1000 * rng.random()))
    return out


@pytest.mark.parametrize("name", EVERY)
def test_no_look_ahead(name: str, btc: list[Candle]) -> None:
    series, t = btc[:1500], 1100
    truth = drive(make(name), series, higher_of(make(name), series))
    for seed in (1, 2):
        garbled = random_walk_after(series, t, seed)
        other = drive(make(name), garbled, higher_of(make(name), garbled))
        assert other[:t + 1] == truth[:t + 1]
        assert other[t + 1:] != truth[t + 1:]  # the garbage does change what follows


@pytest.mark.parametrize("name", EVERY)
def test_warm_up_equals_feeding_every_candle(name: str, btc: list[Candle]) -> None:
    series, k = btc[:2000], 1200
    full = drive(make(name), series, higher_of(make(name), series))
    warmed = make(name)
    history = {tf: series[:k] if tf == "1h" else aggregate(series[:k], tf) for tf in warmed.timeframes()}
    warmed.warm_up(history)
    tracker = RegimeTracker()  # the engine warms its regime tracker on the same history
    for candle in series[:k]:
        tracker.update(candle)
    cut = series[k - 1].close_ts
    rest = [c for c in higher_of(warmed, series) if c.close_ts > cut]
    assert drive(warmed, series[k:], rest, tracker) == full[k:]


def test_every_strategy_trades_on_real_btc(btc: list[Candle]) -> None:
    for name in NAMES:
        strategy = make(name)
        counts: Counter[str] = Counter()
        for result in drive(strategy, btc, higher_of(strategy, btc)):
            counts[result[0]] += 1
            if result[0] in ("Buy", "Sell"):
                assert tuple(c[0] for c in result[2]) == type(strategy).confirmations
            elif result[0] == "none":
                assert result[1] and "nan" not in result[1]
        print(f"{name}: {dict(counts)} over {len(btc)} bars")
        assert counts["Buy"] >= 5 and counts["Sell"] >= 5
        assert not any(math.isnan(v) for v in strategy.indicators().values())
