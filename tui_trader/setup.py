"""Wiring: configuration checked against the strategy plugins, and the engine
assembled from a config and a state directory (store, paper exchange, feed)."""

from __future__ import annotations

import fcntl
import gc
import os
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from tui_trader.config import AppConfig, BotSpec, ConfigError, bundled_path
from tui_trader.engine.events import Subscriber
from tui_trader.engine.orchestrator import Engine
from tui_trader.exchange.paper import PaperExchange
from tui_trader.market.base import CandleFeed
from tui_trader.market.replay import ReplayFeed, load_csv
from tui_trader.market.synthetic import SyntheticFeed
from tui_trader.model import MINUTE_MS, Instrument
from tui_trader.store import Store
from tui_trader.strategy import ParamsError, StrategyRegistry, discover

LOCK_NAME = "engine.lock"


class EngineBusy(RuntimeError):
    pass


def load_strategies(extra_dir: Path | None = None) -> StrategyRegistry:
    dirs = [bundled_path("strategies")]
    if extra_dir is not None:
        dirs.append(extra_dir)
    return discover(dirs)


def bot_errors(spec: BotSpec, config: AppConfig, registry: StrategyRegistry, where: str) -> list[str]:
    """Everything wrong with a bot beyond its own fields, as 'field: message' lines."""
    errors = config.field_errors(spec, where)
    cls = registry.get(spec.strategy)
    if cls is None:
        known = ", ".join(registry.names()) or "none"
        errors.append(f"{where}.strategy: unknown strategy {spec.strategy!r} (known: {known})")
        return errors
    try:
        registry.make(spec.strategy, spec.params, spec.timeframe.value)
    except ParamsError as exc:
        errors.extend(f"{where}.{line}" for line in exc.lines)
    offered = len(cls.confirmations)
    if not cls.delegates and spec.confirmations > offered:
        errors.append(f"{where}.confirmations: {spec.strategy} has {offered} confirmation signal"
                      f"{'' if offered == 1 else 's'}; {spec.confirmations} can never pass")
    return errors


def check_config(config: AppConfig, registry: StrategyRegistry, source: str) -> None:
    errors = [e for i, bot in enumerate(config.bots) for e in bot_errors(bot, config, registry, f"bots[{i}]")]
    if config.exchange.kind != "paper":  # the Bybit adapter is a later issue
        errors.append(f"exchange.kind: {config.exchange.kind!r} is not available in this version; use 'paper'")
    if errors:
        raise ConfigError(source, errors)


def instruments(config: AppConfig, symbols: Sequence[str]) -> dict[str, Instrument]:
    out = {}
    for symbol in symbols:
        spec = config.exchange.instrument(symbol)
        if spec is None:
            raise ConfigError("config", [f"exchange.instruments.{symbol}: no instrument rules for {symbol}"])
        out[symbol] = Instrument(symbol, spec.tick_size, spec.qty_step, spec.min_qty, spec.min_notional, spec.max_leverage)
    return out


@contextmanager
def engine_lock(state_dir: Path) -> Iterator[None]:
    """One engine per state directory: a second one would duplicate every order."""
    state_dir.mkdir(parents=True, exist_ok=True)
    fd = os.open(state_dir / LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise EngineBusy(f"another tui-trader engine is running on {state_dir}") from None
        os.ftruncate(fd, 0)
        os.write(fd, str(os.getpid()).encode())
        yield
    finally:
        os.close(fd)


def engine_running(state_dir: Path) -> bool:
    path = state_dir / LOCK_NAME
    if not path.exists():
        return False
    fd = os.open(path, os.O_RDWR)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)
    return False


async def sync_config_bots(store: Store, config: AppConfig) -> None:
    """Bots named in the config are added when missing; the database is the source of truth after that."""
    now = int(time.time() * 1000)
    for spec in config.bots:
        if await store.get_bot(spec.name) is None:
            await store.add_bot(spec, now)


async def make_feed(config: AppConfig, store: Store, symbols: Sequence[str], rules: dict[str, Instrument]) -> CandleFeed:
    market = config.market
    if market.source == "synthetic":
        last = [ts for s in symbols if (ts := await store.last_candle_ts(s)) is not None]
        start = max(last) + MINUTE_MS if last else int(time.time() * 1000) // MINUTE_MS * MINUTE_MS
        ticks = {s: float(rules[s].tick_size) for s in symbols}
        chosen = [s for s in market.symbols if s.symbol in symbols] or list(market.symbols)
        return SyntheticFeed(chosen, market.seed, market.candle_seconds, start, ticks)
    replay = market.replay
    if replay.path is not None:
        assert replay.symbol is not None
        data = {replay.symbol: load_csv(replay.path, replay.symbol, replay.timeframe.value)}
    else:
        data = {s: await store.candles(s, replay.timeframe.value) for s in symbols}
    history = min(len(c) for c in data.values()) // 2 if data else 0
    return ReplayFeed(data, speed=replay.speed, history_bars=history)


async def open_engine(config: AppConfig, state_dir: Path, registry: StrategyRegistry,
                      subscribers: Sequence[Subscriber] = ()) -> Engine:
    """Open the store, add the config's new bots, build exchange and feed, restore and warm up.
    Subscribers are attached before the restore, so they also see what start-up decides."""
    sync = config.store.synchronous or ("normal" if config.exchange.kind == "paper" else "full")
    store = await Store.open(state_dir, sync)
    try:
        await sync_config_bots(store, config)
        records = await store.list_bots()
        symbols = sorted({r.spec.symbol for r in records} | {s.symbol for s in config.market.symbols})
        rules = instruments(config, symbols)
        exchange = PaperExchange(rules, config.exchange.maker_fee, config.exchange.taker_fee, config.exchange.slippage_bps)
        feed = await make_feed(config, store, symbols, rules)
        engine = Engine(config, store, exchange, feed, registry)
        for subscriber in subscribers:
            engine.bus.subscribe(subscriber)
        await engine.start()
    except BaseException:
        await store.close()
        raise
    # Start-up built long-lived objects (bots, indicator handles, history): keep the
    # collector from re-scanning them, and collect young objects less often (a tick of
    # 1,000 bots allocates ~20k short-lived ones); both showed as p99 spikes.
    gc.collect()
    gc.freeze()
    gc.set_threshold(50_000, 20, 50)
    return engine
