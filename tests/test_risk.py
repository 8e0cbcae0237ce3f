from __future__ import annotations

from decimal import Decimal as D

from hypothesis import given
from hypothesis import strategies as st

from tui_trader.config import RISK_PRESETS, RiskProfile
from tui_trader.model import Instrument, Side
from tui_trader.risk import Valuation, protective_levels, size_position

BTC = Instrument("BTCUSDT", D("0.1"), D("0.001"), D("0.001"), D(5), D(100))
PROFILE = RiskProfile(risk_per_trade_pct=1, stop_atr_mult=2, take_profit_r=2, max_leverage=10, max_position_pct=1000)


def test_levels_from_atr_on_the_tick_grid() -> None:
    stop, target = protective_levels(Side.BUY, D("60000.0"), PROFILE, BTC, atr=123.44, stop=None, target=None)  # type: ignore[misc]
    assert stop == D("59753.1")  # 60000 - 246.88 -> nearest tick
    assert target == D("60493.8")  # 60000 + 2 * 246.9
    stop, target = protective_levels(Side.SELL, D("60000.0"), PROFILE, BTC, atr=100, stop=None, target=None)  # type: ignore[misc]
    assert (stop, target) == (D("60200.0"), D("59600.0"))


def test_levels_refuse_a_stop_on_the_wrong_side() -> None:
    assert "losing side" in protective_levels(Side.BUY, D(100), PROFILE, BTC, atr=None, stop=101.0, target=None)  # type: ignore[operator]
    assert "no ATR" in protective_levels(Side.BUY, D(100), PROFILE, BTC, atr=None, stop=None, target=None)  # type: ignore[operator]


def test_risk_based_quantity() -> None:
    s = size_position(Side.BUY, Valuation.exactly(D(60000), D(10000), D(10000)), False, D(59700), D(60600), D(10000), PROFILE, BTC, D("0.00055"))
    assert s.blocked == "" and s.details["binding_cap"] == "risk"
    assert s.qty == D("0.333")  # 100 USDT risk / 300 stop distance, floored to 0.001


def test_caps_bind_and_minimums_block() -> None:
    tight = RiskProfile(risk_per_trade_pct=5, stop_atr_mult=2, take_profit_r=2, max_leverage=1, max_position_pct=50)
    s = size_position(Side.BUY, Valuation.exactly(D(60000), D(1000), D(1000)), False, D(59990), D(60020), D(1000), tight, BTC, D(0))
    assert s.details["binding_cap"] == "max_position" and s.qty == D("0.008")  # 500 USDT / 60000
    s = size_position(Side.BUY, Valuation.exactly(D(60000), D(100), D(100)), False, D(50000), D(70000), D(100), PROFILE, BTC, D(0))
    assert s.qty == 0 and "below the minimum qty" in s.blocked  # 1 USDT risk / 10000 distance


@given(
    equity=st.decimals(min_value=10, max_value=1_000_000, places=2),
    available=st.decimals(min_value=0, max_value=1_000_000, places=2),
    entry=st.decimals(min_value=1, max_value=200_000, places=1),
    stop_frac=st.decimals(min_value="0.001", max_value="0.5", places=3),
    profile=st.sampled_from(list(RISK_PRESETS.values())),
    side=st.sampled_from([Side.BUY, Side.SELL]),
)
def test_sizing_never_exceeds_a_cap_nor_goes_below_minimums(equity: D, available: D, entry: D, stop_frac: D,
                                                           profile: RiskProfile, side: Side) -> None:
    stop = entry - side.sign * entry * stop_frac
    s = size_position(side, Valuation.exactly(entry, equity, available), False, stop, entry, equity, profile, BTC, D("0.00055"))
    if s.blocked:
        assert s.qty == 0
        return
    assert s.qty >= BTC.min_qty and s.qty * entry >= BTC.min_notional
    assert s.qty % BTC.qty_step == 0
    assert s.qty * abs(entry - stop) <= equity * D(repr(profile.risk_per_trade_pct)) / 100
    assert s.qty * entry <= equity * D(repr(profile.max_position_pct)) / 100
    lev = min(D(repr(profile.max_leverage)), BTC.max_leverage)
    assert s.qty * entry <= equity * lev
    assert s.qty * entry / lev + s.qty * entry * D("0.00055") <= available
