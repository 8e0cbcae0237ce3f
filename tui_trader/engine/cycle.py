"""The bot cycle: the eight phases run for one bot on one closed candle of its
timeframe. Synchronous and pure (no I/O, no clock): it returns decisions and
order intents; the orchestrator (live) or the backtest loop carries them out.

Phases: sync, regime, manage, scan, confirm, size, guard, execute. Every phase
that reaches a verdict writes a decision, including why nothing was done.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from tui_trader.config import RiskProfile
from tui_trader.model import (
    BUY,
    SELL,
    ZERO,
    BotState,
    Candle,
    Decision,
    DecisionType,
    Instrument,
    OrderPurpose,
    OrderRequest,
    OrderType,
    Phase,
    Position,
    Regime,
    Side,
)
from tui_trader.risk import (
    Exposure,
    LossLimits,
    Valuation,
    entry_sizing,
    loss_breach,
    tightened_stop,
)
from tui_trader.strategy import MarketContext, NoSetup, Setup, Strategy


@dataclass(frozen=True, slots=True)
class BotProfile:
    """What the cycle needs to know about its bot; rebuilt when the bot is edited."""

    bot_id: int
    name: str
    symbol: str
    timeframe: str
    capital: Decimal
    confirmations: int
    risk: RiskProfile
    instrument: Instrument
    taker_fee: Decimal
    stale_after_ms: int
    timeframe_ms: int
    leverage: Decimal = field(init=False)
    limits: LossLimits = field(init=False)
    position_cap: Decimal = field(init=False)  # max position notional in USDT
    position_cap_f: float = field(init=False)

    def __post_init__(self) -> None:  # derived once: the cycle reads them every candle
        object.__setattr__(self, "leverage", min(Decimal(repr(self.risk.max_leverage)), self.instrument.max_leverage))
        object.__setattr__(self, "limits", LossLimits.of(self.risk))
        object.__setattr__(self, "position_cap", self.capital * Decimal(repr(self.risk.max_position_pct)) / 100)
        object.__setattr__(self, "position_cap_f", float(self.position_cap))


@dataclass(slots=True)  # not frozen: built per bot per candle, and frozen init costs ~2x
class CycleContext:
    """The engine's view of the bot and the market at this candle (treated as read-only)."""

    now_ts: int  # market time: the close time of the newest base candle
    state: BotState  # effective state: the bot's, overridden by a stricter portfolio state
    state_reason: str
    position: Position
    value: Valuation  # the close on the tick grid, the bot's equity at it and the margin it can still commit (read
    # only when flat: a reversal sizes on equity)
    regime: Regime
    regime_features: dict[str, float] | None
    has_open_entry: bool
    has_open_exit: bool
    next_seq: int
    day_start_equity: Decimal = Decimal(0)  # the daily loss limit's base
    high_water: Decimal = Decimal(0)  # the drawdown limit's base
    cooldown_until: int = 0  # no entries before this market time
    exposure: Exposure | None = None  # the portfolio's; the cycle adds the entry it places
    atr: float = math.nan  # of the bot's timeframe (the regime tracker's NATR times the close)


@dataclass(slots=True)  # one per order: not frozen for speed; treated as read-only
class PlaceOrder:
    request: OrderRequest
    seq: int


@dataclass(frozen=True, slots=True)
class MoveStop:
    """Tighten the position's stop (the exchange-side one too, where the exchange keeps it)."""

    bot_id: int
    symbol: str
    stop: Decimal
    target: Decimal | None


@dataclass(frozen=True, slots=True)
class CancelOrders:
    bot_id: int
    symbol: str
    reason: str


Intent = PlaceOrder | CancelOrders | MoveStop


@dataclass(slots=True)
class CycleResult:
    decisions: list[Decision] = field(default_factory=list)
    intents: list[Intent] = field(default_factory=list)

    def setup_found(self, bot_id: int, ts: int, found: Setup, reversing: bool, indicators: dict[str, float]) -> None:
        """Record SETUP_FOUND (a backtest's result keeps the arguments and writes it when read)."""
        self.decisions.append(setup_found(bot_id, ts, found, reversing, indicators))


def client_order_id(bot_id: int, seq: int) -> str:
    """Deterministic and unique per bot: a retried send can be looked up before re-sending."""
    return f"tt{bot_id}-{seq}"


def close_position(bot: BotProfile, position: Position, seq: int, purpose: OrderPurpose) -> PlaceOrder:
    """A reduce-only market order for the whole position."""
    side = Side.SELL if position.qty > 0 else Side.BUY
    request = OrderRequest(client_order_id(bot.bot_id, seq), bot.bot_id, bot.symbol, side, OrderType.MARKET,
                           abs(position.qty), purpose, reduce_only=True)
    return PlaceOrder(request, seq)


def flatten_intents(bot: BotProfile, position: Position, seq: int) -> list[Intent]:
    """Cancel every resting order of the bot, then close what it holds."""
    intents: list[Intent] = [CancelOrders(bot.bot_id, bot.symbol, "flatten")]
    if position.is_open:
        intents.append(close_position(bot, position, seq, OrderPurpose.FLATTEN))
    return intents


def describe_position(position: Position, mark: Decimal) -> str:
    head, levels = position_text(position)
    return "%s, uPnL %+.2f%s" % (head, float(position.unrealized_pnl(mark)), levels)


def position_text(position: Position) -> tuple[str, str]:
    """What describes a position besides its P&L: side, size and entry; its stop and target."""
    # %-formatting of floats: a HOLD row per bot in a position per candle, and Decimal formatting costs 2x
    qty = position.qty
    levels = f", stop {position.stop_price}" if position.stop_price else ""
    levels += f", target {position.target_price}" if position.target_price else ""
    return "%s %s @ %.8g" % ("long" if qty > 0 else "short", abs(qty), float(position.entry_price)), levels


# Enum members are looked up through the metaclass (~70 ns on 3.11): these run per bot per candle.
_SCAN, _MANAGE, _REGIME = Phase.SCAN, Phase.MANAGE, Phase.REGIME
_NO_SETUP, _HOLD = DecisionType.NO_SETUP, DecisionType.HOLD
_FLATTENING = BotState.FLATTENING
_SETUP_FOUND, _MARKET, _ENTRY = DecisionType.SETUP_FOUND, OrderType.MARKET, OrderPurpose.ENTRY
_SIDE_TEXT = {BUY: ("Buy", "buy"), SELL: ("Sell", "sell")}  # a side's value, and in lower case (`.value` costs ~0.3 us)
# A flat bot's market context depends on the regime alone: one per regime, shared (read-only).
_FLAT_MARKETS = {regime: MarketContext(regime) for regime in Regime}
_REGIME_CHANGED, _REGIME_TEXT = DecisionType.REGIME_CHANGED, {regime: regime.value for regime in Regime}


def regime_decision(bot_id: int, ts: int, before: Regime, after: Regime, features: dict[str, float] | None) -> Decision:
    """REGIME_CHANGED, with the tracker's features as its details."""
    return Decision(bot_id, ts, _REGIME, _REGIME_CHANGED, f"regime {_REGIME_TEXT[before]} -> {_REGIME_TEXT[after]}",
                    {**features} if features else {})


def setup_found(bot_id: int, ts: int, found: Setup, reversing: bool, indicators: dict[str, float]) -> Decision:
    """SETUP_FOUND: the setup's side, reason and confirmations, and the strategy's indicators."""
    side, lower = _SIDE_TEXT[found.side]
    confirmations = {c.name: {"passed": c.passed, "detail": c.detail} for c in found.confirmations} if found.confirmations else {}
    return Decision(bot_id, ts, _SCAN, _SETUP_FOUND, f"{lower} {'reversal' if reversing else 'setup'}: {found.text}",
                    {"side": side, "confirmations": confirmations, **indicators})


class BotCycle:
    def __init__(self, bot: BotProfile, strategy: Strategy) -> None:
        self.bot = bot
        self.strategy = strategy
        self.regime = Regime.UNKNOWN
        self.bars_in_position = 0
        self._held: tuple[object, ...] = (None,) * 6  # (qty, entry, stop, target) and position_text of them
        self._entry_f: tuple[Decimal | None, float] = (None, 0.0)  # the position's entry price and it as a float

    def on_other_timeframe(self, candle: Candle) -> None:
        """A closed candle of a higher timeframe the strategy reads: sync only."""
        self.strategy.update(candle)

    def on_candle(self, candle: Candle, ctx: CycleContext) -> CycleResult:
        out = CycleResult()
        self.run(candle, ctx, out)
        return out

    def run(self, candle: Candle, ctx: CycleContext, out: CycleResult) -> None:
        """`on_candle`, appending to `out`: the engine passes one result for all its bots, whose
        decisions are the tick's. The routine rows (NO_SETUP, HOLD) are appended directly."""
        ts = candle.close_ts
        # 1. sync
        strategy = self.strategy
        strategy.update(candle)
        position = ctx.position
        in_position = bool(position.qty)
        self.bars_in_position = self.bars_in_position + 1 if in_position else 0

        # 2. regime
        if ctx.regime is not self.regime:
            self.regime_changed(ctx.regime, ctx.regime_features, out, ts)
        if not strategy.ready():
            self._decider(out, ts)(Phase.SYNC, DecisionType.WARMING_UP, f"{strategy.name} is still warming up")
            return

        # 3. manage (an always-in-market strategy reverses on an opposite setup instead)
        found: Setup | NoSetup | None
        if in_position:
            entry, entry_f = self._entry_f
            if entry is not position.entry_price:
                entry, entry_f = self._entry_f = position.entry_price, float(position.entry_price)
            market = MarketContext(ctx.regime, BUY if position.qty > ZERO else SELL, entry_f, self.bars_in_position)
            found = self._reversal(market, ctx)
            if found is None:
                self._manage(candle, ctx, market, out, ts)
                self._log_events(out, ts)
                return
            reversing = True
        else:
            # 4. scan
            found = strategy.scan(_FLAT_MARKETS[ctx.regime])
            reversing = False
        self._log_events(out, ts)
        if isinstance(found, NoSetup):
            # No indicator values in the routine rows (one per bot per candle): the candles are
            # stored and strategies are deterministic, so they are recomputable exactly.
            out.decisions.append(Decision(self.bot.bot_id, ts, _SCAN, _NO_SETUP, found.reason, {}))
            return
        out.setup_found(self.bot.bot_id, ts, found, reversing, strategy.indicators())
        blocked = self._entry(candle, ctx, found, reversing, out, ts)
        if blocked and reversing:  # the position is on the wrong side: leave it even if the new entry cannot go
            self._exit(ctx, f"opposite {_SIDE_TEXT[found.side][1]} setup ({found.text})", out, self._decider(out, ts))

    def regime_changed(self, regime: Regime, features: dict[str, float] | None, out: CycleResult, ts: int) -> None:
        """Phase 2's decision."""
        out.decisions.append(regime_decision(self.bot.bot_id, ts, self.regime, regime, features))
        self.regime = regime

    def _decider(self, out: CycleResult, ts: int) -> Callable[..., None]:
        """A function appending a decision of this bot at `ts` to `out`, with keyword details."""
        bot_id, decisions = self.bot.bot_id, out.decisions

        def decide(phase: Phase, kind: DecisionType, summary: str, **details: Any) -> None:
            decisions.append(Decision(bot_id, ts, phase, kind, summary, details))
        return decide

    def _reversal(self, market: MarketContext, ctx: CycleContext) -> Setup | None:
        """An always-in-market strategy's setup against the open position, or None."""
        if not self.strategy.always_in_market or ctx.state is _FLATTENING or ctx.has_open_exit:
            return None
        found = self.strategy.scan(market)
        return found if isinstance(found, Setup) and found.side is not market.position_side else None

    def _entry(self, candle: Candle, ctx: CycleContext, found: Setup, reversing: bool, out: CycleResult, ts: int) -> bool:
        """Phases 5-8 for a setup; True when a gate blocked it."""
        bot = self.bot
        # 5. confirm
        if bot.confirmations and len(found.passed) < bot.confirmations:
            passed, failed = found.passed, found.failed
            self._decider(out, ts)(Phase.CONFIRM, DecisionType.SETUP_REJECTED,
                   f"{len(passed)} of {len(found.confirmations)} confirmations passed, {bot.confirmations} required;"
                   f" failed: {', '.join(failed) or 'none'}", passed=list(passed), failed=list(failed))
            return True

        # 6. size (a reversal frees the margin of the position it closes)
        value = ctx.value
        sizing = entry_sizing(found.side, value, reversing, found.atr, found.stop, found.target, bot.capital, bot.risk,
                              bot.instrument, bot.taker_fee)
        if isinstance(sizing, str):
            self._decider(out, ts)(Phase.SIZE, DecisionType.RISK_BLOCKED, f"size: {sizing}", gate="size")
            return True
        if sizing.blocked:
            self._decider(out, ts)(Phase.SIZE, DecisionType.RISK_BLOCKED, f"size: {sizing.blocked}", gate="size", **sizing.details)
            return True

        # 7. guard: the notionals before and after the entry, exactly, where the portfolio's exposure counts
        # them or the bot's cap is within a hair (else the float says it is well inside)
        exposure = ctx.exposure
        notionals = None
        if exposure is not None or sizing.qty_f * value.floats()[0] >= bot.position_cap_f * (1 - 1e-9):
            entry = value.mark
            notionals = (ctx.position.qty * entry if reversing else ZERO,
                         (sizing.qty if found.side is BUY else -sizing.qty) * entry)
        blocked = self._guard(ts, ctx, notionals, reversing)
        if blocked:
            gate, reason = blocked
            self._decider(out, ts)(Phase.GUARD, DecisionType.RISK_BLOCKED, f"{gate}: {reason}", gate=gate, qty=str(sizing.qty))
            return True

        # 8. execute: one order; a reversal's also closes the old position
        qty = sizing.qty + abs(ctx.position.qty) if reversing else sizing.qty
        request = OrderRequest(client_order_id(bot.bot_id, ctx.next_seq), bot.bot_id, bot.symbol, found.side, _MARKET, qty,
                               _ENTRY, None, None, False, sizing.stop, sizing.target)
        out.intents.append(PlaceOrder(request, ctx.next_seq))
        if exposure is not None and notionals is not None:
            exposure.add(bot.symbol, notionals[1] - notionals[0], opens=not reversing)
        return False

    def _log_events(self, out: CycleResult, ts: int) -> None:
        events = self.strategy.take_events()
        if events:
            decide = self._decider(out, ts)
            for event in events:
                decide(_SCAN, DecisionType.STRATEGY_SWITCHED, event.summary, **event.details)

    def _manage(self, candle: Candle, ctx: CycleContext, market: MarketContext, out: CycleResult, ts: int) -> None:
        position, bot = ctx.position, self.bot
        mark = ctx.value.mark
        if ctx.state is _FLATTENING:
            out.decisions.append(Decision(bot.bot_id, ts, _MANAGE, _HOLD, f"flattening: {describe_position(position, mark)}", {}))
            return
        reason = self.strategy.exit(market)
        limit = bot.risk.time_stop_bars
        if reason is None and limit:
            held = (candle.close_ts - position.opened_ts) // bot.timeframe_ms
            if held >= limit:
                reason = f"time stop: held {held} candles (limit {limit})"
        if reason is not None:
            self._exit(ctx, reason, out, self._decider(out, ts))
            return
        if not self._move_stop(candle, ctx, mark, out, ts):
            out.decisions.append(Decision(bot.bot_id, ts, _MANAGE, _HOLD, f"holding {self._describe(position, mark)}", {}))

    def _describe(self, position: Position, mark: Decimal) -> str:
        """describe_position, with the text that changes only with the position kept between candles."""
        held = self._held  # compared by identity: equal Decimals can print differently (1.0, 1.00)
        if (held[0] is not position.qty or held[1] is not position.entry_price or held[2] is not position.stop_price
                or held[3] is not position.target_price):
            held = self._held = (position.qty, position.entry_price, position.stop_price, position.target_price,
                                 *position_text(position))
        return "%s, uPnL %+.2f%s" % (held[4], float(position.unrealized_pnl(mark)), held[5])

    def _move_stop(self, candle: Candle, ctx: CycleContext, mark: Decimal, out: CycleResult, ts: int) -> bool:
        """Break-even and trailing: a STOP_MOVED decision and intent when the stop tightens."""
        position, bot = ctx.position, self.bot
        if not ctx.state.allows_exits or ctx.has_open_exit or position.stop_price is None:
            return False
        long = position.qty > ZERO
        move = tightened_stop(BUY if long else SELL, position.entry_price, position.stop_price, position.initial_stop,
                              mark, candle.high if long else candle.low, ctx.atr, bot.risk, bot.instrument, bot.taker_fee)
        if move is None:
            return False
        self._decider(out, ts)(_MANAGE, DecisionType.STOP_MOVED,
                               f"{move.rule} stop {position.stop_price} -> {move.stop}: {move.detail}",
                               rule=move.rule, old=str(position.stop_price), new=str(move.stop))
        out.intents.append(MoveStop(bot.bot_id, bot.symbol, move.stop, position.target_price))
        return True

    def _exit(self, ctx: CycleContext, reason: str, out: CycleResult, decide: Any) -> None:
        if ctx.has_open_exit:
            decide(Phase.MANAGE, DecisionType.HOLD, f"exit signal ({reason}); an exit order is already working")
        elif not ctx.state.allows_exits:
            decide(Phase.GUARD, DecisionType.RISK_BLOCKED,
                   f"bot_state: {ctx.state.value} places no orders; exit signal ({reason}) not acted on,"
                   " the exchange-side stop still protects the position", gate="bot_state")
        else:
            decide(Phase.MANAGE, DecisionType.EXIT_SIGNAL, f"exit: {reason}", **self.strategy.indicators())
            out.intents.append(close_position(self.bot, ctx.position, ctx.next_seq, OrderPurpose.EXIT))

    def _guard(self, close_ts: int, ctx: CycleContext, notionals: tuple[Decimal, Decimal] | None,
               reversing: bool) -> tuple[str, str] | None:
        """The first gate that blocks a new entry: (gate, reason with its numbers). `notionals`: the bot's
        signed notional without and with the entry, or None when it is well inside the bot's cap and no
        portfolio exposure is kept."""
        bot, exposure = self.bot, ctx.exposure
        if exposure is not None and exposure.stop_reason:
            return "portfolio_stop", exposure.stop_reason
        limits = bot.limits
        if limits.daily_loss is not None or limits.drawdown is not None:
            breach = loss_breach(ctx.value.equity, ctx.day_start_equity, ctx.high_water, limits)
            if breach is not None:
                return breach
        if not ctx.state.allows_entries:
            why = f" ({ctx.state_reason})" if ctx.state_reason else ""
            return "bot_state", f"{ctx.state.value}{why}: no new entries"
        if ctx.now_ts < ctx.cooldown_until:
            left = -(-(ctx.cooldown_until - ctx.now_ts) // bot.timeframe_ms)
            until = datetime.fromtimestamp(ctx.cooldown_until / 1000, UTC).strftime("%Y-%m-%d %H:%M UTC")
            return "cooldown", f"after {bot.risk.cooldown_losses} consecutive losses: no entries for {left} more candles (until {until})"
        age = ctx.now_ts - close_ts
        if age > bot.stale_after_ms:
            return "stale_data", f"candle closed {age // 1000}s before the market clock (limit {bot.stale_after_ms // 1000}s)"
        if ctx.has_open_entry:
            return "pending_entry", "an entry order is already working"
        if notionals is None:
            return None
        before, after = notionals
        if abs(after) > bot.position_cap:
            return "bot_exposure", (f"position notional {abs(after):.2f} USDT above the bot's cap {bot.position_cap:.2f}"
                                    f" ({bot.risk.max_position_pct:g}% of capital {bot.capital})")
        if exposure is not None:
            return exposure.breach(bot.symbol, before, after, not reversing, bot.risk.max_open_positions)
        return None
