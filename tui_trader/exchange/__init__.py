"""Exchanges behind one protocol: the paper simulator now, Bybit later."""
