"""`tui-trader backtest`: a strategy (or an existing bot's settings) over history,
with the live engine's cycle and the paper exchange, reported in the terminal and
optionally as files."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Annotated, Any

import typer

from tui_trader.cli.common import ConfigOpt, Fail, StateOpt, StrategiesOpt, context, opened, parse_params, run
from tui_trader.config import TIMEFRAMES, BotSpec, ConfigError, validate_bot
from tui_trader.model import TIMEFRAME_MINUTES, timeframe_ms

FILL_MODEL_HELP = "paper (ours: next open plus slippage, stop first on ambiguous bars) or backtesting-py (its rules exactly)"


def _date(value: str | None, option: str) -> int | None:
    """A UTC date (YYYY-MM-DD) or date and time (YYYY-MM-DDTHH:MM) as ms."""
    if value is None:
        return None
    for fmt in ("%Y-%m-%d", "%Y-%m-%dT%H:%M", "%Y-%m-%d %H:%M"):
        try:
            return int(datetime.strptime(value, fmt).replace(tzinfo=UTC).timestamp() * 1000)
        except ValueError:
            continue
    raise Fail(f"{option} {value!r}: expected YYYY-MM-DD or YYYY-MM-DDTHH:MM (UTC)")


def _percent(value: str | None, option: str) -> Decimal | None:
    if value is None:
        return None
    try:
        number = Decimal(value)
    except InvalidOperation:
        raise Fail(f"{option} {value!r}: expected a percentage such as 0.055") from None
    if not number.is_finite() or number < 0 or number >= 10:
        raise Fail(f"{option} {value}: must be a percentage from 0 to below 10")
    return number


def backtest(
    strategy: Annotated[str | None, typer.Option("--strategy", help="strategy to test (see `strategies list`)")] = None,
    params: Annotated[list[str] | None, typer.Option("--param", help="strategy parameter key=value (repeatable)")] = None,
    bot: Annotated[str | None, typer.Option("--bot", help="take an existing bot's settings from the state database")] = None,
    symbol: Annotated[str | None, typer.Option("--symbol", help="e.g. BTCUSDT")] = None,
    timeframe: Annotated[str | None, typer.Option("--timeframe", help=f"the bot's timeframe: {', '.join(TIMEFRAMES)}")] = None,
    start: Annotated[str | None, typer.Option("--from", help="first traded bar, UTC date (earlier bars warm up)")] = None,
    end: Annotated[str | None, typer.Option("--to", help="end, UTC date (exclusive)")] = None,
    data: Annotated[Path | None, typer.Option("--data", help="candles CSV (.gz ok): ts,open,high,low,close,volume; default: the candles table")] = None,
    capital: Annotated[str | None, typer.Option("--capital", help="virtual capital in USDT (default 10000, or the bot's)")] = None,
    fee: Annotated[str | None, typer.Option("--fee", help="taker fee per leg in % (default: exchange.taker_fee)")] = None,
    slippage: Annotated[str | None, typer.Option("--slippage", help="slippage in % (default: exchange.slippage_bps)")] = None,
    fill_model: Annotated[str, typer.Option("--fill-model", help=FILL_MODEL_HELP)] = "paper",
    risk_profile: Annotated[str | None, typer.Option("--risk-profile", help="risk profile (default balanced, or the bot's)")] = None,
    confirmations: Annotated[int | None, typer.Option("--confirmations", help="confirmations required (default 0, or the bot's)")] = None,
    out: Annotated[Path | None, typer.Option("--out", help="write trades.csv, equity.csv, summary.json and report.html here")] = None,
    charts: Annotated[bool, typer.Option("--charts/--no-charts", help="equity and price charts in the terminal")] = True,
    every_bar: Annotated[bool, typer.Option("--every-bar", help="run the cycle on every bar (no fast path)")] = False,
    config: ConfigOpt = None, state_dir: StateOpt = None, strategies_dir: StrategiesOpt = None,
) -> None:
    """Backtest a strategy on history with the live engine's bot cycle and the paper exchange."""

    async def body() -> None:
        from rich.console import Console

        from tui_trader.backtest.runner import run_backtest
        from tui_trader.backtest.session import FILL_MODELS, FillSettings
        from tui_trader.backtest.report import Report, RunInfo
        from tui_trader.backtest.series import Bars
        from tui_trader.engine.warmup import MIN_WARMUP_BARS, bot_profile
        from tui_trader.setup import bot_errors, instruments

        cfg, state, registry = context(config, state_dir, strategies_dir)
        if fill_model not in FILL_MODELS:
            raise Fail(f"--fill-model {fill_model!r}: choose {' or '.join(FILL_MODELS)}")
        from_ts, to_ts = _date(start, "--from"), _date(end, "--to")
        if from_ts is not None and to_ts is not None and from_ts >= to_ts:
            raise Fail("--from must be before --to")
        fee_pct, slip_pct = _percent(fee, "--fee"), _percent(slippage, "--slippage")

        spec = await _spec(bot, strategy, params or [], symbol, timeframe, capital, risk_profile, confirmations, state)
        # The checks of a live bot, less "its symbol is in the synthetic market": history is the market here.
        replayed = cfg.model_copy(update={"market": cfg.market.model_copy(update={"source": "replay"})})
        errors = bot_errors(spec, replayed, registry, "backtest")
        if errors:
            raise ConfigError("backtest", errors)
        tf = spec.timeframe.value
        rules = instruments(cfg, [spec.symbol])
        taker = cfg.exchange.taker_fee if fee_pct is None else fee_pct / 100
        slip_bps = cfg.exchange.slippage_bps if slip_pct is None else slip_pct * 100
        profile = bot_profile(cfg, spec, 1, rules[spec.symbol], taker)
        make = lambda: registry.make(spec.strategy, spec.params, tf)  # noqa: E731
        probe = make()
        longest = max(TIMEFRAME_MINUTES[t] for t in probe.timeframes())

        if data is not None:
            try:
                bars = Bars.from_csv(data, spec.symbol)
            except (OSError, ValueError) as exc:
                raise Fail(f"--data: {exc}") from None
            source = str(data)
        else:
            bars, source = await _table_bars(state, spec.symbol, tf, from_ts, to_ts, longest, probe.warmup)
        if timeframe_ms(tf) % timeframe_ms(bars.timeframe):
            raise Fail(f"the data is {bars.timeframe} candles: a {tf} bot needs candles of {tf} or a finer timeframe that divides it")
        # Warm-up as the live engine's: this many base bars before the first traded one (or --from).
        warm = (max(probe.warmup, MIN_WARMUP_BARS) + 1) * longest // TIMEFRAME_MINUTES[bars.timeframe]
        bars = bars.window(None, to_ts)
        first = min(warm, len(bars)) if from_ts is None else int(bars.ts.searchsorted(from_ts))
        lo = max(first - warm, 0)
        if lo:
            bars = bars.window(int(bars.ts[lo]), None)
        begin = first - lo
        if len(bars) - begin < 2:
            raise Fail(f"no candles to trade in {source} for {spec.symbol}"
                       f"{' from ' + start if start else ''}{' to ' + end if end else ''} after {warm} warm-up bars")

        fills = FillSettings(fill_model, taker, cfg.exchange.maker_fee, slip_bps)
        console = Console(stderr=True)
        started = time.perf_counter()
        with _progress(console) as update:
            result, optimistic = run_backtest(bars, profile, make, fills, start=begin, fast=not every_bar, progress=update)
        elapsed = time.perf_counter() - started
        info = RunInfo(spec.strategy, spec.params, spec.symbol, tf, fill_model, spec.capital, taker * 100, slip_bps / 100,
                       spec.risk_profile, source)
        report = Report(info, result, optimistic, elapsed)
        report.print(Console(), charts=charts)
        if out is not None:
            for path in report.write(out):
                typer.echo(f"wrote {path}")

    run(body)


async def _spec(bot: str | None, strategy: str | None, params: list[str], symbol: str | None, timeframe: str | None,
                capital: str | None, risk_profile: str | None, confirmations: int | None, state: Path) -> BotSpec:
    if (bot is None) == (strategy is None):
        raise Fail("give --strategy NAME (with --symbol and --timeframe) or --bot NAME")
    if bot is not None:
        if params or symbol or timeframe:
            raise Fail("--bot takes the bot's strategy, parameters, symbol and timeframe; drop --param/--symbol/--timeframe")
        async with opened(state) as store:
            record = await store.get_bot(bot)
        if record is None:
            raise Fail(f"no bot named {bot!r} in {state}")
        data: dict[str, Any] = record.spec.model_dump()
    else:
        if symbol is None or timeframe is None:
            raise Fail("--strategy needs --symbol and --timeframe")
        data = {"name": "backtest", "symbol": symbol, "timeframe": timeframe, "capital": "10000",
                "strategy": strategy, "params": parse_params(params), "risk_profile": "balanced"}
    if capital is not None:
        data["capital"] = capital
    if risk_profile is not None:
        data["risk_profile"] = risk_profile
    if confirmations is not None:
        data["confirmations"] = confirmations
    return validate_bot(data, "backtest")


async def _table_bars(state: Path, symbol: str, timeframe: str, from_ts: int | None, to_ts: int | None,
                      longest: int, warmup: int) -> tuple[Any, str]:
    """The finest stored candles that build the bot's timeframe (1m under 1h: stops and targets
    resolved on 1m bars), from enough before --from to warm up."""
    from tui_trader.backtest.series import Bars
    from tui_trader.engine.warmup import MIN_WARMUP_BARS

    async with opened(state) as store:
        for tf in TIMEFRAMES:
            if timeframe_ms(timeframe) % timeframe_ms(tf) or await store.last_candle_ts(symbol, tf) is None:
                continue
            warm = (max(warmup, MIN_WARMUP_BARS) + 1) * longest // TIMEFRAME_MINUTES[tf]
            since = 0 if from_ts is None else max(from_ts - warm * timeframe_ms(tf), 0)
            candles = await store.candles(symbol, tf, since_ts=since)
            if to_ts is not None:
                candles = [c for c in candles if c.ts < to_ts]
            if candles:
                return Bars.from_candles(candles, symbol, tf), f"candles table ({tf}) of {state}"
    raise Fail(f"no {symbol} candles of {timeframe} or finer in {state}; give --data FILE (or load candles first)")


class _progress:
    """A progress bar on stderr while the run goes."""

    def __init__(self, console: Any) -> None:
        from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

        self.bar = Progress(TextColumn("backtest"), BarColumn(), TextColumn("{task.percentage:>3.0f}%"),
                            TimeElapsedColumn(), console=console, transient=True)
        self.task = self.bar.add_task("run", total=1)

    def __enter__(self) -> Any:
        self.bar.start()

        def update(done: int, total: int) -> None:
            self.bar.update(self.task, completed=done, total=max(total, 1))

        return update

    def __exit__(self, *exc: object) -> None:
        self.bar.stop()
