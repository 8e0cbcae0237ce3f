"""End to end: the real `tui-trader` console on the built-in demo, in a real terminal (tmux, 80x24).
The test reads the screen with `capture-pane` and waits for text, never for a fixed time: it
pauses a bot with `p`, flattens another through the command palette, opens the bot form and the
palette, quits with `q`, and then checks the exit status and the state database."""

from __future__ import annotations

import os
import shlex
import shutil
import sqlite3
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.conftest import clean_environ, tui_trader_exe

pytestmark = pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed (.ci/run installs it)")

PAUSED_BOT = "btc-scalp-1m"  # the first row: selected when the console opens
FLATTENED_BOT = "sol-cross-1m"  # sma_cross is always in the market: it holds a position within seconds


class Terminal:
    """One tmux session running one command, read and typed into like a user would."""

    def __init__(self, command: list[str], env: dict[str, str], status_file: Path, width: int = 80, height: int = 24) -> None:
        self.session = f"tt-e2e-{uuid.uuid4().hex[:8]}"
        self.socket = ["-L", self.session]  # a private tmux server: no clash with the user's
        self.status_file = status_file
        env_args = [arg for key, value in env.items() for arg in ("-e", f"{key}={value}")]
        # tmux 3.3 does not report a dead pane's exit status: the shell writes it to a file.
        shell = f"{shlex.join(command)}; echo $? > {shlex.quote(str(status_file))}; sleep 600"
        self.tmux("new-session", "-d", "-s", self.session, "-x", str(width), "-y", str(height), *env_args, shell)

    def tmux(self, *args: str) -> str:
        return subprocess.run(["tmux", *self.socket, *args], check=True, capture_output=True, text=True, timeout=10).stdout

    def screen(self) -> str:
        return self.tmux("capture-pane", "-p", "-t", self.session)

    def keys(self, *keys: str) -> None:
        self.tmux("send-keys", "-t", self.session, *keys)

    def type(self, text: str) -> None:
        self.tmux("send-keys", "-t", self.session, "-l", text)

    def wait(self, condition: Callable[[str], bool], what: str, timeout: float = 30.0) -> str:
        deadline = time.monotonic() + timeout
        while True:
            screen = self.screen()
            if condition(screen):
                return screen
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out waiting for {what}; the screen:\n{screen}")
            time.sleep(0.1)

    def wait_for(self, text: str, timeout: float = 30.0) -> str:
        return self.wait(lambda s: text in s, repr(text), timeout)

    def wait_gone(self, text: str, timeout: float = 30.0) -> str:
        return self.wait(lambda s: text not in s, f"{text!r} to disappear", timeout)

    def exit_status(self, timeout: float = 30.0) -> int:
        deadline = time.monotonic() + timeout
        while not self.status_file.exists() or not self.status_file.read_text().strip():
            if time.monotonic() > deadline:
                raise AssertionError(f"the console did not exit; the screen:\n{self.screen()}")
            time.sleep(0.1)
        return int(self.status_file.read_text())

    def close(self) -> None:
        subprocess.run(["tmux", *self.socket, "kill-server"], capture_output=True, timeout=10)


def row_of(screen: str, bot: str) -> str:
    return next((line for line in screen.splitlines() if bot in line), "")


@pytest.fixture
def console(tmp_path: Path) -> Iterator[tuple[Terminal, Path]]:
    state = tmp_path / "state"
    env = clean_environ(TERM="tmux-256color", TEXTUAL_ANIMATIONS="none")
    keep = {k: env[k] for k in ("TERM", "TEXTUAL_ANIMATIONS", "PATH") if k in env} | {"HOME": os.environ.get("HOME", "/")}
    term = Terminal([tui_trader_exe(), "--state-dir", str(state)], keep, tmp_path / "exit-status")
    try:
        yield term, state
    finally:
        term.close()


def test_console_in_tmux_pause_flatten_form_palette_quit(console: tuple[Terminal, Path]) -> None:
    term, state = console
    term.wait_for(PAUSED_BOT, timeout=60)
    term.wait_for("PAPER")  # the environment badge fits at 80 columns

    term.keys("p")  # the first row is selected: pause it
    term.wait(lambda s: "PAUSED" in row_of(s, PAUSED_BOT), f"{PAUSED_BOT} PAUSED")

    screen = term.wait(lambda s: any(side in row_of(s, FLATTENED_BOT) for side in ("long", "short")),
                       f"{FLATTENED_BOT} to hold a position", timeout=120)
    term.keys("C-p")
    term.wait_for("Search for commands")
    term.type(f"flatten {FLATTENED_BOT}")
    term.wait_for(f"flatten {FLATTENED_BOT}")
    term.keys("Enter")
    term.wait_for(f"Flatten {FLATTENED_BOT}?")
    term.wait_for("reduce-only market")  # the preview says what will be sent
    term.keys("y")
    term.wait(lambda s: "HALTED" in row_of(s, FLATTENED_BOT) or "FLATTEN" in row_of(s, FLATTENED_BOT),
              f"{FLATTENED_BOT} flattening")
    term.wait(lambda s: "HALTED" in row_of(s, FLATTENED_BOT), f"{FLATTENED_BOT} HALTED once the close filled")
    assert "flat" in row_of(term.screen(), FLATTENED_BOT), screen

    term.keys("n")
    term.wait_for("New bot")
    term.keys("Escape")
    term.wait_gone("New bot")

    term.keys("C-p")
    term.wait_for("Search for commands")
    term.keys("Escape")
    term.wait_gone("Search for commands")

    term.keys("q")
    screen = term.wait(lambda s: "Quit?" in s or "hold positions" in s or "$" in s or s.strip() == "", "the quit question")
    if "Quit?" in screen:  # other bots hold positions: they stay open and are managed on the next start
        assert "managed again on the next start" in screen
        term.keys("y")
    assert term.exit_status() == 0, term.screen()

    db = sqlite3.connect(f"file:{state / 'tui-trader.sqlite3'}?mode=ro", uri=True)
    try:
        states = dict(db.execute("SELECT name, state FROM bots").fetchall())
        assert states[PAUSED_BOT] == "PAUSED" and states[FLATTENED_BOT] == "HALTED"
        events = db.execute("SELECT b.name, c.command, c.source FROM control_events c JOIN bots b ON b.id = c.bot_id"
                            " WHERE c.source = 'operator:ui' ORDER BY c.id").fetchall()
        assert (PAUSED_BOT, "pause", "operator:ui") in events and (FLATTENED_BOT, "flatten", "operator:ui") in events
        (position,) = db.execute("SELECT qty FROM positions p JOIN bots b ON b.id = p.bot_id WHERE b.name = ?",
                                 (FLATTENED_BOT,)).fetchone()
        assert position in ("0", "0E-8") or float(position) == 0.0
    finally:
        db.close()


CRASHING_CONSOLE = """
import asyncio, sys
from pathlib import Path
from tui_trader.config import load_config
from tui_trader.setup import load_strategies
from tui_trader.ui import app as console
from tui_trader.ui.launcher import run_console

flushes = 0
flush = console.TraderApp.refresh_console

def failing(self, everything=False):  # fault injection: the 20th flush raises, as a console bug would
    global flushes
    flushes += 1
    if flushes == 20:
        raise RuntimeError("injected console failure")
    return flush(self, everything)

console.TraderApp.refresh_console = failing
sys.exit(asyncio.run(run_console(load_config(None), Path(sys.argv[1]), load_strategies())))
"""


def test_a_console_that_raises_stops_the_engine_gracefully_and_shows_the_error(tmp_path: Path) -> None:
    state = tmp_path / "state"
    script = tmp_path / "crash.py"
    script.write_text(CRASHING_CONSOLE)
    env = clean_environ(TERM="tmux-256color", TEXTUAL_ANIMATIONS="none")
    keep = {k: env[k] for k in ("TERM", "TEXTUAL_ANIMATIONS", "PATH") if k in env} | {"HOME": os.environ.get("HOME", "/")}
    term = Terminal([sys.executable, str(script), str(state)], keep, tmp_path / "exit-status")
    try:
        assert term.exit_status(timeout=60) == 1
        screen = " ".join(term.screen().split())  # the message wraps at 80 columns
        assert "injected console failure" in screen and "the engine was stopped and its state saved" in screen
    finally:
        term.close()
    db = sqlite3.connect(f"file:{state / 'tui-trader.sqlite3'}?mode=ro", uri=True)
    try:
        assert db.execute("SELECT COUNT(*) FROM bots").fetchone()[0] == 9
        assert db.execute("SELECT COUNT(*) FROM bot_decisions").fetchone()[0] > 0  # the engine ran and its log was flushed
    finally:
        db.close()
    # The engine let go of the state directory: the CLI sees no engine running and changes the database itself.
    result = subprocess.run([tui_trader_exe(), "bots", "pause", PAUSED_BOT, "--state-dir", str(state)],
                            capture_output=True, text=True, timeout=60, env=clean_environ())
    assert result.returncode == 0 and "no engine running" in result.stdout, result.stdout + result.stderr
