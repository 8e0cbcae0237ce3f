"""The pure parts of the engine: the bot cycle's phases and the regime tracker."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from decimal import Decimal as D

import numpy as np

from tui_trader.config import RiskProfile
from tui_trader.engine.cycle import BotCycle, BotProfile, CycleContext, PlaceOrder, describe_position
from tui_trader.model import BotState, Candle, DecisionType, Instrument, OrderPurpose, Position, Regime, Side
from tui_trader.regime import RegimeSettings, RegimeTracker
from tui_trader.risk import Valuation
from tui_trader.strategy import Confirmation, MarketContext, NoSetup, Setup, Strategy, StrategyParams

BTC = Instrument("BTCUSDT", D("0.1"), D("0.001"), D("0.001"), D(5), D(100))
RISK = RiskProfile(risk_per_trade_pct=1, stop_atr_mult=2, take_profit_r=2, max_leverage=10, max_position_pct=1000)
PROFILE = BotProfile(1, "b", "BTCUSDT", "1m", D(10000), 1, RISK, BTC, D("0.00055"), 180_000, 60_000)


class Plan(Strategy):
    """Answers from a plan: the test says what the strategy sees."""

    name = "plan"

    def __init__(self) -> None:
        super().__init__(StrategyParams(), "1m")
        self.next: Setup | NoSetup = NoSetup("nothing")
        self.exit_reason: str | None = None
        self.seen = 0

    @property
    def warmup(self) -> int:
        return 1

    def update(self, candle: Candle) -> None:
        self.seen += 1

    def warm_up(self, candles: Mapping[str, Sequence[Candle]]) -> None:
        pass

    def ready(self) -> bool:
        return self.seen > 0

    def scan(self, ctx: MarketContext) -> Setup | NoSetup:
        return self.next

    def exit(self, ctx: MarketContext) -> str | None:
        return self.exit_reason


def candle(close: float, ts: int = 0) -> Candle:
    return Candle("BTCUSDT", "1m", ts, close, close + 10, close - 10, close, 5.0)


def ctx(close: float, equity: D = D(10000), **kw: object) -> CycleContext:
    """The context of a candle closing at `close`, valued as the engine values a bot: at the close on the tick grid."""
    base = dict(now_ts=60_000, state=BotState.RUNNING, state_reason="", position=Position(1, "BTCUSDT"),
                value=Valuation.exactly(BTC.round_price(close), equity, equity), regime=Regime.RANGE,
                regime_features=None, has_open_entry=False, has_open_exit=False, next_seq=7)
    base.update(kw)
    return CycleContext(**base)  # type: ignore[arg-type]


def setup(*passed: bool) -> Setup:
    return Setup(Side.BUY, "planned", tuple(Confirmation(f"c{i}", p, "") for i, p in enumerate(passed)), atr=100.0)


def kinds(result: object) -> list[DecisionType]:
    return [d.decision_type for d in result.decisions]  # type: ignore[attr-defined]


def test_entry_goes_through_every_phase() -> None:
    plan = Plan()
    cycle = BotCycle(PROFILE, plan)
    plan.next = setup(True, False)
    result = cycle.on_candle(candle(60000.0), ctx(60000.0))
    assert kinds(result) == [DecisionType.REGIME_CHANGED, DecisionType.SETUP_FOUND]
    (intent,) = result.intents
    assert isinstance(intent, PlaceOrder) and intent.seq == 7
    r = intent.request
    assert (r.client_order_id, r.side, r.purpose, r.reduce_only) == ("tt1-7", Side.BUY, OrderPurpose.ENTRY, False)
    assert (r.stop_loss, r.take_profit) == (D("59800.0"), D("60400.0"))
    assert r.qty == D("0.500")  # 100 USDT risk / 200 stop distance


def test_why_not_is_always_said() -> None:
    plan = Plan()
    cycle = BotCycle(PROFILE, plan)
    assert kinds(cycle.on_candle(candle(1.0), ctx(1.0, regime=Regime.UNKNOWN))) == [DecisionType.NO_SETUP]
    plan.next = setup(False, False)
    result = cycle.on_candle(candle(60000.0), ctx(60000.0, regime=Regime.UNKNOWN))
    assert kinds(result)[-1] is DecisionType.SETUP_REJECTED and "failed: c0, c1" in result.decisions[-1].summary
    plan.next = setup(True)
    for state, gate in [(BotState.PAUSED, "bot_state"), (BotState.HALTED, "bot_state"), (BotState.FLATTENING, "bot_state")]:
        result = cycle.on_candle(candle(60000.0), ctx(60000.0, state=state, regime=Regime.UNKNOWN))
        assert result.intents == [] and result.decisions[-1].details["gate"] == gate
    stale = cycle.on_candle(candle(60000.0, ts=0), ctx(60000.0, now_ts=10 * 60_000, regime=Regime.UNKNOWN))
    assert stale.decisions[-1].details["gate"] == "stale_data"
    pending = cycle.on_candle(candle(60000.0), ctx(60000.0, has_open_entry=True, regime=Regime.UNKNOWN))
    assert pending.decisions[-1].details["gate"] == "pending_entry"
    tiny = cycle.on_candle(candle(60000.0), ctx(60000.0, equity=D(1), regime=Regime.UNKNOWN))
    assert tiny.decisions[-1].details["gate"] == "size" and "below the minimum" in tiny.decisions[-1].summary


def test_manage_holds_exits_and_respects_state() -> None:
    plan = Plan()
    cycle = BotCycle(PROFILE, plan)
    long = Position(1, "BTCUSDT", D("0.5"), D(60000), D(59800), D(60400), 0)
    plan.next = setup(True)  # a setup while in a position is not scanned
    assert kinds(cycle.on_candle(candle(60100.0), ctx(60100.0, position=long, regime=Regime.UNKNOWN))) == [DecisionType.HOLD]
    plan.exit_reason = "cross"
    for state in (BotState.RUNNING, BotState.PAUSED):  # pause is reduce-only: exits still go out
        result = cycle.on_candle(candle(60100.0), ctx(60100.0, position=long, state=state, regime=Regime.UNKNOWN))
        assert kinds(result) == [DecisionType.EXIT_SIGNAL]
        (intent,) = result.intents
        assert intent.request.reduce_only and intent.request.side is Side.SELL and intent.request.qty == D("0.5")  # type: ignore[union-attr]
    halted = cycle.on_candle(candle(60100.0), ctx(60100.0, position=long, state=BotState.HALTED, regime=Regime.UNKNOWN))
    assert halted.intents == [] and kinds(halted) == [DecisionType.RISK_BLOCKED]
    working = cycle.on_candle(candle(60100.0), ctx(60100.0, position=long, has_open_exit=True, regime=Regime.UNKNOWN))
    assert working.intents == [] and kinds(working) == [DecisionType.HOLD]


def test_hold_rows_follow_every_change_of_the_position() -> None:
    """The HOLD row's text is kept between candles; a moved stop, a new size, or the same size
    written differently (0.5 vs 0.50) shows at once, as describe_position gives it."""
    cycle = BotCycle(PROFILE, Plan())
    long = Position(1, "BTCUSDT", D("0.5"), D(60000), D(59800), D(60400), 0)
    changes = [lambda: None, lambda: None, lambda: setattr(long, "stop_price", D("59900.0")),
               lambda: setattr(long, "qty", D("0.50")), lambda: setattr(long, "target_price", None),
               lambda: setattr(long, "qty", D("0.7")), lambda: setattr(long, "entry_price", D("60000.5"))]
    for i, change in enumerate(changes):
        change()
        close = 60100.0 + 10 * i
        (hold,) = cycle.on_candle(candle(close), ctx(close, position=long, regime=Regime.UNKNOWN)).decisions
        assert hold.summary == f"holding {describe_position(long, D(repr(close)))}"
    assert hold.summary == "holding long 0.7 @ 60000.5, uPnL +111.65, stop 59900.0"


def test_the_cycle_marks_the_position_at_the_valuations_mark() -> None:
    """The engine values a bot once per candle (the close on the tick grid, the equity at it); the cycle
    reads that valuation, not the candle."""
    long = Position(1, "BTCUSDT", D("0.5"), D(60000), D(59800), D(60400), 0)
    value = Valuation.exactly(D("60200.0"), D(10100), D(10100))
    result = BotCycle(PROFILE, Plan()).on_candle(candle(60123.46), ctx(60123.46, position=long, value=value))
    assert "uPnL +100.00" in result.decisions[-1].summary


def series(returns: np.ndarray, start: float = 100.0) -> list[Candle]:
    closes = start * np.exp(np.cumsum(returns))
    out, prev = [], start
    for i, c in enumerate(closes):
        spread = abs(c - prev) + c * 0.0005
        out.append(Candle("X", "1m", i * 60_000, prev, max(prev, c) + spread / 2, min(prev, c) - spread / 2, c, 1.0))
        prev = c
    return out


def test_regime_detects_trend_range_and_volatility() -> None:
    rng = np.random.default_rng(1)
    level, calm = 0.0, []
    for shock in rng.normal(0, 0.001, 400):  # mean-reverting: a range
        step = -0.2 * level + shock
        level += step
        calm.append(step)
    up = rng.normal(0.002, 0.001, 150)
    wild = rng.normal(0, 0.008, 80)
    tracker = RegimeTracker()
    seen = [tracker.update(c) for c in series(np.concatenate([np.array(calm), up, wild]))]
    assert seen[399] is Regime.RANGE
    assert seen[549] is Regime.TREND_UP
    assert seen[-1] is Regime.VOLATILE


def test_regime_has_hysteresis() -> None:
    candles = series(np.random.default_rng(2).normal(0, 0.001, 3000))

    def runs(settings: RegimeSettings) -> list[int]:
        tracker = RegimeTracker(settings)
        seen = [tracker.update(c) for c in candles][100:]
        lengths, n = [], 1
        for a, b in zip(seen, seen[1:], strict=False):
            if a is b:
                n += 1
            else:
                lengths.append(n)
                n = 1
        return lengths

    raw = runs(RegimeSettings(adx_exit=25.0, calm_ratio=1.6, confirm_bars=1))
    damped = runs(RegimeSettings())
    assert min(damped[1:]) >= RegimeSettings().confirm_bars  # no regime lasts less than the confirmation
    assert min(raw) == 1 and len(damped) < 0.75 * len(raw), (len(damped), len(raw))
