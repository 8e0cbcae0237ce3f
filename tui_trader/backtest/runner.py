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
from collections.abc import Callable
from decimal import Decimal

import numpy as np

from tui_trader.backtest.btpy import BacktestingPyBroker, OutOfMoney
from tui_trader.backtest.regimes import REGIMES, RegimeSeries, regime_series
from tui_trader.backtest.results import RunResult
from tui_trader.backtest.series import FIELDS, Bars, aggregate
from tui_trader.backtest.session import DAY_MS, BotSession, FillSettings
from tui_trader.engine.cycle import BotProfile, regime_decision
from tui_trader.engine.orchestrator import collector_paused
from tui_trader.exchange.paper import PaperExchange
from tui_trader.model import ZERO, Candle, Decision, DecisionType, Regime, timeframe_ms
from tui_trader.regime import RegimeTracker
from tui_trader.strategy import Strategy

Progress = Callable[[int, int], None]
Tick = Callable[[int, memoryview | None], None]  # (base bar, the fast path's hot candles or None)
_NO_SETUP, _HOLD, _REGIME_CHANGED = DecisionType.NO_SETUP, DecisionType.HOLD, DecisionType.REGIME_CHANGED


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
        self._last_books: tuple[Decimal, ...] = ()  # the ledger values last recorded in `books`
        # The fast path's routine decisions (NO_SETUP, HOLD) counted in a list: a Counter's item update costs
        # three times a list's, and it runs on nearly every bar processed. Added to `routine` at the end.
        self._tally = [0, 0]
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
        risk = profile.risk
        self.watch_bot_bars = bool(risk.breakeven_r or risk.trail_atr_mult or risk.time_stop_bars)
        self.tracker: RegimeTracker | None = None
        self.regimes: RegimeSeries | None = None
        # The columns as memoryviews: an item reads as a Python int or float, and nothing is converted up front.
        self._lists = tuple(memoryview(np.ascontiguousarray(getattr(bars, f), np.int64 if f == "ts" else np.float64))
                            for f in FIELDS)
        # The backtesting-py model matches plain numbers; the paper exchange takes candles.
        self._match = self.exchange.process_bar if isinstance(self.exchange, BacktestingPyBroker) else None

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
        tick = self._ticker()
        out_of_money = False
        if self.fast:
            out_of_money = self._run_fast(n, tick)
        else:
            try:
                for k in range(self.start, n):
                    tick(k, None)
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
            self.routine, self.books, self.ledger.equity(mark), self.ledger.wallet,
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
        self._record_books(self.start)

    def _run_fast(self, n: int, tick: Tick) -> bool:
        assert self.mask is not None and self.regimes is not None
        static = np.zeros(n, dtype=bool)
        emitted, mask = self.bot_emitted, self.mask
        codes = self.regimes.codes
        changed = np.r_[True, codes[1:] != codes[:-1]] if len(codes) else np.zeros(0, dtype=bool)
        hot = memoryview(np.ascontiguousarray(mask, bool))  # candles on which the cycle can do more than its routine
        static[emitted[mask]] = True
        # A regime change on a quiet candle is only a decision: the bars skipped record it (a tick on the bar, for
        # its exchange or books, decides it there).
        quiet_changes = emitted[changed & ~mask].tolist()
        if self.watch_limits:
            close_ts = self.bars.ts + timeframe_ms(self.bars.timeframe)
            static[close_ts % DAY_MS == 0] = True  # the risk pass starts a trading day
        static[self.start:self.start + 1] = True
        ticks = (np.flatnonzero(static[self.start:]) + self.start).tolist()
        ticks.append(n)  # a sentinel: the search for the next tick needs no bound check
        watch_all = self.watch_limits
        ledger, orders, ready, progress = self.ledger, self.orders, self.strategy.ready, self.progress
        skip, next_event = self._skipper(quiet_changes), self._event_finder()
        k = last_report = self.start
        cursor = 0
        try:
            while k < n and not ready():  # every bar through the cycle until the strategy has its lookback
                tick(k, None)
                k += 1
            while k < n:  # (a strategy that is ready stays ready: `ready` is not asked again)
                tick(k, hot)
                if orders:  # a working order: the exchange can fill it on the next bar
                    k += 1
                    continue
                while ticks[cursor] <= k:  # k only grows: the cursor moves forward a step or two at a time
                    cursor += 1
                nxt = ticks[cursor]
                if nxt > k + 1:
                    if ledger.position.qty:
                        nxt = k + 1 if watch_all else next_event(k, nxt)
                    if nxt > k + 1:
                        skip(k + 1, nxt)
                k = nxt
                if progress is not None and k - last_report >= 8192:
                    last_report = k
                    progress(k - self.start, n - self.start)
        except OutOfMoney:
            return True
        finally:
            for kind, count in zip((_NO_SETUP, _HOLD), self._tally, strict=True):
                if count:
                    self.routine[kind] += count
        return False

    def _event_finder(self) -> Callable[[int, int], int]:
        """`next_event(k, limit)`: the first base bar after k (before `limit`) on which the open position can
        fill or needs the cycle."""
        _, _, high, low, _, _ = self._lists
        highs, lows, position_of = self.bars.high, self.bars.low, self.ledger
        emitted = self.bot_emitted if self.watch_bot_bars else None
        # The backtesting-py model's own float levels (the paper exchange's are the position's Decimals).
        levels_of = self.exchange.levels if isinstance(self.exchange, BacktestingPyBroker) else None

        def next_event(k: int, limit: int) -> int:
            if emitted is not None:
                at = int(np.searchsorted(emitted, k + 1, "left"))
                if at < len(emitted):
                    limit = min(limit, int(emitted[at]))
            lo = k + 1
            if limit <= lo:
                return limit
            position = position_of.position
            long = position.qty > ZERO
            levels = levels_of() if levels_of is not None else None
            if levels is not None:
                stop, target = levels
            else:
                stop_d, target_d = position.stop_price, position.target_price
                stop = None if stop_d is None else float(stop_d)
                target = None if target_d is None else float(target_d)
            # Conservative float bounds around the exact Decimal levels: a bar flagged needlessly is only processed.
            if long:
                s = -math.inf if stop is None else stop * (1 + 1e-9)
                t = math.inf if target is None else target * (1 - 1e-9)
            else:
                s = math.inf if stop is None else stop * (1 - 1e-9)
                t = -math.inf if target is None else target * (1 + 1e-9)
            if limit - lo <= 64:  # the usual case: a short stretch, cheaper in plain Python than through numpy
                if long:
                    for i in range(lo, limit):
                        if low[i] <= s or high[i] >= t:
                            return i
                else:
                    for i in range(lo, limit):
                        if high[i] >= s or low[i] <= t:
                            return i
                return limit
            lows_, highs_ = lows[lo:limit], highs[lo:limit]
            hit = ((lows_ <= s) | (highs_ >= t)) if long else ((highs_ >= s) | (lows_ <= t))
            found = np.flatnonzero(hit)
            return lo + int(found[0]) if len(found) else limit

        return next_event

    def _skipper(self, changes: list[int]) -> Callable[[int, int], None]:
        """`skip(lo, hi)`: bars lo..hi-1 on which nothing but the routine and regime changes (`changes`: the
        base bars that emit one on a quiet candle, in order) happen: record the changes, count the routine,
        carry the high-water mark."""
        ledger, tally, cycle, books = self.ledger, self._tally, self.cycle, self.books
        watch_limits, emission_count, closes = self.watch_limits, None, self._lists[4]
        if not self.same_timeframe:  # bot candles emitted up to and including base bar k
            emission_count = memoryview(np.bincount(self.bot_emitted, minlength=len(self.bars)).cumsum())
        changes.append(len(self.bars))  # a sentinel: the search needs no bound check
        next_change = 0  # the cursor into `changes`: skipped ranges only move forward
        ts_, base_ms, bot_index_at, codes = self._lists[0], self._base_ms, self._bot_index_at, self._regime_codes
        regime_changed = self._regime_changed

        def skip(lo: int, hi: int) -> None:
            nonlocal next_change
            if changes[next_change] < hi:
                while changes[next_change] < lo:  # decided by a tick on the bar
                    next_change += 1
                while changes[next_change] < hi:
                    k = changes[next_change]
                    j = bot_index_at[k]
                    regime = REGIMES[codes[j]]
                    if regime is not cycle.regime:
                        regime_changed(j, ts_[k] + base_ms, regime)
                    next_change += 1
            count = hi - lo if emission_count is None else emission_count[hi - 1] - emission_count[lo - 1]
            position = ledger.position
            if not position.qty:
                tally[0] += count
                return
            tally[1] += count
            cycle.bars_in_position += count
            if not watch_limits:
                return
            best = max(closes[lo:hi]) if position.qty > 0 else min(closes[lo:hi])
            qty, entry, wallet = books.qty[-1], books.entry[-1], books.wallet[-1]
            if wallet + qty * (best - entry) >= float(ledger.high_water) * (1 - 1e-9):  # exact check only near
                equity = ledger.equity(self.instrument.round_price(best))
                if equity > ledger.high_water:
                    ledger.high_water = equity

        return skip

    def _candle(self, k: int) -> Candle:
        ts, o, h, lo, c, v = self._lists
        return Candle(self.symbol, self.bars.timeframe, ts[k], o[k], h[k], lo[k], c[k], v[k])

    def _ticker(self) -> Tick:
        """`tick(k, hot)`: base bar k in the orchestrator's order: the exchange matches it, its events are
        booked, the risk pass runs, and the cycle on the bot's candle that closes with it, or its routine
        decision counted where `hot` says the cycle can reach nothing else. A closure over the run's
        constants: they are bound once per run, not loaded from the instance on every bar."""
        ts_, open_, high_, low_, close_, volume_ = self._lists
        symbol, timeframe, base_ms = self.symbol, self.bars.timeframe, self._base_ms
        match, process_candle = self._match, self.exchange.process_candle
        listener, book, record_books = self.listener, self._book, self._record_books
        risk_pass = self._risk_pass if self.watch_limits else None
        other_at, series, cycle, run_cycle = self.other_at, self.series, self.cycle, self._run_cycle
        bot_index_at, bot_candle = self._bot_index_at, None if self.same_timeframe else self.bot_bars.candle
        ledger, tally, regime_changed = self.ledger, self._tally, self._regime_changed
        tracker, regimes, watch_bot_bars = self.tracker, self.regimes, self.watch_bot_bars
        codes, atrs = (self._regime_codes, self._regime_atr) if regimes is not None else (memoryview(b""),) * 2

        def tick(k: int, hot: memoryview | None) -> None:
            self._processed += 1
            ts, close = ts_[k], close_[k]
            close_ts = ts + base_ms
            candle = None
            if match is not None:
                match(ts, close_ts, open_[k], high_[k], low_[k], close)
            else:
                candle = Candle(symbol, timeframe, ts, open_[k], high_[k], low_[k], close, volume_[k])
                process_candle(candle)
            self._close = close
            self.mark = self.equity = None  # the close on the tick grid and the equity at it, when needed
            if close_ts > self.now_ts:
                self.now_ts = close_ts
            if (listener.fills or listener.updates) and book():
                record_books(k)  # now: the risk pass and the cycle's valuation read the books' floats
            if risk_pass is not None:
                risk_pass()
            if other_at:
                for tf, i in other_at.get(k, ()):
                    cycle.on_other_timeframe(series[tf][0].candle(i))
            j = bot_index_at[k]
            if j >= 0:
                if hot is not None and not hot[j] and not (watch_bot_bars and ledger.position.qty):
                    # The decision the cycle is known to reach on a quiet candle, counted instead of built.
                    regime = REGIMES[codes[j]]
                    if regime is not cycle.regime:
                        regime_changed(j, close_ts, regime)
                    if ledger.position.qty:
                        cycle.bars_in_position += 1
                        tally[1] += 1
                    else:
                        cycle.bars_in_position = 0
                        tally[0] += 1
                else:
                    if bot_candle is None:  # the bot's candle is this bar
                        if candle is None:
                            candle = Candle(symbol, timeframe, ts, open_[k], high_[k], low_[k], close, volume_[k])
                    else:
                        candle = bot_candle(j)
                    if tracker is not None:
                        tracker.update(candle)
                        regime, features, atr = tracker.regime, tracker.features_dict, tracker.atr
                    else:
                        regime, atr = REGIMES[codes[j]], atrs[j]
                        # The features only go into a REGIME_CHANGED decision's details: built when one is due.
                        features = (regimes.features(j)  # type: ignore[union-attr]
                                    if regime is not cycle.regime else None)
                    if run_cycle(candle, regime, features, atr, hot is not None and bool(hot[j])):
                        record_books(k)

        return tick

    def _regime_changed(self, j: int, ts: int, regime: Regime) -> None:
        """A regime change on bot candle j where the cycle is known to reach only its routine decision: the
        cycle's phase 2 decision, its details built when it is read."""
        cycle = self.cycle
        self.decisions.append((_REGIME_CHANGED, _regime_decision, self.bot_id, ts, cycle.regime, regime, self.regimes, j))
        cycle.regime = regime

    def _record_books(self, k: int) -> None:
        """The books from bar k on (the equity curve's), when they changed."""
        ledger = self.ledger
        position = ledger.position
        books = (ledger.realized_pnl, ledger.fees, position.qty, position.entry_price)
        starts = self.books.start
        if starts and starts[-1] != k:
            # Booking replaces a value, never changes one: the same objects are the same books.
            last = self._last_books
            if last[0] is books[0] and last[1] is books[1] and last[2] is books[2] and last[3] is books[3]:
                return
        self._last_books = books
        # As floats now, while the values are fresh in memory (read back later they are scattered).
        wallet = float(ledger.capital + books[0] - books[1])
        qty, entry = (float(books[2]), float(books[3])) if books[2] else (0.0, 0.0)
        self.books.record(k, wallet, qty, entry)

    def _finish(self, last: int) -> None:
        """backtesting.py's finalize_trades: the last bar is matched once more with the close orders."""
        assert isinstance(self.exchange, BacktestingPyBroker)
        self.exchange.finish(self._candle(last))
        self._book()
        self._record_books(last)


def _regime_decision(bot_id: int, ts: int, before: Regime, after: Regime, regimes: RegimeSeries, j: int) -> Decision:
    return regime_decision(bot_id, ts, before, after, regimes.features(j))


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


