"""Modal screens: the flatten preview, flatten-all with a typed confirmation, quit, help.

Destructive actions show exactly what will happen and default to No.
"""

from __future__ import annotations

from collections.abc import Sequence

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Input, Static

from tui_trader.engine.preview import FlattenPreview

KILL_WORD = "FLATTEN"


def describe_preview(preview: FlattenPreview) -> list[str]:
    lines = []
    for order in preview.cancels:
        r = order.request
        lines.append(f"  cancel {r.purpose.value} {r.order_type.value.lower()} {r.side.value.lower()} {r.qty}"
                     f" ({r.client_order_id}, {order.status.value})")
    if preview.close is not None:
        c = preview.close
        lines.append(f"  send   reduce-only market {c.side.value.lower()} {c.qty}: est. fill {c.price}"
                     f" (mark {c.mark} with slippage), fee {c.fee:.2f}, P&L {c.pnl:+.2f} USDT")
    return lines or ["  nothing to do: no position, no working orders"]


class ConfirmScreen(ModalScreen[bool]):
    """Yes / no, No by default: `y` confirms, `n` or escape cancels."""

    BINDINGS = [Binding("y", "answer(True)", "Yes"), Binding("n,escape", "answer(False)", "No")]
    DEFAULT_CSS = """
    ConfirmScreen { align: center middle; }
    ConfirmScreen > Vertical { width: 90%; max-width: 110; height: auto; border: thick $warning; padding: 0 1;
                               background: $surface; }
    """

    def __init__(self, title: str, lines: Sequence[str], question: str) -> None:
        super().__init__()
        self.title_text, self.lines, self.question = title, lines, question

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Static(f"[b]{self.title_text}[/b]")
            yield Static("\n".join(self.lines), markup=False)
            yield Static(f"{self.question}  [b]y[/b] yes   [b]n[/b]/esc no")

    def action_answer(self, yes: bool) -> None:
        self.dismiss(yes)


def flatten_screen(preview: FlattenPreview) -> ConfirmScreen:
    return ConfirmScreen(f"Flatten {preview.bot}?", describe_preview(preview),
                         f"{preview.bot} goes to FLATTENING, then HALTED. Flatten?")


class KillAllScreen(ModalScreen[bool]):
    """Flatten every bot and halt the portfolio: the same preview for all, and the word typed."""

    BINDINGS = [Binding("escape", "cancel", "Cancel")]
    DEFAULT_CSS = """
    KillAllScreen { align: center middle; }
    KillAllScreen > Vertical { width: 90%; max-width: 110; height: auto; max-height: 90%; border: thick $error;
                               padding: 0 1; background: $surface; }
    KillAllScreen #kill-preview { height: auto; max-height: 14; overflow-y: auto; }
    """

    def __init__(self, previews: Sequence[FlattenPreview]) -> None:
        super().__init__()
        self.previews = previews

    def compose(self) -> ComposeResult:
        lines: list[str] = []
        for preview in self.previews:
            lines.append(f"{preview.bot}:")
            lines.extend(describe_preview(preview))
        with Vertical():
            yield Static("[b]Flatten ALL bots and HALT the portfolio?[/b]")
            yield Static("\n".join(lines) if lines else "No bot holds a position or a working order.", id="kill-preview",
                         markup=False)
            yield Static(f"No bot opens anything until you resume. Type [b]{KILL_WORD}[/b] and enter to confirm, esc to cancel.")
            yield Input(placeholder=KILL_WORD, id="kill-word")

    def on_input_submitted(self, event: Input.Submitted) -> None:
        if event.value.strip() == KILL_WORD:
            self.dismiss(True)
        else:
            self.notify(f"type {KILL_WORD} exactly to confirm", severity="warning")

    def action_cancel(self) -> None:
        self.dismiss(False)


class QuitScreen(ModalScreen[str]):
    """Quit with positions open: say what happens to them; optionally flatten first."""

    BINDINGS = [Binding("y", "choose('quit')", "Quit"), Binding("f", "choose('flatten')", "Flatten all, then quit"),
                Binding("n,escape", "choose('stay')", "Stay")]
    DEFAULT_CSS = """
    QuitScreen { align: center middle; }
    QuitScreen > Vertical { width: 90%; max-width: 100; height: auto; border: thick $warning; padding: 0 1;
                            background: $surface; }
    """

    def __init__(self, holding: Sequence[str]) -> None:
        super().__init__()
        self.holding = holding

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Static(f"[b]Quit? {len(self.holding)} bots hold positions[/b]")
            yield Static(", ".join(self.holding), markup=False)
            yield Static("They stay open under their exchange-side stops and targets, and are managed again on the next"
                         " start.\n[b]y[/b] quit   [b]f[/b] flatten all first, then quit   [b]n[/b]/esc stay")

    def action_choose(self, choice: str) -> None:
        self.dismiss(choice)


HELP = """\
[b]Keys[/b]
  up/down, j/k   select a bot             enter  bot detail: performance, trades, equity, decisions
  p  pause the bot (reduce-only)          r      resume it
  f  flatten the bot (preview, confirm)   X      flatten ALL and halt (typed confirmation)
  R  resume the portfolio after a halt
  n  new bot        e  edit the bot       d      delete the bot (refused while it holds a position)
  a  log: the selected bot / all bots     /      filter the log (empty to clear, esc to close)
  1-5  panes when the terminal is narrow (bots, log, positions, chart, risk)
  ctrl+p  every action by name            ?      this help      q  quit
[b]Detail screen[/b]  1 trades  2 equity  3 decisions  t filter by type  R reload  esc back
Unavailable keys are greyed out in the footer. Everything works without a mouse.
"""


class HelpScreen(ModalScreen[None]):
    BINDINGS = [Binding("escape,q,question_mark", "close", "Close")]
    DEFAULT_CSS = """
    HelpScreen { align: center middle; }
    HelpScreen > Static { width: auto; max-width: 100%; height: auto; border: thick $primary; padding: 0 1;
                          background: $surface; }
    """

    def compose(self) -> ComposeResult:
        yield Static(HELP)

    def action_close(self) -> None:
        self.dismiss(None)
