"""One strategy instance for the bots that would each hold an identical one.

Bots of one symbol and timeframe whose strategy is `shareable` (its state follows from the
candles alone), with equal parameters and warmed up together, are fed the same candle
objects by the engine, in the same order: their instances would stay equal forever. They
share one instead: updated once per candle, scanned once per candle for a context object
the group shares (a flat bot's, one per regime), asked everything else per bot. A bot that
stops being fed (STOPPED) leaves with a copy of the state it has reached.

Pure: no I/O, no clock.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from tui_trader.engine.runtime import BotRuntime
from tui_trader.model import BotState, Candle
from tui_trader.strategy import MarketContext, NoSetup, Setup, Strategy


class SharedStrategy(Strategy):
    """A group's strategy instance, as each of its bots' cycles sees it."""

    def __init__(self, inner: Strategy) -> None:
        super().__init__(inner.params, inner.timeframe)
        self.inner = inner
        self.name = inner.name  # type: ignore[misc]
        self.always_in_market = inner.always_in_market  # type: ignore[misc]
        self._candle: Candle | None = None  # the last candle the instance took
        self._failed: Exception | None = None  # what it raised on that candle
        self._scanned: tuple[MarketContext, Setup | NoSetup | Exception] | None = None  # on that candle

    def __getattr__(self, name: str) -> Any:  # what the cycle does not ask for (the console may)
        if name == "inner" or name.startswith("__"):
            raise AttributeError(name)
        return getattr(self.inner, name)

    def detached(self) -> Strategy:
        """An instance of its own at the state reached, for a bot leaving the group."""
        return copy.deepcopy(self.inner)

    def timeframes(self) -> tuple[str, ...]:
        return self.inner.timeframes()

    @property
    def warmup(self) -> int:
        return self.inner.warmup

    def warm_up(self, candles: Mapping[str, Sequence[Candle]]) -> None:
        self.inner.warm_up(candles)

    def update(self, candle: Candle) -> None:
        if candle is self._candle:  # another bot of the group gave it already: the same outcome
            if self._failed is not None:
                raise self._failed
            return
        self._candle, self._failed, self._scanned = candle, None, None
        try:
            self.inner.update(candle)
        except Exception as exc:
            self._failed = exc
            raise

    def ready(self) -> bool:
        return self.inner.ready()

    def scan(self, ctx: MarketContext) -> Setup | NoSetup:
        scanned = self._scanned
        if scanned is not None and scanned[0] is ctx:
            if isinstance(scanned[1], Exception):
                raise scanned[1]
            return scanned[1]
        try:
            found = self.inner.scan(ctx)
        except Exception as exc:
            self._scanned = (ctx, exc)
            raise
        self._scanned = (ctx, found)
        return found

    def exit(self, ctx: MarketContext) -> str | None:
        return self.inner.exit(ctx)

    def indicators(self) -> dict[str, float]:
        return self.inner.indicators()

    def take_events(self) -> list:  # type: ignore[type-arg]
        return self.inner.take_events()


def share_strategies(bots: Iterable[BotRuntime]) -> int:
    """Put bots warmed up together that hold equal shareable strategies on one instance (the
    first one's); return how many bots share. Bots not fed candles (STOPPED, ERROR) keep theirs."""
    groups: dict[tuple[Any, ...], list[BotRuntime]] = {}
    for bot in bots:
        cycle = bot.cycle
        if cycle is None or bot.state in (BotState.STOPPED, BotState.ERROR) or not type(cycle.strategy).shareable:
            continue
        strategy = cycle.strategy
        key = (bot.profile.symbol, bot.profile.timeframe, type(strategy), strategy.params)
        try:
            groups.setdefault(key, []).append(bot)
        except TypeError:  # parameters that cannot be compared this way (a list): the bot keeps its own
            continue
    shared = 0
    for members in groups.values():
        if len(members) < 2:
            continue
        one = SharedStrategy(members[0].cycle.strategy)  # type: ignore[union-attr]
        for bot in members:
            bot.cycle.strategy = one  # type: ignore[union-attr]
            bot.refresh()
        shared += len(members)
    return shared


def leave_shared(bot: BotRuntime) -> None:
    """A bot no longer fed candles gets its own copy of its group's strategy."""
    if bot.cycle is not None and isinstance(bot.cycle.strategy, SharedStrategy):
        bot.cycle.strategy = bot.cycle.strategy.detached()
        bot.refresh()
