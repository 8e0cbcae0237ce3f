"""Shared fixtures for the CLI and headless tests: the console script, a clean
environment, read-only views of a state directory's database, and headless
engine subprocesses that are always stopped at teardown."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

DB_NAME = "tui-trader.sqlite3"
TABLES = ("bots", "bot_decisions", "control_events", "orders", "fills", "positions", "trades", "ledgers",
          "equity_snapshots", "strategy_state", "candles", "meta")
# "2026-11-21 12:34:00  btc-scalp-1m     scan     NO_SETUP        no cross: ..."
TEXT_LINE = re.compile(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d)  (\S+)\s+(\S+)\s+(\S+)\s+(.*)$")


def tui_trader_exe() -> str:
    found = shutil.which("tui-trader")
    if found:
        return found
    path = Path(sys.executable).parent / "tui-trader"
    assert path.exists(), f"console script not found at {path}"
    return str(path)


def clean_environ(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TUI_TRADER_")}
    env.update(extra)
    return env


@pytest.fixture
def isolated(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No TUI_TRADER_* from the outer environment, and a scratch cwd (the demo's default state_dir
    is relative). Not autouse: test modules opt in with their own autouse fixture."""
    for key in list(os.environ):
        if key.startswith("TUI_TRADER_"):
            monkeypatch.delenv(key)
    cwd = tmp_path / "cwd"
    cwd.mkdir(exist_ok=True)
    monkeypatch.chdir(cwd)


@pytest.fixture(scope="session")
def tui_exe() -> str:
    return tui_trader_exe()


# -- the database, read without touching it ----------------------------------------------------------------


class StateDB:
    """Reads a state directory's SQLite file through a private copy, so reading never
    creates -wal/-shm files or otherwise changes the directory under test."""

    def __init__(self, state_dir: Path) -> None:
        self.state_dir = state_dir
        self.path = state_dir / DB_NAME

    def files(self) -> dict[str, bytes] | None:
        """Every file of the state directory with its bytes; None if the directory does not exist."""
        if not self.state_dir.exists():
            return None
        return {p.name: p.read_bytes() for p in sorted(self.state_dir.iterdir()) if p.is_file()}

    def _copy(self) -> tuple[sqlite3.Connection, tempfile.TemporaryDirectory[str]]:
        tmp = tempfile.TemporaryDirectory()
        for suffix in ("", "-wal"):
            src = Path(str(self.path) + suffix)
            if src.exists():
                shutil.copyfile(src, Path(tmp.name) / (DB_NAME + suffix))
        conn = sqlite3.connect(Path(tmp.name) / DB_NAME)
        conn.row_factory = sqlite3.Row
        return conn, tmp

    def query(self, sql: str, args: tuple[Any, ...] = ()) -> list[dict[str, Any]]:
        conn, tmp = self._copy()
        try:
            return [dict(r) for r in conn.execute(sql, args).fetchall()]
        finally:
            conn.close()
            tmp.cleanup()

    def counts(self) -> dict[str, int]:
        conn, tmp = self._copy()
        try:
            return {t: conn.execute(f"SELECT COUNT(*) FROM {t}").fetchone()[0] for t in TABLES}
        finally:
            conn.close()
            tmp.cleanup()

    def snapshot(self, tables: tuple[str, ...] = TABLES) -> dict[str, list[dict[str, Any]]]:
        conn, tmp = self._copy()
        try:
            return {t: [dict(r) for r in conn.execute(f"SELECT * FROM {t}").fetchall()] for t in tables}
        finally:
            conn.close()
            tmp.cleanup()


@pytest.fixture
def state_db() -> Callable[[Path], StateDB]:
    return StateDB


# -- headless engine subprocesses -------------------------------------------------------------------------------


class Headless:
    """`tui-trader --no-ui ...` as a subprocess; stdout lines are collected by a thread
    with the monotonic time they arrived."""

    def __init__(self, exe: str, args: list[str], stderr_path: Path, env: dict[str, str] | None = None) -> None:
        self.args = args
        self.stderr_path = stderr_path
        self._stderr = stderr_path.open("wb")
        self.t0 = time.monotonic()
        self.proc = subprocess.Popen([exe, "--no-ui", *args], stdout=subprocess.PIPE, stderr=self._stderr,
                                     stdin=subprocess.DEVNULL, text=True, env=env or clean_environ(),
                                     start_new_session=True)
        self.lines: list[tuple[float, str]] = []
        self._cond = threading.Condition()
        self._eof = False
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            with self._cond:
                self.lines.append((time.monotonic() - self.t0, line.rstrip("\n")))
                self._cond.notify_all()
        with self._cond:
            self._eof = True
            self._cond.notify_all()

    def text(self) -> list[str]:
        with self._cond:
            return [line for _, line in self.lines]

    def wait_for(self, predicate: Callable[[str], bool], timeout: float, what: str, start: int = 0) -> tuple[int, float, str]:
        """The first line (from index `start`) matching; (index, seconds since start, line)."""
        deadline = time.monotonic() + timeout
        checked = start
        with self._cond:
            while True:
                while checked < len(self.lines):
                    t, line = self.lines[checked]
                    if predicate(line):
                        return checked, t, line
                    checked += 1
                if self._eof:
                    raise AssertionError(f"engine exited (rc={self.proc.poll()}) before {what}; stderr:\n{self.stderr()}")
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"no {what} within {timeout}s; last lines:\n" + "\n".join(l for _, l in self.lines[-10:])
                                         + f"\nstderr:\n{self.stderr()}")
                self._cond.wait(min(left, 0.5))

    def send(self, sig: int) -> None:
        self.proc.send_signal(sig)

    def finish(self, timeout: float) -> int:
        """Wait for the exit and for stdout to drain; the exit code."""
        rc = self.proc.wait(timeout=timeout)
        self._reader.join(timeout=5)
        self._stderr.close()
        return rc

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 15) -> int:
        self.send(sig)
        return self.finish(timeout)

    def stderr(self) -> str:
        return self.stderr_path.read_text(errors="replace")

    def decisions(self) -> list[tuple[str, str, str, str, str]]:
        """Parsed text-format decision lines: (ts, bot, phase, type, summary)."""
        return [m.groups() for line in self.text() if (m := TEXT_LINE.match(line))]  # type: ignore[misc]

    def json_lines(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.text()]

    def kill_if_running(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        if not self._stderr.closed:
            self._stderr.close()


@pytest.fixture
def headless(tui_exe: str, tmp_path: Path) -> Iterator[Callable[..., Headless]]:
    """Factory: headless(args, env=None) starts `tui-trader --no-ui *args`; every process it
    started is stopped at teardown."""
    started: list[Headless] = []

    def start(args: list[str], env: dict[str, str] | None = None) -> Headless:
        """`env`: extra variables on top of the clean environment."""
        proc = Headless(tui_exe, [str(a) for a in args], tmp_path / f"engine-{len(started)}.stderr", clean_environ(**(env or {})))
        started.append(proc)
        return proc

    yield start
    for proc in started:
        proc.kill_if_running()


@pytest.fixture
def run_cli(tui_exe: str) -> Callable[..., subprocess.CompletedProcess[str]]:
    """Run `tui-trader *args` to completion as a subprocess."""

    def run(*args: Any, env: dict[str, str] | None = None, timeout: float = 30) -> subprocess.CompletedProcess[str]:
        """`env`: extra variables on top of the clean environment."""
        return subprocess.run([tui_exe, *map(str, args)], capture_output=True, text=True, timeout=timeout,
                              env=clean_environ(**(env or {})), stdin=subprocess.DEVNULL)

    return run
