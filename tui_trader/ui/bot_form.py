"""The new/edit bot form: a modal that returns a validated BotSpec, or None when cancelled.

Validation is the CLI's: `validate_bot` for the spec's own fields, then `bot_errors`
against the config and the strategy plugins, so the lines read the same
('bot.capital: Input should be greater than 0 (got '-5')').
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.markup import escape
from textual.screen import ModalScreen
from textual.widget import Widget
from textual.widgets import Button, Input, Label, Select, Static

from tui_trader.config import (
    DEFAULT_INSTRUMENTS,
    RISK_PRESETS,
    TIMEFRAMES,
    AppConfig,
    BotSpec,
    ConfigError,
    ParamValue,
    RiskProfile,
    parse_param_value,
    validate_bot,
)
from tui_trader.setup import bot_errors
from tui_trader.strategy import StrategyRegistry, describe

FIELDS = ("name", "symbol", "capital", "timeframe", "risk_profile", "strategy", "params", "confirmations")
WIDGET_IDS = {f: f"f-{f}" for f in FIELDS} | {"risk_profile": "f-risk"}


def parse_params_text(text: str) -> dict[str, ParamValue]:
    """'fast=5, slow=13' -> {'fast': 5, 'slow': 13}; ValueError naming an item that is not key=value."""
    params: dict[str, ParamValue] = {}
    for item in (part.strip() for part in text.split(",")):
        if not item:
            continue
        key, sep, raw = item.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"{item!r} is not key=value (write e.g. fast=5, slow=13)")
        params[key.strip()] = parse_param_value(raw.strip())
    return params


def format_params(params: dict[str, ParamValue]) -> str:
    """The inverse of parse_params_text for prefilling: booleans as true/false."""
    return ", ".join(f"{k}={str(v).lower() if isinstance(v, bool) else v}" for k, v in params.items())


def risk_label(name: str, p: RiskProfile) -> str:
    return f"{name} ({p.sizing_text()})"


def error_field(line: str) -> str | None:
    """The widget id an error line is about: 'bot.capital: ...' -> 'f-capital'; a strategy
    parameter ('bot.params.fast: ...', 'bot.params: ...', 'bot.fast: ...') -> 'f-params'."""
    path = line.split(":", 1)[0]
    if not path.startswith("bot."):
        return None
    return WIDGET_IDS.get(path.removeprefix("bot.").split(".", 1)[0].split("[", 1)[0], "f-params")


class BotFormScreen(ModalScreen[BotSpec | None]):
    """Fields for every BotSpec setting; ctrl+s validates and returns the spec, escape returns None."""

    BINDINGS = [Binding("ctrl+s", "save", "Save"), Binding("escape", "cancel", "Cancel")]
    DEFAULT_CSS = """
    BotFormScreen { align: center middle; }
    BotFormScreen > #f-box { width: 90%; max-width: 100; height: auto; max-height: 100%; border: thick $primary;
                             padding: 0 1; background: $surface; }
    BotFormScreen #f-fields { height: auto; max-height: 100%; }
    BotFormScreen .f-row { height: 1; }
    BotFormScreen .f-row > Label { width: 12; color: $text-muted; }
    BotFormScreen .f-row:focus-within > Label { color: $accent; text-style: bold; }
    BotFormScreen .f-row > Input, BotFormScreen .f-row > Select { width: 1fr; }
    BotFormScreen Select.-invalid > SelectCurrent { background-tint: $error 30%; }
    BotFormScreen #f-params-help { color: $text-muted; padding-left: 12; }
    BotFormScreen #f-foot { dock: bottom; height: auto; }
    BotFormScreen #f-errors { color: $error; height: auto; max-height: 8; display: none; }
    BotFormScreen #f-errors.-shown { display: block; }
    BotFormScreen #f-buttons { height: 1; margin-top: 1; }
    BotFormScreen #f-buttons > Button { margin-right: 2; }
    BotFormScreen #f-keys { color: $text-muted; width: 1fr; text-align: right; }
    """

    def __init__(self, config: AppConfig, registry: StrategyRegistry, existing: BotSpec | None = None,
                 taken: Collection[str] = ()) -> None:
        super().__init__()
        self.config, self.registry, self.existing = config, registry, existing
        self.taken = set(taken) - ({existing.name} if existing else set())
        self.form_title = f"Edit {existing.name}" if existing else "New bot"

    # -- layout ------------------------------------------------------------------------------------

    def _symbols(self) -> list[str]:
        market = self.config.market
        if market.source == "synthetic":
            found = {s.symbol for s in market.symbols}
        else:
            found = {*DEFAULT_INSTRUMENTS, *self.config.exchange.instruments}
        return sorted(found | ({self.existing.symbol} if self.existing else set()))

    def _risk_options(self) -> list[tuple[str, str]]:
        profiles = {**RISK_PRESETS, **dict(sorted(self.config.risk_profiles.items()))}
        options = [(escape(risk_label(name, p)), name) for name, p in profiles.items()]
        if self.existing and self.existing.risk_profile not in profiles:  # shown so that saving reports it
            options.append((escape(self.existing.risk_profile), self.existing.risk_profile))
        return options

    @staticmethod
    def _select(wid: str, values: list[str], value: str | None, labels: list[tuple[str, str]] | None = None) -> Select[str]:
        options = labels if labels is not None else [(escape(v), v) for v in values]
        known = [v for _, v in options]
        chosen = value if value in known else (known[0] if known else Select.NULL)
        return Select(options, id=wid, value=chosen, allow_blank=not options, compact=True)

    def compose(self) -> ComposeResult:
        e = self.existing
        strategies = self.registry.names() + ([e.strategy] if e and e.strategy not in self.registry.names() else [])
        rows: list[tuple[str, Widget]] = [
            ("Name", Input(e.name if e else "", placeholder="letters, digits, _ . -", id="f-name", compact=True,
                           validate_on=())),
            ("Symbol", self._select("f-symbol", self._symbols(), e.symbol if e else None)),
            ("Capital", Input(str(e.capital) if e else "", placeholder="virtual USDT, e.g. 1000", id="f-capital",
                              type="number", compact=True, validate_on=())),
            ("Timeframe", self._select("f-timeframe", list(TIMEFRAMES), e.timeframe.value if e else "1h")),
            ("Risk", self._select("f-risk", [], e.risk_profile if e else "balanced", self._risk_options())),
            ("Strategy", self._select("f-strategy", strategies, e.strategy if e else None)),
            ("Params", Input(format_params(e.params) if e else "", placeholder="key=value, key=value (empty: defaults)",
                             id="f-params", compact=True, validate_on=())),
            ("Confirms", Input(str(e.confirmations) if e else "0", placeholder="0", id="f-confirmations",
                               type="integer", compact=True, validate_on=())),
        ]
        with Vertical(id="f-box") as box:
            box.border_title = escape(self.form_title)
            with VerticalScroll(id="f-fields"):
                for label, widget in rows:
                    with Horizontal(classes="f-row"):
                        yield Label(label, markup=False)
                        yield widget
                yield Static(id="f-params-help", markup=False)
            with Vertical(id="f-foot"):  # docked: errors and buttons stay visible, the fields scroll
                yield Static(id="f-errors", markup=False)
                with Horizontal(id="f-buttons"):
                    yield Button("Save", id="f-save", variant="primary", compact=True)
                    yield Button("Cancel", id="f-cancel", compact=True)
                    yield Static("ctrl+s save  esc cancel", id="f-keys", markup=False)

    def on_mount(self) -> None:
        self.show_strategy_help()
        self.query_one("#f-name", Input).focus()

    # -- behaviour ---------------------------------------------------------------------------------

    @on(Select.Changed, "#f-strategy")
    def show_strategy_help(self) -> None:
        """List the chosen strategy's parameters (default, bounds) and how many confirmations it offers."""
        name = self.query_one("#f-strategy", Select).value
        cls = self.registry.get(name) if isinstance(name, str) else None
        if cls is None:
            text = "no strategy chosen" if not isinstance(name, str) else f"{name}: not loaded"
        else:
            info = describe(cls)
            lines = [f"{p['name']}={format_params({'': p['default']})[1:]} ({p['type']}"
                     + "".join(f" {k}{v}" for k, v in p["bounds"].items()) + ")"
                     + (f" {p['description']}" if p["description"] else "") for p in info["params"]]
            offered = info["confirmations"]
            count = "" if cls.delegates and not cls.confirmations else f"{len(offered)}: "
            lines.append(f"confirmations offered {count}{', '.join(offered) or 'none'}")
            text = "\n".join(lines)
        self.query_one("#f-params-help", Static).update(text)

    @on(Input.Submitted)
    def next_field(self) -> None:
        self.focus_next()

    @on(Button.Pressed, "#f-save")
    def action_save(self) -> None:
        spec, errors = self.check()
        for wid in set(WIDGET_IDS.values()):
            self.query_one(f"#{wid}").remove_class("-invalid")
        for wid in {error_field(line) for line in errors} - {None}:
            self.query_one(f"#{wid}").add_class("-invalid")
        shown = self.query_one("#f-errors", Static)
        shown.update("\n".join(errors))
        shown.set_class(bool(errors), "-shown")
        if spec is not None and not errors:
            self.dismiss(spec)

    @on(Button.Pressed, "#f-cancel")
    def action_cancel(self) -> None:
        self.dismiss(None)

    def values(self) -> dict[str, Any]:
        """The fields as the dict `validate_bot` takes (unparsed text, like the CLI passes)."""
        def text(wid: str) -> str:
            return self.query_one(f"#{wid}", Input).value.strip()

        def choice(wid: str) -> str:
            value = self.query_one(f"#{wid}", Select).value
            return value if isinstance(value, str) else ""

        return {"name": text("f-name"), "symbol": choice("f-symbol"), "timeframe": choice("f-timeframe"),
                "capital": text("f-capital"), "risk_profile": choice("f-risk"), "strategy": choice("f-strategy"),
                "confirmations": text("f-confirmations") or "0"}

    def check(self) -> tuple[BotSpec | None, list[str]]:
        """The spec and every error line: the params text, the model, the config and plugins, the name."""
        data, errors = self.values(), []
        try:
            data["params"] = parse_params_text(self.query_one("#f-params", Input).value)
        except ValueError as exc:
            data["params"], errors = {}, [f"bot.params: {exc}"]
        if data["name"] in self.taken:
            errors.append(f"bot.name: a bot named {data['name']!r} already exists")
        try:
            spec = validate_bot(data, "bot")
        except ConfigError as exc:
            return None, errors + exc.errors
        return spec, errors + bot_errors(spec, self.config, self.registry, "bot")
