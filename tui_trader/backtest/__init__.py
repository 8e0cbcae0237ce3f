"""Backtesting: replaying strategies on stored candles and scoring the result."""
