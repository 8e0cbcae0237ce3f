"""A local fake of Bybit's V5 REST API for tests (../shared/reference/bybit-v5.md, section 8).

A stdlib `ThreadingHTTPServer` on 127.0.0.1 with an ephemeral port, HTTP/1.1 keep-alive like the
real API. It answers in Bybit's envelope (HTTP 200 even for business errors, rate-limit headers
on every answer), logs every request, and takes injected faults per path: a canned answer
(e.g. retCode 10006 with a reset header), a malformed body, a non-200 status, or a dropped
connection; once, a number of times, or for every request after N good answers.

Endpoints are handlers registered per (method, path); the server implements the public kline
endpoint over a `KlineBook` of string rows (real candles from ../shared/data, for instance).
Other tests register more handlers (instruments, orders) with `route`.
"""

from __future__ import annotations

import csv
import gzip
import json
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

KLINE = "/v5/market/kline"
INTERVAL_MS = {**{str(m): m * 60_000 for m in (1, 3, 5, 15, 30, 60, 120, 240, 360, 720)}, "D": 86_400_000, "W": 604_800_000}
LIMIT_PER_SECOND = 600 // 5  # Bybit's IP limit, as the X-Bapi-Limit header states it here


class ApiError(Exception):
    """Raised by a handler: answered as the envelope with this retCode (HTTP 200)."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass(frozen=True)
class Request:
    method: str
    path: str
    params: dict[str, str]
    at: float  # time.time() when it arrived
    answered: str  # "ok", "error <retCode>", or the fault's name


@dataclass(frozen=True)
class Fault:
    """What to answer instead of the handler's result."""

    name: str
    status: int = 200
    body: bytes = b""
    ret_code: int = 0
    reset_in_ms: int = 0  # for a rate-limit answer: X-Bapi-Limit-Reset-Timestamp = now + this
    drop: bool = False  # close the connection without answering


def rate_limited(reset_in_ms: int = 200) -> Fault:
    body = {"retCode": 10006, "retMsg": "Too many visits. Exceeded the API Rate Limit.", "result": {}, "retExtInfo": {}}
    return Fault("rate_limited", body=json.dumps(body).encode(), ret_code=10006, reset_in_ms=reset_in_ms)


def api_error(code: int, message: str) -> Fault:
    body = {"retCode": code, "retMsg": message, "result": {}, "retExtInfo": {}}
    return Fault(f"error {code}", body=json.dumps(body).encode(), ret_code=code)


def malformed(body: str | dict[str, Any] = "<html>502 Bad Gateway</html>") -> Fault:
    raw = body if isinstance(body, str) else json.dumps(body)
    return Fault("malformed", body=raw.encode())


def http_status(status: int) -> Fault:
    return Fault(f"http {status}", status=status, body=b"<html>error</html>")


def dropped() -> Fault:
    return Fault("dropped", drop=True)


# -- candles ---------------------------------------------------------------------------------------


def read_rows(path: Path) -> list[list[str]]:
    """A `ts,open,high,low,close,volume` CSV(.gz) as Bybit kline rows of strings, ascending, with the
    file's own decimal strings and a turnover (volume x close)."""
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", newline="") as f:
        reader = csv.reader(f)
        next(reader)
        return [[ts, o, h, lo, c, v, str(Decimal(v) * Decimal(c))] for ts, o, h, lo, c, v in reader]


@dataclass
class KlineBook:
    """Candle rows per (symbol, interval), ascending by open time; the fake's market history."""

    rows: dict[tuple[str, str], list[list[str]]] = field(default_factory=dict)

    def add(self, symbol: str, interval: str, rows: list[list[str]]) -> None:
        self.rows[(symbol, interval)] = sorted(rows, key=lambda r: int(r[0]))

    def remove(self, symbol: str, interval: str, first: int, last: int) -> None:
        """Make a gap: drop the bars with first <= open time <= last."""
        self.rows[(symbol, interval)] = [r for r in self.rows[(symbol, interval)] if not first <= int(r[0]) <= last]

    def symbols(self) -> set[str]:
        return {symbol for symbol, _ in self.rows}


# -- the server --------------------------------------------------------------------------------------

Handler = Callable[["FakeBybit", dict[str, str], bytes], Any]


class FakeBybit:
    """Use as a context manager; `base_url` is what pybit's `endpoint` should be set to."""

    def __init__(self, now_ms: Callable[[], int] | None = None) -> None:
        self.now_ms = now_ms or (lambda: int(time.time() * 1000))
        self.klines = KlineBook()
        self.requests: list[Request] = []
        self.routes: dict[tuple[str, str], Handler] = {("GET", KLINE): kline_handler}
        self.rate_limit: int | None = None  # requests per second per path; more are answered 10006
        self._faults: dict[str, deque[tuple[int, Fault]]] = {}  # (due after this many good answers, fault)
        self._fail_after: dict[str, tuple[int, Fault]] = {}
        self._ok: dict[str, int] = {}
        self._recent: dict[str, deque[float]] = {}
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _make_handler(self))
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, name="fake-bybit", daemon=True)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def __enter__(self) -> FakeBybit:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    def route(self, method: str, path: str, handler: Handler) -> None:
        self.routes[(method, path)] = handler

    # -- faults --

    def inject(self, path: str, *faults: Fault, after: int = 0) -> None:
        """After `after` more normal answers on `path`, answer its next requests with these faults,
        in order, then normally again."""
        with self._lock:
            due = self._ok.get(path, 0) + after
            self._faults.setdefault(path, deque()).extend((due, fault) for fault in faults)

    def fail_after(self, path: str, good: int, fault: Fault) -> None:
        """After `good` more normal answers on `path`, answer every request with `fault`."""
        with self._lock:
            self._fail_after[path] = (self._ok.get(path, 0) + good, fault)

    def clear_faults(self) -> None:
        with self._lock:
            self._faults.clear()
            self._fail_after.clear()

    # -- what was asked --

    def log(self, path: str = KLINE, answered: str | None = None) -> list[Request]:
        with self._lock:
            return [r for r in self.requests if r.path == path and (answered is None or r.answered == answered)]

    def windows(self) -> list[tuple[int, int]]:
        """(start, end) of every kline request answered normally with a start."""
        return [(int(r.params["start"]), int(r.params["end"])) for r in self.log(KLINE, "ok") if "start" in r.params]

    # -- serving --

    def _choose_fault(self, path: str) -> Fault | None:
        with self._lock:
            queued = self._faults.get(path)
            if queued and self._ok.get(path, 0) >= queued[0][0]:
                return queued.popleft()[1]
            after = self._fail_after.get(path)
            if after and self._ok.get(path, 0) >= after[0]:
                return after[1]
            if self.rate_limit is not None:
                now = time.time()
                recent = self._recent.setdefault(path, deque())
                while recent and recent[0] <= now - 1.0:
                    recent.popleft()
                if len(recent) >= self.rate_limit:
                    return rate_limited(int((recent[0] + 1.0 - now) * 1000) + 1)
                recent.append(now)
        return None

    def _serve(self, method: str, target: str, body: bytes) -> tuple[Fault | None, int, dict[str, str], bytes]:
        """(fault or None, status, headers, body) for one request; the request is logged."""
        url = urlsplit(target)
        params = dict(parse_qsl(url.query, keep_blank_values=True))
        now_ms = int(time.time() * 1000)
        headers = {"X-Bapi-Limit": str(self.rate_limit or LIMIT_PER_SECOND), "X-Bapi-Limit-Status": "99",
                   "X-Bapi-Limit-Reset-Timestamp": str(now_ms)}
        fault = self._choose_fault(url.path)
        if fault is not None:
            answered = fault.name
            if fault.ret_code == 10006:
                headers.update({"X-Bapi-Limit-Status": "0", "X-Bapi-Limit-Reset-Timestamp": str(now_ms + fault.reset_in_ms)})
            status, out = fault.status, fault.body
        else:
            handler = self.routes.get((method, url.path))
            if handler is None:
                answered, status, out = "not found", 404, b"<html>404</html>"
            else:
                try:
                    result = handler(self, params, body)
                    answered, envelope = "ok", {"retCode": 0, "retMsg": "OK", "result": result}
                except ApiError as exc:
                    answered, envelope = f"error {exc.code}", {"retCode": exc.code, "retMsg": exc.message, "result": {}}
                envelope.update(retExtInfo={}, time=self.now_ms())
                status, out = 200, json.dumps(envelope).encode()
        with self._lock:
            self.requests.append(Request(method, url.path, params, time.time(), answered))
            if answered == "ok":
                self._ok[url.path] = self._ok.get(url.path, 0) + 1
        return fault, status, headers, out


def _make_handler(fake: FakeBybit) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def _handle(self, method: str) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            fault, status, headers, out = fake._serve(method, self.path, body)
            if fault is not None and fault.drop:
                self.close_connection = True
                self.connection.close()
                return
            self.send_response(status)
            for key, value in {**headers, "Content-Type": "application/json", "Content-Length": str(len(out))}.items():
                self.send_header(key, value)
            self.end_headers()
            self.wfile.write(out)

        def do_GET(self) -> None:
            self._handle("GET")

        def do_POST(self) -> None:
            self._handle("POST")

        def log_message(self, format: str, *args: Any) -> None:
            pass

    return Handler


# -- endpoints ---------------------------------------------------------------------------------------------


def _int_param(params: dict[str, str], name: str) -> int | None:
    if name not in params:
        return None
    try:
        return int(params[name])
    except ValueError:
        raise ApiError(10001, f"params error: {name} invalid") from None


def kline_handler(fake: FakeBybit, params: dict[str, str], body: bytes) -> dict[str, Any]:
    """`GET /v5/market/kline`: newest first; start and end inclusive; anchored at start when given,
    else at end (or now); the newest bar may be the one still open at the fake's clock."""
    category = params.get("category", "linear")
    if category not in ("linear", "inverse", "spot"):
        raise ApiError(10001, "params error: category invalid")
    symbol = params.get("symbol", "")
    if symbol not in fake.klines.symbols():
        raise ApiError(10001, "params error: symbol invalid")
    interval = params.get("interval", "")
    if interval not in INTERVAL_MS:
        raise ApiError(10001, "params error: interval invalid")
    limit = _int_param(params, "limit") or 200
    if not 1 <= limit <= 1000:
        raise ApiError(10001, "params error: limit invalid")
    start, end = _int_param(params, "start"), _int_param(params, "end")
    now = fake.now_ms()
    rows = [r for r in fake.klines.rows.get((symbol, interval), [])
            if int(r[0]) <= now and (start is None or int(r[0]) >= start) and (end is None or int(r[0]) <= end)]
    chosen = rows[:limit] if start is not None else rows[-limit:]
    return {"category": category, "symbol": symbol, "list": list(reversed(chosen))}

