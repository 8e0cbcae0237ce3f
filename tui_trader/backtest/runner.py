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
from bisect import bisect_right
from collections.abc import Callable
from decimal import Decimal

import numpy as np

from tui_trader.backtest.btpy import BacktestingPyBroker, OutOfMoney
from tui_trader.backtest.regimes import REGIMES, RegimeSeries, regime_series
from tui_trader.backtest.results import RunResult, Segment
from tui_trader.backtest.series import FIELDS, Bars, aggregate
from tui_trader.backtest.session import DAY_MS, BotSession, FillSettings
from tui_trader.engine.cycle import BotProfile
from tui_trader.engine.orchestrator import collector_paused
from tui_trader.exchange.paper import PaperExchange
from tui_trader.model import Candle, DecisionType, timeframe_ms
from tui_trader.regime import RegimeTracker
from tui_trader.strategy import Strategy

Progress = Callable[[int, int], None]
_NO_SETUP, _HOLD = DecisionType.NO_SETUP, DecisionType.HOLD


class Backtest(BotSession):
    """One run. `bars` are the base bars (the finest data); trading starts at index `start`,
    the bars before it warm up the strategy and the regime as the live engine's history does."""

    def __init__(self, bars: Bars, profile: BotProfile, strategy: Strategy, fills: FillSettings, start: int = 0,
                 fast: bool = True, progress: Progress | None = None) -> None:
        if profile.timeframe_ms % timeframe_ms(bars.timeframe):
            raise ValueError(f"a {profile.timeframe} bot cannot run on {bars.timeframe} bars")
        if strategy.timeframes()[1:] and fast:
            fast = False  # several timeframes: every bar (the batch interface covers one)
        super().__init__(profile, strategy, fills)
        self.bars = bars
        self._base_ms = timeframe_ms(bars.timeframe)
        self.start = start
        self.progress = progress
        # The bot's timeframes, built from the base bars as the live aggregator builds them.
        self.series: dict[str, tuple[Bars, np.ndarray]] = {tf: aggregate(bars, tf) for tf in strategy.timeframes()}
        self.bot_bars, emitted = self.series[profile.timeframe]
        self.same_timeframe = self.bot_bars is bars  # the bot's candles are the base bars themselves
        self.bot_emitted = emitted
        bot_index_at = np.full(len(bars), -1, dtype=np.int64)  # base bar -> the bot candle it emits
        bot_index_at[emitted] = np.arange(len(emitted))
        self._bot_index_at = memoryview(bot_index_at)
        # Candles of the other timeframes the strategy reads, by the base bar that emits them, highest first:
        # the orchestrator updates them before it runs the bot's cycle.
        self.other_at: dict[int, list[tuple[str, int]]] = {}
        for tf in sorted(strategy.timeframes()[1:], key=timeframe_ms, reverse=True):
            for j, k in enumerate(self.series[tf][1].tolist()):
                self.other_at.setdefault(k, []).append((tf, j))
        self.mask = strategy.precompute(self.bot_bars.columns()) if fast else None
        self.fast = self.mask is not None
        self.cycle_hot: list[bool] = []  # fast path: bot candles on which the cycle can do more than its routine
        self._hot: list[bool] | None = None  # cycle_hot while the fast path may count routine candles; else None
        risk = profile.risk
        self.watch_bot_bars = bool(risk.breakeven_r or risk.trail_atr_mult or risk.time_stop_bars)
        self.tracker: RegimeTracker | None = None
        self.regimes: RegimeSeries | None = None
        # The columns as memoryviews: an item reads as a Python int or float, and nothing is converted up front.
        self._lists = tuple(memoryview(np.ascontiguousarray(getattr(bars, f), np.int64 if f == "ts" else np.float64))
                            for f in FIELDS)
        # The backtesting-py model matches plain numbers; the paper exchange takes candles.
        self._match = self.exchange.process_bar if isinstance(self.exchange, BacktestingPyBroker) else None
        self._levels: tuple[object, ...] = (None, None, None, 0.0, 0.0)  # stop, target, side and their float bounds

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
            rs = self.regimes = regime_series(self.bot_bars.high, self.bot_bars.low, self.bot_bars.close)
            self._regime_codes, self._regime_atr = memoryview(rs.codes), memoryview(rs.atr)
            if j_start:
                self.strategy.update(self.bot_bars.candle(j_start - 1))
                self.strategy.ready()
                self.cycle.regime = REGIMES[self._regime_codes[j_start - 1]]
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
        assert self.mask is not None and self.regimes is not None
        static = np.zeros(n, dtype=bool)
        emitted, mask = self.bot_emitted, self.mask
        codes = self.regimes.codes
        changed = np.r_[True, codes[1:] != codes[:-1]] if len(codes) else np.zeros(0, dtype=bool)
        self.cycle_hot = mask.tolist()
        static[emitted[mask | changed]] = True  # a regime change is decided on its candle (the rest counted)
        if self.watch_limits:
            close_ts = self.bars.ts + timeframe_ms(self.bars.timeframe)
            static[close_ts % DAY_MS == 0] = True  # the risk pass starts a trading day
        static[self.start:self.start + 1] = True
        ticks = (np.flatnonzero(static[self.start:]) + self.start).tolist()
        n_ticks = len(ticks)
        if not self.same_timeframe:
            is_emission = np.zeros(n, dtype=bool)
            is_emission[emitted] = True
            self._emission_count = memoryview(np.cumsum(is_emission))  # bot candles emitted up to and including bar k
        watch_all = self.watch_limits
        ledger, orders, tick, skip, strategy = self.ledger, self.orders, self._tick, self._skip, self.strategy
        next_event = self._next_position_event
        k = self.start
        cursor = 0
        last_report = k
        try:
            while k < n:
                if not strategy.ready():
                    self._hot = None
                    while k < n and not strategy.ready():
                        tick(k)  # every bar through the cycle until the strategy has its lookback
                        k += 1
                    if k >= n:
                        break
                self._hot = self.cycle_hot
                tick(k)
                if orders:  # a working order: the exchange can fill it on the next bar
                    k += 1
                    continue
                cursor = bisect_right(ticks, k, cursor)
                nxt = ticks[cursor] if cursor < n_ticks else n
                if nxt > k + 1:
                    if ledger.position.qty:
                        nxt = k + 1 if watch_all else next_event(k, nxt)
                    if nxt > k + 1:
                        skip(k + 1, nxt)
                k = nxt
                if self.progress is not None and k - last_report >= 8192:
                    last_report = k
                    self.progress(k - self.start, n - self.start)
        except OutOfMoney:
            return True
        return False

    def _next_position_event(self, k: int, limit: int) -> int:
        """The first base bar after k (before `limit`) on which the open position can fill or needs the cycle."""
        if self.watch_bot_bars:
            at = int(np.searchsorted(self.bot_emitted, k + 1, "left"))
            if at < len(self.bot_emitted):
                limit = min(limit, int(self.bot_emitted[at]))
        if limit <= k + 1:
            return limit
        lo, hi = k + 1, limit
        position = self.ledger.position
        long = position.qty > 0
        stop, target = position.stop_price, position.target_price
        levels = self._levels
        if levels[0] is not stop or levels[1] is not target or levels[2] is not long:
            # Conservative float bounds around the exact Decimal levels: a bar flagged needlessly is only processed.
            s = -math.inf if stop is None else float(stop) * (1 + 1e-9 if long else 1 - 1e-9)
            t = math.inf if target is None else float(target) * (1 - 1e-9 if long else 1 + 1e-9)
            if not long:
                s, t = (math.inf if stop is None else s), (-math.inf if target is None else t)
            levels = self._levels = (stop, target, long, s, t)
        s, t = levels[3], levels[4]
        _, _, high, low, _, _ = self._lists
        if hi - lo <= 64:  # the usual case: a short stretch, cheaper in plain Python than through numpy
            if long:
                for i in range(lo, hi):
                    if low[i] <= s or high[i] >= t:
                        return i
            else:
                for i in range(lo, hi):
                    if high[i] >= s or low[i] <= t:
                        return i
            return hi
        lows, highs = self.bars.low[lo:hi], self.bars.high[lo:hi]
        hit = ((lows <= s) | (highs >= t)) if long else ((highs >= s) | (lows <= t))
        found = np.flatnonzero(hit)
        return lo + int(found[0]) if len(found) else hi

    def _skip(self, lo: int, hi: int) -> None:
        """Bars lo..hi-1 on which nothing but the routine happens: count it, carry the high-water mark."""
        count = hi - lo if self.same_timeframe else int(self._emission_count[hi - 1] - self._emission_count[lo - 1])
        ledger = self.ledger
        position = ledger.position
        if not position.qty:
            self.routine[_NO_SETUP] += count
            return
        self.routine[_HOLD] += count
        self.cycle.bars_in_position += count
        if not self.watch_limits:
            return
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
        """Base bar k in the orchestrator's order: the exchange matches it, its events are booked, the
        risk pass runs, and the cycle on the bot's candle that closes with it (or its routine, counted)."""
        self._processed += 1
        ts_, open_, high_, low_, close_, _ = self._lists
        ts, close = ts_[k], close_[k]
        close_ts = ts + self._base_ms
        match = self._match
        if match is not None:
            candle = None
            match(ts, close_ts, open_[k], high_[k], low_[k], close)
        else:
            candle = self._candle(k)
            self.exchange.process_candle(candle)
        self._close = close
        self.mark = self.equity = None  # the close on the tick grid and the equity at it, when needed
        if close_ts > self.now_ts:
            self.now_ts = close_ts
        listener = self.listener
        booked = self._book() if listener.fills or listener.updates else False
        if self.watch_limits:
            self._risk_pass()
        if self.other_at:
            for tf, i in self.other_at.get(k, ()):
                self.cycle.on_other_timeframe(self.series[tf][0].candle(i))
        j = self._bot_index_at[k]
        if j >= 0:
            hot = self._hot
            if hot is not None and not hot[j] and not (self.watch_bot_bars and self.ledger.position.qty):
                # The decision the cycle is known to reach on a quiet candle, counted instead of built.
                cycle = self.cycle
                regime = REGIMES[self._regime_codes[j]]
                if regime is not cycle.regime:
                    cycle.regime_changed(regime, self.regimes.features(j), self._out, close_ts)  # type: ignore[union-attr]
                if self.ledger.position.qty:
                    cycle.bars_in_position += 1
                    self.routine[_HOLD] += 1
                else:
                    cycle.bars_in_position = 0
                    self.routine[_NO_SETUP] += 1
            else:
                if self.same_timeframe:
                    self._cycle(candle or self._candle(k), j, self._mark())
                else:
                    self._cycle(self.bot_bars.candle(j), j, None)
                if self._intents and self._send():
                    booked = True
        if booked or k == self.start:
            self._segment(k)

    def _segment(self, k: int) -> None:
        """The books from bar k on (the equity curve's), when they changed."""
        ledger = self.ledger
        position = ledger.position
        segment = Segment(k, ledger.realized_pnl, ledger.fees, position.qty, position.entry_price)
        if self.watch_limits:
            qty = float(position.qty)
            self._books_f = (qty, float(position.entry_price) if qty else 0.0, float(ledger.wallet))
        segments = self.segments
        if segments:
            last = segments[-1]
            if last.start == k:
                segments[-1] = segment
                return
            # Booking replaces a value, never changes one: the same objects are the same books.
            if (last.realized_pnl is segment.realized_pnl and last.fees is segment.fees and last.qty is segment.qty
                    and last.entry is segment.entry):
                return
        segments.append(segment)

    def _finish(self, last: int) -> None:
        """backtesting.py's finalize_trades: the last bar is matched once more with the close orders."""
        assert isinstance(self.exchange, BacktestingPyBroker)
        self.exchange.finish(self._candle(last))
        self._book()
        self._segment(last)

    # -- the orchestrator's steps for one bot ----------------------------------------------------------

    def _cycle(self, candle: Candle, j: int, close: Decimal | None) -> None:
        if self.tracker is not None:
            self.tracker.update(candle)
            regime, features, atr = self.tracker.regime, self.tracker.features_dict, self.tracker.atr
        else:
            regime, atr = REGIMES[self._regime_codes[j]], self._regime_atr[j]
            # The features only go into a REGIME_CHANGED decision's details: built when one is due.
            features = self.regimes.features(j) if regime is not self.cycle.regime else None  # type: ignore[union-attr]
        self._run_cycle(candle, regime, features, atr, close)


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


