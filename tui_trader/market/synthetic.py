"""The offline demo market: seeded, regime-switching 1m candles for several symbols.

Candle k of a symbol (k = minutes since EPOCH_MS) is a pure function of
(seed, symbol, k), so a demo resumes where it stopped whatever `start_ts` it is
restarted with. Time is cut into blocks of one day. Each block draws, from its
own rngs, a regime schedule and a natural 1m log-return path shaped by those
regimes. The block end levels are a finite moving average of the blocks'
natural net moves (an AR(1) truncated after LEVEL_MEMORY blocks), so they pull
softly back towards the symbol's start price; the small difference between a
block's natural net move and its end level is spread evenly over its non-range minutes.
"""

from __future__ import annotations

import asyncio
import math
import time
import zlib
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from decimal import Decimal
from functools import lru_cache
from itertools import repeat

import numpy as np

from tui_trader.config import SyntheticSymbol
from tui_trader.model import MINUTE_MS, Candle

EPOCH_MS = 1_577_836_800_000  # 2020-01-01T00:00Z, minute 0
BLOCK = 1440  # minutes per block
SLOT = 180  # one regime switch per slot, at a seeded offset inside it
SLOTS = BLOCK // SLOT
MIN_OFFSET = 30  # switch offsets lie in [30, 150]: switches come 1-5 h apart
CHUNK = 1440  # candles generated at a time by stream()

REGIMES = ("trend_up", "trend_down", "range", "volatile")
RANGE, VOLATILE = REGIMES.index("range"), REGIMES.index("volatile")
REGIME_WEIGHTS = (0.28, 0.28, 0.28, 0.16)

# Per regime: volatility multiplier range, drift range (in units of the base volatility) and drift sign
# (0 for the volatile regime, whose breakout direction is drawn per segment).
MULT_LO = np.array([0.8, 0.9, 0.5, 2.5])
MULT_HI = np.array([1.2, 1.3, 0.7, 4.0])
DRIFT_LO = np.array([0.10, 0.10, 0.0, 0.0])
DRIFT_HI = np.array([0.20, 0.20, 0.0, 0.15])
DRIFT_SIGN = np.array([1.0, -1.0, 0.0, 0.0])

RANGE_AR = 0.98  # per-minute persistence of the deviation from a range segment's anchor
TAIL_DF = 4  # Student-t degrees of freedom of volatile-regime shocks
WICK = 0.6  # wick length in units of the bar's volatility (half-normal)
VOLUME_NOTIONAL = 200_000.0  # typical USDT traded per minute at a calm, flat bar

LEVEL_AR = 0.7  # daily persistence of the block levels around the start price
LEVEL_MEMORY = 32  # LEVEL_AR**32 ~ 1e-5
LEVEL_WEIGHTS = tuple(LEVEL_AR**j for j in range(LEVEL_MEMORY))

_MINUTE = np.arange(BLOCK)
_SLOT_OF = _MINUTE // SLOT
_WITHIN = _MINUTE % SLOT
_SLOT_START = np.arange(SLOTS) * SLOT


def _tick_rounder(tick: float) -> Callable[[np.ndarray], np.ndarray]:
    """Round to the tick grid, giving the float nearest to each decimal grid price (at least one tick)."""
    if not (math.isfinite(tick) and tick > 0):
        raise ValueError(f"tick size must be a positive number, got {tick}")
    # n * num / den with integers num, den rounds once, so 3 ticks of 0.1 give 0.3, not 0.30000000000000004.
    num, den = Decimal(repr(tick)).as_integer_ratio()

    def rounder(prices: np.ndarray) -> np.ndarray:
        return np.maximum(np.rint(prices / tick), 1.0) * num / den

    return rounder


class _SymbolModel:
    """The price process of one symbol; every method is a pure function of its arguments."""

    def __init__(self, spec: SyntheticSymbol, seed: int, tick: float | None) -> None:
        self.sigma = spec.volatility
        self.log0 = math.log(spec.start_price)
        self.base_volume = VOLUME_NOTIONAL / spec.start_price
        self.key = (seed, zlib.crc32(spec.symbol.encode()))
        self.round = _tick_rounder(tick) if tick is not None else None
        self.schedule = lru_cache(maxsize=64)(self._schedule)
        self.natural = lru_cache(maxsize=4)(self._natural)
        self.net = lru_cache(maxsize=4096)(self._net)
        self.level = lru_cache(maxsize=256)(self._level)
        self.block = lru_cache(maxsize=4)(self._block)

    def _schedule(self, block: int) -> tuple[np.ndarray, np.ndarray]:
        """Switch offsets inside each slot and the regime that starts at each switch."""
        rng = np.random.default_rng([*self.key, block, 0])
        offsets = rng.integers(MIN_OFFSET, SLOT - MIN_OFFSET + 1, SLOTS)
        regimes = rng.choice(len(REGIMES), SLOTS, p=REGIME_WEIGHTS)
        return offsets, regimes

    def carried_regime(self, block: int) -> int:
        """The regime running at the start of a block (the last one of the block before)."""
        return int(self.schedule(block - 1)[1][-1]) if block > 0 else int(self.schedule(block)[1][0])

    def regime(self, minute: int) -> int:
        block, m = divmod(minute, BLOCK)
        offsets, regimes = self.schedule(block)
        slot, within = divmod(m, SLOT)
        if within >= offsets[slot]:
            return int(regimes[slot])
        return int(regimes[slot - 1]) if slot > 0 else self.carried_regime(block)

    def _natural(self, block: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """1m log returns before the level correction, the correction's cumulative share per
        minute (none in range segments, which stay flat), bar volatility, wick draws and volumes."""
        offsets, regimes = self.schedule(block)
        # Segment 0 carries the previous block's last regime up to the first switch.
        seg_regime = np.concatenate(([self.carried_regime(block)], regimes))
        seg_start = np.concatenate(([0], _SLOT_START + offsets))
        seg = _SLOT_OF + (_WITHIN >= offsets[_SLOT_OF])
        code = seg_regime[seg]

        rng = np.random.default_rng([*self.key, block, 1])
        u = rng.random((2, SLOTS + 1))
        signs = rng.choice(np.array([-1.0, 1.0]), SLOTS + 1)
        z = rng.standard_normal(BLOCK)
        tails = np.clip(rng.standard_t(TAIL_DF, BLOCK), -10.0, 10.0) / math.sqrt(TAIL_DF / (TAIL_DF - 2))
        wick = np.abs(rng.standard_normal((2, BLOCK)))
        volume_noise = rng.standard_normal(BLOCK)

        mult = MULT_LO[seg_regime] + (MULT_HI - MULT_LO)[seg_regime] * u[0]
        sign = np.where(seg_regime == VOLATILE, signs, DRIFT_SIGN[seg_regime])
        drift = (DRIFT_LO[seg_regime] + (DRIFT_HI - DRIFT_LO)[seg_regime] * u[1]) * sign * self.sigma
        sig = self.sigma * mult[seg]
        shocks = sig * np.where(code == VOLATILE, tails, z)
        returns = drift[seg] + shocks

        # Range segments: an AR(1) deviation e from the segment's opening level, vectorised as
        # e_t = a^t * sum_{s<=t} w_s a^-s per segment; its differences have standard deviation sig.
        is_range = code == RANGE
        local = _MINUTE - seg_start[seg]
        power = RANGE_AR**local
        q = np.where(is_range, shocks * math.sqrt((1 + RANGE_AR) / 2), 0.0) / power
        csum = np.cumsum(q)
        dev = power * (csum - (csum - q)[seg_start][seg])
        prev_dev = np.concatenate(([0.0], dev[:-1]))
        prev_dev[local == 0] = 0.0
        returns = np.where(is_range, dev - prev_dev, returns)

        weight = np.cumsum(~is_range) if not is_range.all() else _MINUTE + 1
        spread = weight / weight[-1]
        volume = self.base_volume * np.sqrt(mult[seg]) * (0.3 + np.abs(returns) / self.sigma) * np.exp(0.4 * volume_noise)
        return returns, spread, sig, wick, volume

    def _net(self, block: int) -> float:
        return float(np.cumsum(self.natural(block)[0])[-1])

    def _level(self, block: int) -> float:
        """Log price at the end of a block."""
        return self.log0 + sum(w * self.net(block - j) for j, w in enumerate(LEVEL_WEIGHTS) if block - j >= 0)

    def _block(self, block: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Open, high, low, close and volume of the block's candles."""
        returns, spread, sig, wick, volume = self.natural(block)
        start, end = self.level(block - 1), self.level(block)
        path = np.cumsum(returns)
        close = start + path + (end - start - path[-1]) * spread
        close[-1] = end
        open_ = np.concatenate(([start], close[:-1]))
        high = np.maximum(open_, close) + WICK * sig * wick[0]
        low = np.minimum(open_, close) - WICK * sig * wick[1]
        o, h, lo, c = np.exp(np.stack((open_, high, low, close)))
        if self.round is not None:
            o, h, lo, c = self.round(np.stack((o, h, lo, c)))
            h = np.maximum(h, np.maximum(o, c))
            lo = np.minimum(lo, np.minimum(o, c))
        return o, h, lo, c, volume


class SyntheticFeed:
    """CandleFeed of the synthetic market; its first live candle opens at `start_ts`."""

    base_timeframe = "1m"

    def __init__(
        self,
        symbols: Sequence[SyntheticSymbol],
        seed: int,
        candle_seconds: float,
        start_ts: int,
        ticks: Mapping[str, float] | None = None,
    ) -> None:
        if not symbols:
            raise ValueError("a synthetic feed needs at least one symbol")
        if candle_seconds <= 0:
            raise ValueError(f"candle_seconds must be positive, got {candle_seconds}")
        self._check_ts(start_ts)
        ticks = ticks or {}
        seed %= 2**64  # SeedSequence takes non-negative integers only
        self.symbols: Sequence[str] = [s.symbol for s in symbols]
        self.candle_seconds = candle_seconds
        self.start_ts = start_ts
        self._models = {s.symbol: _SymbolModel(s, seed, ticks.get(s.symbol)) for s in symbols}

    @staticmethod
    def _check_ts(ts: int) -> None:
        if ts % MINUTE_MS or ts < EPOCH_MS:
            raise ValueError(f"ts {ts} must be a whole minute at or after 2020-01-01T00:00Z")

    def _model(self, symbol: str) -> _SymbolModel:
        try:
            return self._models[symbol]
        except KeyError:
            raise ValueError(f"{symbol} is not a symbol of this synthetic market") from None

    def regime_at(self, symbol: str, ts: int) -> str:
        """The regime that generated the candle containing ts."""
        if ts < EPOCH_MS:
            raise ValueError(f"ts {ts} is before the synthetic market's start, 2020-01-01T00:00Z")
        return REGIMES[self._model(symbol).regime((ts - EPOCH_MS) // MINUTE_MS)]

    def candles(self, symbol: str, from_ts: int, count: int) -> list[Candle]:
        """`count` consecutive 1m candles, the first opening at from_ts."""
        model = self._model(symbol)
        self._check_ts(from_ts)
        if count <= 0:
            return []
        first = (from_ts - EPOCH_MS) // MINUTE_MS
        b0, b1 = first // BLOCK, (first + count - 1) // BLOCK
        blocks = [model.block(b) for b in range(b0, b1 + 1)]
        skip = first - b0 * BLOCK
        o, h, lo, c, v = (np.concatenate([blk[i] for blk in blocks])[skip : skip + count].tolist() for i in range(5))
        ts = range(from_ts, from_ts + count * MINUTE_MS, MINUTE_MS)
        return list(map(Candle, repeat(symbol), repeat("1m"), ts, o, h, lo, c, v))

    def history(self, symbol: str, bars: int) -> list[Candle]:
        bars = min(bars, (self.start_ts - EPOCH_MS) // MINUTE_MS)
        return self.candles(symbol, self.start_ts - bars * MINUTE_MS, bars)

    async def stream(self) -> AsyncIterator[list[Candle]]:
        """The next candle of every symbol each `candle_seconds`, paced on a monotonic clock, forever."""
        started = time.monotonic()
        ts = self.start_ts
        n = 0
        while True:
            chunk = [self.candles(symbol, ts, CHUNK) for symbol in self.symbols]
            for i in range(CHUNK):
                n += 1
                delay = started + n * self.candle_seconds - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)
                yield [candles[i] for candles in chunk]
            ts += CHUNK * MINUTE_MS
