"""Closed candles from Bybit's public kline endpoint (`GET /v5/market/kline`) through pybit.

Each range is walked newest first in windows of at most `page_size` bars, asked with both `start`
and `end` so the answer is well defined. Requests are paced (a minimum interval, so the IP limit
is never reached in the first place); a rate-limit answer (retCode 10006) waits until the
`X-Bapi-Limit-Reset-Timestamp` it carries; network errors, HTTP 429/5xx and server errors back off
exponentially; a malformed page is logged, counted and asked again, never handed on. Every failure
counts against the same bounded number of attempts per request.

pybit is synchronous: each request runs in a worker thread (asyncio.to_thread), one at a time.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import requests
from pybit.exceptions import FailedRequestError, InvalidRequestError
from pybit.unified_trading import HTTP

from tui_trader.market.candle_checks import bar_fault, exact_float, parse_ts
from tui_trader.model import Candle, timeframe_ms

log = logging.getLogger(__name__)
T = TypeVar("T")

MAX_PAGE = 1000
CATEGORY = "linear"
INTERVALS = {"1m": "1", "5m": "5", "15m": "15", "1h": "60", "4h": "240", "1d": "D"}
RATE_LIMITED = 10006
BAD_PARAMS = 10001
SERVER_ERRORS = frozenset({10000, 10016})  # server timeout, "System error. Please try again later."
RESET_HEADER = "X-Bapi-Limit-Reset-Timestamp"

Range = tuple[int, int]  # inclusive bar open times, ms


class KlineFetchError(Exception):
    """A fetch that cannot go on; `bad_request` when Bybit refused the parameters (e.g. the symbol)."""

    def __init__(self, message: str, bad_request: bool = False) -> None:
        super().__init__(message)
        self.bad_request = bad_request


class MalformedPage(ValueError):
    pass


@dataclass(frozen=True)
class FetchPolicy:
    rate: float = 10.0  # requests per second at most; Bybit allows 600 per 5 s per IP
    page_size: int = MAX_PAGE  # bars per request, 1..1000
    attempts: int = 6  # per request, whatever the failures
    backoff: float = 0.5  # seconds before the first retry after a transient failure; doubles
    max_backoff: float = 30.0
    max_rate_limit_wait: float = 60.0  # a reset header further away than this is not believed

    def __post_init__(self) -> None:
        if self.rate <= 0:
            raise ValueError(f"rate must be positive, got {self.rate}")
        if not 1 <= self.page_size <= MAX_PAGE:
            raise ValueError(f"page_size must be 1..{MAX_PAGE}, got {self.page_size}")
        if self.attempts < 1:
            raise ValueError(f"attempts must be at least 1, got {self.attempts}")


@dataclass
class FetchStats:
    requests: int = 0
    pages: int = 0
    bars: int = 0
    rate_limited: int = 0  # 10006 answers
    transient: int = 0  # network errors, HTTP 429/5xx, server errors
    malformed: int = 0  # pages refused by the parser


@dataclass(frozen=True)
class Page:
    """The exchange's closed bars in first..last (inclusive), oldest first; the window is complete:
    a bar missing from it is one the exchange does not have."""

    first: int
    last: int
    candles: list[Candle]


def kline_session(testnet: bool = False, base_url: str | None = None, timeout: float = 10.0) -> Any:
    """A public pybit session that leaves every retry to the fetcher (`retry_codes={-1}`: an empty
    set would bring back pybit's defaults, which sleep inside the worker thread)."""
    session = HTTP(testnet=testnet, timeout=timeout, max_retries=1, retry_codes={-1},
                   return_response_headers=True, logging_level=logging.WARNING)
    if base_url:
        session.endpoint = base_url.rstrip("/")
    return session


def parse_klines(response: Mapping[str, Any], symbol: str, timeframe: str, first: int, last: int) -> list[Candle]:
    """The bars of a kline answer, oldest first; MalformedPage if anything about it is off: the shape,
    a value, a bar outside first..last, misaligned, out of order, or inconsistent (`bar_fault`)."""
    result = response.get("result")
    if not isinstance(result, dict) or not isinstance(result.get("list"), list):
        raise MalformedPage("no result.list in the answer")
    if result.get("symbol", symbol) != symbol:
        raise MalformedPage(f"the answer is for {result.get('symbol')!r}, not {symbol}")
    step = timeframe_ms(timeframe)
    candles: list[Candle] = []
    previous = None
    for row in result["list"]:
        if not isinstance(row, list) or len(row) < 6 or not all(isinstance(x, str) for x in row):
            raise MalformedPage(f"a row is not a list of at least 6 strings: {row!r}")
        try:
            ts = parse_ts(row[0])
            o, h, lo, c, v = (exact_float(x) for x in row[1:6])
        except ValueError as exc:
            raise MalformedPage(f"row {row!r}: {exc}") from None
        if ts % step or not first <= ts <= last:
            raise MalformedPage(f"bar {ts} is misaligned or outside the window {first}..{last}")
        if previous is not None and ts >= previous:
            raise MalformedPage(f"bar {ts} does not follow {previous} newest first")
        fault = bar_fault(o, h, lo, c, v)
        if fault:
            raise MalformedPage(f"bar {ts}: {fault}")
        previous = ts
        candles.append(Candle(symbol, timeframe, ts, o, h, lo, c, v))
    candles.reverse()
    return candles


class KlineFetcher:
    def __init__(self, session: Any, policy: FetchPolicy | None = None, clock: Callable[[], float] = time.time) -> None:
        self.session = session
        self.policy = policy or FetchPolicy()
        self.clock = clock
        self.stats = FetchStats()
        self._next_request = 0.0  # monotonic time before which no request starts

    async def fetch(self, symbol: str, timeframe: str, ranges: Sequence[Range],
                    on_page: Callable[[Page], Awaitable[None]],
                    on_progress: Callable[[int, int], None] | None = None) -> FetchStats:
        """Every closed bar in the ranges, page by page, newest first; each page goes to `on_page`
        before the next is asked for. `on_progress(bars_done, bars_total)` counts bar slots."""
        if timeframe not in INTERVALS:
            raise KlineFetchError(f"no Bybit interval for timeframe {timeframe!r}", bad_request=True)
        step = timeframe_ms(timeframe)
        total = sum((b - a) // step + 1 for a, b in ranges)
        done = 0

        def progress(first: int, last: int) -> None:
            nonlocal done
            done += (last - first) // step + 1
            if on_progress:
                on_progress(done, total)

        for first, last in sorted(ranges, reverse=True):
            end = last
            while end >= first:
                start = max(first, end - (self.policy.page_size - 1) * step)
                page = await self._window(symbol, timeframe, start, end)
                if page.last >= page.first:
                    await on_page(page)
                progress(start, end)
                end = start - step
                if page.candles or end < first:
                    continue
                # An empty window: ask for the newest bar before it, and skip the stretch with none
                # (before a listing, or an outage) instead of walking it window by window.
                older = await self._newest_bar(symbol, timeframe, end)
                if older is None or older < first:
                    await on_page(Page(first, end, []))
                    progress(first, end)
                    break
                if older < end:
                    await on_page(Page(older + step, end, []))
                    progress(older + step, end)
                    end = older
        return self.stats

    async def _window(self, symbol: str, timeframe: str, start: int, end: int) -> Page:
        step = timeframe_ms(timeframe)
        params = dict(symbol=symbol, interval=INTERVALS[timeframe], start=start, end=end, limit=(end - start) // step + 1)

        def parse(response: Mapping[str, Any]) -> Page:
            candles = parse_klines(response, symbol, timeframe, start, end)
            # Bybit's newest bar is the one still open: keep closed bars only, by the server's clock.
            server_ms = response.get("time")
            now = server_ms if isinstance(server_ms, int) else int(self.clock() * 1000)
            closed_last = min(end, (now // step) * step - step)
            return Page(start, closed_last, [c for c in candles if c.ts <= closed_last])

        page = await self._request(params, parse)
        self.stats.pages += 1
        self.stats.bars += len(page.candles)
        return page

    async def _newest_bar(self, symbol: str, timeframe: str, end: int) -> int | None:
        """The open time of the newest bar at or before `end`, None when there is none. An answer
        past `end` (the end-only form is undocumented) is taken as "unknown": returns `end`."""
        params = dict(symbol=symbol, interval=INTERVALS[timeframe], end=end, limit=1)

        def parse(response: Mapping[str, Any]) -> int | None:
            candles = parse_klines(response, symbol, timeframe, 0, 2**62)
            if not candles:
                return None
            return candles[-1].ts if candles[-1].ts <= end else end

        return await self._request(params, parse)

    async def _request(self, params: dict[str, Any], parse: Callable[[Mapping[str, Any]], T]) -> T:
        policy = self.policy
        attempt = 0
        while True:
            attempt += 1
            await self._pace()
            self.stats.requests += 1
            wait = min(policy.max_backoff, policy.backoff * 2 ** (attempt - 1))
            try:
                response, _elapsed, _headers = await asyncio.to_thread(self.session.get_kline, category=CATEGORY, **params)
                return parse(response)
            except InvalidRequestError as exc:
                if exc.status_code == RATE_LIMITED:
                    self.stats.rate_limited += 1
                    wait = self._reset_wait(exc.resp_headers, wait)
                    reason = f"rate limited (retCode {RATE_LIMITED}); waiting {wait:.2f} s"
                elif exc.status_code in SERVER_ERRORS:
                    self.stats.transient += 1
                    reason = f"server error: {exc.message} (retCode {exc.status_code})"
                else:
                    raise KlineFetchError(f"Bybit refused {_describe(params)}: {exc.message} (retCode {exc.status_code})",
                                          bad_request=exc.status_code == BAD_PARAMS) from None
            except FailedRequestError as exc:
                if exc.status_code == 409:  # pybit's code for a body that is not JSON
                    self.stats.malformed += 1
                    reason = "malformed page: the answer is not JSON"
                elif exc.status_code == 429 or exc.status_code >= 500:
                    self.stats.transient += 1
                    reason = f"HTTP {exc.status_code}"
                else:  # 403: Bybit's IP ban (10+ minutes); 404: a wrong base URL
                    raise KlineFetchError(f"{_describe(params)}: HTTP {exc.status_code}: {exc.message}") from None
            except requests.RequestException as exc:
                self.stats.transient += 1
                reason = f"network error: {type(exc).__name__}: {exc}"
            except MalformedPage as exc:
                self.stats.malformed += 1
                reason = f"malformed page: {exc}"
            if attempt == policy.attempts:
                raise KlineFetchError(f"{_describe(params)}: gave up after {attempt} attempts; last: {reason}")
            log.warning("%s: attempt %d of %d: %s", _describe(params), attempt, policy.attempts, reason)
            await asyncio.sleep(wait)

    def _reset_wait(self, headers: Any, fallback: float) -> float:
        try:
            reset_ms = int(headers[RESET_HEADER])
        except (TypeError, KeyError, ValueError):
            return fallback
        return min(self.policy.max_rate_limit_wait, max(0.0, reset_ms / 1000 - self.clock()))

    async def _pace(self) -> None:
        now = time.monotonic()
        if self._next_request > now:
            await asyncio.sleep(self._next_request - now)
        self._next_request = max(now, self._next_request) + 1.0 / self.policy.rate


def _describe(params: Mapping[str, Any]) -> str:
    window = f"{params.get('start', '')}..{params['end']}"
    return f"kline {params['symbol']} {params['interval']} {window}"
