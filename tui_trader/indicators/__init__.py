"""Indicators behind one small API: TA-Lib batch functions for history and streaming handles
for O(1) updates on each closed candle, equal to the batch values bar for bar (`streaming`),
and what TA-Lib lacks, written here with the same interface and tested against hand-computed
values (`custom`). Pure: no I/O, no clock."""

from __future__ import annotations

from tui_trader.indicators.custom import Chop, Cvd, Vwap, chop, cvd, hma, vwap
from tui_trader.indicators.streaming import (
    CANDLE_FIELDS,
    DAY_MS,
    NAN,
    Indicator,
    Stream,
    Value,
    batch,
    candle_arrays,
    is_nan,
    shared,
    update_all,
)

__all__ = ["CANDLE_FIELDS", "DAY_MS", "NAN", "Chop", "Cvd", "Indicator", "Stream", "Value", "Vwap", "batch",
           "candle_arrays", "chop", "cvd", "hma", "is_nan", "shared", "update_all", "vwap"]
