from __future__ import annotations

import re
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import pytest
import talib

from tui_trader.market.replay import load_csv
from tui_trader.model import Candle, Side
from tui_trader.setup import load_strategies
from tui_trader.strategy import MarketContext, NoSetup, ParamsError, Setup, Strategy

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
HOUR = 3_600_000
FLAT = MarketContext()


def make(**params: float | bool) -> Strategy:
    return load_strategies().make("range_reversion", params, "1h")


class Tape:
    """Hand-made hourly candles; each opens where the previous one closed unless told otherwise."""

    def __init__(self) -> None:
        self.candles: list[Candle] = []

    def add(self, high: float, low: float, close: float, open_: float | None = None, volume: float = 10.0) -> Candle:
        prev = self.candles[-1].close if self.candles else 100.0
        candle = Candle("BTCUSDT", "1h", len(self.candles) * HOUR, prev if open_ is None else open_, high, low, close, volume)
        self.candles.append(candle)
        return candle

    def range(self, bars: int, low_close: float = 99.9, high_close: float = 100.1, wick: float = 3.0) -> Tape:
        """A range: closes alternate between two levels, every bar spans [100 - wick, 100 + wick]."""
        for i in range(bars):
            self.add(100 + wick, 100 - wick, high_close if i % 2 else low_close)
        return self

    def closes(self) -> np.ndarray:
        return np.array([c.close for c in self.candles])


def feed(strategy: Strategy, candles: Iterable[Candle]) -> Strategy:
    for candle in candles:
        strategy.update(candle)
    return strategy


def scan_after(tape: Tape, **params: float | bool) -> tuple[Strategy, Setup | NoSetup]:
    strategy = feed(make(**params), tape.candles)
    assert strategy.ready()
    return strategy, strategy.scan(FLAT)


def checks(setup: Setup) -> dict[str, bool]:
    return {c.name: c.passed for c in setup.confirmations}


def test_contract_basics() -> None:
    strategy = make()
    assert strategy.warmup == 500 and make(rsi_period=20).warmup == 700  # max(500, 35 x the Wilder period)
    feed(strategy, Tape().range(20).candles)  # BBANDS(20) is there; RSI/ATR/CHOP(14) too, not the prior volume average
    assert not strategy.ready()
    strategy.update(Tape().range(21).candles[-1])
    assert strategy.ready()
    assert set(strategy.indicators()) == {"bb_upper", "bb_middle", "bb_lower", "rsi", "chop", "atr"}


def test_inside_the_bands_is_no_setup() -> None:
    _, found = scan_after(Tape().range(40))
    assert isinstance(found, NoSetup) and found.reason.startswith("close 100.1 inside the bands")


def test_long_setup_at_the_lower_band() -> None:
    tape = Tape().range(40)
    # a drop from 100.1 to 96 inside the range's wicks: the range keeps CHOP high, the one-bar loss of 4.1
    # against average moves of 0.2 sends RSI near 20
    tape.add(100.5, 95.5, 96.0, volume=15.0)
    strategy, found = scan_after(tape)
    ind = strategy.indicators()
    rsi = talib.RSI(tape.closes(), timeperiod=14)[-1]  # the value the strategy must have seen
    assert ind["rsi"] == pytest.approx(rsi, rel=1e-12) and rsi < 25
    assert ind["chop"] >= 45 and 96.0 <= ind["bb_lower"]
    assert isinstance(found, Setup) and found.side is Side.BUY
    assert found.reason == (f"close 96 at/below lower band {ind['bb_lower']:.6g}, RSI {rsi:.1f} <= 30, "
                            f"CHOP {ind['chop']:.1f}")
    # stop one ATR beyond the further of the band and the candle's low; target the middle band
    assert found.stop == pytest.approx(min(ind["bb_lower"], 95.5) - ind["atr"])
    assert found.target == ind["bb_middle"] and found.atr == ind["atr"]
    assert found.stop < 96.0 < found.target
    # RSI beyond 25 passes; a bearish candle is no reversal; 15 is under 2 x the average 10
    assert checks(found) == {"rsi_extreme": True, "reversal_candle": False, "volume_normal": True}


def test_long_confirmations_flip() -> None:
    tape = Tape().range(40)
    tape.add(96.2, 95.5, 96.0, open_=95.6, volume=25.0)  # gapped down, closes above its open; volume 2.5x
    _, found = scan_after(tape)
    assert isinstance(found, Setup) and found.side is Side.BUY
    assert checks(found) == {"rsi_extreme": True, "reversal_candle": True, "volume_normal": False}
    details = {c.name: c.detail for c in found.confirmations}
    assert details["reversal_candle"] == "close 96 > open 95.6: is a bullish candle"
    assert details["volume_normal"] == "volume 25 vs 2x avg 10"
    # a milder drop: RSI under 30 but not under 25
    tape = Tape().range(40)
    tape.add(100.5, 98.0, 98.6, volume=10.0)
    strategy, found = scan_after(tape, oversold=40)
    assert isinstance(found, Setup), found
    assert 25 < strategy.indicators()["rsi"] <= 40 and checks(found)["rsi_extreme"] is False


def test_short_setup_at_the_upper_band() -> None:
    tape = Tape().range(40)
    tape.add(104.5, 99.5, 104.0, volume=15.0)  # the mirror image: a bullish spike
    strategy, found = scan_after(tape)
    ind = strategy.indicators()
    assert isinstance(found, Setup) and found.side is Side.SELL
    assert ind["rsi"] >= 75 and 104.0 >= ind["bb_upper"]
    assert found.stop == pytest.approx(max(ind["bb_upper"], 104.5) + ind["atr"]) and found.target == ind["bb_middle"]
    assert checks(found) == {"rsi_extreme": True, "reversal_candle": False, "volume_normal": True}
    tape.candles[-1:] = []
    tape.add(104.5, 103.8, 104.0, open_=104.4)  # gapped up, closes below its open
    _, found = scan_after(tape)
    assert isinstance(found, Setup) and found.side is Side.SELL and checks(found)["reversal_candle"] is True


def test_rsi_not_stretched_enough_is_no_setup() -> None:
    tape = Tape().range(40, low_close=98.0, high_close=102.0)  # swings of 4 keep RSI's averages large
    tape.add(102.0, 91.5, 92.0)
    strategy, found = scan_after(tape)
    rsi = strategy.indicators()["rsi"]
    assert 30 < rsi < 50 and 92.0 < strategy.indicators()["bb_lower"]
    assert isinstance(found, NoSetup) and found.reason == f"close 92 beyond the lower band but RSI {rsi:.1f} > 30"


def trend_then_spike() -> Tape:
    tape = Tape()
    for i in range(40):  # a staircase: every bar a step of 1 higher, so CHOP is near 0
        tape.add(101.2 + i, 99.8 + i, 101.0 + i)
    tape.add(146.5, 140.0, 146.0)  # and a jump past the upper band with RSI near 100
    return tape


def test_chop_filter_refuses_in_a_trend() -> None:
    strategy, found = scan_after(trend_then_spike())
    chop = strategy.indicators()["chop"]
    assert chop < 45
    assert isinstance(found, NoSetup) and found.reason == f"trending: CHOP {chop:.1f} < 45"
    assert re.fullmatch(r"trending: CHOP \d+\.\d < 45", found.reason)
    # the same candles without the filter: a short, so the filter alone refused it
    _, found = scan_after(trend_then_spike(), chop_min=0)
    assert isinstance(found, Setup) and found.side is Side.SELL


def test_exit_back_at_the_middle_band() -> None:
    tape = Tape().range(40)
    tape.add(100.1, 97.5, 98.0)
    tape.add(98.2, 96.0, 96.5)
    tape.add(96.6, 94.5, 95.0)
    strategy, found = scan_after(tape, exit_on_rsi_mid=False)
    assert isinstance(found, Setup) and found.side is Side.BUY
    held = MarketContext(position_side=Side.BUY, entry_price=95.0, bars_in_position=1)
    assert strategy.exit(held) is None
    strategy.update(tape.add(99.4, 94.8, 99.35))  # RSI is back over 50 but the close is below the middle band
    ind = strategy.indicators()
    assert ind["rsi"] >= 50 and 99.35 < ind["bb_middle"]
    assert strategy.exit(held) is None
    strategy.update(tape.add(100.0, 99.3, 99.9))
    assert strategy.exit(held) == f"close 99.9 back at the middle band {strategy.indicators()['bb_middle']:.6g}"
    assert strategy.exit(FLAT) is None  # nothing to leave


def test_exit_when_rsi_is_back_at_50() -> None:
    tape = Tape().range(40)
    for high, low, close in ((100.1, 97.5, 98.0), (98.2, 96.0, 96.5), (96.6, 94.5, 95.0), (99.4, 94.8, 99.35)):
        tape.add(high, low, close)
    strategy = feed(make(), tape.candles)
    rsi = strategy.indicators()["rsi"]
    assert strategy.exit(MarketContext(position_side=Side.BUY)) == f"RSI {rsi:.1f} back to 50"


def test_short_exit_back_at_the_middle_band() -> None:
    tape = Tape().range(40)
    tape.add(104.5, 99.5, 104.0)
    strategy = feed(make(), tape.candles)
    short = MarketContext(position_side=Side.SELL)
    assert strategy.exit(short) is None
    strategy.update(tape.add(104.0, 99.0, 99.5))
    assert strategy.exit(short) == f"close 99.5 back at the middle band {strategy.indicators()['bb_middle']:.6g}"


def test_confirmations_are_named_and_carry_their_values() -> None:
    cls = load_strategies().get("range_reversion")
    assert cls is not None and cls.confirmations == ("rsi_extreme", "reversal_candle", "volume_normal")
    tape = Tape().range(40)
    tape.add(100.5, 95.5, 96.0, volume=15.0)
    strategy, found = scan_after(tape)
    assert isinstance(found, Setup)
    assert tuple(c.name for c in found.confirmations) == cls.confirmations
    assert found.passed == ("rsi_extreme", "volume_normal") and found.failed == ("reversal_candle",)
    rsi = strategy.indicators()["rsi"]
    assert {c.name: c.detail for c in found.confirmations}["rsi_extreme"] == f"RSI {rsi:.1f} vs 25"


def test_params_are_bounded_and_ordered() -> None:
    assert make().params.model_dump()["chop_min"] == 45.0
    with pytest.raises(ParamsError, match="bb_period"):
        make(bb_period=1)
    with pytest.raises(ParamsError, match="extreme_oversold <= oversold"):
        make(oversold=20)  # below extreme_oversold 25
    with pytest.raises(ParamsError, match="unknown|Extra inputs"):
        make(nope=1)


def test_fast_warm_up_equals_candle_by_candle() -> None:
    tape = Tape().range(60)
    tape.add(100.5, 95.5, 96.0, volume=15.0)
    stepped = feed(make(), tape.candles)
    warmed = make()
    warmed.warm_up({"1h": tape.candles})
    assert warmed.ready() and warmed.indicators() == pytest.approx(stepped.indicators(), rel=1e-12)
    assert warmed.scan(FLAT) == stepped.scan(FLAT)


def test_ignores_other_timeframes() -> None:
    strategy = feed(make(), Tape().range(40).candles)
    before = strategy.indicators()
    strategy.update(Candle("BTCUSDT", "4h", 0, 100.0, 200.0, 50.0, 60.0, 1e6))
    assert strategy.indicators() == before


def test_defaults_trade_on_real_btc_1h() -> None:
    path = DATA / "bybit_BTCUSDT_1h.csv.gz"
    if not path.exists():
        pytest.skip(f"{path} is missing")
    candles = load_csv(path, "BTCUSDT", "1h")[-10_000:]
    strategy = make()
    strategy.warm_up({"1h": candles[:500]})
    found = [strategy.scan(FLAT) for candle in candles[500:] if strategy.update(candle) is None]
    setups = [f for f in found if isinstance(f, Setup)]
    trending = [f for f in found if isinstance(f, NoSetup) and f.reason.startswith("trending: CHOP")]
    assert {s.side for s in setups} == {Side.BUY, Side.SELL} and trending
    for setup in setups:  # every suggested stop and target is on the right side of the close it fired on
        assert setup.stop is not None and setup.target is not None
        assert (setup.target - setup.stop) * setup.side.sign > 0
