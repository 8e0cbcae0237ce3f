"""The new/edit bot form (BotFormScreen) driven with Pilot on the demo config and the bundled strategies."""

from __future__ import annotations

from collections.abc import AsyncIterator, Collection
from contextlib import asynccontextmanager
from decimal import Decimal
from typing import Any

import pytest
from textual.app import App
from textual.content import Content
from textual.pilot import Pilot
from textual.widgets import Input, Select, Static

from tui_trader.cli.common import parse_params
from tui_trader.config import AppConfig, BotSpec, RiskProfile, Timeframe, load_config
from tui_trader.setup import load_strategies
from tui_trader.strategy import StrategyRegistry
from tui_trader.ui.bot_form import BotFormScreen, format_params, parse_params_text

FIELD_IDS = ("f-name", "f-symbol", "f-capital", "f-timeframe", "f-risk", "f-strategy", "f-params", "f-confirmations")
VALID = {"f-name": "sol-test-5m", "f-symbol": "SOLUSDT", "f-capital": "1500", "f-timeframe": "5m", "f-risk": "cautious",
         "f-strategy": "ema_trend", "f-params": "fast=5, slow=13, adx_min=12.5, exit_on_cross=false",
         "f-confirmations": "2"}


@pytest.fixture(autouse=True)
def no_cursor_blink(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(Input, "_toggle_cursor", lambda self: None)


@pytest.fixture(scope="module")
def config() -> AppConfig:
    return load_config()


@pytest.fixture(scope="module")
def registry() -> StrategyRegistry:
    return load_strategies()


class Host(App[None]):
    """Pushes the form on mount and keeps what it returns."""

    def __init__(self, form: BotFormScreen) -> None:
        super().__init__()
        self.form = form
        self.results: list[BotSpec | None] = []

    def on_mount(self) -> None:
        self.push_screen(self.form, self.results.append)


@asynccontextmanager
async def opened(config: AppConfig, registry: StrategyRegistry, existing: BotSpec | None = None,
                 taken: Collection[str] = ()) -> AsyncIterator[tuple[Host, Pilot[None]]]:
    app = Host(BotFormScreen(config, registry, existing, taken))
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        assert app.screen is app.form
        yield app, pilot


async def save_with(app: Host, pilot: Pilot[None], values: dict[str, str]) -> None:
    for wid, value in values.items():
        widget = app.form.query_one(f"#{wid}")
        assert isinstance(widget, Input | Select)
        widget.value = value
    await pilot.pause()
    await pilot.press("ctrl+s")
    await pilot.pause()


def errors_of(app: Host) -> list[str]:
    if app.screen is not app.form:  # dismissed
        return []
    shown = app.form.query_one("#f-errors", Static)
    return str(shown.render()).splitlines() if shown.display else []


def invalid_ids(app: Host) -> set[str]:
    return {wid for wid in FIELD_IDS if app.form.query_one(f"#{wid}").has_class("-invalid")}


def typed(params: dict[str, Any]) -> dict[str, tuple[type, Any]]:
    return {k: (type(v), v) for k, v in params.items()}


# -- params text -----------------------------------------------------------------------------------------------


def test_params_text_parses_like_the_cli() -> None:
    items = ["fast = 5", "adx_min=12.5", "exit_on_cross=FALSE", "higher_timeframe=1h", "flag=true", "neg=-3"]
    got = parse_params_text(", ".join(items) + ",")
    assert typed(got) == typed(parse_params(items))
    assert typed(got) == typed({"fast": 5, "adx_min": 12.5, "exit_on_cross": False, "higher_timeframe": "1h",
                                "flag": True, "neg": -3})
    assert parse_params_text("  ") == {}


@pytest.mark.parametrize("text", ["fast=5, slow", "=5"])
def test_params_text_item_without_key_value_is_an_error(text: str) -> None:
    with pytest.raises(ValueError, match="is not key=value"):
        parse_params_text(text)


def test_format_params_round_trips() -> None:
    params = {"fast": 5, "adx_min": 10.0, "exit_on_cross": False, "higher_timeframe": "1h"}
    assert format_params(params) == "fast=5, adx_min=10.0, exit_on_cross=false, higher_timeframe=1h"
    assert typed(parse_params_text(format_params(params))) == typed(params)


# -- the screen --------------------------------------------------------------------------------------------------


async def test_valid_new_bot_is_returned(config: AppConfig, registry: StrategyRegistry) -> None:
    async with opened(config, registry, taken=[b.name for b in config.bots]) as (app, pilot):
        assert app.form.query_one("#f-box").border_title == "New bot"
        await save_with(app, pilot, VALID)
        assert errors_of(app) == []
        assert app.results, "the form stayed open"
        spec = app.results[0]
        assert isinstance(spec, BotSpec)
        assert (spec.name, spec.symbol, spec.capital, spec.timeframe) == ("sol-test-5m", "SOLUSDT", Decimal(1500), Timeframe.M5)
        assert (spec.risk_profile, spec.strategy, spec.confirmations) == ("cautious", "ema_trend", 2)
        assert typed(spec.params) == typed({"fast": 5, "slow": 13, "adx_min": 12.5, "exit_on_cross": False})
        assert spec == BotSpec(name="sol-test-5m", symbol="SOLUSDT", timeframe=Timeframe.M5, capital=Decimal(1500),
                               risk_profile="cautious", strategy="ema_trend",
                               params={"fast": 5, "slow": 13, "adx_min": 12.5, "exit_on_cross": False}, confirmations=2)
        assert app.screen is not app.form


INVALID = [
    ("empty name", {"f-name": ""}, "bot.name: String should match pattern", "f-name"),
    ("bad name", {"f-name": "bad name!"}, "bot.name: String should match pattern", "f-name"),
    ("zero capital", {"f-capital": "0"}, "bot.capital: Input should be greater than 0 (got '0')", "f-capital"),
    ("negative capital", {"f-capital": "-5"}, "bot.capital: Input should be greater than 0 (got '-5')", "f-capital"),
    ("capital not a number", {"f-capital": "abc"}, "bot.capital: Input should be a valid decimal", "f-capital"),
    ("unknown param", {"f-params": "fast=5, slow=13, bogus=1"}, "bot.params.bogus: Extra inputs are not permitted",
     "f-params"),
    ("param out of bound", {"f-params": "fast=1"},
     "bot.params.fast: Input should be greater than or equal to 2 (got 1)", "f-params"),
    ("param without =", {"f-params": "fast=5, slow"}, "bot.params: 'slow' is not key=value", "f-params"),
    ("too many confirmations", {"f-confirmations": "4"},
     "bot.confirmations: ema_trend has 3 confirmation signals; 4 can never pass", "f-confirmations"),
    ("confirmations not a number", {"f-confirmations": "two"}, "bot.confirmations: Input should be a valid integer",
     "f-confirmations"),
    ("taken name", {"f-name": "btc-scalp-1m"}, "bot.name: a bot named 'btc-scalp-1m' already exists", "f-name"),
]


async def test_each_invalid_field_is_rejected(config: AppConfig, registry: StrategyRegistry) -> None:
    """One form for all cases (an app start costs ~0.3 s); every case is checked and the failing ones are listed."""
    failures = []
    async with opened(config, registry, taken=[b.name for b in config.bots]) as (app, pilot):
        for case, change, message, field in INVALID:
            await save_with(app, pilot, {**VALID, **change})
            if app.results or app.screen is not app.form:
                pytest.fail(f"{case}: an invalid bot closed the form")
            errors, marked = errors_of(app), invalid_ids(app)
            if not any(line.startswith(message) for line in errors) or marked != {field}:
                failures.append(f"{case}: errors {errors}, marked {sorted(marked)}")
    assert not failures, "\n".join(failures)


async def test_every_error_is_shown_and_cleared_once_fixed(config: AppConfig, registry: StrategyRegistry) -> None:
    async with opened(config, registry) as (app, pilot):
        await save_with(app, pilot, {**VALID, "f-name": "", "f-capital": "-1", "f-params": "fast=5, oops"})
        errors = errors_of(app)
        assert len(errors) == 3, errors
        assert invalid_ids(app) == {"f-name", "f-capital", "f-params"}
        await save_with(app, pilot, {**VALID, "f-strategy": "sma_cross", "f-params": "fast=5, slow=13, adx_min=1"})
        assert errors_of(app) == ["bot.params.adx_min: Extra inputs are not permitted (got 1)",
                                  "bot.confirmations: sma_cross has 0 confirmation signals; 2 can never pass"]
        assert invalid_ids(app) == {"f-params", "f-confirmations"}
        await save_with(app, pilot, {"f-params": "fast=5, slow=13", "f-confirmations": "0"})
        assert [spec.strategy if spec else None for spec in app.results] == ["sma_cross"]


async def test_edit_prefills_and_returns_the_changed_spec(config: AppConfig, registry: StrategyRegistry) -> None:
    existing = next(b for b in config.bots if b.name == "eth-trend-1m")
    taken = [b.name for b in config.bots]  # includes its own name, which stays allowed
    async with opened(config, registry, existing, taken) as (app, pilot):
        form = app.form
        assert form.query_one("#f-box").border_title == "Edit eth-trend-1m"
        assert {wid: form.query_one(f"#{wid}").value for wid in FIELD_IDS} == {
            "f-name": "eth-trend-1m", "f-symbol": "ETHUSDT", "f-capital": "3000", "f-timeframe": "1m",
            "f-risk": "balanced", "f-strategy": "ema_trend", "f-params": "fast=5, slow=13, adx_min=10",
            "f-confirmations": "1"}
        await save_with(app, pilot, {"f-capital": "3500.5", "f-risk": "aggressive", "f-params": "fast=6, slow=13, adx_min=10"})
        assert errors_of(app) == []
        assert app.results == [existing.model_copy(update={
            "capital": Decimal("3500.5"), "risk_profile": "aggressive", "params": {"fast": 6, "slow": 13, "adx_min": 10}})]


async def test_escape_returns_none(config: AppConfig, registry: StrategyRegistry) -> None:
    async with opened(config, registry) as (app, pilot):
        app.form.query_one("#f-strategy", Select).focus()
        await pilot.press("enter")  # open the list: escape closes the list, not the form
        await pilot.pause()
        assert app.form.query_one("#f-strategy", Select).expanded
        await pilot.press("escape")
        await pilot.pause()
        assert app.results == [] and app.screen is app.form
        await pilot.press("escape")
        await pilot.pause()
        assert app.results == [None]


async def test_keyboard_only_entry(config: AppConfig, registry: StrategyRegistry) -> None:
    async with opened(config, registry) as (app, pilot):
        form = app.form
        assert form.focused is form.query_one("#f-name")
        await pilot.press("k", ".", "1", "tab", "enter", "down", "enter", "tab", "7", "tab", "tab", "tab")
        assert form.focused is form.query_one("#f-strategy")
        await pilot.press("enter", "down", "down", "enter", "tab", "tab", "backspace", "2", "shift+tab")
        assert form.focused is form.query_one("#f-params")
        await pilot.pause()
        assert form.query_one("#f-strategy", Select).value == "ema_trend"
        await pilot.press("ctrl+s")
        await pilot.pause()
        assert errors_of(app) == []
        assert app.results == [BotSpec(name="k.1", symbol="ETHUSDT", timeframe=Timeframe.H1, capital=Decimal(7),
                                       risk_profile="balanced", strategy="ema_trend", params={},
                                       confirmations=2)]


async def test_params_help_follows_the_strategy(config: AppConfig, registry: StrategyRegistry) -> None:
    async with opened(config, registry) as (app, pilot):
        help_text = app.form.query_one("#f-params-help", Static)
        app.form.query_one("#f-strategy", Select).value = "ema_trend"
        await pilot.pause()
        text = str(help_text.render())
        assert "fast=12 (int >=2 <=200) fast EMA period" in text
        assert "exit_on_cross=true (bool)" in text
        assert "confirmations offered 3: di_agrees, close_beyond_slow, volume_above_average" in text
        app.form.query_one("#f-strategy", Select).value = "sma_cross"
        await pilot.pause()
        text = str(help_text.render())
        assert "adx_min" not in text and "fast=" in text


async def test_labels_keep_brackets_and_show_risk_numbers(config: AppConfig, registry: StrategyRegistry) -> None:
    custom = RiskProfile(risk_per_trade_pct=0.25, stop_atr_mult=3, take_profit_r=1.5, max_leverage=1, max_position_pct=50)
    cfg = config.model_copy(update={"risk_profiles": {"mine[b]": custom}})
    async with opened(cfg, registry) as (app, pilot):
        risk = app.form.query_one("#f-risk", Select)
        labels = [Content.from_markup(prompt).plain for prompt, _ in risk._options if isinstance(prompt, str)]
        assert "balanced (1%/trade, stop 2xATR, TP 2R, lev 3x, pos 200%)" in labels
        assert "mine[b] (0.25%/trade, stop 3xATR, TP 1.5R, lev 1x, pos 50%)" in labels
        await save_with(app, pilot, {**VALID, "f-risk": "mine[b]", "f-name": "[x]"})
        assert errors_of(app)[0].startswith("bot.name: String should match pattern '^[A-Za-z0-9]")
        assert errors_of(app)[0].endswith("(got '[x]')")
        await save_with(app, pilot, {"f-name": "ok"})
        assert [spec.risk_profile if spec else None for spec in app.results] == ["mine[b]"]
