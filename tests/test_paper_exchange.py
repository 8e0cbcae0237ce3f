"""PaperExchange: matching, fees, slippage, margin, reduce-only, stops, restore.

Expected prices and amounts are worked out by hand in the comments. The
instrument has a 0.1 tick and a 0.01 qty step; fees are 0.02% maker and 0.05%
taker; slippage is 10 bps (0.1%).
"""

from __future__ import annotations

import asyncio
import re
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tui_trader.exchange.paper import PaperExchange
from tui_trader.model import (
    Candle,
    Fill,
    Instrument,
    Liquidity,
    OrderPurpose,
    OrderRequest,
    OrderStatus,
    OrderType,
    OrderUpdate,
    Position,
    Side,
    to_usdt,
)

D = Decimal
SYM = "TESTUSDT"
OTHER = "OTHERUSDT"
INSTRUMENTS = {
    SYM: Instrument(SYM, tick_size=D("0.1"), qty_step=D("0.01"), min_qty=D("0.02"), min_notional=D(5)),
    OTHER: Instrument(OTHER, tick_size=D("0.01"), qty_step=D("0.1"), min_qty=D("0.1"), min_notional=D(5)),
}
MAKER, TAKER, SLIPPAGE_BPS = D("0.0002"), D("0.0005"), D(10)
T0 = 1_700_000_000_000
MIN = 60_000
BALANCE, LEVERAGE = D(1000), D(10)


class Recorder:
    def __init__(self) -> None:
        self.fills: list[Fill] = []
        self.updates: list[OrderUpdate] = []
        self.events: list[tuple[str, str, OrderStatus | None]] = []

    def on_fill(self, fill: Fill) -> None:
        self.fills.append(fill)
        self.events.append(("fill", fill.client_order_id, None))

    def on_order_update(self, update: OrderUpdate) -> None:
        self.updates.append(update)
        self.events.append(("update", update.client_order_id, update.status))


def bar(i: int, open_: float, high: float, low: float, close: float, symbol: str = SYM) -> Candle:
    return Candle(symbol, "1m", T0 + i * MIN, open_, high, low, close, 1.0)


def ts(i: int) -> int:
    return T0 + i * MIN


def req(
    cid: str,
    side: Side,
    qty: str,
    order_type: OrderType = OrderType.MARKET,
    *,
    bot: int = 1,
    symbol: str = SYM,
    purpose: OrderPurpose = OrderPurpose.ENTRY,
    price: str | None = None,
    trigger: str | None = None,
    reduce_only: bool = False,
    stop_loss: str | None = None,
    take_profit: str | None = None,
) -> OrderRequest:
    return OrderRequest(
        cid,
        bot,
        symbol,
        side,
        order_type,
        D(qty),
        purpose,
        price=None if price is None else D(price),
        trigger_price=None if trigger is None else D(trigger),
        reduce_only=reduce_only,
        stop_loss=None if stop_loss is None else D(stop_loss),
        take_profit=None if take_profit is None else D(take_profit),
    )


def new_exchange() -> tuple[PaperExchange, Recorder]:
    ex = PaperExchange(INSTRUMENTS, MAKER, TAKER, SLIPPAGE_BPS)
    rec = Recorder()
    ex.set_listener(rec)
    return ex, rec


@pytest.fixture
async def setup() -> tuple[PaperExchange, Recorder]:
    """Bot 1 with 1000 USDT at 10x; TESTUSDT marked at 100.0 by candle 0."""
    ex, rec = new_exchange()
    await ex.open_account(1, BALANCE, LEVERAGE)
    ex.process_candle(bar(0, 100.0, 100.0, 100.0, 100.0))
    return ex, rec


async def accept(ex: PaperExchange, request: OrderRequest) -> None:
    update = await ex.place_order(request)
    assert update.status is OrderStatus.NEW, update.reason


async def go_long(ex: PaperExchange, qty: str = "1", i: int = 1, **kw: str) -> None:
    """Market buy filled at candle i's open 100.0: 100.0 * 1.001 = 100.1 (on the tick)."""
    await accept(ex, req("entry", Side.BUY, qty, **kw))
    ex.process_candle(bar(i, 100.0, 100.0, 100.0, 100.0))


# --- market orders -----------------------------------------------------------


async def test_market_buy_fills_at_next_open_with_slippage_rounded_up(setup):
    ex, rec = setup
    assert (await ex.place_order(req("b1", Side.BUY, "1"))).status is OrderStatus.NEW
    assert rec.fills == []  # waits for the next candle
    ex.process_candle(bar(1, 100.3, 101.0, 100.0, 100.6))
    # 100.3 * 1.001 = 100.4003 -> up to the tick: 100.5; fee 1 * 100.5 * 0.0005 = 0.05025
    assert rec.fills == [
        Fill("b1-f1", "b1", 1, SYM, Side.BUY, D(1), D("100.5"), D("0.05025"), Liquidity.TAKER, ts(1), OrderPurpose.ENTRY)
    ]
    assert rec.events == [("fill", "b1", None), ("update", "b1", OrderStatus.FILLED)]
    assert rec.updates[-1] == OrderUpdate("b1", 1, OrderStatus.FILLED, ts(1))
    assert ex.wallet(1) == D("999.94975")
    pos = ex.position(1, SYM)
    assert (pos.qty, pos.entry_price, pos.opened_ts, pos.entry_fees) == (D(1), D("100.5"), ts(1), D("0.05025"))
    assert ex.mark(SYM) == D("100.6")
    assert await ex.get_order("b1") == OrderUpdate("b1", 1, OrderStatus.FILLED, ts(1))
    assert await ex.open_orders() == []


async def test_market_sell_rounds_down(setup):
    ex, rec = setup
    await accept(ex, req("s1", Side.SELL, "1"))
    ex.process_candle(bar(1, 100.3, 101.0, 100.0, 100.6))
    # 100.3 * 0.999 = 100.1997 -> down to the tick: 100.1; fee 100.1 * 0.0005 = 0.05005
    (fill,) = rec.fills
    assert (fill.price, fill.fee, fill.side) == (D("100.1"), D("0.05005"), Side.SELL)
    assert ex.position(1, SYM).qty == D(-1)
    assert ex.wallet(1) == D("999.94995")


async def test_market_order_rejected_without_a_mark():
    ex, _ = new_exchange()
    await ex.open_account(1, BALANCE, LEVERAGE)
    update = await ex.place_order(req("m", Side.BUY, "1"))
    assert (update.status, update.reason) == (OrderStatus.REJECTED, "no market price yet")


async def test_candle_of_another_symbol_fills_nothing(setup):
    ex, rec = setup
    await accept(ex, req("b1", Side.BUY, "1"))
    ex.process_candle(bar(1, 50.0, 51.0, 49.0, 50.0, symbol=OTHER))
    assert rec.fills == []
    assert ex.mark(OTHER) == D("50.0")
    ex.process_candle(bar(1, 100.0, 100.0, 100.0, 100.0))
    assert [f.client_order_id for f in rec.fills] == ["b1"]


# --- limit orders ------------------------------------------------------------


async def test_limit_buy_fills_at_its_price_when_the_low_touches_it(setup):
    ex, rec = setup
    await accept(ex, req("l1", Side.BUY, "1", OrderType.LIMIT, price="99.0"))
    ex.process_candle(bar(1, 100.0, 100.5, 99.1, 99.5))
    assert rec.fills == []
    ex.process_candle(bar(2, 99.5, 99.8, 99.0, 99.6))
    # maker fee 99.0 * 0.0002 = 0.0198
    assert rec.fills == [
        Fill("l1-f1", "l1", 1, SYM, Side.BUY, D(1), D("99.0"), D("0.0198"), Liquidity.MAKER, ts(2), OrderPurpose.ENTRY)
    ]
    assert ex.wallet(1) == D("999.9802")


async def test_limit_buy_fills_at_the_open_when_the_bar_gaps_below_it(setup):
    ex, rec = setup
    await accept(ex, req("l1", Side.BUY, "1", OrderType.LIMIT, price="99.0"))
    ex.process_candle(bar(1, 98.5, 99.5, 98.0, 99.0))
    (fill,) = rec.fills
    # 98.5 * 0.0002 = 0.0197
    assert (fill.price, fill.fee, fill.liquidity) == (D("98.5"), D("0.0197"), Liquidity.MAKER)


async def test_limit_sell_fills_when_the_high_touches_it(setup):
    ex, rec = setup
    await accept(ex, req("l1", Side.SELL, "2", OrderType.LIMIT, price="101.0"))
    ex.process_candle(bar(1, 100.0, 101.0, 99.0, 100.0))
    (fill,) = rec.fills
    # 2 * 101.0 * 0.0002 = 0.0404
    assert (fill.price, fill.qty, fill.fee) == (D("101.0"), D(2), D("0.0404"))
    assert ex.position(1, SYM).qty == D(-2)


# --- stop orders -------------------------------------------------------------


async def test_buy_stop_triggers_on_the_high_and_fills_at_trigger_plus_slippage(setup):
    ex, rec = setup
    await accept(ex, req("st", Side.BUY, "1", OrderType.STOP, trigger="101.0"))
    ex.process_candle(bar(1, 100.0, 100.9, 99.0, 100.5))
    assert rec.fills == []
    ex.process_candle(bar(2, 100.5, 101.0, 100.0, 100.8))
    # 101.0 * 1.001 = 101.101 -> up: 101.2; taker fee 101.2 * 0.0005 = 0.0506
    (fill,) = rec.fills
    assert (fill.price, fill.fee, fill.liquidity, fill.ts) == (D("101.2"), D("0.0506"), Liquidity.TAKER, ts(2))


async def test_sell_stop_triggers_on_the_low(setup):
    ex, rec = setup
    await accept(ex, req("st", Side.SELL, "1", OrderType.STOP, trigger="99.0"))
    ex.process_candle(bar(1, 100.0, 100.2, 99.0, 99.5))
    # 99.0 * 0.999 = 98.901 -> down: 98.9; fee 98.9 * 0.0005 = 0.04945
    (fill,) = rec.fills
    assert (fill.price, fill.fee, fill.side) == (D("98.9"), D("0.04945"), Side.SELL)


async def test_stop_gapped_through_fills_at_the_open_with_slippage(setup):
    ex, rec = setup
    await accept(ex, req("st", Side.BUY, "1", OrderType.STOP, trigger="101.0"))
    ex.process_candle(bar(1, 102.0, 103.0, 101.5, 102.5))
    # 102.0 * 1.001 = 102.102 -> up: 102.2
    (fill,) = rec.fills
    assert (fill.price, fill.liquidity) == (D("102.2"), Liquidity.TAKER)


# --- position stop-loss and take-profit --------------------------------------


async def test_entry_stop_loss_closes_the_position(setup):
    ex, rec = setup
    await go_long(ex, stop_loss="95.0", take_profit="110.0")
    pos = ex.position(1, SYM)
    assert (pos.entry_price, pos.stop_price, pos.target_price) == (D("100.1"), D("95.0"), D("110.0"))
    ex.process_candle(bar(2, 100.0, 100.5, 94.0, 96.0))
    # 95.0 * 0.999 = 94.905 -> down: 94.9; fee 94.9 * 0.0005 = 0.04745
    stop = rec.fills[-1]
    cid = f"tt1-{SYM}-sl-{ts(2)}"
    assert stop == Fill(f"{cid}-f1", cid, 1, SYM, Side.SELL, D(1), D("94.9"), D("0.04745"), Liquidity.TAKER, ts(2), OrderPurpose.STOP, True)
    assert rec.updates[-1] == OrderUpdate(cid, 1, OrderStatus.FILLED, ts(2))
    # 1000 - entry fee 0.05005 + (94.9 - 100.1) - 0.04745
    assert ex.wallet(1) == D("994.7025")
    assert ex.position(1, SYM) == Position(1, SYM)
    assert await ex.positions() == []


async def test_entry_take_profit_closes_the_position_at_the_target_without_slippage(setup):
    ex, rec = setup
    await go_long(ex, stop_loss="95.0", take_profit="110.0")
    ex.process_candle(bar(2, 100.0, 110.0, 99.0, 109.0))
    # fee 110.0 * 0.0005 = 0.055; wallet 1000 - 0.05005 + 9.9 - 0.055
    cid = f"tt1-{SYM}-tp-{ts(2)}"
    assert rec.fills[-1] == Fill(
        f"{cid}-f1", cid, 1, SYM, Side.SELL, D(1), D("110.0"), D("0.055"), Liquidity.TAKER, ts(2), OrderPurpose.TARGET, True
    )
    assert ex.wallet(1) == D("1009.79495")
    assert not ex.position(1, SYM).is_open


async def test_stop_wins_when_stop_and_target_are_both_inside_the_bar(setup):
    ex, rec = setup
    await go_long(ex, stop_loss="95.0", take_profit="110.0")
    ex.process_candle(bar(2, 100.0, 111.0, 94.0, 100.0))
    assert [f.purpose for f in rec.fills] == [OrderPurpose.ENTRY, OrderPurpose.STOP]
    assert rec.fills[-1].price == D("94.9")
    assert ex.wallet(1) == D("994.7025")


async def test_position_stop_gapped_through_fills_at_the_open(setup):
    ex, rec = setup
    await go_long(ex, stop_loss="95.0")
    ex.process_candle(bar(2, 94.0, 94.5, 93.0, 94.0))
    # 94.0 * 0.999 = 93.906 -> down: 93.9
    assert (rec.fills[-1].price, rec.fills[-1].purpose) == (D("93.9"), OrderPurpose.STOP)


async def test_position_target_gapped_through_fills_at_the_open(setup):
    ex, rec = setup
    await go_long(ex, take_profit="110.0")
    ex.process_candle(bar(2, 112.0, 113.0, 111.0, 112.0))
    assert (rec.fills[-1].price, rec.fills[-1].purpose) == (D("112.0"), OrderPurpose.TARGET)


async def test_short_stop_and_target(setup):
    ex, rec = setup
    await accept(ex, req("e", Side.SELL, "1", stop_loss="105.0", take_profit="90.0"))
    ex.process_candle(bar(1, 100.0, 100.0, 100.0, 100.0))  # sells at 100.0 * 0.999 = 99.9
    ex.process_candle(bar(2, 100.0, 105.0, 99.0, 104.0))
    # 105.0 * 1.001 = 105.105 -> up: 105.2; fee 0.0526; wallet 1000 - 0.04995 - 5.3 - 0.0526
    assert (rec.fills[-1].side, rec.fills[-1].price, rec.fills[-1].fee) == (Side.BUY, D("105.2"), D("0.0526"))
    assert ex.wallet(1) == D("994.59745")

    await accept(ex, req("e2", Side.SELL, "1", take_profit="90.0"))
    ex.process_candle(bar(3, 100.0, 100.0, 100.0, 100.0))  # 99.9 again
    ex.process_candle(bar(4, 95.0, 96.0, 90.0, 91.0))
    # covers at 90.0, fee 0.045; realized 9.9
    assert (rec.fills[-1].price, rec.fills[-1].purpose) == (D("90.0"), OrderPurpose.TARGET)
    assert ex.wallet(1) == D("994.59745") - D("0.04995") + D("9.9") - D("0.045")


# --- P&L and wallet ----------------------------------------------------------


async def test_long_round_trip_pnl_and_wallet(setup):
    ex, rec = setup
    await go_long(ex, qty="2")  # 2 @ 100.1, fee 2 * 100.1 * 0.0005 = 0.1001
    await accept(ex, req("x", Side.SELL, "2", OrderType.LIMIT, purpose=OrderPurpose.EXIT, price="105.0", reduce_only=True))
    ex.process_candle(bar(2, 103.0, 105.5, 102.0, 105.0))
    # fee 2 * 105 * 0.0002 = 0.042; realized 2 * (105 - 100.1) = 9.8
    assert (rec.fills[-1].fee, rec.fills[-1].purpose, rec.fills[-1].reduce_only) == (D("0.042"), OrderPurpose.EXIT, True)
    assert ex.wallet(1) == D("1009.6579")  # 1000 - 0.1001 + 9.8 - 0.042
    assert not ex.position(1, SYM).is_open


async def test_short_round_trip_pnl_and_wallet(setup):
    ex, _ = setup
    await accept(ex, req("e", Side.SELL, "2"))
    ex.process_candle(bar(1, 100.0, 100.0, 100.0, 100.0))  # 2 @ 99.9, fee 0.0999
    await accept(ex, req("x", Side.BUY, "2", OrderType.LIMIT, price="95.0", reduce_only=True))
    ex.process_candle(bar(2, 97.0, 97.0, 94.0, 95.0))
    # fee 2 * 95 * 0.0002 = 0.038; realized 2 * (99.9 - 95) = 9.8
    assert ex.wallet(1) == D("1009.6621")  # 1000 - 0.0999 + 9.8 - 0.038


async def test_adding_to_a_position_averages_the_entry(setup):
    ex, _ = setup
    await go_long(ex, qty="1")  # 1 @ 100.1
    await accept(ex, req("add", Side.BUY, "3", OrderType.LIMIT, price="98.0"))
    ex.process_candle(bar(2, 99.0, 99.0, 97.0, 98.0))
    pos = ex.position(1, SYM)
    # (100.1 + 3 * 98.0) / 4 = 394.1 / 4 = 98.525; entry fees 0.05005 + 3 * 98 * 0.0002 = 0.10885
    assert (pos.qty, pos.entry_price, pos.entry_fees) == (D(4), D("98.525"), D("0.10885"))


async def test_flip_from_long_to_short(setup):
    ex, rec = setup
    await go_long(ex, stop_loss="95.0", take_profit="110.0")  # 1 @ 100.1, fee 0.05005
    await accept(ex, req("flip", Side.SELL, "3", stop_loss="106.0"))
    ex.process_candle(bar(2, 101.0, 101.0, 100.5, 101.0))
    # 101.0 * 0.999 = 100.899 -> down: 100.8; fee 3 * 100.8 * 0.0005 = 0.1512
    (fill,) = rec.fills[1:]
    assert (fill.qty, fill.price, fill.fee) == (D(3), D("100.8"), D("0.1512"))
    pos = ex.position(1, SYM)
    # the long's stop and target go; the short gets the flip order's stop
    assert (pos.qty, pos.entry_price, pos.stop_price, pos.target_price, pos.opened_ts) == (D(-2), D("100.8"), D("106.0"), None, ts(2))
    assert pos.entry_fees == D("0.1008")  # 2/3 of the flip's fee
    # realized (100.8 - 100.1) * 1 = 0.7
    assert ex.wallet(1) == D("1000.49875")  # 1000 - 0.05005 + 0.7 - 0.1512


# --- reduce-only -------------------------------------------------------------


async def test_reduce_only_rejected_when_flat(setup):
    ex, _ = setup
    update = await ex.place_order(req("r", Side.SELL, "1", reduce_only=True))
    assert (update.status, update.reason) == (OrderStatus.REJECTED, "reduce-only order but there is no position to reduce")


async def test_reduce_only_rejected_on_the_same_side(setup):
    ex, _ = setup
    await go_long(ex)
    update = await ex.place_order(req("r", Side.BUY, "1", reduce_only=True))
    assert (update.status, update.reason) == (OrderStatus.REJECTED, "reduce-only Buy order would increase the long position")


async def test_reduce_only_clamped_to_the_position_at_fill(setup):
    ex, rec = setup
    await go_long(ex, qty="1")
    await accept(ex, req("r", Side.SELL, "3", OrderType.LIMIT, price="105.0", reduce_only=True))
    ex.process_candle(bar(2, 104.0, 106.0, 104.0, 105.0))
    assert (rec.fills[-1].qty, rec.fills[-1].price) == (D(1), D("105.0"))
    assert not ex.position(1, SYM).is_open


async def test_reduce_only_cancelled_when_the_position_closed_earlier_in_the_bar(setup):
    ex, rec = setup
    await go_long(ex, stop_loss="95.0")
    await accept(ex, req("r", Side.SELL, "1", OrderType.LIMIT, price="105.0", reduce_only=True))
    rec.events.clear()
    ex.process_candle(bar(2, 100.0, 106.0, 94.0, 100.0))
    sl = f"tt1-{SYM}-sl-{ts(2)}"
    assert rec.events == [
        ("fill", sl, None),
        ("update", sl, OrderStatus.FILLED),
        ("update", "r", OrderStatus.CANCELLED),
    ]
    assert rec.updates[-1].reason == "reduce-only order had nothing to reduce"
    assert await ex.open_orders() == []
    assert ex.wallet(1) == D("994.7025")


async def test_reduce_only_order_survives_a_flat_position_until_it_would_fill(setup):
    ex, _ = setup
    await go_long(ex, stop_loss="95.0")
    await accept(ex, req("r", Side.SELL, "1", OrderType.LIMIT, price="105.0", reduce_only=True))
    ex.process_candle(bar(2, 100.0, 100.0, 94.0, 96.0))  # stopped out
    assert [o.client_order_id for o in await ex.open_orders()] == ["r"]
    ex.process_candle(bar(3, 100.0, 106.0, 99.0, 100.0))
    assert (await ex.get_order("r")).status is OrderStatus.CANCELLED


# --- validation --------------------------------------------------------------


@pytest.mark.parametrize(
    ("request_", "reason"),
    [
        (req("a", Side.BUY, "1", OrderType.LIMIT, price="99.05"), "price 99.05 is not a multiple of the tick size 0.1"),
        (req("a", Side.BUY, "1.005", OrderType.LIMIT, price="99.0"), "quantity 1.005 is not a multiple of the qty step 0.01"),
        (req("a", Side.BUY, "0.01", OrderType.LIMIT, price="99.0"), "quantity 0.01 is below the minimum 0.02"),
        (req("a", Side.BUY, "0.05", OrderType.LIMIT, price="99.0"), "notional 4.95 USDT is below the minimum 5 USDT"),
        (req("a", Side.BUY, "0.04"), "notional 4.00 USDT is below the minimum 5 USDT"),  # market: checked at the mark
        (req("a", Side.BUY, "1", OrderType.STOP, trigger="101.05"), "price 101.05 is not a multiple of the tick size 0.1"),
        (req("a", Side.BUY, "1", OrderType.LIMIT), "limit order without a price"),
        (req("a", Side.BUY, "1", OrderType.STOP), "stop order without a trigger price"),
        (req("a", Side.BUY, "1", symbol="NOPEUSDT"), "unknown symbol NOPEUSDT"),
        (req("a", Side.BUY, "1", bot=9), "no paper account for bot 9"),
    ],
)
async def test_rejections(setup, request_, reason):
    ex, rec = setup
    update = await ex.place_order(request_)
    assert update == OrderUpdate("a", request_.bot_id, OrderStatus.REJECTED, ts(1), reason)
    assert await ex.open_orders() == []
    assert rec.updates == []  # placement answers are returned, not emitted


async def test_margin_check_with_leverage():
    ex, _ = new_exchange()
    await ex.open_account(2, D(1005), LEVERAGE)
    ex.process_candle(bar(0, 100.0, 100.0, 100.0, 100.0))
    # 100 @ 100 at 10x: margin 1000 + taker fee 100 * 100 * 0.0005 = 5 -> exactly the 1005 available
    over = await ex.place_order(req("over", Side.BUY, "100.01", OrderType.LIMIT, bot=2, price="100.0"))
    # 100.01 * 100 / 10 + 100.01 * 100 * 0.0005 = 1000.1 + 5.0005
    assert over.reason == "insufficient margin: need 1005.1005 USDT, available 1005 USDT"
    await accept(ex, req("limit", Side.BUY, "100", OrderType.LIMIT, bot=2, price="100.0"))
    # the resting order's margin (1000) is no longer available
    more = await ex.place_order(req("more", Side.SELL, "1", OrderType.LIMIT, bot=2, price="101.0"))
    assert more.reason == "insufficient margin: need 10.1505 USDT, available 5 USDT"  # 10.1 + 0.0505
    # reduce-only orders need no margin
    ex.process_candle(bar(1, 99.0, 99.0, 99.0, 99.0))  # fills at the open 99.0, maker fee 100 * 99 * 0.0002 = 1.98
    assert ex.wallet(2) == D("1003.02")
    await accept(ex, req("tp", Side.SELL, "100", OrderType.LIMIT, bot=2, price="110.0", reduce_only=True))
    # the position's margin: 100 * 99 / 10 = 990 -> 13.02 left
    too_much = await ex.place_order(req("x", Side.BUY, "1.3", OrderType.LIMIT, bot=2, price="100.0"))
    assert too_much.reason == "insufficient margin: need 13.065 USDT, available 13.02 USDT"  # 13 + 0.065
    await accept(ex, req("y", Side.BUY, "1.29", OrderType.LIMIT, bot=2, price="100.0"))  # 12.9 + 0.0645


async def test_open_account_again_changes_only_the_leverage(setup):
    ex, _ = setup
    await ex.open_account(1, D(5), D(20))
    assert ex.wallet(1) == BALANCE
    # at 20x, 100 @ 100 needs 500 + 5
    await accept(ex, req("big", Side.BUY, "100", OrderType.LIMIT, price="100.0"))


async def test_duplicate_client_order_id_rejected(setup):
    ex, _ = setup
    await accept(ex, req("a", Side.BUY, "1", OrderType.LIMIT, price="90.0"))
    again = await ex.place_order(req("a", Side.BUY, "1", OrderType.LIMIT, price="90.0"))
    assert (again.status, again.reason) == (OrderStatus.REJECTED, "duplicate client order id")
    assert (await ex.get_order("a")).status is OrderStatus.NEW
    assert len(await ex.open_orders()) == 1
    await ex.cancel_order(1, "a")
    assert (await ex.place_order(req("a", Side.BUY, "1"))).reason == "duplicate client order id"
    rejected = await ex.place_order(req("bad", Side.BUY, "0.01"))
    assert rejected.status is OrderStatus.REJECTED
    assert (await ex.place_order(req("bad", Side.BUY, "1"))).reason == "duplicate client order id"
    assert await ex.get_order("bad") == rejected


async def test_two_bots_on_one_symbol_keep_separate_positions(setup):
    ex, _ = setup
    await ex.open_account(2, D(500), D(5))
    await accept(ex, req("b", Side.BUY, "1"))
    await accept(ex, req("s", Side.SELL, "2", bot=2))
    ex.process_candle(bar(1, 100.0, 100.0, 100.0, 100.0))
    assert ex.position(1, SYM).qty == D(1)
    assert ex.position(2, SYM).qty == D(-2)
    assert sorted((p.bot_id, p.qty) for p in await ex.positions()) == [(1, D(1)), (2, D(-2))]
    assert ex.wallet(1) == D("999.94995")  # 100.1 * 0.0005
    assert ex.wallet(2) == D("499.9001")  # 2 * 99.9 * 0.0005
    # bot 2's reduce-only buy reduces bot 2's short, not bot 1's long
    await accept(ex, req("c", Side.BUY, "2", bot=2, reduce_only=True))
    ex.process_candle(bar(2, 100.0, 100.0, 100.0, 100.0))
    assert ex.position(1, SYM).qty == D(1)
    assert not ex.position(2, SYM).is_open


# --- cancel ------------------------------------------------------------------


async def test_cancel_order(setup):
    ex, rec = setup
    await accept(ex, req("a", Side.BUY, "1", OrderType.LIMIT, price="99.0"))
    assert (await ex.cancel_order(2, "a")).reason == "unknown order"  # another bot's order
    cancelled = await ex.cancel_order(1, "a")
    assert cancelled == OrderUpdate("a", 1, OrderStatus.CANCELLED, ts(1))
    assert rec.updates == [cancelled]
    assert await ex.get_order("a") == cancelled
    again = await ex.cancel_order(1, "a")
    assert (again.status, again.reason) == (OrderStatus.REJECTED, "order already closed")
    assert (await ex.cancel_order(1, "nope")).reason == "unknown order"
    assert rec.updates == [cancelled]
    ex.process_candle(bar(1, 98.0, 98.0, 98.0, 98.0))
    assert rec.fills == []


async def test_cancel_all_cancels_one_bot_on_one_symbol(setup):
    ex, rec = setup
    await ex.open_account(2, BALANCE, LEVERAGE)
    ex.process_candle(bar(0, 50.0, 50.0, 50.0, 50.0, symbol=OTHER))
    await accept(ex, req("a", Side.BUY, "1", OrderType.LIMIT, price="99.0"))
    await accept(ex, req("b", Side.SELL, "1", OrderType.STOP, trigger="95.0"))
    await accept(ex, req("c", Side.BUY, "1", OrderType.LIMIT, symbol=OTHER, price="49.00"))
    await accept(ex, req("d", Side.BUY, "1", OrderType.LIMIT, bot=2, price="99.0"))
    updates = await ex.cancel_all(1, SYM)
    assert [(u.client_order_id, u.status) for u in updates] == [("a", OrderStatus.CANCELLED), ("b", OrderStatus.CANCELLED)]
    assert rec.updates == updates
    assert sorted(o.client_order_id for o in await ex.open_orders()) == ["c", "d"]
    assert all(o.status is OrderStatus.NEW for o in await ex.open_orders())
    assert await ex.cancel_all(7, SYM) == []


# --- set_trading_stop --------------------------------------------------------


async def test_set_trading_stop_validation_and_trigger(setup):
    ex, rec = setup
    with pytest.raises(ValueError, match="no open position"):
        await ex.set_trading_stop(1, SYM, D("95.0"), None)
    await go_long(ex)  # mark 100.0
    with pytest.raises(ValueError, match=re.escape("stop 100.0 must be below the mark price 100.0 for a long position")):
        await ex.set_trading_stop(1, SYM, D("100.0"), None)
    with pytest.raises(ValueError, match=re.escape("target 99.0 must be above the mark price 100.0 for a long position")):
        await ex.set_trading_stop(1, SYM, None, D("99.0"))
    await ex.set_trading_stop(1, SYM, D("98.0"), D("104.0"))
    pos = ex.position(1, SYM)
    assert (pos.stop_price, pos.target_price) == (D("98.0"), D("104.0"))
    await ex.set_trading_stop(1, SYM, D("98.0"), None)  # clear the target
    ex.process_candle(bar(2, 100.0, 105.0, 99.0, 100.0))
    assert ex.position(1, SYM).is_open
    ex.process_candle(bar(3, 100.0, 100.0, 97.5, 98.0))
    # 98.0 * 0.999 = 97.902 -> down: 97.9
    assert (rec.fills[-1].price, rec.fills[-1].purpose) == (D("97.9"), OrderPurpose.STOP)


async def test_set_trading_stop_for_a_short(setup):
    ex, _ = setup
    await accept(ex, req("e", Side.SELL, "1"))
    ex.process_candle(bar(1, 100.0, 100.0, 100.0, 100.0))
    with pytest.raises(ValueError, match=re.escape("stop 99.0 must be above the mark price 100.0 for a short position")):
        await ex.set_trading_stop(1, SYM, D("99.0"), None)
    with pytest.raises(ValueError, match=re.escape("target 101.0 must be below the mark price 100.0 for a short position")):
        await ex.set_trading_stop(1, SYM, None, D("101.0"))
    await ex.set_trading_stop(1, SYM, D("101.0"), D("99.0"))
    assert ex.position(1, SYM).stop_price == D("101.0")


async def test_instrument_lookup(setup):
    ex, _ = setup
    assert ex.instrument(SYM) == INSTRUMENTS[SYM]
    with pytest.raises(KeyError, match="unknown symbol 'NOPEUSDT'"):
        ex.instrument("NOPEUSDT")
    assert (ex.name, ex.supports_trading_stop) == ("paper", True)


# --- restore -----------------------------------------------------------------


async def test_restore_continues_like_an_exchange_that_never_restarted():
    live, live_rec = new_exchange()
    await live.open_account(1, BALANCE, LEVERAGE)
    await live.open_account(2, D(2000), D(5))
    live.process_candle(bar(0, 100.0, 100.0, 100.0, 100.0))
    await accept(live, req("e1", Side.BUY, "2", stop_loss="95.0", take_profit="108.0"))
    await accept(live, req("e2", Side.SELL, "3", bot=2))
    live.process_candle(bar(1, 100.0, 101.0, 99.0, 100.5))
    await accept(live, req("add", Side.BUY, "1", OrderType.LIMIT, price="98.0"))
    await accept(live, req("x2", Side.BUY, "3", OrderType.LIMIT, bot=2, price="97.0", reduce_only=True))
    await accept(live, req("st2", Side.SELL, "1", OrderType.STOP, bot=2, trigger="99.0"))
    await accept(live, req("mkt", Side.BUY, "1", bot=2, reduce_only=True))  # a market order still pending

    restored, restored_rec = new_exchange()
    restored.restore(
        {1: (live.wallet(1), LEVERAGE), 2: (live.wallet(2), D(5))},
        await live.positions(),
        await live.open_orders(),
        {SYM: live.mark(SYM)},
    )
    assert await restored.positions() == await live.positions()
    assert await restored.open_orders() == await live.open_orders()
    assert (restored.wallet(1), restored.wallet(2)) == (live.wallet(1), live.wallet(2))
    assert (await restored.place_order(req("add", Side.BUY, "1"))).reason == "duplicate client order id"

    live_rec.fills.clear()
    live_rec.updates.clear()
    for candle in [
        bar(2, 100.0, 100.5, 97.5, 98.5),
        bar(3, 98.5, 99.0, 94.0, 96.0),
        bar(4, 96.0, 98.0, 95.5, 97.0),
    ]:
        live.process_candle(candle)
        restored.process_candle(candle)
    # mkt, then st2 and add in bar 2; bot 1's stop and x2 in bar 3
    assert [f.client_order_id for f in live_rec.fills] == ["mkt", "st2", "add", f"tt1-{SYM}-sl-{ts(3)}", "x2"]
    assert restored_rec.fills == live_rec.fills
    assert restored_rec.updates == live_rec.updates
    assert await restored.positions() == await live.positions()
    assert (restored.wallet(1), restored.wallet(2)) == (live.wallet(1), live.wallet(2))


# --- property ----------------------------------------------------------------

orders_st = st.lists(st.tuples(st.booleans(), st.integers(10, 500)), max_size=3)  # (buy?, qty in 0.01)
candles_st = st.tuples(st.integers(1000, 2000), st.integers(0, 20), st.integers(0, 20), st.integers(0, 40))  # tenths


@settings(max_examples=150, deadline=None)
@given(st.lists(st.tuples(orders_st, candles_st), min_size=1, max_size=25))
def test_wallet_and_position_follow_the_fills(steps):
    async def scenario() -> None:
        ex, rec = new_exchange()
        initial = D(1_000_000)
        await ex.open_account(1, initial, LEVERAGE)
        ex.process_candle(bar(0, 150.0, 150.0, 150.0, 150.0))
        n = 0
        for i, (orders, (o, up, down, c)) in enumerate(steps, start=1):
            for buy, qty in orders:
                n += 1
                await accept(ex, req(f"o{n}", Side.BUY if buy else Side.SELL, str(D(qty) / 100)))
            low, high = o - down, o + up
            close = low + c * (high - low) // 40
            ex.process_candle(bar(i, o / 10, high / 10, low / 10, close / 10))

        # an independent ledger rebuilt from the emitted fills
        qty, entry, realized, fees = D(0), D(0), D(0), D(0)
        for f in rec.fills:
            assert f.fee == to_usdt(f.qty * f.price * TAKER)
            fees += f.fee
            signed = f.qty * f.side.sign
            if qty and (qty > 0) != (signed > 0):
                closed = min(f.qty, abs(qty))
                realized += to_usdt((f.price - entry) * closed * (1 if qty > 0 else -1))
                opened = f.qty - closed
                qty += closed * f.side.sign
                if not qty:
                    entry = D(0)
            else:
                opened = f.qty
            if opened:
                entry = (abs(qty) * entry + opened * f.price) / (abs(qty) + opened)
                qty += opened * f.side.sign
        assert ex.wallet(1) == initial + realized - fees
        assert ex.position(1, SYM).qty == sum((f.qty * f.side.sign for f in rec.fills), D(0)) == qty
        assert len(rec.fills) == n

    asyncio.run(scenario())
