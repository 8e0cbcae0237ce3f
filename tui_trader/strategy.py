"""The strategy contract and plugin discovery.

A strategy is a class in a file of `strategies/` (or `--strategies-dir`). It
declares its parameters (a pydantic model with defaults and bounds), the
timeframes it reads, the warm-up it needs, and its named confirmation signals.
The engine feeds it closed candles (`update`), asks it for a setup on each close
of the bot's own timeframe (`scan`) and whether to leave an open position
(`exit`). Strategies are pure: no I/O, no clock; the same object runs live and
in backtests.
"""

from __future__ import annotations

import importlib.util
import inspect
import sys
from abc import ABC, abstractmethod
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
from pydantic import BaseModel, ConfigDict, ValidationError

from tui_trader.config import ParamValue, format_validation_error
from tui_trader.indicators import Indicator
from tui_trader.model import Candle, Regime, Side


class StrategyParams(BaseModel):
    """Base of every strategy's parameters: unknown keys are errors, values are frozen. A number
    given for a text parameter is its text (`--param tag=2024` or a form field typed as a number)."""

    model_config = ConfigDict(extra="forbid", frozen=True, coerce_numbers_to_str=True)


@dataclass(frozen=True, slots=True)
class Confirmation:
    name: str
    passed: bool
    detail: str


@dataclass(slots=True)  # returned per bot per candle it finds one: not frozen for speed; treated as read-only
class Setup:
    """A trade the strategy proposes at the close of the candle it just saw."""

    side: Side
    reason: str  # with `reason_args`, a %-template of them
    confirmations: tuple[Confirmation, ...] = ()
    stop: float | None = None  # suggested stop price; else the risk profile's ATR stop
    target: float | None = None  # suggested target; else the risk profile's R multiple
    atr: float | None = None  # volatility unit for ATR-based stops
    # Formatted into `reason` only when the decision is written, as logging formats its messages: a backtest
    # writes its decisions when they are read, and formatting numbers costs more than finding the setup.
    reason_args: tuple[object, ...] = ()

    @property
    def text(self) -> str:
        """The reason as the decision log writes it."""
        return self.reason % self.reason_args if self.reason_args else self.reason

    @property
    def passed(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.confirmations if c.passed)

    @property
    def failed(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.confirmations if not c.passed)


@dataclass(slots=True)  # returned per bot per candle; treated as read-only
class NoSetup:
    """Why there is nothing to do on this candle (the decision log shows it)."""

    reason: str


@dataclass(frozen=True, slots=True)
class StrategyEvent:
    """Something the strategy wants in the decision log besides its setups (e.g. a switch of
    sub-strategy); the cycle records it as a STRATEGY_SWITCHED decision."""

    summary: str
    details: dict[str, Any] = field(default_factory=dict)


@dataclass(slots=True)  # built per bot per candle; treated as read-only
class MarketContext:
    """What the engine tells a strategy besides candles."""

    regime: Regime = Regime.UNKNOWN
    position_side: Side | None = None
    entry_price: float | None = None
    bars_in_position: int = 0


class Strategy(ABC):
    """Subclass this in a file of `strategies/`; set `name`, `Params` and `confirmations`."""

    name: ClassVar[str]
    description: ClassVar[str] = ""
    Params: ClassVar[type[StrategyParams]] = StrategyParams
    confirmations: ClassVar[tuple[str, ...]] = ()
    # Reverse on an opposite setup instead of going flat first (one order: close and open).
    always_in_market: ClassVar[bool] = False
    # Other strategies this one is built from; the registry builds them (with their
    # defaults) and hands them to `attach` before the strategy is used.
    delegates: ClassVar[tuple[str, ...]] = ()
    # True when the state is a function of the candles given to `warm_up` and `update` alone:
    # `ready`, `scan`, `exit` and `indicators` only read it (caching what they read is fine),
    # nothing is emitted and `get_state` is not overridden. The engine then runs bots of one
    # symbol and timeframe with equal parameters on one instance (engine.sharing).
    shareable: ClassVar[bool] = False

    def __init__(self, params: StrategyParams, timeframe: str) -> None:
        self.params = params
        self.timeframe = timeframe
        self._events: list[StrategyEvent] = []

    def attach(self, delegates: Mapping[str, Strategy]) -> None:
        """Receive the strategies named in `delegates`."""

    def emit(self, summary: str, **details: Any) -> None:
        """Queue an event for the decision log."""
        self._events.append(StrategyEvent(summary, details))

    def take_events(self) -> list[StrategyEvent]:
        if not self._events:  # the common case, per bot per candle: no allocation
            return self._events
        events, self._events = self._events, []
        return events

    def timeframes(self) -> tuple[str, ...]:
        """The bot's own timeframe first, then any higher ones the strategy reads."""
        return (self.timeframe,)

    @property
    @abstractmethod
    def warmup(self) -> int:
        """Bars of the bot's own timeframe needed before `scan` may be trusted."""

    @abstractmethod
    def update(self, candle: Candle) -> None:
        """Take one closed candle of one of `timeframes()` (O(1) work)."""

    def warm_up(self, candles: Mapping[str, Sequence[Candle]]) -> None:
        """Take history per timeframe, oldest first. Override for a faster batch fill."""
        for tf in reversed(self.timeframes()):
            for candle in candles.get(tf, ()):
                self.update(candle)

    def fill_and_replay(self, streams: Iterable[Indicator], history: Sequence[Candle], replay: int) -> None:
        """A fast warm-up: fill each stream on all but the last `replay` candles in one call, then
        feed those through `update`, which sets the strategy's own per-bar state (previous values,
        windows). The result equals feeding every candle through `update`."""
        head = history[:-replay] if replay else history
        for stream in streams:
            stream.fill(head)
        for candle in history[len(head):]:
            self.update(candle)

    def precompute(self, bars: Mapping[str, np.ndarray]) -> np.ndarray | None:
        """Optional, for fast backtests. Take the bot timeframe's whole series at once (arrays
        `ts`, `open`, `high`, `low`, `close`, `volume`, oldest first), compute every indicator in
        batch, and from then on let `update` read them by the candle's `ts` instead of streaming
        (TA-Lib's batch and stream values are equal bar for bar). Return a boolean array over the
        bars: True where, after that bar's close, `scan` may return a Setup, `exit` a reason, or
        `emit` an event. The backtest then runs the cycle only on those bars and on the bars where
        the market or the bot's position ask for it, and counts the routine decision of the others.
        None (the default): not supported; the backtest runs the cycle on every bar."""
        return None

    @abstractmethod
    def ready(self) -> bool:
        """True once every indicator has its lookback."""

    @abstractmethod
    def scan(self, ctx: MarketContext) -> Setup | NoSetup:
        """On the close of the bot's own timeframe: a setup, or why not."""

    def exit(self, ctx: MarketContext) -> str | None:
        """The reason to leave the open position now, or None to hold."""
        return None

    def indicators(self) -> dict[str, float]:
        """Key indicator values for the decision log, in a new dict (the log keeps it)."""
        return {}

    def get_state(self) -> dict[str, Any]:
        """Strategy state beyond its indicators (those are rebuilt from candles)."""
        return {}

    def set_state(self, state: Mapping[str, Any]) -> None:
        """Restore what `get_state` returned."""


def describe(cls: type[Strategy]) -> dict[str, Any]:
    """A strategy's parameters (type, default, bounds, description) and confirmations, for listings."""
    params = []
    for name, f in cls.Params.model_fields.items():
        bounds = {}
        for meta in f.metadata:
            for key, label in (("ge", ">="), ("gt", ">"), ("le", "<="), ("lt", "<")):
                value = getattr(meta, key, None)
                if value is not None:
                    bounds[label] = value
        kind = getattr(f.annotation, "__name__", str(f.annotation))
        params.append({"name": name, "type": kind, "default": f.default, "bounds": bounds, "description": f.description or ""})
    probe = cls(cls.Params(), "1h")
    confirmations = list(cls.confirmations)
    if not confirmations and cls.delegates:
        confirmations = [f"those of the active one of {', '.join(cls.delegates)}"]
    return {"name": cls.name, "description": cls.description, "params": params, "confirmations": confirmations,
            "always_in_market": cls.always_in_market, "delegates": list(cls.delegates),
            "multi_timeframe": len(probe.timeframes()) > 1}


@dataclass(frozen=True, slots=True)
class PluginError:
    source: str
    error: str


@dataclass(slots=True)
class StrategyRegistry:
    strategies: dict[str, type[Strategy]] = field(default_factory=dict)
    errors: list[PluginError] = field(default_factory=list)

    def get(self, name: str) -> type[Strategy] | None:
        return self.strategies.get(name)

    def names(self) -> list[str]:
        return sorted(self.strategies)

    def make(self, name: str, params: Mapping[str, ParamValue], timeframe: str) -> Strategy:
        """An instance with validated parameters; ValueError with field-level lines otherwise."""
        cls = self.strategies.get(name)
        if cls is None:
            raise ValueError(f"unknown strategy {name!r} (known: {', '.join(self.names()) or 'none'})")
        strategy = cls(parse_params(cls, params), timeframe)
        if cls.delegates:
            missing = [d for d in cls.delegates if d not in self.strategies or d == name]
            if missing:
                raise ValueError(f"{name} is built from {', '.join(missing)}, which is not loaded")
            strategy.attach({d: self.make(d, {}, timeframe) for d in cls.delegates})
        return strategy


class ParamsError(ValueError):
    def __init__(self, lines: list[str]) -> None:
        self.lines = lines
        super().__init__("; ".join(lines))


def parse_params(cls: type[Strategy], params: Mapping[str, ParamValue]) -> StrategyParams:
    try:
        return cls.Params.model_validate(dict(params))
    except ValidationError as err:
        raise ParamsError(format_validation_error(err, "params")) from None


def _load_module(path: Path) -> Any:
    module_name = f"tui_trader_plugins.{path.stem}"
    spec = importlib.util.spec_from_file_location(module_name, path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot load {path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        sys.modules.pop(module_name, None)
        raise
    return module


def _check_class(cls: type[Strategy]) -> None:
    if not isinstance(getattr(cls, "name", None), str) or not cls.name:
        raise TypeError(f"{cls.__name__} has no `name`")
    if not (isinstance(cls.Params, type) and issubclass(cls.Params, StrategyParams)):
        raise TypeError(f"{cls.__name__}.Params must subclass StrategyParams")
    try:
        cls.Params()
    except ValidationError as err:
        raise TypeError(f"{cls.__name__}.Params needs a default for every field: {err.errors()[0]['loc']}") from None


def discover(directories: Iterable[Path]) -> StrategyRegistry:
    """Load every `*.py` in the directories. A broken file is recorded with its error
    and skipped; the others still load. A later directory overrides a name."""
    registry = StrategyRegistry()
    for directory in directories:
        if not directory.is_dir():
            registry.errors.append(PluginError(str(directory), "not a directory"))
            continue
        for path in sorted(directory.glob("*.py")):
            if path.name.startswith("_"):
                continue
            try:
                module = _load_module(path)
                found = [
                    obj
                    for obj in vars(module).values()
                    if inspect.isclass(obj) and issubclass(obj, Strategy) and obj.__module__ == module.__name__ and not inspect.isabstract(obj)
                ]
                if not found:
                    raise TypeError("defines no Strategy subclass")
                for cls in found:
                    _check_class(cls)
                    registry.strategies[cls.name] = cls
            except Exception as exc:  # a plugin may raise anything; report it, keep the others
                registry.errors.append(PluginError(str(path), f"{type(exc).__name__}: {exc}"))
    return registry

