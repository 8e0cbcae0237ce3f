"""Candle feeds (synthetic, replay) and timeframe aggregation."""
