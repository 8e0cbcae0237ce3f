"""Property tests for the pure risk functions: stop management, loss limits, exposure caps, sizing."""

from __future__ import annotations

import math
from decimal import Decimal as D
from fractions import Fraction
from typing import Any

from hypothesis import example, given, settings
from hypothesis import strategies as st

from tui_trader.config import DEFAULT_INSTRUMENTS, RISK_PRESETS, RiskProfile
from tui_trader.model import Instrument, Side
from tui_trader.risk import (
    Exposure,
    LossLimits,
    Sizing,
    Valuation,
    _sized_in_steps,
    entry_sizing,
    exact_levels,
    loss_breach,
    protective_levels,
    size_position,
    tightened_stop,
)

FAST = settings(max_examples=200, deadline=None)
SIDES = st.sampled_from(Side)
FEES = st.sampled_from([D(0), D("0.0002"), D("0.00055"), D("0.001")])
R = st.floats(0.1, 5).map(lambda x: round(x, 2))
OFF_OR_R = st.one_of(st.just(0.0), R)
PCT = st.floats(0.1, 50).map(lambda x: round(x, 2))
UNIT = D("0.00000001")


def _profile(**kw: Any) -> RiskProfile:
    return RiskProfile(**{"risk_per_trade_pct": 1, "stop_atr_mult": 2, "take_profit_r": 2, "max_leverage": 3,
                          "max_position_pct": 100, **kw})


PROFILES = st.one_of(st.sampled_from(list(RISK_PRESETS.values())),
                     st.builds(_profile, breakeven_r=OFF_OR_R, trail_activation_r=OFF_OR_R, trail_atr_mult=OFF_OR_R))


@st.composite
def cases(draw: st.DrawFn) -> dict[str, Any]:
    """tightened_stop's arguments bar the profile: a position on the tick grid, its stop from the
    initial stop to one R beyond entry, the close from -1R to 6R in favour."""
    side, tick = draw(SIDES), draw(st.sampled_from([D("0.1"), D("0.01"), D("0.0001"), D("0.5"), D(1)]))
    s, entry_t = side.sign, draw(st.integers(10, 10**7))
    risk_t = draw(st.integers(1, entry_t - 1))
    stop_t = draw(st.integers(0, 2 * risk_t))
    favour_t = draw(st.integers(-risk_t, 6 * risk_t if s > 0 else min(6 * risk_t, entry_t - 1)))
    entry = entry_t * tick
    initial, close = entry - s * risk_t * tick, entry + s * favour_t * tick
    return {"side": side, "entry": entry, "stop": initial + s * stop_t * tick, "initial_stop": initial, "close": close,
            "extreme": float(close) * (1 + s * draw(st.floats(0, 0.2))),  # high >= close (long), low <= close (short)
            "atr": float(entry) * draw(st.floats(0, 0.2)), "instrument": Instrument("X", tick, D(1), D(1), D(0)),
            "taker_fee": draw(FEES)}


def _favour(c: dict[str, Any]) -> Fraction:
    """The close's gain in R, exactly."""
    return Fraction(c["close"] - c["entry"]) / Fraction(c["entry"] - c["initial_stop"])


@FAST
@given(c=cases(), profile=PROFILES)
def test_stop_only_tightens_and_stays_behind_the_close(c: dict[str, Any], profile: RiskProfile) -> None:
    """A move is strictly tighter than the current stop, strictly on the losing side of the close,
    positive and on the tick grid; a trailing stop is never closer than its distance to the extreme."""
    move, s, tick = tightened_stop(**c, profile=profile), c["side"].sign, c["instrument"].tick_size
    if move is not None:
        assert (move.stop - c["stop"]) * s > 0 and (c["close"] - move.stop) * s > 0
        assert move.stop > 0 and move.stop % tick == 0
        if move.rule == "trailing":
            trail = D(repr(c["extreme"] - s * c["atr"] * profile.trail_atr_mult))
            assert 0 <= (trail - move.stop) * s < tick


@FAST
@given(c=cases(), profile=PROFILES)
def test_no_move_before_the_first_enabled_threshold(c: dict[str, Any], profile: RiskProfile) -> None:
    """No move while the close is less than min(enabled thresholds) R in favour, nor without a stop."""
    thresholds = [Fraction(repr(profile.breakeven_r))] if profile.breakeven_r else []
    if profile.trail_atr_mult and c["atr"] > 0:
        thresholds.append(Fraction(repr(profile.trail_activation_r)))
    if not thresholds or _favour(c) < min(thresholds):
        assert tightened_stop(**c, profile=profile) is None
    assert tightened_stop(**{**c, "stop": None}, profile=profile) is None
    assert tightened_stop(**{**c, "initial_stop": None}, profile=profile) is None


@FAST
@given(c=cases(), be=R, near=st.booleans())
def test_breakeven_covers_both_fees(c: dict[str, Any], be: float, near: bool) -> None:
    """Break-even alone: a move sits at or beyond entry plus both legs' taker fees, within a tick of
    it; and it happens whenever the close is at or past the threshold and the level fits."""
    if near:  # a threshold at or just under the close's R multiple
        be = max(math.floor(_favour(c) * 100) / 100, 0.01)
    s, tick = c["side"].sign, c["instrument"].tick_size
    level = c["entry"] * (1 + s * 2 * c["taker_fee"])
    move = tightened_stop(**c, profile=_profile(breakeven_r=be))
    if move is not None:
        assert move.rule == "breakeven"
        assert (move.stop - level) * s >= 0 and abs(move.stop - level) < tick
    elif _favour(c) >= Fraction(repr(be)):
        assert (level - c["stop"]) * s <= 0 or (c["close"] - level) * s < tick, "break-even level fits but no move"


# Regression: the committed risk.py computed the R multiple in float, so a close exactly 1R in favour
# (e.g. long entry 39.9, initial stop 8.2, close 71.6) gave 0.9999999999999999R and no rule fired.
@FAST
@example(side=Side.BUY, risk_t=317, extra_t=82, trailing=False)
@given(side=SIDES, risk_t=st.integers(1, 10**6), extra_t=st.integers(1, 10**6), trailing=st.booleans())
def test_rules_fire_exactly_at_their_threshold(side: Side, risk_t: int, extra_t: int, trailing: bool) -> None:
    """A close exactly 1R in favour fires a 1R rule: break-even to entry (fee 0), or trailing."""
    tick, s = D("0.1"), side.sign
    entry, r = (risk_t + extra_t) * tick, s * risk_t * tick
    profile = _profile(trail_activation_r=1, trail_atr_mult=1) if trailing else _profile(breakeven_r=1)
    move = tightened_stop(side, entry, entry - r, entry - r, entry + r, float(entry + r), float(abs(r)) / 2, profile,
                          Instrument("X", tick, D(1), D(1), D(0)), D(0))
    assert move is not None and move.rule == ("trailing" if trailing else "breakeven")
    assert trailing or move.stop == entry


@FAST
@given(start=st.decimals(1, 10_000_000, places=8), pct=PCT, below=st.integers(1, 10**9), drawdown=st.booleans())
def test_loss_limit_trips_exactly_at_the_threshold(start: D, pct: float, below: int, drawdown: bool) -> None:
    """At exactly the limit (and below it) the limit trips; one unit above it does not; no limits, no breach."""
    kind = "drawdown" if drawdown else "daily_loss"
    limits = LossLimits.of(_profile(**{"max_drawdown_pct" if drawdown else "daily_loss_pct": pct}))
    at = start - start * D(repr(pct)) / 100

    def check(equity: D, limits: LossLimits = limits) -> str | None:  # drawdown: the day started at `equity`
        return (loss_breach(equity, equity if drawdown else start, start, limits) or (None,))[0]

    assert check(at) == kind and check(at - below * UNIT) == kind and check(at + UNIT) is None
    assert check(at - below * UNIT, LossLimits(None, None)) is None


NOTIONAL = st.decimals(-50_000, 50_000, places=2).filter(lambda x: x != 0)
SYMBOLS = st.sampled_from(["BTCUSDT", "ETHUSDT", "SOLUSDT"])


@FAST
@given(book=st.lists(st.tuples(SYMBOLS, NOTIONAL), max_size=8), who=st.integers(0, 8), new_symbol=SYMBOLS,
       after=NOTIONAL, gross_cap=st.decimals(0, 200_000, places=2), symbol_cap=st.decimals(0, 100_000, places=2),
       limit_offset=st.none() | st.integers(-2, 2))
def test_exposure_caps(book: list[tuple[str, D]], who: int, new_symbol: str, after: D, gross_cap: D, symbol_cap: D,
                       limit_offset: int | None) -> None:
    """One bot per book entry; the entering bot reverses its position (who < len) or opens one.
    max_open trips iff it opens at the limit; a named cap really is broken; an allowed entry keeps
    gross and |net| within their caps or no worse; an entry not growing |net| never trips the symbol cap."""
    max_open = None if limit_offset is None else max(1, len(book) + limit_offset)  # often right at the limit
    exposure = Exposure(D(100_000), gross_cap, symbol_cap)
    for symbol, notional in book:
        exposure.add(symbol, notional, True)
    symbol, before = book[who] if who < len(book) else (new_symbol, D(0))
    opens = before == 0
    gross_now = sum((abs(n) for _, n in book), D(0))
    gross = gross_now - abs(before) + abs(after)
    net_now = sum((n for s, n in book if s == symbol), D(0))
    net = net_now - before + after
    gate = (exposure.breach(symbol, before, after, opens, max_open) or ("",))[0]
    assert (gate == "max_open_positions") == (opens and max_open is not None and len(book) >= max_open)
    if gate == "portfolio_exposure":
        assert gross > gross_cap and gross > gross_now
    if abs(net) <= abs(net_now):
        assert gate != "symbol_exposure"
    if not gate:
        assert gross <= gross_cap or gross <= gross_now
        assert abs(net) <= symbol_cap or abs(net) <= abs(net_now)


INSTRUMENTS = st.one_of(
    st.sampled_from([Instrument(s, i.tick_size, i.qty_step, i.min_qty, i.min_notional, i.max_leverage)
                     for s, i in DEFAULT_INSTRUMENTS.items()]),
    st.builds(lambda step, k, notional, lev: Instrument("X", D("0.01"), step, step * k, notional, lev),
              st.sampled_from([D("0.001"), D("0.005"), D("0.01"), D("0.1"), D(1), D(10)]), st.integers(1, 20),
              st.decimals(0, 100, places=0), st.decimals(1, 100, places=0)))


@FAST
@given(inst=INSTRUMENTS, side=SIDES, entry=st.decimals(D("0.01"), 200_000, places=2),
       stop_frac=st.decimals(D("0.001"), D("0.5"), places=3), equity=st.decimals(10, 10**6, places=2),
       available=st.decimals(0, 10**6, places=2), profile=st.sampled_from(list(RISK_PRESETS.values())), fee=FEES)
def test_sizing_on_the_qty_grid_or_blocked_by_the_named_cap(inst: Instrument, side: Side, entry: D, stop_frac: D, equity: D,
                                                            available: D, profile: RiskProfile, fee: D) -> None:
    """The qty is the smallest cap floored to the instrument's step and meets its minimums; else it is
    0 with a reason naming that cap, and the floored cap really is below a minimum."""
    stop = entry - side.sign * entry * stop_frac
    lev = min(D(repr(profile.max_leverage)), inst.max_leverage)
    caps = {"risk": equity * D(repr(profile.risk_per_trade_pct)) / 100 / abs(entry - stop),
            "max_position": equity * D(repr(profile.max_position_pct)) / 100 / entry,
            "leverage": equity * lev / entry, "margin": available / (entry / lev + entry * fee)}
    s = size_position(side, Valuation.exactly(entry, equity, available), False, stop, entry, equity, profile, inst, fee)
    binding = s.details["binding_cap"]
    assert caps[binding] == min(caps.values())
    floored = (caps[binding] // inst.qty_step) * inst.qty_step
    if s.blocked:
        assert s.qty == 0 and f"capped by {binding}" in s.blocked
        assert floored < inst.min_qty or floored * entry < inst.min_notional
    else:
        assert s.qty == floored and s.qty % inst.qty_step == 0
        assert s.qty >= inst.min_qty and s.qty * entry >= inst.min_notional


TICKS = st.sampled_from([D("0.01"), D("0.1"), D("0.10"), D("0.5"), D(1), D("0.0001"), D("0.00000001")])


@settings(max_examples=1000, deadline=None)
@given(tick=TICKS, side=SIDES, entry_ticks=st.integers(1, 10**9), atr_ticks=st.floats(0.01, 10**6),
       jitter=st.sampled_from([0.0, 0.5, 1e-13, -1e-13, 0.5 + 1e-13, 0.5 - 1e-13]),
       mult=st.sampled_from([0.5, 1.0, 1.5, 2.0, 2.5, 3.0, 0.1, 1.3]), r=st.sampled_from([0.5, 1.0, 1.5, 2.0, 3.0, 1.1, 2.7]))
@example(tick=D("0.01"), side=Side.BUY, entry_ticks=4300512, atr_ticks=1000.25, jitter=0.0, mult=2.0, r=1.5)
def test_atr_levels_from_tick_counts_equal_the_decimal_path_digit_for_digit(
        tick: D, side: Side, entry_ticks: int, atr_ticks: float, jitter: float, mult: float, r: float) -> None:
    """The float fast path gives the exact path's stop and target, the same digits (str) included, or
    the same refusal; levels that land on a half tick or on the grid (the jitter puts them there) too."""
    entry = entry_ticks * tick
    atr = float((atr_ticks + jitter) * float(tick)) / mult
    profile = RiskProfile(risk_per_trade_pct=1, stop_atr_mult=mult, take_profit_r=r, max_leverage=10, max_position_pct=50)
    inst = Instrument("X", tick, D("0.001"), D("0.001"), D(0), D(100))
    fast = protective_levels(side, entry, profile, inst, atr, None, None)
    reference = exact_levels(side, entry, profile, inst, atr, None, None)
    if isinstance(reference, str):
        assert fast == reference
    else:
        assert [str(x) for x in fast] == [str(x) for x in reference]  # type: ignore[union-attr]


def _sized_exactly(side: Side, entry: D, atr: float, equity: D, capital: D, available: D, profile: RiskProfile,
                   inst: Instrument, fee: D) -> tuple[str, ...]:
    """The reference: exact_levels then size_position, in Decimal throughout, as strings (digits count)."""
    levels = exact_levels(side, entry, profile, inst, atr, None, None)
    if isinstance(levels, str):
        return (levels,)
    s = size_position(side, Valuation.exactly(entry, equity, available), False, levels[0], levels[1], capital, profile, inst, fee)
    return str(s.qty), str(s.stop), str(s.target), s.binding, s.blocked, repr(s.details)


def _these(*values: D) -> tuple[D, ...]:
    return values


def _valued(entry: D, equity: D, available: D, ulps: int = 0) -> Valuation:
    """A valuation as a backtest makes one: its floats `ulps` off the exact values, which are read when needed."""
    def off(x: D) -> float:
        f = float(x)
        for _ in range(abs(ulps)):
            f = math.nextafter(f, math.inf if ulps > 0 else -math.inf)
        return f
    return Valuation((off(entry), off(equity), off(available)), None, (_these, entry, equity, available))


def _as_strings(s: Sizing | str) -> tuple[str, ...]:
    return (s,) if isinstance(s, str) else (str(s.qty), str(s.stop), str(s.target), s.binding, s.blocked, repr(s.details))


@settings(max_examples=1000, deadline=None)
@given(inst=INSTRUMENTS, side=SIDES, entry_ticks=st.integers(2, 2 * 10**7), atr_ticks=st.floats(0.5, 10**5),
       equity=st.decimals(D(1), D(10**9), places=8), capital=st.decimals(D(1), D(10**9), places=2),
       spare=st.one_of(st.none(), st.decimals(-1000, 10**9, places=2)), profile=PROFILES, fee=FEES,
       tie=st.sampled_from(["", "position_leverage", "position_step"]), ulps=st.integers(-3, 3))
@example(inst=Instrument("X", D("0.01"), D(1), D(1), D(0), D(100)), side=Side.BUY, entry_ticks=4312340, atr_ticks=6123.4567,
         equity=D("99876543.21"), capital=D(100_000_000), spare=None,
         profile=RiskProfile(risk_per_trade_pct=10, stop_atr_mult=2, take_profit_r=3, max_leverage=10, max_position_pct=0.5),
         fee=D("0.0006"), tie="", ulps=1)
def test_entry_sizing_in_steps_equals_the_exact_levels_and_sizing(
        inst: Instrument, side: Side, entry_ticks: int, atr_ticks: float, equity: D, capital: D, spare: D | None,
        profile: RiskProfile, fee: D, tie: str, ulps: int) -> None:
    """entry_sizing's float count gives the exact path's levels and sizing (quantity, levels, binding cap,
    blocked reason and details, digit for digit), or leaves it to the exact path; caps made equal or a
    cap made a whole number of qty steps (where the float count must not guess) included, and a
    valuation whose floats are a few ulps off the exact values (as a backtest's are)."""
    entry = entry_ticks * inst.tick_size
    lev = min(D(repr(profile.max_leverage)), inst.max_leverage)
    if tie == "position_leverage":  # the max-position cap equal to the leverage cap
        capital = equity * lev * 100 / D(repr(profile.max_position_pct))
    elif tie == "position_step":  # the max-position cap a whole number of qty steps
        capital = (capital // entry or 1) * entry * inst.qty_step * 100 / D(repr(profile.max_position_pct))
    available = equity if spare is None else spare
    atr = atr_ticks * float(inst.tick_size)
    reference = _sized_exactly(side, entry, atr, equity, capital, available, profile, inst, fee)
    on_equity = spare is None
    assert _as_strings(entry_sizing(side, _valued(entry, equity, available, ulps), on_equity, atr, None, None, capital,
                                    profile, inst, fee)) == reference
    fast = _sized_in_steps(side, _valued(entry, equity, available, ulps), on_equity, atr, capital, profile, inst, fee)
    if fast is not None:
        assert _as_strings(fast) == reference


def test_entry_sizing_counts_typical_entries_in_steps() -> None:
    """The float count answers for typical entries (it is the cycle's path, not a rarely taken branch)."""
    spec = DEFAULT_INSTRUMENTS["BTCUSDT"]
    inst = Instrument("BTCUSDT", spec.tick_size, spec.qty_step, spec.min_qty, spec.min_notional, spec.max_leverage)
    answered = total = 0
    for profile in RISK_PRESETS.values():
        for entry_ticks in range(400_000, 700_000, 12_347):  # BTCUSDT at 40,000-70,000 USDT
            for atr in (35.71234, 61.23456, 250.56789):  # an ATR is no round number
                entry = entry_ticks * inst.tick_size
                equity = D("10234.56789012")
                fast = _sized_in_steps(Side.BUY, _valued(entry, equity, equity), True, atr, D(10_000), profile, inst,
                                       D("0.00055"))
                total += 1
                if fast is not None:
                    answered += 1
                    assert _as_strings(fast) == _sized_exactly(Side.BUY, entry, atr, equity, D(10_000), equity, profile,
                                                               inst, D("0.00055"))
    assert answered >= 0.9 * total, f"{answered} of {total}"


@settings(max_examples=1000, deadline=None)
@given(tick=TICKS, ticks=st.integers(-10**12, 10**12), offset=st.one_of(st.floats(-0.5, 0.5), st.sampled_from(
    [0.0, 0.5, -0.5, 0.5 - 1e-9, 0.5 + 1e-9, 0.4999999, 1e-12])))
def test_round_price_f_is_the_exact_rounding_as_a_float(tick: D, ticks: int, offset: float) -> None:
    """`round_price_f` is `round_price` to nearest as a float, within two ulps, or None where a price is a
    hair from half a tick (the exact rounding decides which way)."""
    inst = Instrument("X", tick, D("0.001"), D("0.001"), D(0), D(100))
    price = (ticks + offset) * float(tick)
    rounded = inst.round_price_f(price)
    exact = inst.round_price(price)
    q = D(repr(price)) / tick
    if rounded is None:
        assert abs(abs(q - q.to_integral_value()) - D("0.5")) < D("2e-6") + D("2e-15") * abs(q) or abs(q) >= 2 ** 50
    else:
        assert abs(rounded - float(exact)) <= 2 * math.ulp(float(exact))
