"""The replayed market: one trade tape per symbol and the replay clock.

The tape comes from `EmulatorConfig.source`: the seeded synthetic generator, a catalog dataset
(`market.catalog.Catalog`, kind agg_trades or trades) or a recorded websocket capture
(`market.ingest.ws_capture.read_ws_capture`, its trade or aggTrade messages). Raw trades become one
aggregate each (aggregate id = first = last trade id = the trade id).

Market time is a clock in ns: `ReplayClock` runs at `speed` × wall time from `start`, or stays put
until the caller moves it (`manual=True`, tests). A trade "exists" once its ts_event ≤ market time;
nothing after that is ever served or matched against (causality, DESIGN §2.2).
"""

from __future__ import annotations

import functools
import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import polars as pl

from core.errors import ConfigError
from core.time import NS_PER_MS
from emulator.config import CaptureSource, EmulatorConfig, StoreSource, SymbolConfig
from market.catalog import Catalog, DatasetKey
from market.ingest.ws_capture import read_ws_capture
from market.synth import SizeConfig, SynthConfig, generate_trades


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
    """The symbol's trades from `cfg.source`, timestamps cut to whole ms as Binance reports them
    (matching order is unchanged: ts stays non-decreasing). Synthetic: `market.synth.generate_trades`;
    store / capture: the recorded rows in time order (at most the first `n_trades`)."""
    src = cfg.source
    if isinstance(src, StoreSource):
        df = _store_frame(cfg, src, sym.instrument.symbol)
    elif isinstance(src, CaptureSource):
        df = _capture_frame(src, sym.instrument.symbol)
    else:
        return _tape(sym.instrument.symbol, generate_trades(synth_config(cfg, sym)))
    df = _as_agg_trades(df, src.kind).sort(["ts_event", "id"], maintain_order=True)
    if cfg.n_trades is not None:
        df = df.head(cfg.n_trades)
    return _tape(sym.instrument.symbol, df)


def _as_agg_trades(df: pl.DataFrame, kind: str) -> pl.DataFrame:
    if kind == "agg_trades":
        return df
    return df.with_columns(pl.col("id").alias("first_trade_id"), pl.col("id").alias("last_trade_id"))


def _store_frame(cfg: EmulatorConfig, src: StoreSource, symbol: str) -> pl.DataFrame:
    market = src.market or cfg.market.value
    where = (f"store source: dataset exchange={src.exchange} market={market} symbol={symbol} kind={src.kind} "
             f"under {src.root}")
    root = Path(src.root)
    if not root.is_dir():
        raise ConfigError(f"store source: root {src.root!r} is not a directory")
    key = DatasetKey(exchange=src.exchange, market=market, symbol=symbol, kind=src.kind)
    if not (root / key.relpath).is_dir():
        raise ConfigError(f"{where}: no such dataset")
    df = Catalog(root).read(exchange=src.exchange, market=market, symbol=symbol, kind=src.kind,
                            start=src.start, end=src.end)
    if df.height == 0:
        raise ConfigError(f"{where}: no rows in [start={src.start}, end={src.end})")
    return df


@functools.lru_cache(maxsize=2)
def _capture_trades(path: str, kind: str, mtime_ns: int, size: int) -> dict[str, pl.DataFrame]:
    """One parse per capture file (and version) for all the symbols of a server."""
    cap = read_ws_capture(path)
    return dict(cap.agg_trades if kind == "agg_trades" else cap.trades)


def _capture_frame(src: CaptureSource, symbol: str) -> pl.DataFrame:
    st = os.stat(src.path)
    frames = _capture_trades(str(Path(src.path).resolve()), src.kind, st.st_mtime_ns, st.st_size)
    stream = "aggTrade" if src.kind == "agg_trades" else "trade"
    df = frames.get(symbol)
    if df is None or df.height == 0:
        raise ConfigError(f"capture source {src.path}: no {stream} messages for symbol {symbol} "
                          f"(symbols with {stream} messages: {sorted(k for k, v in frames.items() if v.height)})")
    return df


def _tape(symbol: str, df: pl.DataFrame) -> Tape:
    ts = df["ts_event"].to_numpy()
    ts = (ts // NS_PER_MS) * NS_PER_MS
    return Tape(symbol=symbol, agg_id=df["id"].to_numpy().copy(), ts=np.ascontiguousarray(ts),
                price=df["price"].to_numpy().copy(), qty=df["quantity"].to_numpy().copy(),
                buyer_maker=df["is_buyer_maker"].to_numpy().copy(), first_id=df["first_trade_id"].to_numpy().copy(),
                last_id=df["last_trade_id"].to_numpy().copy())
