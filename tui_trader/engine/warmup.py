"""Building bots from their records, and warming strategies and regime trackers
on history so live values equal a computation over that history."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from decimal import Decimal

from tui_trader.config import AppConfig, BotSpec
from tui_trader.engine.cycle import BotCycle, BotProfile
from tui_trader.engine.ledger import BotLedger
from tui_trader.engine.runtime import BotRuntime
from tui_trader.exchange.base import Exchange
from tui_trader.indicators import shared
from tui_trader.market.aggregate import aggregate
from tui_trader.model import TIMEFRAME_MINUTES, BotState, Candle, Instrument, timeframe_ms
from tui_trader.regime import RegimeTracker
from tui_trader.store.records import BotRecord
from tui_trader.strategy import StrategyRegistry

log = logging.getLogger(__name__)

MIN_WARMUP_BARS = 500  # period-14 Wilder indicators need this many to match a full-history computation


class BotFactory:
    def __init__(self, config: AppConfig, registry: StrategyRegistry, exchange: Exchange) -> None:
        self.config = config
        self.registry = registry
        self.exchange = exchange

    def instrument(self, symbol: str) -> Instrument:
        return self.exchange.instrument(symbol)

    def profile(self, record: BotRecord) -> BotProfile:
        return bot_profile(self.config, record.spec, record.id, self.instrument(record.spec.symbol))

    def build(self, record: BotRecord) -> BotRuntime:
        """A runtime for the record; a strategy that fails to build puts the bot in ERROR with the reason."""
        profile = self.profile(record)
        ledger = BotLedger(record.id, record.spec.symbol, record.spec.capital)
        state, reason = record.state, record.state_reason
        try:
            strategy = self.registry.make(record.spec.strategy, record.spec.params, record.spec.timeframe.value)
            cycle: BotCycle | None = BotCycle(profile, strategy)
        except Exception as exc:  # plugin code: report, isolate this bot
            log.error("bot %s: strategy %s could not be built: %s", record.name, record.spec.strategy, exc)
            cycle, state, reason = None, BotState.ERROR, f"strategy {record.spec.strategy!r}: {exc}"
        return BotRuntime(record, profile, cycle, ledger, state, reason)


def bot_profile(config: AppConfig, spec: BotSpec, bot_id: int, instrument: Instrument,
                taker_fee: Decimal | None = None) -> BotProfile:
    """What the cycle knows about a bot (a backtest passes its own taker fee)."""
    risk = config.profile(spec.risk_profile)
    if risk is None:
        raise ValueError(f"unknown risk profile {spec.risk_profile!r}")
    tf_ms = timeframe_ms(spec.timeframe.value)
    return BotProfile(bot_id, spec.name, spec.symbol, spec.timeframe.value, spec.capital, spec.confirmations, risk,
                      instrument, config.exchange.taker_fee if taker_fee is None else taker_fee,
                      config.market.stale_after_candles * tf_ms, tf_ms)


def warmup_bars(bot: BotRuntime) -> int:
    bars = bot.cycle.strategy.warmup if bot.cycle else 0
    return max(bars, MIN_WARMUP_BARS)


def needed_base_bars(bots: Iterable[BotRuntime], base_timeframe: str) -> dict[str, int]:
    """Base candles per symbol that cover every bot's warm-up on each of its timeframes."""
    base_minutes = TIMEFRAME_MINUTES[base_timeframe]
    need: dict[str, int] = {}
    for bot in bots:
        longest = max(TIMEFRAME_MINUTES[tf] for tf in bot.timeframes)
        bars = (warmup_bars(bot) + 1) * longest // base_minutes
        need[bot.profile.symbol] = max(need.get(bot.profile.symbol, 0), bars)
    return need


def warm_up(bots: Sequence[BotRuntime], history: Mapping[str, Sequence[Candle]], base_timeframe: str,
            regimes: dict[tuple[str, str], RegimeTracker]) -> None:
    """Feed each bot's strategy, and each regime tracker not yet warm, its timeframes' history."""
    cache: dict[tuple[str, str], list[Candle]] = {}

    def series(symbol: str, tf: str) -> list[Candle]:
        key = (symbol, tf)
        if key not in cache:
            base = list(history.get(symbol, ()))
            cache[key] = base if tf == base_timeframe else aggregate(base, tf)
        return cache[key]

    with shared():  # bots of one symbol with equal indicators compute them once per candle from here on
        for bot in bots:
            key = (bot.profile.symbol, bot.profile.timeframe)
            if key not in regimes:
                tracker = regimes[key] = RegimeTracker()
                for candle in series(*key):
                    tracker.update(candle)
            if bot.cycle is None:
                continue
            bot.cycle.strategy.warm_up({tf: series(bot.profile.symbol, tf) for tf in bot.timeframes})
            bot.cycle.regime = regimes[key].regime


def marks_from(history: Mapping[str, Sequence[Candle]], instruments: Mapping[str, Instrument]) -> dict[str, Decimal]:
    return {s: instruments[s].round_price(c[-1].close) for s, c in history.items() if c}
