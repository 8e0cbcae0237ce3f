"""What the console's keys do. Every action goes through the engine's public commands
(`Engine.command`, `add_bot`, `edit_bot`, `remove_bot`); destructive ones show what will
happen first and default to No. `check_action` greys out keys that cannot apply to the
selected bot right now (the footer shows them dimmed)."""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING

from textual.widgets import DataTable, Input

from tui_trader.config import BotSpec
from tui_trader.engine.control import CommandError
from tui_trader.engine.preview import flatten_preview
from tui_trader.engine.runtime import BotRuntime
from tui_trader.model import BotState
from tui_trader.ui.bot_form import BotFormScreen
from tui_trader.ui.detail import BotDetailScreen
from tui_trader.ui.screens import ConfirmScreen, HelpScreen, KillAllScreen, QuitScreen, flatten_screen

if TYPE_CHECKING:
    from textual.app import App

    from tui_trader.engine.orchestrator import Engine

    _Base = App[None]
else:
    _Base = object

BOT_ACTIONS = ("pause", "resume", "flatten", "edit_bot", "delete_bot", "detail")


class ConsoleActions(_Base):
    engine: Engine
    selected: str | None
    scope_all: bool
    log_filter: str
    active_pane: str

    if TYPE_CHECKING:  # provided by TraderApp
        def selected_bot(self) -> BotRuntime | None: ...
        def select_bot(self, name: str) -> None: ...
        def refresh_console(self, everything: bool = False) -> None: ...
        def rewrite_log(self) -> None: ...
        def apply_panes(self) -> None: ...

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        """None greys a key out in the footer (it cannot apply to the selected bot now)."""
        bot = self.selected_bot()
        if action in BOT_ACTIONS and bot is None:
            return None
        if action == "pause":
            return True if bot and bot.state is BotState.RUNNING else None
        if action == "resume":
            return True if bot and bot.state in (BotState.PAUSED, BotState.HALTED, BotState.STOPPED, BotState.ERROR) else None
        if action == "flatten":
            return True if bot and (bot.ledger.position.is_open or bot.orders) and bot.state is not BotState.STOPPED else None
        if action == "resume_all":
            return True if self.engine.global_state is BotState.HALTED else None
        if action == "pane":
            return self.screen.has_class("-narrow")
        return True

    async def command(self, command: str, bot: BotRuntime | None) -> bool:
        try:
            result = await self.engine.command(command, bot.name if bot else None, "operator:ui")
        except CommandError as exc:
            self.notify(str(exc), severity="warning", markup=False)
            return False
        self.notify(result, markup=False)
        self.refresh_console(everything=True)
        return True

    async def act_on_bot(self, action: str, name: str) -> None:
        """A bot action from the palette: select the bot, then act as its key would."""
        self.select_bot(name)
        await self.run_action(action)

    # -- state -------------------------------------------------------------------------------------------

    async def action_pause(self) -> None:
        await self.command("pause", self.selected_bot())

    async def action_resume(self) -> None:
        await self.command("resume", self.selected_bot())

    async def action_resume_all(self) -> None:
        await self.command("resume_all", None)

    def action_flatten(self) -> None:
        bot = self.selected_bot()
        if bot is None:
            return
        ex = self.engine.config.exchange
        preview = flatten_preview(bot, self.engine.marks.get(bot.profile.symbol), ex.slippage_bps, ex.taker_fee)

        async def answered(yes: bool | None) -> None:
            if yes:
                await self.command("flatten", bot)

        self.push_screen(flatten_screen(preview), answered)

    def action_flatten_all(self) -> None:
        ex = self.engine.config.exchange
        previews = [flatten_preview(b, self.engine.marks.get(b.profile.symbol), ex.slippage_bps, ex.taker_fee)
                    for b in self.engine.bots.values()]

        async def answered(yes: bool | None) -> None:
            if yes:
                await self.command("flatten_all", None)

        self.push_screen(KillAllScreen([p for p in previews if not p.empty]), answered)

    # -- bots --------------------------------------------------------------------------------------------

    def _form(self, existing: BotSpec | None) -> BotFormScreen:
        taken = [b.name for b in self.engine.bots.values()]
        return BotFormScreen(self.engine.config, self.engine.factory.registry, existing, taken)

    def action_new_bot(self) -> None:
        async def saved(spec: BotSpec | None) -> None:
            if spec is None:
                return
            try:
                self.notify(await self.engine.add_bot(spec), markup=False)
            except CommandError as exc:
                self.notify(str(exc), severity="error", markup=False)
                return
            self.refresh_console(everything=True)
            self.select_bot(spec.name)

        self.push_screen(self._form(None), saved)

    def action_edit_bot(self) -> None:
        bot = self.selected_bot()
        if bot is None:
            return
        name = bot.name

        async def saved(spec: BotSpec | None) -> None:
            if spec is None:
                return
            try:
                self.notify(await self.engine.edit_bot(name, spec), markup=False)
            except CommandError as exc:
                self.notify(str(exc), severity="error", markup=False)
                return
            self.refresh_console(everything=True)
            self.select_bot(spec.name)

        self.push_screen(self._form(bot.record.spec), saved)

    def action_delete_bot(self) -> None:
        bot = self.selected_bot()
        if bot is None:
            return
        if self.engine.holds_anything(bot):
            self.notify(f"{bot.name} holds a position or working orders: flatten it (f) before deleting it",
                        severity="warning", markup=False)
            return
        name = bot.name

        async def answered(yes: bool | None) -> None:
            if not yes:
                return
            try:
                self.notify(await self.engine.remove_bot(name), markup=False)
            except CommandError as exc:
                self.notify(str(exc), severity="error", markup=False)
            self.refresh_console(everything=True)

        self.push_screen(ConfirmScreen(f"Delete {name}?", [
            f"  {name} stops trading and leaves the console and `bots list`.",
            "  Its decisions, orders, trades and equity history stay in the database.",
        ], f"Delete {name}?"), answered)

    def action_detail(self) -> None:
        bot = self.selected_bot()
        if bot is not None:
            self.push_screen(BotDetailScreen(self.engine, bot.name))

    # -- the log and the panes ---------------------------------------------------------------------------

    def action_toggle_scope(self) -> None:
        self.scope_all = not self.scope_all
        self.rewrite_log()

    def action_filter_log(self) -> None:
        if self.screen.has_class("-narrow") and self.active_pane != "log":
            self.action_pane("log")
        box = self.query_one("#log-filter", Input)
        box.value = self.log_filter
        box.display = True
        box.focus()

    def action_close_filter(self) -> None:
        box = self.query_one("#log-filter", Input)
        if box.display:
            box.display = False
            self.query_one("#bots", DataTable).focus()

    def action_cursor(self, step: int) -> None:
        table = self.query_one("#bots", DataTable)
        table.move_cursor(row=table.cursor_row + step)

    def action_pane(self, name: str) -> None:
        self.active_pane = name
        self.apply_panes()
        if name == "bots":
            self.query_one("#bots", DataTable).focus()

    def action_help(self) -> None:
        self.push_screen(HelpScreen())

    # -- quitting ----------------------------------------------------------------------------------------

    async def action_quit(self) -> None:
        holding = [b.name for b in self.engine.bots.values() if b.ledger.position.is_open]
        if not holding:
            self.exit()
            return

        async def answered(choice: str | None) -> None:
            if choice == "flatten":
                if await self.command("flatten_all", None):
                    await self._wait_flat()
                self.exit()
            elif choice == "quit":
                self.exit()

        self.push_screen(QuitScreen(holding), answered)

    async def _wait_flat(self, timeout: float = 30.0) -> None:
        """The close orders fill on the next candles: quit once the portfolio is HALTED (or after the timeout)."""
        self.notify("flattening: waiting for the closing fills before quitting")
        deadline = time.monotonic() + timeout
        while self.engine.global_state is not BotState.HALTED and time.monotonic() < deadline:
            await asyncio.sleep(0.1)
