"""The risk engine's automatic actions and its gauges.

Once per base tick, before any bot's cycle runs, `risk_pass` marks every bot to the
tick's prices and then, in this order: starts a new trading day (UTC) where one
began, resuming bots that their daily loss (or drawdown, if so configured) had
paused; pauses a RUNNING bot whose loss reached its daily limit or its maximum
drawdown; and checks the portfolio stop. A tripped portfolio stop sets the
portfolio FLATTENING and stages every bot's flatten before the cycles run, so no
entry can be placed in that tick or after. Every one of these is a control event
naming its cause (source `risk:<gate>`).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal

from tui_trader.engine.control import Control
from tui_trader.engine.cycle import Intent, flatten_intents
from tui_trader.engine.runtime import BotRuntime
from tui_trader.model import ZERO, BotState
from tui_trader.risk import Exposure, loss_breach
from tui_trader.store import Batch

DAY_MS = 86_400_000
_RUNNING, _PAUSED = BotState.RUNNING, BotState.PAUSED
PORTFOLIO_STOP = "portfolio_stop"


@dataclass(frozen=True, slots=True)
class Gauge:
    """A value against its limit (None: no limit set); `used` is value / limit, 0..1 and beyond."""

    value: Decimal
    limit: Decimal | None

    @property
    def used(self) -> float | None:
        return float(self.value / self.limit) if self.limit else None


@dataclass(frozen=True, slots=True)
class BotRisk:
    name: str
    state: BotState
    equity: Decimal
    exposure: Gauge  # position notional at the mark, against the bot's cap
    drawdown: Gauge  # below the high-water equity, against the max drawdown
    daily_loss: Gauge  # below the day's starting equity, against the daily limit
    cooldown_until: int  # ms; 0 when none


@dataclass(frozen=True, slots=True)
class PortfolioRisk:
    state: BotState
    reason: str
    capital: Decimal
    equity: Decimal
    high_water: Decimal
    exposure: Gauge  # gross notional against the cap
    drawdown: Gauge  # below the high-water mark, against the portfolio stop
    stop_distance: Decimal  # how much more equity can be lost before the portfolio stop trips
    open_positions: int
    bots: tuple[BotRisk, ...]


class RiskControl(Control):
    marks: dict[str, Decimal]

    def __init__(self) -> None:
        super().__init__()
        self.portfolio_high_pnl = ZERO  # high-water mark of the portfolio's total P&L (capital changes do not move it)
        self.total_capital = ZERO
        self._stop_fraction = ZERO
        self._gross_cap = ZERO
        self._symbol_cap = ZERO

    def index_bots(self) -> None:
        super().index_bots()
        settings = self.config.portfolio  # type: ignore[attr-defined]
        self.total_capital = sum((b.ledger.capital for b in self.bots.values()), ZERO)
        self._stop_fraction = Decimal(repr(settings.stop_pct)) / 100
        self._gross_cap = self.total_capital * Decimal(repr(settings.max_exposure_pct)) / 100
        self._symbol_cap = self.total_capital * Decimal(repr(settings.max_symbol_net_pct)) / 100

    # -- per tick ------------------------------------------------------------------------------------

    def risk_pass(self, batch: Batch, pending: list[tuple[BotRuntime, Intent]]) -> Exposure:
        now = self.now_ts
        day = now - now % DAY_MS
        exposure = Exposure(self.total_capital, self._gross_cap, self._symbol_cap)
        total_pnl = ZERO
        marks = self.marks
        for bot in self.bots.values():
            ledger = bot.ledger
            position = ledger.position
            if position.qty:
                mark = marks.get(position.symbol, position.entry_price)
                equity = ledger.equity(mark)
                exposure.add(position.symbol, position.qty * mark, True)
            else:
                equity = ledger.wallet
            bot.equity = equity
            total_pnl += equity - ledger.capital
            if equity > ledger.high_water:
                ledger.high_water = equity
                batch.ledgers.append((ledger.record(), now))
            if ledger.day_start != day:
                self._new_day(bot, day, batch)
            if bot.state is _RUNNING:
                breach = loss_breach(equity, ledger.day_start_equity, ledger.high_water, bot.profile.limits)
                if breach is not None:
                    gate, reason = breach
                    self.set_state(bot, _PAUSED, "pause", f"risk:{gate}", f"{gate}: {reason}", batch)
        self._portfolio_stop(total_pnl, exposure, batch, pending)
        return exposure

    def _new_day(self, bot: BotRuntime, day: int, batch: Batch) -> None:
        ledger, risk = bot.ledger, bot.profile.risk
        first = ledger.day_start == 0
        ledger.day_start, ledger.day_start_equity = day, bot.equity
        batch.ledgers.append((ledger.record(), self.now_ts))
        if first or bot.state is not _PAUSED:
            return
        gate = bot.state_reason.partition(":")[0]
        if (gate == "daily_loss" and risk.daily_loss_resume == "next_day") or (
                gate == "drawdown" and risk.drawdown_resume == "next_day"):
            ledger.high_water = bot.equity  # a drawdown resumed by the calendar starts from here
            date = datetime.fromtimestamp(day / 1000, UTC).date().isoformat()
            self.set_state(bot, _RUNNING, "resume", "risk:new_day", f"trading day {date} began: {gate} limit reset", batch)

    def _portfolio_stop(self, total_pnl: Decimal, exposure: Exposure, batch: Batch,
                        pending: list[tuple[BotRuntime, Intent]]) -> None:
        if total_pnl > self.portfolio_high_pnl:
            self.portfolio_high_pnl = total_pnl
            batch.meta["portfolio_high_pnl"] = str(total_pnl)
        if self.global_state in (BotState.FLATTENING, BotState.HALTED):
            if self.global_reason.startswith(PORTFOLIO_STOP):
                exposure.stop_reason = self.global_reason
            return
        high_water = self.total_capital + self.portfolio_high_pnl
        drawdown, limit = self.portfolio_high_pnl - total_pnl, high_water * self._stop_fraction
        if limit <= 0 or drawdown < limit:
            return
        reason = (f"{PORTFOLIO_STOP}: total equity {high_water - drawdown:.2f} is {drawdown:.2f} USDT below its high-water"
                  f" mark {high_water:.2f} (limit {float(self._stop_fraction * 100):g}% = {limit:.2f})")
        self.set_global(BotState.FLATTENING, "flatten_all", f"risk:{PORTFOLIO_STOP}", reason, batch)
        exposure.stop_reason = reason
        for bot in self.bots.values():
            if bot.ledger.position.is_open or bot.orders:
                for intent in flatten_intents(bot.profile, bot.ledger.position, bot.next_seq):
                    self.stage(bot, intent, batch, pending)

    # -- operator resumes re-base the limit that paused ----------------------------------------------

    def rebase_limits(self, bot: BotRuntime, batch: Batch) -> None:
        """An operator resuming a bot its loss limit paused accepts that loss: the limit counts from now."""
        gate = bot.state_reason.partition(":")[0]
        if gate == "daily_loss":
            bot.ledger.day_start_equity = bot.equity
        elif gate == "drawdown":
            bot.ledger.high_water = bot.equity
        else:
            return
        batch.ledgers.append((bot.ledger.record(), self.now_ts))

    def rebase_portfolio(self) -> None:
        """Resuming after the portfolio stop: its high-water mark restarts at today's equity."""
        self.portfolio_high_pnl = sum((b.equity - b.ledger.capital for b in self.bots.values()), ZERO)

    # -- gauges ------------------------------------------------------------------------------------------

    def risk_snapshot(self) -> PortfolioRisk:
        """Every gauge the console shows, at the last tick's marks."""
        bots, gross, open_positions, total_pnl = [], ZERO, 0, ZERO
        for bot in self.bots.values():
            ledger, profile = bot.ledger, bot.profile
            position = ledger.position
            notional = abs(position.qty) * self.marks.get(position.symbol, position.entry_price)
            gross += notional
            open_positions += position.is_open
            total_pnl += bot.equity - ledger.capital
            limits = profile.limits
            bots.append(BotRisk(
                bot.name, bot.state, bot.equity, Gauge(notional, profile.position_cap),
                Gauge(max(ledger.high_water - bot.equity, ZERO),
                      ledger.high_water * limits.drawdown if limits.drawdown is not None else None),
                Gauge(max(ledger.day_start_equity - bot.equity, ZERO),
                      ledger.day_start_equity * limits.daily_loss if limits.daily_loss is not None else None),
                ledger.cooldown_until if ledger.cooldown_until > self.now_ts else 0))
        high_water = self.total_capital + self.portfolio_high_pnl
        drawdown = max(self.portfolio_high_pnl - total_pnl, ZERO)
        limit = high_water * self._stop_fraction
        return PortfolioRisk(self.global_state, self.global_reason, self.total_capital, self.total_capital + total_pnl,
                             high_water, Gauge(gross, self._gross_cap), Gauge(drawdown, limit),
                             max(limit - drawdown, ZERO), open_positions, tuple(bots))
