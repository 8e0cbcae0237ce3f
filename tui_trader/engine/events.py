"""Engine events and the bus that hands them to subscribers (the UI, the headless printer)."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from tui_trader.model import BotState, Candle, Decision, Fill, Trade

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class DecisionEvent:
    bot_name: str
    decision: Decision


@dataclass(frozen=True, slots=True)
class FillEvent:
    bot_name: str
    fill: Fill


@dataclass(frozen=True, slots=True)
class TradeEvent:
    bot_name: str
    trade: Trade


@dataclass(frozen=True, slots=True)
class StateEvent:
    """A bot's (bot_name set) or the portfolio's state changed."""

    bot_name: str | None
    state: BotState
    reason: str
    source: str


@dataclass(frozen=True, slots=True)
class TickEvent:
    """A base interval was processed: the market moved. Every candle that closed in it, the
    base timeframe's and the higher ones built from them."""

    candles: tuple[Candle, ...]


EngineEvent = DecisionEvent | FillEvent | TradeEvent | StateEvent | TickEvent
Subscriber = Callable[[EngineEvent], Any]


class EventBus:
    """Plain synchronous callbacks; a subscriber that raises is logged and kept."""

    def __init__(self) -> None:
        self._subscribers: list[Subscriber] = []

    def subscribe(self, callback: Subscriber) -> Callable[[], None]:
        self._subscribers.append(callback)
        return lambda: self._subscribers.remove(callback)

    def __bool__(self) -> bool:
        """True when anyone listens (lets hot paths skip building events)."""
        return bool(self._subscribers)

    def publish(self, event: EngineEvent) -> None:
        for callback in self._subscribers:
            try:
                callback(event)
            except Exception:
                log.exception("event subscriber %r failed", callback)
