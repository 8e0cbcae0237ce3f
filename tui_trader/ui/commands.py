"""The command palette (ctrl+p): every console action by name, and each bot action for every
bot by name ("pause eth-trend-1m"), so nothing needs the selection or a mouse."""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import TYPE_CHECKING, Any, cast

from textual.command import DiscoveryHit, Hit, Hits, Provider

if TYPE_CHECKING:
    from tui_trader.ui.app import TraderApp

Command = tuple[str, Callable[[], Any], str]

# (title, action, help); the bot actions below also exist per bot.
APP_ACTIONS: tuple[tuple[str, str, str], ...] = (
    ("flatten ALL and halt", "flatten_all", "close every position, cancel every order, halt the portfolio"),
    ("resume the portfolio", "resume_all", "after a halt: the portfolio runs again"),
    ("new bot", "new_bot", "a form with every setting, validated field by field"),
    ("log: selected bot / all bots", "toggle_scope", "switch the decision log's scope"),
    ("log: filter", "filter_log", "show only log lines containing a text"),
    ("help", "help", "every key"),
    ("quit", "quit", "leave the console (asks when bots hold positions)"),
)
BOT_ACTIONS: tuple[tuple[str, str, str], ...] = (
    ("pause", "pause", "reduce-only: no new entries, exits and stops still managed"),
    ("resume", "resume", "trade normally again"),
    ("flatten", "flatten", "preview, then cancel its orders and close its position"),
    ("edit", "edit_bot", "change its settings"),
    ("delete", "delete_bot", "remove it (refused while it holds a position)"),
    ("detail", "detail", "performance, trades, equity curve, decision history"),
)


def palette_commands(app: TraderApp) -> list[Command]:
    commands: list[Command] = [(title, partial(app.run_action, action), help_text) for title, action, help_text in APP_ACTIONS]
    for bot in sorted(app.engine.bots.values(), key=lambda b: b.name):
        for verb, action, help_text in BOT_ACTIONS:
            commands.append((f"{verb} {bot.name}", partial(app.act_on_bot, action, bot.name), help_text))
    return commands


class ConsoleCommands(Provider):
    async def discover(self) -> Hits:
        for title, callback, help_text in palette_commands(cast("TraderApp", self.app))[: len(APP_ACTIONS)]:
            yield DiscoveryHit(title, callback, help=help_text)

    async def search(self, query: str) -> Hits:
        matcher = self.matcher(query)
        for title, callback, help_text in palette_commands(cast("TraderApp", self.app)):
            score = matcher.match(title)
            if score > 0:
                yield Hit(score, matcher.highlight(title), callback, help=help_text)
