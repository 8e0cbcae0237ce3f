"""`tui-trader data`: candles from Bybit (fetch), from files (import), and what is stored (list, check).

Exit codes: 0 done, 1 runtime failure (the network, the exchange), 2 bad input (arguments, a file
with invalid rows, parameters Bybit refuses), 3 `check` found problems, 130 interrupted.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from pydantic import TypeAdapter, ValidationError

from tui_trader.cli.common import ConfigOpt, Fail, StateOpt, context, opened, run
from tui_trader.config import Symbol
from tui_trader.market.candle_checks import bar_fault, read_candle_file
from tui_trader.model import TIMEFRAME_MINUTES, timeframe_ms
from tui_trader.store import Store
from tui_trader.store import candles as stored
from tui_trader.store.candles import Range, bars_in

if TYPE_CHECKING:  # the fetcher (pybit, requests) is imported when a command needs it
    from tui_trader.market.bybit_klines import FetchStats, KlineFetcher, Page

PROBLEMS_SHOWN = 20
EXIT_PROBLEMS = 3
EXIT_INTERRUPTED = 130

data_app = typer.Typer(help="Candle data: fetch from Bybit, import files, list and check what is stored.", no_args_is_help=True)

SymbolOpt = Annotated[str, typer.Option("--symbol", help="e.g. BTCUSDT")]
TimeframeOpt = Annotated[str, typer.Option("--timeframe", help=f"one of {', '.join(TIMEFRAME_MINUTES)}")]
TestnetOpt = Annotated[bool, typer.Option(
    "--testnet", help="Bybit testnet's public endpoint (default: mainnet's; market data is public and read-only)")]
BaseUrlOpt = Annotated[str | None, typer.Option(
    "--base-url", envvar="TUI_TRADER_BYBIT_URL", help="another REST base URL: a proxy or a local fake, e.g. http://127.0.0.1:8080")]
RateOpt = Annotated[float, typer.Option("--rate", help="requests per second at most (Bybit allows 600 per 5 s per IP)")]
AttemptsOpt = Annotated[int, typer.Option(
    "--attempts", help="tries per request before giving up (rate limits, network errors, malformed pages)")]
PageSizeOpt = Annotated[int | None, typer.Option("--page-size", help="bars per request (default and most: 1000)")]


def _symbol(value: str) -> str:
    try:
        return TypeAdapter(Symbol).validate_python(value)
    except ValidationError:
        raise Fail(f"--symbol {value!r}: expected an uppercase USDT perpetual such as BTCUSDT") from None


def _timeframe(value: str) -> str:
    if value not in TIMEFRAME_MINUTES:
        raise Fail(f"--timeframe {value!r}: choose one of {', '.join(TIMEFRAME_MINUTES)}")
    return value


def parse_time(value: str, option: str) -> int:
    """Milliseconds since the epoch, or an ISO date/time (UTC unless it carries an offset)."""
    if value.isdigit():
        if int(value) < 10**11:  # before 1973 in ms: epoch seconds by mistake
            raise Fail(f"{option} {value}: epoch milliseconds expected (this looks like seconds)")
        return int(value)
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise Fail(f"{option} {value!r}: expected a date (2025-06-01), a date and time (2025-06-01T12:00) or epoch ms") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return int(moment.timestamp() * 1000)


def iso(ts_ms: int) -> str:
    return datetime.fromtimestamp(ts_ms / 1000, UTC).strftime("%Y-%m-%d %H:%M")


def plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


def _span(r: Range, step: int) -> str:
    return f"{iso(r[0])} .. {iso(r[1])} ({bars_in(r, step)} bars)"


def _fetcher(testnet: bool, base_url: str | None, rate: float, attempts: int, page_size: int | None = None) -> KlineFetcher:
    from tui_trader.market.bybit_klines import MAX_PAGE, FetchPolicy, KlineFetcher, kline_session

    if base_url is not None and not base_url.startswith(("http://", "https://")):
        raise Fail(f"--base-url {base_url!r}: expected an http:// or https:// URL")
    if rate <= 0:
        raise Fail(f"--rate {rate}: must be positive")
    if attempts < 1:
        raise Fail(f"--attempts {attempts}: must be at least 1")
    if page_size is not None and not 1 <= page_size <= MAX_PAGE:
        raise Fail(f"--page-size {page_size}: must be 1..{MAX_PAGE}")
    policy = FetchPolicy(rate=rate, attempts=attempts, page_size=MAX_PAGE if page_size is None else page_size)
    return KlineFetcher(kline_session(testnet, base_url), policy)


async def _fetch_into(store: Store, fetcher: KlineFetcher, symbol: str, timeframe: str, ranges: list[Range]) -> FetchStats:
    """Fetch the ranges page by page; each page and the fetch record commit together, so an
    interrupted fetch keeps every page it finished."""
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    from tui_trader.market.bybit_klines import KlineFetchError

    record = await stored.fetched_ranges(store, symbol, timeframe)

    async def on_page(page: Page) -> None:
        record.add(page.first, page.last)
        await stored.save(store, page.candles, record)

    console = Console(stderr=True)
    with Progress(TextColumn(f"{symbol} {timeframe}"), BarColumn(), MofNCompleteColumn(), TextColumn("bars"),
                  TimeRemainingColumn(), console=console, disable=not console.is_terminal) as bar:
        task = bar.add_task("fetch", total=sum(bars_in(r, timeframe_ms(timeframe)) for r in ranges))
        try:
            return await fetcher.fetch(symbol, timeframe, ranges, on_page, lambda done, _: bar.update(task, completed=done))
        except KlineFetchError as exc:
            raise Fail(str(exc), 2 if exc.bad_request else 1) from None


def _stats_line(stats: FetchStats) -> str:
    return (f"{stats.bars} bars in {stats.pages} pages; {stats.requests} requests ({stats.rate_limited} rate-limited,"
            f" {stats.transient} transient failures, {stats.malformed} malformed pages)")


def _interrupted() -> typer.Exit:
    typer.echo("interrupted: every page fetched so far is stored; run the same command to resume", err=True)
    return typer.Exit(EXIT_INTERRUPTED)


@data_app.command("fetch")
def data_fetch(
    symbol: SymbolOpt,
    timeframe: TimeframeOpt,
    from_: Annotated[str, typer.Option("--from", help="first bar: 2025-06-01, 2025-06-01T12:00 (UTC) or epoch ms")],
    to: Annotated[str | None, typer.Option("--to", help="end, exclusive (default: now; only closed bars are fetched)")] = None,
    testnet: TestnetOpt = False, base_url: BaseUrlOpt = None, rate: RateOpt = 10.0, attempts: AttemptsOpt = 6,
    page_size: PageSizeOpt = None,
    config: ConfigOpt = None, state_dir: StateOpt = None,
) -> None:
    """Fetch closed candles from Bybit's public kline endpoint into the candles table.

    Idempotent and resumable: bars already stored and stretches an earlier fetch found empty on the
    exchange are not asked for again, so re-running an interrupted fetch finishes it.
    """

    async def body() -> None:
        sym, tf = _symbol(symbol), _timeframe(timeframe)
        step = timeframe_ms(tf)
        start = parse_time(from_, "--from")
        end = parse_time(to, "--to") if to is not None else None
        fetcher = _fetcher(testnet, base_url, rate, attempts, page_size)
        if end is not None and end <= start:
            raise Fail("--to must be after --from")
        first = -(-start // step) * step
        last_closed = int(fetcher.clock() * 1000) // step * step - step
        last = min(last_closed, (end - 1) // step * step) if end is not None else last_closed
        if first > last:
            raise Fail(f"no closed {tf} bar between --from and --to (the last closed one opened at {iso(last_closed)})")
        _, state, _ = context(config, state_dir)
        async with opened(state) as store:
            record = await stored.fetched_ranges(store, sym, tf)
            todo = stored.subtract(await stored.missing(store, sym, tf, first, last), record.ranges, step)
            wanted = bars_in((first, last), step)
            present = await stored.count(store, sym, tf, first, last)
            typer.echo(f"{sym} {tf} {iso(first)} .. {iso(last)}: {wanted} bars; {present} stored;"
                       f" {sum(bars_in(r, step) for r in todo)} to fetch in {plural(len(todo), 'range')}")
            if not todo:
                return
            stats = await _fetch_into(store, fetcher, sym, tf, todo)
            after = await stored.count(store, sym, tf, first, last)
            typer.echo(f"fetched {_stats_line(stats)}")
            typer.echo(f"stored {after - present} new bars; {wanted - after} bars of the range are not on the exchange")

    try:
        run(body)
    except KeyboardInterrupt:
        raise _interrupted() from None


@data_app.command("import")
def data_import(
    file: Annotated[Path, typer.Argument(help="CSV or CSV.gz: ts,open,high,low,close,volume (ts = open time, ms UTC)")],
    symbol: SymbolOpt,
    timeframe: TimeframeOpt,
    skip_invalid: Annotated[bool, typer.Option("--skip-invalid", help="store the valid rows even if some are invalid")] = False,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="check the file, store nothing")] = False,
    config: ConfigOpt = None, state_dir: StateOpt = None,
) -> None:
    """Import candles from a file. Every row is checked; invalid rows are listed by line and never
    stored. By default one invalid row stores nothing (exit 2); --skip-invalid stores the rest."""

    async def body() -> None:
        sym, tf = _symbol(symbol), _timeframe(timeframe)
        try:
            read = read_candle_file(file, sym, tf)
        except ValueError as exc:
            raise Fail(str(exc)) from None
        for problem in read.problems[:PROBLEMS_SHOWN]:
            typer.echo(f"{file}: line {problem.line}: {problem.message}", err=True)
        if len(read.problems) > PROBLEMS_SHOWN:
            typer.echo(f"{file}: ... and {len(read.problems) - PROBLEMS_SHOWN} more invalid rows", err=True)
        typer.echo(f"{file}: {read.rows} rows, {len(read.candles)} valid, {len(read.problems)} invalid")
        if read.problems and not skip_invalid:
            raise Fail(f"nothing stored: fix the file, or pass --skip-invalid to store its {len(read.candles)} valid rows")
        if dry_run or not read.candles:
            return
        first, last = min(c.ts for c in read.candles), max(c.ts for c in read.candles)
        _, state, _ = context(config, state_dir)
        async with opened(state) as store:
            before = await stored.count(store, sym, tf, first, last)
            await stored.save(store, read.candles)
            after = await stored.count(store, sym, tf, first, last)
        typer.echo(f"stored {after - before} new {sym} {tf} bars {iso(first)} .. {iso(last)};"
                   f" {len(read.candles) - (after - before)} were already stored (kept as they were)")

    run(body)


@data_app.command("list")
def data_list(
    symbol: Annotated[str | None, typer.Option("--symbol")] = None,
    timeframe: Annotated[str | None, typer.Option("--timeframe")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="JSON instead of a table")] = False,
    config: ConfigOpt = None, state_dir: StateOpt = None,
) -> None:
    """What is stored: per symbol and timeframe, the first and last bar, the count, and the gaps."""

    async def body() -> None:
        sym = _symbol(symbol) if symbol is not None else None
        tf = _timeframe(timeframe) if timeframe is not None else None
        _, state, _ = context(config, state_dir)
        async with opened(state) as store:
            rows = await stored.series(store, sym, tf)
        if as_json:
            typer.echo(json.dumps([asdict(r) for r in rows], indent=2))
            return
        if not rows:
            typer.echo("no candles stored")
            return
        table = [["SYMBOL", "TF", "FIRST", "LAST", "BARS", "GAPS", "MISSING"]]
        table += [[r.symbol, r.timeframe, iso(r.first), iso(r.last), str(r.count), str(r.gaps), str(r.missing)] for r in rows]
        widths = [max(len(row[i]) for row in table) for i in range(len(table[0]))]
        for row in table:
            typer.echo("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())

    run(body)


@data_app.command("check")
def data_check(
    symbol: Annotated[str | None, typer.Option("--symbol")] = None,
    timeframe: Annotated[str | None, typer.Option("--timeframe")] = None,
    fill: Annotated[bool, typer.Option("--fill", help="fetch small gaps from Bybit, then check again")] = False,
    max_fill: Annotated[int, typer.Option("--max-fill", help="largest gap --fill fetches, in bars")] = 1000,
    testnet: TestnetOpt = False, base_url: BaseUrlOpt = None, rate: RateOpt = 10.0, attempts: AttemptsOpt = 6,
    config: ConfigOpt = None, state_dir: StateOpt = None,
) -> None:
    """Gaps (missing bars between the first and last stored one) and invalid bars (a price not
    positive, negative volume, high below open or close, low above them, a ts off the timeframe's
    grid). Exit 3 when a problem remains; gaps an earlier fetch found empty on the exchange are
    listed but are not problems. (The table's key rules out duplicate and out-of-order bars;
    `data import` checks files for them.)"""

    async def body() -> int:
        sym = _symbol(symbol) if symbol is not None else None
        tf = _timeframe(timeframe) if timeframe is not None else None
        if max_fill < 1:
            raise Fail("--max-fill must be at least 1")
        fetcher = _fetcher(testnet, base_url, rate, attempts) if fill else None
        _, state, _ = context(config, state_dir)
        async with opened(state) as store:
            series = await stored.series(store, sym, tf)
            if not series:
                typer.echo("no candles stored" + (" for the --symbol/--timeframe given" if sym or tf else ""))
                return EXIT_PROBLEMS if sym or tf else 0
            problems = 0
            for s in series:
                problems += await _check_series(store, s.symbol, s.timeframe, fetcher, max_fill)
        typer.echo(plural(problems, "problem") if problems else "no problems")
        return EXIT_PROBLEMS if problems else 0

    try:
        code = run(body)
    except KeyboardInterrupt:
        raise _interrupted() from None
    raise typer.Exit(code)


async def _check_series(store: Store, symbol: str, timeframe: str, fetcher: KlineFetcher | None, max_fill: int) -> int:
    """Print one series' report; the number of problems in it."""
    step = timeframe_ms(timeframe)
    record = await stored.fetched_ranges(store, symbol, timeframe)
    runs = await stored.gaps(store, symbol, timeframe)
    fillable = [r for r in runs if not record.covers(r) and bars_in(r, step) <= max_fill]
    if fetcher is not None and fillable:
        stats = await _fetch_into(store, fetcher, symbol, timeframe, fillable)
        for r in fillable:
            left = await stored.count(store, symbol, timeframe, r[0], r[1])
            typer.echo(f"{symbol} {timeframe}: filled {left} of {bars_in(r, step)} bars of the gap {_span(r, step)}")
        typer.echo(f"{symbol} {timeframe}: fetched {_stats_line(stats)}")
        record = await stored.fetched_ranges(store, symbol, timeframe)
        runs = await stored.gaps(store, symbol, timeframe)
    (summary,) = await stored.series(store, symbol, timeframe)
    typer.echo(f"{symbol} {timeframe}: {summary.count} bars {iso(summary.first)} .. {iso(summary.last)},"
               f" {plural(len(runs), 'gap')} ({summary.missing} missing bars)")
    problems = 0
    for r in runs:
        if record.covers(r):
            typer.echo(f"  gap {_span(r, step)}: none on the exchange")
        else:
            problems += 1
            typer.echo(f"  gap {_span(r, step)}")
    for candle in await store.candles(symbol, timeframe):
        fault = bar_fault(candle.open, candle.high, candle.low, candle.close, candle.volume)
        if candle.ts % step:
            fault = f"ts {candle.ts} is not aligned to {timeframe}"
        if fault:
            problems += 1
            typer.echo(f"  invalid bar {iso(candle.ts)}: {fault} (o={candle.open} h={candle.high} l={candle.low}"
                       f" c={candle.close} v={candle.volume})")
    return problems
