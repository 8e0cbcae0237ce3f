"""What the engine reported since the UI's last flush.

The engine calls `EngineBuffer` for every event, on the event loop, so it only appends
and marks: O(1), no widget work. The app's flush timer takes everything at once.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

from tui_trader.engine.events import DecisionEvent, EngineEvent, FillEvent, StateEvent, TickEvent, TradeEvent
from tui_trader.model import Candle, Decision

CANDLES_KEPT = 240  # per symbol and timeframe: more than a chart can show at any width


@dataclass
class Pending:
    decisions: list[tuple[str, Decision]] = field(default_factory=list)
    dirty: set[str] = field(default_factory=set)  # bots whose row changed besides the market moving
    traded: set[str] = field(default_factory=set)  # bots with new fills (chart markers, positions)
    market_moved: bool = False
    portfolio_changed: bool = False

    @property
    def empty(self) -> bool:
        return not (self.decisions or self.dirty or self.traded or self.market_moved or self.portfolio_changed)


class EngineBuffer:
    def __init__(self, max_decisions: int = 2000) -> None:
        self.max_decisions = max_decisions
        self.candles: dict[tuple[str, str], deque[Candle]] = {}
        self.last_decision: dict[str, Decision] = {}
        self.events = 0
        self._pending = Pending()
        self._decisions: deque[tuple[str, Decision]] = deque(maxlen=max_decisions)

    def __call__(self, event: EngineEvent) -> None:
        self.events += 1
        pending = self._pending
        if isinstance(event, DecisionEvent):
            self._decisions.append((event.bot_name, event.decision))
            self.last_decision[event.bot_name] = event.decision
            pending.dirty.add(event.bot_name)
        elif isinstance(event, TickEvent):
            pending.market_moved = True
            for candle in event.candles:
                key = (candle.symbol, candle.timeframe)
                kept = self.candles.get(key)
                if kept is None:
                    kept = self.candles[key] = deque(maxlen=CANDLES_KEPT)
                kept.append(candle)
        elif isinstance(event, FillEvent | TradeEvent):
            pending.traded.add(event.bot_name)
            pending.dirty.add(event.bot_name)
        elif isinstance(event, StateEvent):
            if event.bot_name is None:
                pending.portfolio_changed = True
            else:
                pending.dirty.add(event.bot_name)

    def idle(self) -> bool:
        """Nothing reported since the last take."""
        return self._pending.empty and not self._decisions

    def take(self) -> Pending:
        """Everything since the last call (decisions beyond `max_decisions` were dropped: nobody reads that fast)."""
        pending, self._pending = self._pending, Pending()
        pending.decisions = list(self._decisions)
        self._decisions.clear()
        return pending

    def seed_candles(self, key: tuple[str, str], candles: list[Candle]) -> None:
        """History from the store, under what the ticks brought since."""
        kept = self.candles.get(key)
        newer = [c for c in kept if c.ts > candles[-1].ts] if kept and candles else list(kept or ())
        self.candles[key] = deque([*candles, *newer], maxlen=CANDLES_KEPT)
