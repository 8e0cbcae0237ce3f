from __future__ import annotations

from decimal import Decimal as D

from hypothesis import given
from hypothesis import strategies as st

from tui_trader.engine.ledger import BotLedger
from tui_trader.model import Fill, Liquidity, OrderPurpose, Side


def fill(side: Side, qty: str, price: str, fee: str, ts: int = 0, n: int = 0) -> Fill:
    return Fill(f"f{n}-{ts}", f"o{n}", 1, "BTCUSDT", side, D(qty), D(price), D(fee), Liquidity.TAKER, ts, OrderPurpose.ENTRY)


def test_long_round_trip_books_pnl_fees_and_trade() -> None:
    lg = BotLedger(1, "BTCUSDT", D(1000))
    assert lg.apply_fill(fill(Side.BUY, "0.010", "60000", "0.33"), "entry") == []
    assert lg.position.qty == D("0.010") and lg.position.entry_price == D(60000)
    (trade,) = lg.apply_fill(fill(Side.SELL, "0.010", "61000", "0.3355", ts=5), "target")
    assert trade.pnl == D("10.00000000")  # (61000-60000)*0.01
    assert trade.fees == D("0.6655")
    assert trade.net_pnl == D("9.3345")
    assert trade.exit_reason == "target" and trade.side is Side.BUY and trade.exit_ts == 5
    assert lg.realized_pnl == D(10) and lg.fees == D("0.6655")
    assert lg.wallet == D("1009.3345")
    assert not lg.position.is_open
    assert (lg.trades, lg.wins) == (1, 1)


def test_short_partial_close_keeps_average_and_fee_share() -> None:
    lg = BotLedger(1, "BTCUSDT", D(1000))
    lg.apply_fill(fill(Side.SELL, "2", "100", "0.2"), "entry")
    (trade,) = lg.apply_fill(fill(Side.BUY, "0.5", "90", "0.05"), "exit")
    assert trade.pnl == D("5.00000000")  # (90-100)*0.5*-1
    assert trade.fees == D("0.05") + D("0.05")  # quarter of the entry fee + the exit fee
    assert lg.position.qty == D("-1.5") and lg.position.entry_price == D(100)
    assert lg.position.entry_fees == D("0.15")


def test_adding_averages_entry_price() -> None:
    lg = BotLedger(1, "BTCUSDT", D(1000))
    lg.apply_fill(fill(Side.BUY, "1", "100", "0"), "entry")
    lg.apply_fill(fill(Side.BUY, "3", "104", "0"), "entry")
    assert lg.position.qty == D(4) and lg.position.entry_price == D(103)


def test_flip_closes_then_opens_the_rest() -> None:
    lg = BotLedger(1, "BTCUSDT", D(1000))
    lg.apply_fill(fill(Side.BUY, "1", "100", "0.1"), "entry")
    (trade,) = lg.apply_fill(fill(Side.SELL, "3", "110", "0.3", ts=9), "exit")
    assert trade.qty == D(1) and trade.pnl == D(10)
    assert lg.position.qty == D(-2) and lg.position.entry_price == D(110) and lg.position.opened_ts == 9
    assert lg.position.entry_fees == D("0.2")
    assert lg.fees == D("0.4")


def test_equity_marks_open_position() -> None:
    lg = BotLedger(1, "BTCUSDT", D(1000))
    lg.apply_fill(fill(Side.SELL, "1", "100", "0"), "entry")
    assert lg.equity(D(95)) == D(1005)
    assert lg.equity(None) == D(1000)


@given(st.lists(st.tuples(st.booleans(), st.integers(1, 50), st.integers(90, 110)), min_size=1, max_size=40))
def test_ledger_never_drifts(steps: list[tuple[bool, int, int]]) -> None:
    """Wallet = capital + sum of trade P&L - sum of fees; position = signed sum of fills."""
    lg = BotLedger(1, "BTCUSDT", D(1000))
    trades, fees, signed = [], D(0), D(0)
    for n, (buy, qty, price) in enumerate(steps):
        f = fill(Side.BUY if buy else Side.SELL, str(D(qty) / 10), str(price), str(D(qty) / 1000), ts=n, n=n)
        trades += lg.apply_fill(f, "x")
        fees += f.fee
        signed += f.qty * f.side.sign
    assert lg.position.qty == signed
    assert lg.fees == fees
    assert lg.realized_pnl == sum((t.pnl for t in trades), D(0))
    assert lg.wallet == D(1000) + lg.realized_pnl - fees
