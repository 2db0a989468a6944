"""The replayed market: one seeded synthetic trade tape per symbol and the replay clock.

Market time is a clock in ns: `ReplayClock` runs at `speed` × wall time from `start`, or stays put
until the caller moves it (`manual=True`, tests). A trade "exists" once its ts_event ≤ market time;
nothing after that is ever served or matched against (causality, DESIGN §2.2).
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass

import numpy as np

from core.time import NS_PER_MS
from emulator.config import EmulatorConfig, SymbolConfig
from market.synth import SynthConfig, SizeConfig, generate_trades


class ReplayClock:
    """Market time in ns. Accelerated: start + speed·(monotonic − t0). Manual: moved by `set`."""

    def __init__(self, start_ns: int, speed: float = 1.0, manual: bool = False):
        self._start = int(start_ns)
        self.speed = float(speed)
        self.manual = manual
        self._now = int(start_ns)
        self._t0 = time.monotonic_ns()
        self._lock = threading.Lock()

    def now_ns(self) -> int:
        if self.manual:
            with self._lock:
                return self._now
        return self._start + int(self.speed * (time.monotonic_ns() - self._t0))

    def set(self, ts_ns: int) -> None:
        """Manual mode: move market time to `ts_ns` (never backwards)."""
        if not self.manual:
            raise RuntimeError("ReplayClock.set: only a manual clock can be moved by hand")
        with self._lock:
            if ts_ns < self._now:
                raise ValueError(f"market time cannot go back: {ts_ns} < {self._now}")
            self._now = int(ts_ns)


@dataclass
class Tape:
    """One symbol's trades as arrays, and `cursor`: how many of them the matcher has consumed."""

    symbol: str
    agg_id: np.ndarray
    ts: np.ndarray  # ns
    price: np.ndarray
    qty: np.ndarray
    buyer_maker: np.ndarray
    first_id: np.ndarray
    last_id: np.ndarray
    cursor: int = 0

    def __len__(self) -> int:
        return int(self.ts.shape[0])

    def n_visible(self, now_ns: int) -> int:
        return int(np.searchsorted(self.ts, now_ns, side="right"))

    @property
    def last_price(self) -> float | None:
        return float(self.price[self.cursor - 1]) if self.cursor else None

    @property
    def last_ts_ms(self) -> int | None:
        return int(self.ts[self.cursor - 1] // NS_PER_MS) if self.cursor else None


def synth_config(cfg: EmulatorConfig, sym: SymbolConfig) -> SynthConfig:
    inst = sym.instrument
    extent = {"n_trades": cfg.n_trades} if cfg.n_trades is not None else {"duration": cfg.duration}
    return SynthConfig(seed=cfg.symbol_seed(inst.symbol), symbol=inst.symbol, start=cfg.start,
                       initial_price=sym.initial_price, tick_size=inst.tick_size, lot_size=inst.step_size,
                       base_rate=sym.base_rate, sizes=SizeConfig(median=sym.median_trade_size), **extent)


def build_tape(cfg: EmulatorConfig, sym: SymbolConfig) -> Tape:
    """The symbol's seeded synthetic trades (market.synth.generate_trades), timestamps cut to whole ms
    as Binance reports them (matching order is unchanged: ts stays non-decreasing)."""
    df = generate_trades(synth_config(cfg, sym))
    ts = df["ts_event"].to_numpy()
    ts = (ts // NS_PER_MS) * NS_PER_MS
    return Tape(symbol=sym.instrument.symbol, agg_id=df["id"].to_numpy().copy(), ts=np.ascontiguousarray(ts),
                price=df["price"].to_numpy().copy(), qty=df["quantity"].to_numpy().copy(),
                buyer_maker=df["is_buyer_maker"].to_numpy().copy(), first_id=df["first_trade_id"].to_numpy().copy(),
                last_id=df["last_trade_id"].to_numpy().copy())
