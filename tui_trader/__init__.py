"""tui-trader: a portfolio of trading bots on Bybit USDT perpetuals, run from one process."""

__version__ = "0.1.0"
