"""Operator and automatic control: bot and portfolio state transitions, the
commands that cause them, and the changes the CLI queues for a running engine.

A transition takes effect synchronously, before anything awaits, so a flatten
can never race with an entry; every transition is a control event naming its
source and reason.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from tui_trader.engine.cycle import Intent, flatten_intents
from tui_trader.engine.events import EventBus, StateEvent
from tui_trader.engine.runtime import BotRuntime, refusal
from tui_trader.engine.sharing import leave_shared
from tui_trader.model import BotState, ControlEvent, Decision, DecisionType, Phase
from tui_trader.store import Batch, BotExists, Store

from tui_trader.engine.warmup import BotFactory, needed_base_bars, warm_up
from tui_trader.exchange.paper import PaperExchange

if TYPE_CHECKING:
    from tui_trader.config import BotSpec
    from tui_trader.market.base import CandleFeed
    from tui_trader.regime import RegimeTracker

log = logging.getLogger(__name__)

BOT_COMMANDS = ("pause", "resume", "flatten", "stop")
PORTFOLIO_COMMANDS = ("flatten_all", "resume_all")


class CommandError(ValueError):
    """A command that cannot apply (unknown bot, wrong state); the message says why."""


class Control:
    # Provided by the Engine (attributes and the methods below).
    bots: dict[int, BotRuntime]
    store: Store
    bus: EventBus
    factory: BotFactory
    feed: CandleFeed
    regimes: dict[tuple[str, str], RegimeTracker]
    now_ts: int
    bots_version: tuple[int, int]
    _lock: asyncio.Lock
    _own: dict[tuple[str, str], list[BotRuntime]]
    _reads: dict[tuple[str, str], list[BotRuntime]]

    def __init__(self) -> None:
        self.global_state = BotState.RUNNING
        self.global_reason = ""
        self.flattening: set[int] = set()  # bots in FLATTENING: finish_flattening looks only when there are some

    stage: Callable[[BotRuntime, Intent, Batch, list[tuple[BotRuntime, Intent]]], None]
    rebase_limits: Callable[[BotRuntime, Batch], None]
    rebase_portfolio: Callable[[], None]
    send: Callable[[list[tuple[BotRuntime, Intent]]], Awaitable[None]]
    record_decision: Callable[[BotRuntime, Decision, Batch], None]

    # -- lookup ------------------------------------------------------------------------------------

    def bot(self, name: str) -> BotRuntime:
        for bot in self.bots.values():
            if bot.name == name:
                return bot
        raise CommandError(f"no bot named {name!r}")

    def index_bots(self) -> None:
        self._own.clear()
        self._reads.clear()
        for bot in self.bots.values():
            self._own[(bot.profile.symbol, bot.profile.timeframe)].append(bot)
            for tf in bot.timeframes[1:]:
                self._reads[(bot.profile.symbol, tf)].append(bot)

    # -- transitions -------------------------------------------------------------------------------

    def set_state(self, bot: BotRuntime, to: BotState, command: str, source: str, reason: str, batch: Batch) -> None:
        before = bot.state
        bot.state, bot.state_reason = to, reason
        if to is BotState.FLATTENING:
            self.flattening.add(bot.id)
        else:
            self.flattening.discard(bot.id)
        batch.bot_states.append((bot.id, to.value, reason, self.now_ts))
        batch.control_events.append(ControlEvent(self.now_ts, bot.id, command, source, reason, before, to))
        self.record_decision(bot, Decision(bot.id, self.now_ts, Phase.CONTROL, DecisionType.STATE_CHANGED,
                                           f"{before.value} -> {to.value} by {source}{': ' + reason if reason else ''}",
                                           {"command": command, "source": source}), batch)
        self.bus.publish(StateEvent(bot.name, to, reason, source))

    def set_global(self, to: BotState, command: str, source: str, reason: str, batch: Batch) -> None:
        before = self.global_state
        self.global_state, self.global_reason = to, reason
        batch.meta.update(global_state=to.value, global_reason=reason)
        batch.control_events.append(ControlEvent(self.now_ts, None, command, source, reason, before, to))
        self.bus.publish(StateEvent(None, to, reason, source))
        log.warning("portfolio %s -> %s by %s: %s", before.value, to.value, source, reason)

    def fail_bot(self, bot: BotRuntime, exc: BaseException, batch: Batch) -> None:
        held = " Its position stays open under its exchange-side stop." if bot.ledger.position.is_open else ""
        reason = f"{type(exc).__name__}: {exc}"
        self.record_decision(bot, Decision(bot.id, self.now_ts, Phase.SYNC, DecisionType.ERROR,
                                           f"strategy raised {reason}; bot isolated.{held}", {"error": reason}), batch)
        self.set_state(bot, BotState.ERROR, "error", "engine", reason, batch)

    def finish_flattening(self, batch: Batch) -> None:
        """A flatten is complete once nothing is open: the bot (or the portfolio) is then HALTED."""
        if self.global_state is not BotState.FLATTENING and not self.flattening:
            return
        for bot in self.bots.values():
            if bot.state is BotState.FLATTENING and not bot.ledger.position.is_open and not bot.orders:
                self.set_state(bot, BotState.HALTED, "flatten", "engine", "flatten complete", batch)
        if self.global_state is BotState.FLATTENING and all(
            not b.ledger.position.is_open and not b.orders for b in self.bots.values()
        ):
            cause = f"{self.global_reason}; " if self.global_reason else ""  # the portfolio stop stays named
            self.set_global(BotState.HALTED, "flatten_all", "engine", f"{cause}flatten complete: every bot is flat", batch)

    # -- commands ------------------------------------------------------------------------------------

    async def command(self, command: str, bot_name: str | None = None, source: str = "operator", reason: str = "") -> str:
        """Apply one operator command; return what happened. CommandError when it cannot apply."""
        if command in PORTFOLIO_COMMANDS:
            return await (self.flatten_all(source, reason) if command == "flatten_all" else self.resume_all(source, reason))
        if command not in BOT_COMMANDS:
            raise CommandError(f"unknown command {command!r}")
        if bot_name is None:
            raise CommandError(f"{command} needs a bot")
        bot = self.bot(bot_name)
        return await getattr(self, command)(bot, source, reason)

    async def pause(self, bot: BotRuntime, source: str = "operator", reason: str = "") -> str:
        if why := refusal("pause", bot.name, bot.state):
            raise CommandError(why)
        await self._transition(bot, BotState.PAUSED, "pause", source, reason or "paused: reduce-only")
        return f"{bot.name} paused: open positions are still managed, no new entries"

    async def resume(self, bot: BotRuntime, source: str = "operator", reason: str = "") -> str:
        if why := refusal("resume", bot.name, bot.state):
            raise CommandError(why)
        if bot.cycle is None or bot.state is BotState.ERROR:
            rebuilt = self.factory.build(bot.record)
            if rebuilt.cycle is None:
                raise CommandError(f"{bot.name} cannot resume: {rebuilt.state_reason}")
            await self._rewarm(bot, rebuilt)
        batch = Batch()
        self.rebase_limits(bot, batch)
        self.set_state(bot, BotState.RUNNING, "resume", source, reason, batch)
        await self.store.commit(batch)
        return f"{bot.name} resumed"

    async def stop(self, bot: BotRuntime, source: str = "operator", reason: str = "") -> str:
        if why := refusal("stop", bot.name, bot.state):
            raise CommandError(why)
        leave_shared(bot)  # no longer fed candles: it keeps the strategy state it has reached
        await self._transition(bot, BotState.STOPPED, "stop", source, reason or "stopped")
        held = "; its position stays open under its exchange-side stop" if bot.ledger.position.is_open else ""
        return f"{bot.name} stopped{held}"

    async def flatten(self, bot: BotRuntime, source: str = "operator", reason: str = "") -> str:
        if bot.state is BotState.STOPPED or bot.cycle is None and bot.state is BotState.ERROR and not bot.ledger.position.is_open:
            raise CommandError(f"{bot.name} is {bot.state.value}; nothing to flatten")
        # The state is set and queued for commit before anything awaits: no entry can follow it,
        # and a tick that completes the flatten meanwhile commits its HALTED after this.
        state_batch = Batch()
        self.set_state(bot, BotState.FLATTENING, "flatten", source, reason or "flatten requested", state_batch)
        await self.store.commit(state_batch)
        batch = Batch()
        async with self._lock:
            pending: list[tuple[BotRuntime, Intent]] = []
            for intent in flatten_intents(bot.profile, bot.ledger.position, bot.next_seq):
                self.stage(bot, intent, batch, pending)
            self.finish_flattening(batch)
            await self.store.commit(batch)
            await self.send(pending)
        return f"{bot.name} flattening: orders cancelled, position closing reduce-only, then HALTED"

    async def flatten_all(self, source: str = "operator", reason: str = "") -> str:
        state_batch = Batch()  # as in flatten(): the state is committed first
        self.set_global(BotState.FLATTENING, "flatten_all", source, reason or "flatten all and halt", state_batch)
        await self.store.commit(state_batch)
        batch = Batch()
        async with self._lock:
            pending: list[tuple[BotRuntime, Intent]] = []
            for bot in self.bots.values():
                if bot.ledger.position.is_open or bot.orders:
                    for intent in flatten_intents(bot.profile, bot.ledger.position, bot.next_seq):
                        self.stage(bot, intent, batch, pending)
            self.finish_flattening(batch)
            await self.store.commit(batch)
            await self.send(pending)
        return "portfolio flattening: every bot's orders cancelled and positions closing, then HALTED"

    async def resume_all(self, source: str = "operator", reason: str = "") -> str:
        if self.global_state is BotState.RUNNING:
            raise CommandError("the portfolio is already RUNNING")
        if self.global_state is BotState.FLATTENING:
            raise CommandError("the portfolio is still FLATTENING; resume once it is HALTED")
        batch = Batch()
        self.rebase_portfolio()
        batch.meta["portfolio_high_pnl"] = str(self.portfolio_high_pnl)  # type: ignore[attr-defined]
        self.set_global(BotState.RUNNING, "resume_all", source, reason or "resumed", batch)
        await self.store.commit(batch)
        return "portfolio resumed"

    async def _transition(self, bot: BotRuntime, to: BotState, command: str, source: str, reason: str) -> None:
        batch = Batch()
        self.set_state(bot, to, command, source, reason, batch)
        await self.store.commit(batch)

    # -- adding, editing and removing bots (the console; the CLI writes the database and the poll picks it up) ------

    def holds_anything(self, bot: BotRuntime) -> bool:
        return bot.ledger.position.is_open or bool(bot.orders)

    async def add_bot(self, spec: BotSpec) -> str:
        """A validated spec becomes a running, warmed-up bot at once."""
        try:
            await self.store.add_bot(spec, _wall_ms())
        except BotExists as exc:
            raise CommandError(str(exc)) from None
        await self.reload_bots()
        return f"{spec.name} added: {spec.strategy} on {spec.symbol} {spec.timeframe.value}"

    async def edit_bot(self, name: str, spec: BotSpec) -> str:
        """Symbol, timeframe and strategy change only while the bot holds nothing (as with `bots edit`)."""
        bot = self.bot(name)
        old = bot.record.spec
        if (spec.symbol, spec.timeframe, spec.strategy) != (old.symbol, old.timeframe, old.strategy) and self.holds_anything(bot):
            raise CommandError(f"{name} holds a position or working orders; flatten it before changing symbol,"
                               " timeframe or strategy")
        try:
            await self.store.update_bot(bot.id, spec, _wall_ms())
        except BotExists as exc:
            raise CommandError(str(exc)) from None
        await self.reload_bots()
        return f"{spec.name} updated"

    async def remove_bot(self, name: str) -> str:
        """Refused while the bot holds a position or working orders; its history stays in the database."""
        bot = self.bot(name)
        if self.holds_anything(bot):
            raise CommandError(f"{name} holds a position or working orders; flatten it first")
        await self.store.remove_bot(bot.id, _wall_ms())
        await self.reload_bots()
        return f"{name} removed (its history stays)"

    # -- changes queued by the CLI -------------------------------------------------------------------

    async def apply_pending_commands(self) -> None:
        for cmd in await self.store.pending_commands():
            bot = self.bots.get(cmd.bot_id) if cmd.bot_id is not None else None
            try:
                if cmd.bot_id is not None and bot is None:
                    raise CommandError(f"bot {cmd.bot_id} is not loaded by this engine")
                result, status = await self.command(cmd.command, bot.name if bot else None, cmd.source, cmd.reason), "applied"
            except CommandError as exc:
                result, status = str(exc), "rejected"
            await self.store.commit(Batch(applied_commands=[(cmd.id, status, result)]))

    async def reload_bots(self) -> None:
        """Pick up bots the CLI added, edited or removed since the last look."""
        version = await self.store.bots_version()
        if version == self.bots_version:
            return
        self.bots_version = version
        records = {r.id: r for r in await self.store.list_bots()}
        for bot_id in [b for b in self.bots if b not in records]:
            bot = self.bots.pop(bot_id)
            log.info("bot %s removed", bot.name)
        for record in records.values():
            current = self.bots.get(record.id)
            if current is not None and current.record.version == record.version:
                continue
            fresh = self.factory.build(record)
            if current is not None:
                fresh.ledger, fresh.orders, fresh.order_seqs = current.ledger, current.orders, current.order_seqs
                fresh.next_seq, fresh.state, fresh.state_reason = current.next_seq, current.state, current.state_reason
                deposit = record.spec.capital - fresh.ledger.capital
                fresh.ledger.capital = record.spec.capital
                if deposit and isinstance(self.factory.exchange, PaperExchange):
                    self.factory.exchange.transfer(fresh.id, deposit)  # keep the paper wallet equal to the ledger's
            self.bots[record.id] = fresh
            await self._warm(fresh)
            await self.factory.exchange.open_account(fresh.id, fresh.ledger.wallet, fresh.leverage)
            log.info("bot %s %s", record.name, "updated" if current else "added")
        self.index_bots()

    async def _rewarm(self, bot: BotRuntime, rebuilt: BotRuntime) -> None:
        bot.cycle = rebuilt.cycle
        bot.refresh()
        await self._warm(bot)

    async def _warm(self, bot: BotRuntime) -> None:
        bars = needed_base_bars([bot], self.feed.base_timeframe)[bot.profile.symbol]
        history = await self.store.candles(bot.profile.symbol, self.feed.base_timeframe, limit=bars)
        warm_up([bot], {bot.profile.symbol: history}, self.feed.base_timeframe, self.regimes)


def _wall_ms() -> int:
    return int(time.time() * 1000)
