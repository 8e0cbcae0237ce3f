"""Every setting and every bot spec, as pydantic models, and the TOML loader.

Imports nothing else of ours (import rule). Strategy names and parameters are
checked against the discovered plugins by `tui_trader.setup`, which reports
them in the same field-level form as the errors here.
"""

from __future__ import annotations

import os
import tomllib
from decimal import Decimal
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

PACKAGE_DIR = Path(__file__).resolve().parent


def bundled_path(name: str) -> Path:
    """`config/` or `strategies/` of a source checkout, else the copy a wheel bundles in the package."""
    checkout = PACKAGE_DIR.parent / name
    return checkout if checkout.is_dir() else PACKAGE_DIR / "bundled" / name


DEMO_CONFIG = bundled_path("config") / "demo.toml"
TIMEFRAMES = ("1m", "5m", "15m", "1h", "4h", "1d")

BotName = Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,31}$")]
Symbol = Annotated[str, Field(pattern=r"^[A-Z0-9]{2,20}USDT$")]
ParamValue = bool | int | float | str


def parse_param_value(raw: str) -> ParamValue:
    """A parameter typed on a command line or in a form: true/false (any case), then int, then float, else text."""
    if raw.lower() in ("true", "false"):
        return raw.lower() == "true"
    for kind in (int, float):
        try:
            return kind(raw)
        except ValueError:
            pass
    return raw


class ConfigError(Exception):
    """Invalid configuration or bot input; `errors` are 'field: message' lines."""

    def __init__(self, source: str, errors: list[str]) -> None:
        self.source = source
        self.errors = errors
        super().__init__(f"{source}: " + "; ".join(errors))

    def render(self) -> str:
        lines = [f"invalid configuration in {self.source}:"]
        lines += [f"  {e}" for e in self.errors]
        return "\n".join(lines)


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Timeframe(StrEnum):
    M1 = "1m"
    M5 = "5m"
    M15 = "15m"
    H1 = "1h"
    H4 = "4h"
    D1 = "1d"


class RiskProfile(Strict):
    """How much a bot risks, how its stops move and when it stops itself. Presets below; custom
    ones in [risk_profiles]. A limit left out (None or 0) is off."""

    # sizing
    risk_per_trade_pct: float = Field(gt=0, le=10, description="% of the bot's equity lost if the stop is hit")
    stop_atr_mult: float = Field(gt=0, le=20, description="stop distance in ATR multiples")
    take_profit_r: float = Field(gt=0, le=20, description="take-profit distance in multiples of the stop distance (R)")
    max_leverage: float = Field(ge=1, le=100)
    max_position_pct: float = Field(gt=0, le=10_000, description="max position notional, % of virtual capital")
    # stop management (stops only ever tighten)
    breakeven_r: float = Field(default=0, ge=0, le=20, description="move the stop to entry plus fees once the close is this many R in favour; 0 = off")
    trail_activation_r: float = Field(default=0, ge=0, le=20, description="start trailing once the close is this many R in favour")
    trail_atr_mult: float = Field(default=0, ge=0, le=20, description="trailing distance from the candle's extreme in ATR; 0 = off")
    time_stop_bars: int = Field(default=0, ge=0, le=100_000, description="close a position held this many candles; 0 = off")
    # gates and automatic actions
    max_open_positions: int | None = Field(default=None, ge=1, description="no new entry while this many positions are open across the portfolio")
    daily_loss_pct: float | None = Field(default=None, gt=0, le=100, description="pause when equity falls this % below the day's starting equity (UTC day)")
    max_drawdown_pct: float | None = Field(default=None, gt=0, le=100, description="pause when equity falls this % below its high-water mark")
    cooldown_losses: int = Field(default=0, ge=0, le=1000, description="after this many consecutive losing trades, no entries for cooldown_candles; 0 = off")
    cooldown_candles: int = Field(default=0, ge=0, le=100_000)
    daily_loss_resume: Literal["next_day", "operator"] = Field(default="next_day", description="who resumes a bot paused by its daily loss")
    drawdown_resume: Literal["next_day", "operator"] = Field(default="operator", description="who resumes a bot paused by its drawdown")

    def sizing_text(self) -> str:
        """How it sizes, compactly: '1%/trade, stop 2xATR, TP 2R, lev 3x, pos 200%'."""
        return (f"{self.risk_per_trade_pct:g}%/trade, stop {self.stop_atr_mult:g}xATR, TP {self.take_profit_r:g}R,"
                f" lev {self.max_leverage:g}x, pos {self.max_position_pct:g}%")

    def limits_text(self) -> str:
        """Stop management, gates and automatic pauses, compactly; "-" when none is set."""
        parts = [f"BE {self.breakeven_r:g}R"] if self.breakeven_r else []
        if self.trail_atr_mult:
            parts.append(f"trail {self.trail_atr_mult:g}xATR from {self.trail_activation_r:g}R")
        if self.time_stop_bars:
            parts.append(f"time {self.time_stop_bars} bars")
        if self.max_open_positions:
            parts.append(f"open<={self.max_open_positions}")
        if self.daily_loss_pct:
            parts.append(f"day -{self.daily_loss_pct:g}%{'' if self.daily_loss_resume == 'next_day' else ' (operator)'}")
        if self.max_drawdown_pct:
            parts.append(f"DD -{self.max_drawdown_pct:g}%{' (next day)' if self.drawdown_resume == 'next_day' else ''}")
        if self.cooldown_losses:
            parts.append(f"cooldown {self.cooldown_losses}L/{self.cooldown_candles}c")
        return ", ".join(parts) or "-"

    @model_validator(mode="after")
    def _check_cooldown(self) -> RiskProfile:
        if self.cooldown_losses and not self.cooldown_candles:
            raise ValueError("cooldown_candles must be at least 1 when cooldown_losses is set")
        return self


RISK_PRESETS: dict[str, RiskProfile] = {
    "cautious": RiskProfile(
        risk_per_trade_pct=0.5, stop_atr_mult=2.5, take_profit_r=2.0, max_leverage=2, max_position_pct=100,
        breakeven_r=1.0, trail_activation_r=1.5, trail_atr_mult=2.5, max_open_positions=10,
        daily_loss_pct=2, max_drawdown_pct=6, cooldown_losses=3, cooldown_candles=60),
    "balanced": RiskProfile(
        risk_per_trade_pct=1.0, stop_atr_mult=2.0, take_profit_r=2.0, max_leverage=3, max_position_pct=200,
        breakeven_r=1.0, trail_activation_r=1.0, trail_atr_mult=2.0, max_open_positions=25,
        daily_loss_pct=4, max_drawdown_pct=10, cooldown_losses=4, cooldown_candles=30),
    "aggressive": RiskProfile(
        risk_per_trade_pct=2.0, stop_atr_mult=1.5, take_profit_r=1.5, max_leverage=5, max_position_pct=400,
        breakeven_r=0.75, trail_activation_r=0.75, trail_atr_mult=1.5, max_open_positions=50,
        daily_loss_pct=8, max_drawdown_pct=20, cooldown_losses=5, cooldown_candles=15),
}


class PortfolioSettings(Strict):
    """Limits over all bots together; percentages are of the total virtual capital."""

    stop_pct: float = Field(default=5.0, gt=0, le=100, description="flatten every bot and halt when total equity is this % below its high-water mark")
    max_exposure_pct: float = Field(default=300, gt=0, le=100_000, description="sum of open position notionals")
    max_symbol_net_pct: float = Field(default=150, gt=0, le=100_000, description="net (long minus short) notional on one symbol")


class BotSpec(Strict):
    name: BotName
    symbol: Symbol
    timeframe: Timeframe
    capital: Decimal = Field(gt=0, max_digits=20, decimal_places=8, description="virtual capital in USDT")
    risk_profile: str = "balanced"
    strategy: str = Field(min_length=1)
    params: dict[str, ParamValue] = Field(default_factory=dict)
    confirmations: int = Field(default=0, ge=0, le=20)


class InstrumentSpec(Strict):
    tick_size: Decimal = Field(gt=0)
    qty_step: Decimal = Field(gt=0)
    min_qty: Decimal = Field(gt=0)
    min_notional: Decimal = Field(ge=0)
    max_leverage: Decimal = Field(default=Decimal(50), ge=1)


DEFAULT_INSTRUMENTS: dict[str, InstrumentSpec] = {
    "BTCUSDT": InstrumentSpec(tick_size=Decimal("0.1"), qty_step=Decimal("0.001"), min_qty=Decimal("0.001"), min_notional=Decimal(5), max_leverage=Decimal(100)),
    "ETHUSDT": InstrumentSpec(tick_size=Decimal("0.01"), qty_step=Decimal("0.01"), min_qty=Decimal("0.01"), min_notional=Decimal(5), max_leverage=Decimal(100)),
    "SOLUSDT": InstrumentSpec(tick_size=Decimal("0.01"), qty_step=Decimal("0.1"), min_qty=Decimal("0.1"), min_notional=Decimal(5), max_leverage=Decimal(100)),
    "XRPUSDT": InstrumentSpec(tick_size=Decimal("0.0001"), qty_step=Decimal("1"), min_qty=Decimal("1"), min_notional=Decimal(5), max_leverage=Decimal(75)),
}


class ExchangeSettings(Strict):
    kind: Literal["paper", "testnet", "demo", "mainnet"] = "paper"
    maker_fee: Decimal = Field(default=Decimal("0.0002"), ge=0, le=Decimal("0.01"))
    taker_fee: Decimal = Field(default=Decimal("0.00055"), ge=0, le=Decimal("0.01"))
    slippage_bps: Decimal = Field(default=Decimal(2), ge=0, le=500, description="market and stop fills, against the order")
    instruments: dict[str, InstrumentSpec] = Field(default_factory=dict, description="overrides and additions to the built-in rules")

    def instrument(self, symbol: str) -> InstrumentSpec | None:
        return self.instruments.get(symbol) or DEFAULT_INSTRUMENTS.get(symbol)


class SyntheticSymbol(Strict):
    symbol: Symbol
    start_price: float = Field(gt=0)
    volatility: float = Field(default=0.0012, gt=0, le=0.05, description="typical 1m return standard deviation")


class ReplaySettings(Strict):
    path: Path | None = Field(default=None, description="CSV (optionally .gz) with ts,open,high,low,close,volume; omit to read the candles table")
    symbol: Symbol | None = None
    timeframe: Timeframe = Timeframe.M1
    speed: float = Field(default=0, ge=0, description="0 = as fast as possible; else market time runs this many times wall time")


class MarketSettings(Strict):
    source: Literal["synthetic", "replay"] = "synthetic"
    seed: int = 7
    candle_seconds: float = Field(default=1.0, gt=0, le=3600, description="wall seconds per synthetic 1m candle")
    symbols: list[SyntheticSymbol] = Field(default_factory=list)
    replay: ReplaySettings = Field(default_factory=ReplaySettings)
    stale_after_candles: int = Field(default=3, ge=1, description="data older than this many bot candles blocks entries")

    @model_validator(mode="after")
    def _check_source(self) -> MarketSettings:
        if self.source == "synthetic" and not self.symbols:
            raise ValueError("a synthetic market needs at least one [[market.symbols]] entry")
        if self.source == "replay" and self.replay.path is not None and self.replay.symbol is None:
            raise ValueError("market.replay.symbol is required with market.replay.path")
        names = [s.symbol for s in self.symbols]
        if len(set(names)) != len(names):
            raise ValueError("market.symbols lists a symbol twice")
        return self


class StoreSettings(Strict):
    synchronous: Literal["normal", "full"] | None = Field(default=None, description="SQLite fsync policy; default: normal on paper, full on exchanges")
    equity_every_candles: int = Field(default=60, ge=1, description="an equity snapshot is written when equity moves, and at least every N bot candles")


class AppSettings(Strict):
    state_dir: Path = Path("state")
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    log_format: Literal["text", "json"] = "text"
    control_poll_seconds: float = Field(default=1.0, gt=0, le=60, description="how often the engine reads CLI changes from the database")


class AppConfig(Strict):
    app: AppSettings = Field(default_factory=AppSettings)
    exchange: ExchangeSettings = Field(default_factory=ExchangeSettings)
    market: MarketSettings
    store: StoreSettings = Field(default_factory=StoreSettings)
    portfolio: PortfolioSettings = Field(default_factory=PortfolioSettings)
    risk_profiles: dict[str, RiskProfile] = Field(default_factory=dict)
    bots: list[BotSpec] = Field(default_factory=list)

    @field_validator("risk_profiles")
    @classmethod
    def _no_preset_override(cls, v: dict[str, RiskProfile]) -> dict[str, RiskProfile]:
        clash = sorted(set(v) & set(RISK_PRESETS))
        if clash:
            raise ValueError(f"{', '.join(clash)} is a built-in preset; give a custom profile another name")
        return v

    def profile(self, name: str) -> RiskProfile | None:
        return self.risk_profiles.get(name) or RISK_PRESETS.get(name)

    def field_errors(self, bot: BotSpec, where: str) -> list[str]:
        """Checks of a bot against the rest of the config (profile and instrument known)."""
        errors = []
        if self.profile(bot.risk_profile) is None:
            known = ", ".join(sorted({*RISK_PRESETS, *self.risk_profiles}))
            errors.append(f"{where}.risk_profile: unknown risk profile {bot.risk_profile!r} (known: {known})")
        if self.exchange.instrument(bot.symbol) is None:
            errors.append(f"{where}.symbol: no instrument rules for {bot.symbol}; add [exchange.instruments.{bot.symbol}]")
        elif self.market.source == "synthetic" and bot.symbol not in {s.symbol for s in self.market.symbols}:
            errors.append(f"{where}.symbol: {bot.symbol} is not in the synthetic market's [[market.symbols]]")
        return errors


def format_validation_error(err: ValidationError, prefix: str = "") -> list[str]:
    """pydantic errors as 'bots[2].capital: Input should be greater than 0 (got -5)'."""
    lines = []
    for e in err.errors():
        path = prefix
        for part in e["loc"]:
            path += f"[{part}]" if isinstance(part, int) else (f".{part}" if path else str(part))
        msg = e["msg"].removeprefix("Value error, ")
        got = e.get("input")
        shown = "" if isinstance(got, dict | list) or got is None or e["type"] == "missing" else f" (got {got!r})"
        lines.append(f"{path or '(top level)'}: {msg}{shown}")
    return lines


def parse_config(data: dict[str, Any], source: str) -> AppConfig:
    try:
        cfg = AppConfig.model_validate(data)
    except ValidationError as err:
        raise ConfigError(source, format_validation_error(err)) from None
    errors = [e for i, bot in enumerate(cfg.bots) for e in cfg.field_errors(bot, f"bots[{i}]")]
    names = [bot.name for bot in cfg.bots]
    errors += [f"bots[{i}].name: bot name {name!r} is used twice" for i, name in enumerate(names) if name in names[:i]]
    if errors:
        raise ConfigError(source, errors)
    return cfg


def load_config(path: Path | None = None) -> AppConfig:
    """Read and validate a TOML config; the built-in demo when path is None."""
    path = path or DEMO_CONFIG
    source = str(path)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise ConfigError(source, [f"cannot read the file: {exc.strerror}"]) from None
    try:
        data = tomllib.loads(raw.decode("utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(source, [f"not valid TOML: {exc}"]) from None
    return parse_config(data, source)


def validate_bot(data: dict[str, Any], source: str = "bot") -> BotSpec:
    """A bot spec; errors read 'bot.capital: ...' like the checks against the config do."""
    try:
        return BotSpec.model_validate(data)
    except ValidationError as err:
        raise ConfigError(source, format_validation_error(err, source)) from None


def env_path(name: str) -> Path | None:
    value = os.environ.get(name)
    return Path(value) if value else None
