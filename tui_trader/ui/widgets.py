"""The console's own widgets: risk gauges and the price chart."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from functools import partial

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Vertical
from textual.markup import escape
from textual.reactive import reactive
from textual.widget import Widget
from textual.widgets import Static
from textual_plotext import Plot, PlotextPlot

from tui_trader.config import RiskProfile
from tui_trader.engine.risk_control import BotRisk, Gauge, PortfolioRisk
from tui_trader.model import Candle, Trade
from tui_trader.ui.views import hhmmss


class TextLine(Static):
    """A fixed-size line of text that repaints only when its text changes, and without a layout pass
    (an update that changes nothing still repaints, and a layout pass repaints the whole screen)."""

    DEFAULT_CSS = "TextLine { height: 1; }"

    def __init__(self, *, id: str | None = None, markup: bool = True) -> None:
        super().__init__(id=id, markup=markup)
        self.text: str | Text = ""

    def show(self, text: str | Text) -> None:
        if text != self.text:
            self.text = text
            self.update(text, layout=False)


class RiskGauge(Widget):
    """One line: label, a bar of value against its limit, and the numbers."""

    DEFAULT_CSS = "RiskGauge { height: 1; }"
    gauge: reactive[Gauge | None] = reactive(None)

    def __init__(self, label: str, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.label = label

    def render(self) -> Text:
        gauge = self.gauge
        label = f"{self.label:<13}"
        if gauge is None:
            return Text(f"{label} -", style="dim")
        numbers = f" {gauge.value:,.2f} / {gauge.limit:,.2f}" if gauge.limit else f" {gauge.value:,.2f} (no limit)"
        used = gauge.used or 0.0
        width = max(self.size.width - len(label) - len(numbers) - 6, 4)
        filled = round(min(max(used, 0.0), 1.0) * width)
        style = "red" if used >= 0.85 else "yellow" if used >= 0.6 else "green"
        return Text.assemble(label, ("█" * filled, style), ("░" * (width - filled), "dim"),
                             (f" {used:4.0%}" if gauge.limit else "", style), numbers)


class RiskPanel(Vertical):
    """The selected bot's gauges and the portfolio's, against their limits."""

    DEFAULT_CSS = "RiskPanel { height: auto; }"

    def compose(self) -> ComposeResult:
        yield TextLine(id="risk-bot-title")
        yield TextLine(id="risk-bot-sizing", markup=False)
        yield TextLine(id="risk-bot-limits", markup=False)
        yield RiskGauge("exposure", id="g-bot-exposure")
        yield RiskGauge("drawdown", id="g-bot-drawdown")
        yield RiskGauge("today's loss", id="g-bot-daily")
        yield TextLine(id="risk-portfolio-title")
        yield RiskGauge("exposure", id="g-pf-exposure")
        yield RiskGauge("to the stop", id="g-pf-drawdown")

    def show(self, bot: BotRisk | None, portfolio: PortfolioRisk, profile: tuple[str, RiskProfile] | None) -> None:
        """The selected bot's gauges and its risk profile's settings, and the portfolio's gauges."""
        title = f"[b]{escape(bot.name)}[/b]" if bot else "no bot selected"
        if profile is not None:
            title += f" risk profile [b]{escape(profile[0])}[/b]"
        if bot is not None and bot.cooldown_until:
            title += " [yellow](cooling down)[/]"
        self.query_one("#risk-bot-title", TextLine).show(title)
        self.query_one("#risk-bot-sizing", TextLine).show(f"  {profile[1].sizing_text()}" if profile else "")
        self.query_one("#risk-bot-limits", TextLine).show(f"  limits: {profile[1].limits_text()}" if profile else "")
        for key, gauge in (("exposure", bot.exposure if bot else None), ("drawdown", bot.drawdown if bot else None),
                           ("daily", bot.daily_loss if bot else None)):
            self.query_one(f"#g-bot-{key}", RiskGauge).gauge = gauge
        self.query_one("#risk-portfolio-title", TextLine).show(
            f"[b]portfolio[/b] {portfolio.open_positions} open, stop in {portfolio.stop_distance:,.2f} USDT")
        self.query_one("#g-pf-exposure", RiskGauge).gauge = portfolio.exposure
        self.query_one("#g-pf-drawdown", RiskGauge).gauge = portfolio.drawdown


@dataclass(frozen=True, slots=True)
class ChartData:
    title: str
    candles: Sequence[Candle]
    trades: Sequence[Trade]
    entry: tuple[int, float, bool] | None  # (ts, price, long) of the open position
    stop: Decimal | None
    target: Decimal | None


class PriceChart(PlotextPlot):
    """Candlesticks of the selected bot's market with its entries (▲/▼) and exits (x), and its
    current stop and target as lines. A candlestick build costs 20-50 ms of pure Python, so it
    runs in a thread on a figure of its own (the event loop keeps getting the GIL every few ms)
    and the widget shows the last finished picture; one build at a time, the newest wins."""

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.picture: Text = Text("")
        self.building = False
        self.waiting: ChartData | None = None  # asked for while a build ran

    def draw(self, data: ChartData) -> None:
        if self.building:
            self.waiting = data
            return
        self.building = True
        size = (self.size.width, self.size.height)
        theme = self._get_plotext_theme_name(self.app.theme)
        self.run_worker(partial(self.build, data, size, theme), thread=True, group="chart", exit_on_error=False)

    def build(self, data: ChartData, size: tuple[int, int], theme: str) -> None:
        """In a worker thread: a fresh figure, drawn, rendered to text; handed back to the loop."""
        plt = Plot()
        plt.plotsize(*size)
        plt._set_size(*size)  # as PlotextPlot.render does: plotsize alone does not always take
        plt.theme(theme)
        plot_chart(plt, data, size[0])
        picture = Text.from_ansi(plt.build())
        self.app.call_from_thread(self.built, picture)

    def built(self, picture: Text) -> None:
        self.picture, self.building = picture, False
        self.refresh()
        if self.waiting is not None:
            data, self.waiting = self.waiting, None
            self.draw(data)

    def render(self) -> Text:
        return self.picture


def plot_chart(plt: Plot, data: ChartData, width: int) -> None:
    plt.title(data.title)
    if not data.candles:
        return
    shown = list(data.candles)[-max(10, width - 12):]  # more candles than columns only overlap
    first_ts = shown[0].ts
    step = (shown[1].ts - first_ts) if len(shown) > 1 else 60_000
    index = {c.ts: i for i, c in enumerate(shown)}
    xs = list(range(len(shown)))
    plt.candlestick(xs, {"Open": [c.open for c in shown], "Close": [c.close for c in shown],
                         "High": [c.high for c in shown], "Low": [c.low for c in shown]})

    def x_of(ts: int) -> int | None:
        return index.get(ts - (ts - first_ts) % step) if ts >= first_ts else None

    for trade in data.trades:
        for ts, value, marker, color in ((trade.entry_ts, trade.entry_price, "▲" if trade.side.sign > 0 else "▼", "green"),
                                         (trade.exit_ts, trade.exit_price, "x", "red")):
            x = x_of(ts)
            if x is not None:
                plt.scatter([x], [float(value)], marker=marker, color=color)
    if data.entry is not None and (x := x_of(data.entry[0])) is not None:
        plt.scatter([x], [data.entry[1]], marker="▲" if data.entry[2] else "▼", color="green")
    if data.stop is not None:
        plt.hline(float(data.stop), color="red")
    if data.target is not None:
        plt.hline(float(data.target), color="green")
    ticks = xs[:: max(1, len(xs) // 4)]
    plt.xticks(ticks, [hhmmss(shown[i].ts)[:5] for i in ticks])
