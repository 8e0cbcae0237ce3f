"""Benchmark of the console: the real `tui-trader` console in a real terminal (tmux).

Two scenarios, each a fresh state directory and a console process inside its own tmux server:

* load: 100 bots on 1m candles at 20 simulated candles per second, about 2,000 engine events
  per second (a decision per bot per candle, plus ticks, fills and trades). Measured over the
  window: the event loop's lag (a probe task sleeping 50 ms and recording how late it wakes),
  the bytes the console writes to the terminal (tmux `pipe-pane`), and the decisions per
  second the engine really processed.
* idle: 20 bots and no market events (one candle an hour), the CPU the whole process uses.

    python benchmarks/ui.py [--runs 3] [--seconds 20] [--size 80x24]
    python benchmarks/ui.py --child load|idle ...   (what runs inside tmux)

The child is the console as `tui-trader` runs it (`tui_trader.ui.launcher.run_console`) with
a probe task on the same event loop; it ends itself with SIGTERM, which the console handles
as it would from systemd or a closed SSH session. Each figure is the median over runs; the
last output line is one JSON object: {"loop_lag_p99_ms", "bytes_per_s", "idle_cpu_pct", ...}.
Targets (issue 5): p99 lag <= 50 ms, <= 20 KB/s at 4 Hz, idle CPU <= 0.5 %.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import shlex
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

TARGETS = {"loop_lag_p99_ms": 50.0, "bytes_per_s": 20_000.0, "idle_cpu_pct": 0.5}
SETTLE_S = 12.0  # start-up (warm-up of every bot) and the first paints, before the window opens
PROBE_S = 0.05  # load: a probe every 50 ms; idle: every second (the probe must not be the load)
STRATEGIES = ("ema_trend", "sma_cross", "range_reversion", "donchian_breakout", "mtf_stochrsi")
SYMBOLS = (("BTCUSDT", 65000, 0.0012), ("ETHUSDT", 3200, 0.0015), ("SOLUSDT", 150, 0.002), ("XRPUSDT", 0.55, 0.0018))


def config_toml(bots: int, candle_seconds: float) -> str:
    lines = ["[market]", 'source = "synthetic"', "seed = 11", f"candle_seconds = {candle_seconds}", ""]
    for symbol, price, vol in SYMBOLS:
        lines += ["[[market.symbols]]", f'symbol = "{symbol}"', f"start_price = {price}", f"volatility = {vol}", ""]
    for i in range(bots):
        symbol = SYMBOLS[i % len(SYMBOLS)][0]
        lines += ["[[bots]]", f'name = "bot-{i:03d}"', f'symbol = "{symbol}"', 'timeframe = "1m"', 'capital = "1000"',
                  f'risk_profile = "{("cautious", "balanced", "aggressive")[i % 3]}"',
                  f'strategy = "{STRATEGIES[i % len(STRATEGIES)]}"', "confirmations = 0", ""]
    return "\n".join(lines)


# -- the child: the console with a probe -------------------------------------------------------------------------


def decisions_so_far(db: Path) -> int:
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
        return int(conn.execute("SELECT COALESCE(MAX(id), 0) FROM bot_decisions").fetchone()[0])


async def probe(mode: str, seconds: float, state: Path, out: Path, marker: Path) -> None:
    await asyncio.sleep(SETTLE_S)
    db = state / "tui-trader.sqlite3"
    marker.write_text(str(time.time()))
    lags: list[float] = []
    cpu0, wall0 = resource.getrusage(resource.RUSAGE_SELF), time.monotonic()
    decisions0 = await asyncio.to_thread(decisions_so_far, db)
    period = PROBE_S if mode == "load" else 1.0
    while time.monotonic() - wall0 < seconds:
        t = time.perf_counter()
        await asyncio.sleep(period)
        lags.append((time.perf_counter() - t - period) * 1000)
    cpu1, wall = resource.getrusage(resource.RUSAGE_SELF), time.monotonic() - wall0
    decisions1 = await asyncio.to_thread(decisions_so_far, db)
    used = (cpu1.ru_utime - cpu0.ru_utime) + (cpu1.ru_stime - cpu0.ru_stime)
    lags.sort()
    out.write_text(json.dumps({
        "mode": mode, "seconds": wall, "cpu_pct": used / wall * 100,
        "lag_p50_ms": lags[len(lags) // 2], "lag_p99_ms": lags[min(len(lags) - 1, int(len(lags) * 0.99))],
        "lag_max_ms": lags[-1], "decisions_per_s": (decisions1 - decisions0) / wall,
    }))
    os.kill(os.getpid(), signal.SIGTERM)  # leave as systemd or a dropped SSH session would


async def child(args: argparse.Namespace) -> int:
    from tui_trader.config import load_config
    from tui_trader.setup import load_strategies
    from tui_trader.ui.launcher import run_console

    config = load_config(Path(args.config))
    registry = load_strategies()
    task = asyncio.create_task(probe(args.child, args.seconds, Path(args.state_dir), Path(args.out), Path(args.marker)))
    code = await run_console(config, Path(args.state_dir), registry, ui_hz=args.ui_hz)
    await task
    return code


# -- the parent: tmux, bytes, medians ---------------------------------------------------------------------------


def tmux(sock: str, *args: str) -> str:
    return subprocess.run(["tmux", "-L", sock, *args], check=True, capture_output=True, text=True, timeout=20).stdout


def run_once(mode: str, seconds: float, size: tuple[int, int], ui_hz: float, keep: Path | None = None) -> dict[str, Any]:
    """One scenario in its own tmux server; `keep` saves what the console wrote to the terminal."""
    bots, candle_seconds = (100, 0.05) if mode == "load" else (20, 3600)
    with tempfile.TemporaryDirectory(prefix=f"tt-ui-bench-{mode}-") as tmp:
        work = Path(tmp)
        (work / "bench.toml").write_text(config_toml(bots, candle_seconds))
        out, marker, raw, status = work / "stats.json", work / "window-open", work / "terminal.bytes", work / "status"
        command = [sys.executable, str(Path(__file__).resolve()), "--child", mode, "--config", str(work / "bench.toml"),
                   "--state-dir", str(work / "state"), "--out", str(out), "--marker", str(marker), "--seconds", str(seconds),
                   "--ui-hz", str(ui_hz)]
        sock = f"tt-ui-bench-{uuid.uuid4().hex[:8]}"
        # Textual draws on stderr: it must stay the terminal.
        shell = f"{shlex.join(command)}; echo $? > {shlex.quote(str(status))}; sleep 600"
        tmux(sock, "new-session", "-d", "-s", "b", "-x", str(size[0]), "-y", str(size[1]), "-e", "TERM=tmux-256color",
             "-e", "TEXTUAL_ANIMATIONS=none", shell)
        try:
            tmux(sock, "pipe-pane", "-o", "-t", "b", f"cat >> {shlex.quote(str(raw))}")
            deadline = time.monotonic() + SETTLE_S + seconds + 120
            while not marker.exists():
                if status.exists() or time.monotonic() > deadline:
                    raise RuntimeError(f"{mode}: the console ended before the window:\n{tmux(sock, 'capture-pane', '-p', '-t', 'b')}")
                time.sleep(0.05)
            bytes0, t0 = raw.stat().st_size if raw.exists() else 0, time.monotonic()
            while not out.exists():
                if status.exists() or time.monotonic() > deadline:
                    raise RuntimeError(f"{mode}: no figures:\n{tmux(sock, 'capture-pane', '-p', '-t', 'b')}")
                time.sleep(0.05)
            bytes1, t1 = raw.stat().st_size, time.monotonic()
            while not status.exists() and time.monotonic() < deadline:
                time.sleep(0.05)
            stats = json.loads(out.read_text())
            stats["bytes_per_s"] = (bytes1 - bytes0) / (t1 - t0)
            stats["exit_status"] = int(status.read_text()) if status.exists() else None
            if keep:
                keep.mkdir(parents=True, exist_ok=True)
                (keep / f"{mode}-terminal.bytes").write_bytes(raw.read_bytes())
            return stats
        finally:
            subprocess.run(["tmux", "-L", sock, "kill-server"], capture_output=True, timeout=20)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--seconds", type=float, default=20.0, help="measured window per run")
    ap.add_argument("--size", default="80x24", help="terminal size for the load scenario, WxH")
    ap.add_argument("--ui-hz", type=float, default=4.0)
    ap.add_argument("--scenarios", default="load,idle", help="which to run (figures of the others are left out)")
    ap.add_argument("--keep", type=Path, default=None, help="save the bytes written to the terminal in this directory")
    ap.add_argument("--child", choices=("load", "idle"), help=argparse.SUPPRESS)
    for name in ("--config", "--state-dir", "--out", "--marker"):
        ap.add_argument(name, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        raise SystemExit(asyncio.run(child(args)))

    width, height = (int(v) for v in args.size.split("x"))
    wanted = args.scenarios.split(",")
    load = [run_once("load", args.seconds, (width, height), args.ui_hz, args.keep) for _ in range(args.runs) if "load" in wanted]
    idle = [run_once("idle", args.seconds, (80, 24), args.ui_hz, args.keep) for _ in range(args.runs) if "idle" in wanted]
    for run in load + idle:
        print(f"{run['mode']:<5} lag p50 {run['lag_p50_ms']:6.1f} ms  p99 {run['lag_p99_ms']:6.1f} ms  max {run['lag_max_ms']:6.1f} ms"
              f"  {run['bytes_per_s'] / 1000:6.1f} KB/s  cpu {run['cpu_pct']:5.2f} %  {run['decisions_per_s']:7.0f} decisions/s"
              f"  exit {run['exit_status']}")

    def med(runs: list[dict[str, Any]], key: str) -> float | None:
        return round(statistics.median(r[key] for r in runs), 3) if runs else None

    result = {
        "loop_lag_p99_ms": med(load, "lag_p99_ms"), "bytes_per_s": med(load, "bytes_per_s"),
        "idle_cpu_pct": med(idle, "cpu_pct"), "loop_lag_p50_ms": med(load, "lag_p50_ms"),
        "load_cpu_pct": med(load, "cpu_pct"), "events_per_s": med(load, "decisions_per_s"),
        "terminal": args.size, "ui_hz": args.ui_hz, "runs": args.runs, "seconds": args.seconds, "targets": TARGETS,
    }
    result["meets_targets"] = all(result[k] is not None and result[k] <= v for k, v in TARGETS.items())
    print(json.dumps(result))


if __name__ == "__main__":
    main()
