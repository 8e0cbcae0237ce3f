"""The backtest loop: one bot's cycle and the paper exchange driven over history
by a plain synchronous loop, as the live orchestrator drives them tick by tick.

Per base bar, in the orchestrator's order: the exchange matches the bar; its
fills are booked into the bot's ledger (trade decisions, stops from the entry
order, cooldowns); the risk pass marks the bot (high-water mark, a new trading
day, loss-limit pauses and next-day resumes); the cycle runs on every candle of
the bot's timeframe that closed; its orders are sent. The data may be finer than
the bot's timeframe: the exchange then matches every fine bar while the bot sees
the aggregated candles, as it does live.

What differs from a live engine, by design: one bot, so no portfolio stop and no
portfolio exposure caps; no database (decisions stay in memory); no operator.
A test holds the decisions and trades equal to the live engine's on the same candles.

Fast path: a strategy that implements `precompute` says on which of its bars
anything but its routine decision can happen. The loop then processes only those
bars, the bars on which the exchange can fill (a working order, a price reaching
the stop or the target), day starts, regime changes, and every bar while stop
management or loss limits need watching; for the others it counts the routine
decision (NO_SETUP flat, HOLD in a position) and carries the high-water mark.
A test holds the fast path equal to the every-bar one.
"""

from __future__ import annotations

import gc
import math
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from decimal import Decimal
from functools import cached_property
from typing import Any

import numpy as np

from tui_trader.backtest.btpy import BacktestingPyBroker, OutOfMoney
from tui_trader.backtest.regimes import regime_series
from tui_trader.backtest.series import Bars, aggregate
from tui_trader.engine.cycle import BotCycle, BotProfile, CancelOrders, CycleContext, MoveStop, PlaceOrder, describe_position
from tui_trader.engine.ledger import BotLedger
from tui_trader.engine.orchestrator import collector_paused
from tui_trader.exchange.paper import PaperExchange
from tui_trader.model import (
    BotState,
    Candle,
    Decision,
    DecisionType,
    Fill,
    Order,
    OrderPurpose,
    OrderRequest,
    OrderStatus,
    OrderUpdate,
    Phase,
    Position,
    Regime,
    Trade,
    timeframe_ms,
)
from tui_trader.regime import RegimeTracker
from tui_trader.risk import loss_breach
from tui_trader.strategy import Strategy

DAY_MS = 86_400_000
FILL_MODELS = ("paper", "backtesting-py")
ROUTINE = (DecisionType.NO_SETUP, DecisionType.HOLD, DecisionType.WARMING_UP)
Progress = Callable[[int, int], None]


@dataclass(frozen=True, slots=True)
class FillSettings:
    model: str = "paper"  # paper | backtesting-py
    taker_fee: Decimal = Decimal("0.00055")  # fraction per leg (backtesting-py: its commission)
    maker_fee: Decimal = Decimal("0.0002")
    slippage_bps: Decimal = Decimal(2)  # paper: market and stop fills; backtesting-py: its spread, entries only
    optimistic: bool = False  # paper: an ambiguous bar goes to the target

    def __post_init__(self) -> None:
        if self.model not in FILL_MODELS:
            raise ValueError(f"unknown fill model {self.model!r} (known: {', '.join(FILL_MODELS)})")


@dataclass(slots=True)
class Segment:
    """The bot's books from base bar `start` on, until the next segment."""

    start: int
    wallet: float
    qty: float
    entry: float


@dataclass
class RunResult:
    bars: Bars  # the base bars of the run (trading part)
    bot_bars: Bars  # the bot's timeframe
    start: int  # first traded base bar
    capital: Decimal
    trades: list[Trade]
    fills: list[Fill]
    raw_decisions: list[Decision | Deferred]  # everything but the routine decisions of the bars not run
    routine: Counter[DecisionType]  # routine decisions of the bars the fast path did not run the cycle on
    segments: list[Segment]
    final_equity: Decimal
    wallet: Decimal
    open_position: tuple[Decimal, Decimal] | None  # (signed qty, entry) left open at the end
    ambiguous_bars: int
    bars_processed: int
    state: BotState  # at the end: a loss limit that waits for an operator leaves the bot PAUSED for good
    state_reason: str
    out_of_money: bool = False

    @cached_property
    def decisions(self) -> list[Decision]:
        """Every decision made, in order (the routine ones of skipped bars are only counted)."""
        return [d if type(d) is Decision else d.build() for d in self.raw_decisions]  # type: ignore[union-attr]

    def decision_counts(self) -> Counter[DecisionType]:
        counts = Counter(d.decision_type for d in self.raw_decisions)
        counts.update(self.routine)
        return counts

    def equity_curve(self) -> np.ndarray:
        """Equity at each base bar's close (float), from the booked segments."""
        close = self.bars.close[self.start:]
        out = np.empty(len(close))
        bounds = [s.start - self.start for s in self.segments] + [len(close)]
        for seg, lo, hi in zip(self.segments, bounds, bounds[1:], strict=False):
            out[lo:hi] = seg.wallet + seg.qty * (close[lo:hi] - seg.entry)
        return out


@dataclass(frozen=True, slots=True)
class Deferred:
    """A decision of the orchestrator's kind, its text written only when someone reads it: the
    arguments are snapshots, so the text is the one it would have had when it was made."""

    decision_type: DecisionType
    build_fn: Callable[..., Decision]
    args: tuple[Any, ...]

    def build(self) -> Decision:
        return self.build_fn(*self.args)


def _trade_exited(bot_id: int, trade: Trade) -> Decision:
    side = "long" if trade.side.sign > 0 else "short"
    return Decision(bot_id, trade.exit_ts, Phase.FILL, DecisionType.TRADE_EXITED,
                    f"closed {side} {trade.qty} @ {trade.exit_price} ({trade.exit_reason}): P&L {trade.net_pnl:+.2f}"
                    f" after {trade.fees:.2f} fees", {"pnl": str(trade.pnl), "fees": str(trade.fees),
                                                      "reason": trade.exit_reason, "entry_price": str(trade.entry_price),
                                                      "exit_price": str(trade.exit_price)})


def _trade_entered(bot_id: int, fill: Fill, position: Position, mark: Decimal) -> Decision:
    return Decision(bot_id, fill.ts, Phase.FILL, DecisionType.TRADE_ENTERED, f"entered {describe_position(position, mark)}",
                    {"price": str(fill.price), "qty": str(fill.qty), "fee": str(fill.fee)})


def _order_placed(bot_id: int, ts: int, request: OrderRequest) -> Decision:
    levels = f", stop {request.stop_loss}, target {request.take_profit}" if request.stop_loss else ""
    return Decision(
        bot_id, ts, Phase.EXECUTE, DecisionType.ORDER_PLACED,
        f"{request.purpose.value}: {request.order_type.value.lower()} {request.side.value.lower()} {request.qty}"
        f" {request.symbol}{' reduce-only' if request.reduce_only else ''}{levels}",
        {"client_order_id": request.client_order_id, "qty": str(request.qty)})


class _Listener:
    __slots__ = ("fills", "updates")

    def __init__(self) -> None:
        self.fills: list[Fill] = []
        self.updates: list[OrderUpdate] = []

    def on_fill(self, fill: Fill) -> None:
        self.fills.append(fill)

    def on_order_update(self, update: OrderUpdate) -> None:
        self.updates.append(update)


class Backtest:
    """One run. `bars` are the base bars (the finest data); trading starts at index `start`,
    the bars before it warm up the strategy and the regime as the live engine's history does."""

    def __init__(self, bars: Bars, profile: BotProfile, strategy: Strategy, fills: FillSettings, start: int = 0,
                 fast: bool = True, progress: Progress | None = None) -> None:
        if profile.timeframe_ms % timeframe_ms(bars.timeframe):
            raise ValueError(f"a {profile.timeframe} bot cannot run on {bars.timeframe} bars")
        if strategy.timeframes()[1:] and fast:
            fast = False  # several timeframes: every bar (the batch interface covers one)
        self.bars, self.profile, self.strategy, self.settings = bars, profile, strategy, fills
        self.start = start
        self.progress = progress
        self.instrument = profile.instrument
        self.bot_id = profile.bot_id
        self.symbol = profile.symbol
        self.cycle = BotCycle(profile, strategy)
        self.ledger = BotLedger(profile.bot_id, profile.symbol, profile.capital)
        self.state, self.state_reason = BotState.RUNNING, ""
        self.orders: dict[str, Order] = {}
        self.next_seq = 1
        self.equity: Decimal | None = profile.capital
        self._close = math.nan  # of the tick being processed
        self._tick_f = float(profile.instrument.tick_size)
        self._base_ms = timeframe_ms(bars.timeframe)
        self._high_water_f = float(profile.capital) * (1 - 1e-12)
        self._books_f = (0.0, 0.0, float(profile.capital))  # qty, entry, wallet as floats (for bounds)
        self.now_ts = 0
        self.mark: Decimal | None = None
        self.decisions: list[Decision | Deferred] = []
        self.routine: Counter[DecisionType] = Counter()
        self.trades: list[Trade] = []
        self.fills: list[Fill] = []
        self.segments: list[Segment] = []
        self.listener = _Listener()
        self.exchange: PaperExchange | BacktestingPyBroker
        if fills.model == "paper":
            self.exchange = PaperExchange({profile.symbol: profile.instrument}, fills.maker_fee, fills.taker_fee,
                                          fills.slippage_bps, optimistic=fills.optimistic)
        else:
            self.exchange = BacktestingPyBroker(profile.instrument, fills.taker_fee, fills.slippage_bps / 10_000)
        self.exchange.set_listener(self.listener)
        self.exchange.ensure_account(profile.bot_id, profile.capital, profile.leverage)
        # The bot's timeframes, built from the base bars as the live aggregator builds them.
        self.series: dict[str, tuple[Bars, np.ndarray]] = {tf: aggregate(bars, tf) for tf in strategy.timeframes()}
        self.bot_bars, emitted = self.series[profile.timeframe]
        self.same_timeframe = self.bot_bars is bars  # the bot's candles are the base bars themselves
        self.bot_emitted = emitted
        self.bot_index_at = np.full(len(bars), -1, dtype=np.int64)  # base bar -> the bot candle it emits
        self.bot_index_at[emitted] = np.arange(len(emitted))
        # Candles of the other timeframes the strategy reads, by the base bar that emits them, highest first:
        # the orchestrator updates them before it runs the bot's cycle.
        self.other_at: dict[int, list[tuple[str, int]]] = {}
        for tf in sorted(strategy.timeframes()[1:], key=timeframe_ms, reverse=True):
            for j, k in enumerate(self.series[tf][1].tolist()):
                self.other_at.setdefault(k, []).append((tf, j))
        self.mask = strategy.precompute(self.bot_bars.columns()) if fast else None
        self.fast = self.mask is not None
        self.cycle_hot: list[bool] = []  # fast path: bot candles on which the cycle can do more than its routine
        self._warming = False
        risk = profile.risk
        self.watch_bot_bars = bool(risk.breakeven_r or risk.trail_atr_mult or risk.time_stop_bars)
        self.tracker: RegimeTracker | None = None
        self.regime_list: list[Regime] = []
        self.regime_atr: list[float] = []
        self.regime_of: Callable[[int], dict[str, float] | None] = lambda j: None
        self._lists = (bars.ts.tolist(), bars.open.tolist(), bars.high.tolist(), bars.low.tolist(),
                       bars.close.tolist(), bars.volume.tolist())

    # -- the run --------------------------------------------------------------------------------------

    def run(self) -> RunResult:
        # No cyclic collection during the run (it allocates millions of objects, none in a cycle), and
        # none over the results afterwards: they are frozen (reference counting still frees them).
        with collector_paused():
            result = self._run()
            gc.freeze()
        return result

    def _run(self) -> RunResult:
        self._warm_up()
        n = len(self.bars)
        out_of_money = False
        if self.fast:
            out_of_money = self._run_fast(n)
        else:
            try:
                for k in range(self.start, n):
                    self._tick(k)
                    if self.progress is not None and (k - self.start) % 4096 == 0:
                        self.progress(k - self.start, n - self.start)
            except OutOfMoney:
                out_of_money = True
        if isinstance(self.exchange, BacktestingPyBroker) and n > self.start and not out_of_money:
            try:
                self._finish(n - 1)
            except OutOfMoney:
                out_of_money = True
                self._book()
        if self.progress is not None:
            self.progress(n - self.start, n - self.start)
        if n > self.start:
            self.mark = self.instrument.round_price(self._lists[4][n - 1])
        position = self.ledger.position
        mark = self.mark if self.mark is not None else position.entry_price
        return RunResult(
            self.bars, self.bot_bars, self.start, self.profile.capital, self.trades, self.fills, self.decisions,
            self.routine, self.segments, self.ledger.equity(mark), self.ledger.wallet,
            (position.qty, position.entry_price) if position.is_open else None,
            self.exchange.ambiguous_bars, self._processed, self.state, self.state_reason, out_of_money)

    def _warm_up(self) -> None:
        """What the engine's restore does with its history: strategy and regime warmed on it."""
        self._processed = 0
        j_start = int(np.searchsorted(self.bot_emitted, self.start, "left"))  # bot candles emitted before start
        if self.fast:
            rs = regime_series(self.bot_bars.high, self.bot_bars.low, self.bot_bars.close)
            self.regime_list, self.regime_atr, self.regime_of = rs.regimes, rs.atr, rs.features
            self.regime_codes = rs.codes
            if j_start:
                self.strategy.update(self.bot_bars.candle(j_start - 1))
                self.strategy.ready()
                self.cycle.regime = rs.regimes[j_start - 1]
        else:
            history = {tf: s.candles(0, int(np.searchsorted(at, self.start, "left"))) for tf, (s, at) in self.series.items()}
            self.tracker = RegimeTracker()
            for candle in history[self.profile.timeframe]:
                self.tracker.update(candle)
            self.strategy.warm_up(history)
            self.cycle.regime = self.tracker.regime
        if self.start:
            last = self.start - 1
            self.now_ts = self._lists[0][last] + timeframe_ms(self.bars.timeframe)
            self.mark = self.instrument.round_price(self._lists[4][last])
            if isinstance(self.exchange, PaperExchange):
                self.exchange.restore({self.bot_id: (self.ledger.wallet, self.profile.leverage)}, [], [],
                                      {self.symbol: self.mark})
        self._segment(self.start)

    def _run_fast(self, n: int) -> bool:
        assert self.mask is not None
        static = np.zeros(n, dtype=bool)
        emitted, mask = self.bot_emitted, self.mask
        codes = self.regime_codes
        changed = np.r_[True, codes[1:] != codes[:-1]] if len(codes) else np.zeros(0, dtype=bool)
        self.cycle_hot = (mask | changed).tolist()
        static[emitted[mask | changed]] = True
        close_ts = self.bars.ts + timeframe_ms(self.bars.timeframe)
        static[close_ts % DAY_MS == 0] = True  # the risk pass starts a trading day
        static[self.start:self.start + 1] = True
        ticks = np.flatnonzero(static[self.start:]) + self.start
        is_emission = np.zeros(n, dtype=bool)
        is_emission[emitted] = True
        self._emission_count = np.cumsum(is_emission)  # bot candles emitted up to and including bar k
        risk = self.profile.risk
        watch_all = bool(risk.daily_loss_pct or risk.max_drawdown_pct)
        watch_bot_bars = self.watch_bot_bars
        cursor = 0
        k = self.start
        last_report = k
        try:
            while k < n:
                self._warming = True
                while k < n and not self.strategy.ready():
                    self._tick(k)  # every bar through the cycle until the strategy has its lookback
                    k += 1
                self._warming = False
                if k >= n:
                    break
                self._tick(k)
                while cursor < len(ticks) and ticks[cursor] <= k:
                    cursor += 1
                nxt = int(ticks[cursor]) if cursor < len(ticks) else n
                position = self.ledger.position
                if self.orders or (position.qty and watch_all) or k + 1 >= nxt:
                    nxt = k + 1
                elif position.qty:
                    nxt = self._next_position_event(k, nxt, position.qty > 0, position.stop_price,
                                                    position.target_price, watch_bot_bars)
                if nxt > k + 1:
                    self._skip(k + 1, nxt)
                k = nxt
                if self.progress is not None and k - last_report >= 8192:
                    last_report = k
                    self.progress(k - self.start, n - self.start)
        except OutOfMoney:
            return True
        return False

    def _next_position_event(self, k: int, limit: int, long: bool, stop: Decimal | None, target: Decimal | None,
                             watch_bot_bars: bool) -> int:
        """The first base bar after k (before `limit`) on which the open position can fill or needs the cycle."""
        if watch_bot_bars:
            at = int(np.searchsorted(self.bot_emitted, k + 1, "left"))
            if at < len(self.bot_emitted):
                limit = min(limit, int(self.bot_emitted[at]))
        if limit <= k + 1:
            return limit
        lo, hi = k + 1, limit
        # Conservative float bounds around the exact Decimal levels: a bar flagged needlessly is only processed.
        s = -math.inf if stop is None else float(stop) * (1 + 1e-9 if long else 1 - 1e-9)
        t = math.inf if target is None else float(target) * (1 - 1e-9 if long else 1 + 1e-9)
        if not long:
            s, t = (math.inf if stop is None else s), (-math.inf if target is None else t)
        _, _, high, low, _, _ = self._lists
        if hi - lo <= 64:  # the usual case: a short stretch, cheaper in plain Python than through numpy
            for i in range(lo, hi):
                if (low[i] <= s or high[i] >= t) if long else (high[i] >= s or low[i] <= t):
                    return i
            return hi
        lows, highs = self.bars.low[lo:hi], self.bars.high[lo:hi]
        hit = ((lows <= s) | (highs >= t)) if long else ((highs >= s) | (lows <= t))
        found = np.flatnonzero(hit)
        return lo + int(found[0]) if len(found) else hi

    def _skip(self, lo: int, hi: int) -> None:
        """Bars lo..hi-1 on which nothing but the routine happens: count it, carry the high-water mark."""
        count = int(self._emission_count[hi - 1] - self._emission_count[lo - 1])
        ledger = self.ledger
        position = ledger.position
        if not position.qty:
            self.routine[DecisionType.NO_SETUP] += count
            return
        self.routine[DecisionType.HOLD] += count
        self.cycle.bars_in_position += count
        closes = self._lists[4][lo:hi]
        best = max(closes) if position.qty > 0 else min(closes)
        qty, entry = float(position.qty), float(position.entry_price)
        if float(ledger.wallet) + qty * (best - entry) >= float(ledger.high_water) * (1 - 1e-9):  # exact check only near
            equity = ledger.equity(self.instrument.round_price(best))
            if equity > ledger.high_water:
                ledger.high_water = equity

    def _candle(self, k: int) -> Candle:
        ts, o, h, lo, c, v = self._lists
        return Candle(self.symbol, self.bars.timeframe, ts[k], o[k], h[k], lo[k], c[k], v[k])

    def _tick(self, k: int) -> None:
        self._processed += 1
        candle = self._candle(k)
        self.exchange.process_candle(candle)
        self._close = candle.close
        self.mark = None  # the close on the tick grid, when something needs it (`_mark`)
        self.now_ts = max(self.now_ts, candle.ts + self._base_ms)
        booked = self._book()
        if booked:
            position = self.ledger.position
            self._books_f = (float(position.qty), float(position.entry_price), float(self.ledger.wallet))
        self._risk_pass()
        for tf, j in self.other_at.get(k, ()):
            self.cycle.on_other_timeframe(self.series[tf][0].candle(j))
        j = int(self.bot_index_at[k])
        if j >= 0:
            if self.fast and not self._warming and not self.cycle_hot[j] and not (
                    self.watch_bot_bars and self.ledger.position.qty):
                self._routine(j)
            else:
                pending: list[PlaceOrder | MoveStop | CancelOrders] = []
                self._cycle(candle if self.same_timeframe else self.bot_bars.candle(j), j, pending)
                booked |= self._send(pending)
        if booked or k == self.start:
            self._segment(k)

    def _routine(self, j: int) -> None:
        """The decision the cycle is known to reach on a quiet candle, counted instead of built."""
        in_position = bool(self.ledger.position.qty)
        self.cycle.bars_in_position = self.cycle.bars_in_position + 1 if in_position else 0
        self.routine[DecisionType.HOLD if in_position else DecisionType.NO_SETUP] += 1

    def _segment(self, k: int) -> None:
        position = self.ledger.position
        seg = Segment(k, float(self.ledger.wallet), float(position.qty), float(position.entry_price))
        self._books_f = (seg.qty, seg.entry, seg.wallet)
        if self.segments and self.segments[-1].start == k:
            self.segments[-1] = seg
        elif not self.segments or (self.segments[-1].wallet, self.segments[-1].qty, self.segments[-1].entry) != (
                seg.wallet, seg.qty, seg.entry):
            self.segments.append(seg)

    def _finish(self, last: int) -> None:
        """backtesting.py's finalize_trades: the last bar is matched once more with the close orders."""
        assert isinstance(self.exchange, BacktestingPyBroker)
        self.exchange.finish(self._candle(last))
        self._book()
        self._segment(last)

    # -- the orchestrator's steps for one bot ----------------------------------------------------------

    def _decide(self, decision: Decision) -> None:
        self.decisions.append(decision)

    def _book(self) -> bool:
        """Book what the exchange reported; True when anything was."""
        listener = self.listener
        if not listener.fills and not listener.updates:
            return False
        fills, listener.fills = listener.fills, []
        updates, listener.updates = listener.updates, []
        for fill in fills:
            self._book_fill(fill)
        for update in updates:
            order = self.orders.get(update.client_order_id)
            if order is None:
                continue
            self.orders.pop(update.client_order_id)
            if update.status in (OrderStatus.CANCELLED, OrderStatus.REJECTED):
                self._decide(Decision(self.bot_id, update.ts, Phase.EXECUTE, DecisionType.ORDER_CANCELLED,
                                      f"{order.request.purpose.value} order {update.status.value.lower()}: {update.reason}",
                                      {"client_order_id": update.client_order_id}))
        return True

    def _book_fill(self, fill: Fill) -> None:
        ledger = self.ledger
        side_before = ledger.position.side
        reason = "reverse" if fill.purpose is OrderPurpose.ENTRY else fill.purpose.value
        trades = ledger.apply_fill(fill, reason)
        self.fills.append(fill)
        order = self.orders.get(fill.client_order_id)
        if order is not None:
            order.filled_qty += fill.qty
            order.avg_fill_price = fill.price
        position = ledger.position
        if position.is_open and order is not None and order.request.purpose is OrderPurpose.ENTRY:
            position.stop_price, position.target_price = order.request.stop_loss, order.request.take_profit
            position.initial_stop = order.request.stop_loss
        if trades:
            self._cooldown(fill.ts)
        decisions = self.decisions
        for trade in trades:  # a trade's exit_ts is its fill's ts
            self.trades.append(trade)
            decisions.append(Deferred(DecisionType.TRADE_EXITED, _trade_exited, (self.bot_id, trade)))
        if position.qty and (position.side is not side_before or not trades):
            mark = self._mark() if self._close == self._close else fill.price
            decisions.append(Deferred(DecisionType.TRADE_ENTERED, _trade_entered,
                                      (self.bot_id, fill, replace(position), mark)))

    def _cooldown(self, ts: int) -> None:
        ledger, risk = self.ledger, self.profile.risk
        if not risk.cooldown_losses or ledger.loss_streak < risk.cooldown_losses:
            return
        streak, ledger.loss_streak = ledger.loss_streak, 0
        ledger.cooldown_until = ts + risk.cooldown_candles * self.profile.timeframe_ms
        until = datetime.fromtimestamp(ledger.cooldown_until / 1000, UTC).strftime("%Y-%m-%d %H:%M UTC")
        self._decide(Decision(self.bot_id, ts, Phase.FILL, DecisionType.COOLDOWN,
                              f"{streak} consecutive losses: no entries for {risk.cooldown_candles} candles (until {until})",
                              {"losses": streak, "until": ledger.cooldown_until}))

    def _set_state(self, to: BotState, command: str, source: str, reason: str) -> None:
        before = self.state
        self.state, self.state_reason = to, reason
        self._decide(Decision(self.bot_id, self.now_ts, Phase.CONTROL, DecisionType.STATE_CHANGED,
                              f"{before.value} -> {to.value} by {source}{': ' + reason if reason else ''}",
                              {"command": command, "source": source}))

    def _mark(self) -> Decimal:
        if self.mark is None:
            self.mark = self.instrument.round_price(self._close)
        return self.mark

    def _equity(self) -> Decimal:
        """The bot's equity at this tick's mark, as the orchestrator's risk pass computes it."""
        if self.equity is None:
            ledger = self.ledger
            self.equity = ledger.equity(self._mark()) if ledger.position.qty else ledger.wallet
        return self.equity

    def _risk_pass(self) -> None:
        now = self.now_ts
        day = now - now % DAY_MS
        ledger = self.ledger
        self.equity = None
        qty = ledger.position.qty
        if qty:
            # Exactly only where it can matter: a float bound first (a tick of slack for the mark's rounding).
            q, entry, wallet = self._books_f
            near = wallet + q * (self._close - entry) + abs(q) * self._tick_f >= self._high_water_f
            if near and self._equity() > ledger.high_water:
                ledger.high_water = self.equity  # type: ignore[assignment]
                self._high_water_f = float(ledger.high_water) * (1 - 1e-12)
        elif ledger.wallet > ledger.high_water:
            ledger.high_water = ledger.wallet
            self._high_water_f = float(ledger.high_water) * (1 - 1e-12)
        if ledger.day_start != day:
            equity = self._equity()
            first = ledger.day_start == 0
            ledger.day_start, ledger.day_start_equity = day, equity
            if not first and self.state is BotState.PAUSED:
                risk = self.profile.risk
                gate = self.state_reason.partition(":")[0]
                if (gate == "daily_loss" and risk.daily_loss_resume == "next_day") or (
                        gate == "drawdown" and risk.drawdown_resume == "next_day"):
                    ledger.high_water = equity
                    self._high_water_f = float(equity) * (1 - 1e-12)
                    date = datetime.fromtimestamp(day / 1000, UTC).date().isoformat()
                    self._set_state(BotState.RUNNING, "resume", "risk:new_day", f"trading day {date} began: {gate} limit reset")
        limits = self.profile.limits
        if self.state is BotState.RUNNING and (limits.daily_loss is not None or limits.drawdown is not None):
            breach = loss_breach(self._equity(), ledger.day_start_equity, ledger.high_water, limits)
            if breach is not None:
                gate, reason = breach
                self._set_state(BotState.PAUSED, "pause", f"risk:{gate}", f"{gate}: {reason}")

    def _cycle(self, candle: Candle, j: int, pending: list[PlaceOrder | MoveStop | CancelOrders]) -> None:
        if self.tracker is not None:
            self.tracker.update(candle)
            regime, features, atr = self.tracker.regime, self.tracker.features_dict, self.tracker.atr
        else:
            regime, atr = self.regime_list[j], self.regime_atr[j]
            # The features only go into a REGIME_CHANGED decision's details: built when one is due.
            features = self.regime_of(j) if regime is not self.cycle.regime else None
        ledger = self.ledger
        orders = self.orders.values()
        equity = self._equity()
        ctx = CycleContext(
            self.now_ts, self.state, self.state_reason, ledger.position, equity, equity, regime, features,
            bool(orders) and any(o.request.purpose is OrderPurpose.ENTRY for o in orders),
            bool(orders) and any(o.request.purpose in (OrderPurpose.EXIT, OrderPurpose.FLATTEN) for o in orders),
            self.next_seq, ledger.day_start_equity, ledger.high_water, ledger.cooldown_until, None, atr)
        result = self.cycle.on_candle(candle, ctx)
        self.decisions.extend(result.decisions)
        for intent in result.intents:
            if isinstance(intent, PlaceOrder):
                order = Order(intent.request, OrderStatus.PENDING_SUBMIT, self.now_ts, self.now_ts)
                self.orders[order.client_order_id] = order
                self.next_seq = max(self.next_seq, intent.seq + 1)
            elif isinstance(intent, MoveStop):
                ledger.position.stop_price = intent.stop
            pending.append(intent)

    def _send(self, pending: Sequence[PlaceOrder | MoveStop | CancelOrders]) -> bool:
        """Carry out the cycle's intents; True when the exchange reported fills or order updates."""
        if not pending:
            return False
        for intent in pending:
            if isinstance(intent, CancelOrders):
                for cid in [c for c, o in self.orders.items() if o.status is OrderStatus.PENDING_SUBMIT]:
                    self.orders.pop(cid)
                self.exchange.cancel_symbol(self.bot_id, self.symbol)
            elif isinstance(intent, MoveStop):
                if self.ledger.position.is_open:
                    self.exchange.set_stop(intent.bot_id, intent.symbol, intent.stop, intent.target)
            else:
                self._place(intent)
        return self._book()

    def _place(self, intent: PlaceOrder) -> None:
        request = intent.request
        order = self.orders.get(request.client_order_id)
        if order is None:
            return
        ack = self.exchange.submit(request)
        if ack.status is OrderStatus.REJECTED:
            self.orders.pop(request.client_order_id)
            self._decide(Decision(self.bot_id, self.now_ts, Phase.EXECUTE, DecisionType.ORDER_REJECTED,
                                  f"{request.purpose.value} order rejected: {ack.reason}",
                                  {"client_order_id": request.client_order_id}))
            return
        order.status, order.updated_ts = OrderStatus.NEW, self.now_ts
        self.decisions.append(Deferred(DecisionType.ORDER_PLACED, _order_placed, (self.bot_id, self.now_ts, request)))


def run_backtest(bars: Bars, profile: BotProfile, make_strategy: Callable[[], Strategy], fills: FillSettings,
                 start: int = 0, fast: bool = True, progress: Progress | None = None) -> tuple[RunResult, RunResult | None]:
    """The run, and with the paper model, when it met ambiguous bars, the same run resolving them
    to the target (the optimistic bound)."""
    result = Backtest(bars, profile, make_strategy(), fills, start, fast, progress).run()
    optimistic = None
    if fills.model == "paper" and result.ambiguous_bars:
        other = FillSettings(fills.model, fills.taker_fee, fills.maker_fee, fills.slippage_bps, optimistic=True)
        optimistic = Backtest(bars, profile, make_strategy(), other, start, fast).run()
    return result, optimistic


