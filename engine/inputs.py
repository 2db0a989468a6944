"""Per-bar arrays the decision kernel reads, built once from a bars+features frame and a signal frame.

Columns a rule needs but the data lacks are NaN, which switches that rule off (documented per
column below) — e.g. bars built from klines carry no order flow, so the order-flow stop (L2) and
the liquidity pause cannot act on them. Missing *required* columns raise SchemaError.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import numpy as np
import polars as pl

from core.errors import DataError, SchemaError

# column → what it drives; required columns must be present and finite
REQUIRED_BAR_COLUMNS = ("ts_event", "ts_open", "open", "high", "low", "close", "volume")
OPTIONAL_FEATURE_COLUMNS = {
    "atr": "sizing and stop distances (ATR of `atr_column`); NaN → no entry on that bar",
    "price_impact": "market-impact slippage; NaN → impact term 0",
    "ofi_ema5": "order-flow stop L2; NaN → L2 cannot trigger on that bar",
    "cum_delta_slope": "trailing take-profit widening; NaN → normal trail width",
    "trade_intensity": "liquidity pause; NaN → entries paused (liquidity unknown) unless risk.liquidity.enabled is false",
}
SIGNAL_COLUMNS = ("enter_long", "enter_short", "exit_long", "exit_short", "strength", "confidence")
FAMILY_COLUMNS = {"source": 0, "regime_factor": 1.0, "flatten": False}


@dataclass(frozen=True)
class BarInputs:
    """Contiguous arrays, one element per bar, in time order."""

    ts_event: np.ndarray
    ts_open: np.ndarray
    open: np.ndarray
    high: np.ndarray
    low: np.ndarray
    close: np.ndarray
    volume: np.ndarray
    atr: np.ndarray
    price_impact: np.ndarray
    ofi_ema5: np.ndarray
    cum_delta_slope: np.ndarray
    trade_intensity: np.ndarray
    enter_long: np.ndarray  # bool
    enter_short: np.ndarray
    exit_long: np.ndarray
    exit_short: np.ndarray
    strength: np.ndarray
    confidence: np.ndarray
    source: np.ndarray  # int64 bitmask 1 = A, 2 = B
    regime_factor: np.ndarray
    flatten: np.ndarray  # bool

    @property
    def n(self) -> int:
        return int(self.ts_event.shape[0])

    def slice(self, start: int, stop: int) -> BarInputs:
        return BarInputs(**{f.name: getattr(self, f.name)[start:stop] for f in fields(self)})


def _f64(df: pl.DataFrame, name: str) -> np.ndarray:
    if name not in df.columns:
        return np.full(df.height, np.nan)
    return np.ascontiguousarray(df.get_column(name).cast(pl.Float64).fill_null(np.nan).to_numpy(), dtype=np.float64)


def build_inputs(features: pl.DataFrame, signals: pl.DataFrame, atr_column: str = "atr100") -> BarInputs:
    """Align a bars+features frame and a signal frame (same rows, same ts_event) into kernel arrays."""
    missing = [c for c in REQUIRED_BAR_COLUMNS if c not in features.columns]
    if missing:
        raise SchemaError(f"bars/features frame lacks required columns {missing}", source="engine inputs")
    missing = [c for c in ("ts_event", *SIGNAL_COLUMNS) if c not in signals.columns]
    if missing:
        raise SchemaError(f"signal frame lacks columns {missing}", source="engine inputs")
    if features.height != signals.height:
        raise DataError(f"{features.height} bars but {signals.height} signal rows", source="engine inputs")
    ts = features.get_column("ts_event").to_numpy()
    if not np.array_equal(ts, signals.get_column("ts_event").to_numpy()):
        bad = int(np.flatnonzero(ts != signals.get_column("ts_event").to_numpy())[0])
        raise DataError(f"signal row {bad} has ts_event {signals['ts_event'][bad]}, bar has {ts[bad]}",
                        source="engine inputs", line=bad + 1)
    if ts.shape[0] > 1 and (np.diff(ts) < 0).any():
        bad = int(np.flatnonzero(np.diff(ts) < 0)[0]) + 1
        raise DataError(f"bars out of time order at row {bad}", source="engine inputs", line=bad + 1)
    for c in REQUIRED_BAR_COLUMNS[2:]:
        v = features.get_column(c).cast(pl.Float64)
        if v.has_nulls() or not np.isfinite(v.to_numpy()).all():
            raise DataError(f"bar column {c!r} has null or non-finite values", source="engine inputs")
    if atr_column not in features.columns:
        raise SchemaError(f"ATR column {atr_column!r} not in the features (have: "
                          f"{[c for c in features.columns if c.startswith('atr')]})", source="engine inputs")

    def flag(name: str, default: bool = False) -> np.ndarray:
        if name not in signals.columns:
            return np.full(signals.height, default)
        s = signals.get_column(name)
        if s.has_nulls():
            raise DataError(f"signal column {name!r} has nulls", source="engine inputs")
        return np.ascontiguousarray(s.cast(pl.Boolean).to_numpy())

    source = (signals.get_column("source").cast(pl.Int64).to_numpy() if "source" in signals.columns
              else np.zeros(signals.height, dtype=np.int64))
    regime_factor = _f64(signals, "regime_factor") if "regime_factor" in signals.columns else np.ones(signals.height)
    return BarInputs(
        ts_event=np.ascontiguousarray(ts, dtype=np.int64),
        ts_open=np.ascontiguousarray(features.get_column("ts_open").to_numpy(), dtype=np.int64),
        open=_f64(features, "open"), high=_f64(features, "high"), low=_f64(features, "low"),
        close=_f64(features, "close"), volume=_f64(features, "volume"), atr=_f64(features, atr_column),
        price_impact=_f64(features, "price_impact"), ofi_ema5=_f64(features, "ofi_ema5"),
        cum_delta_slope=_f64(features, "cum_delta_slope"), trade_intensity=_f64(features, "trade_intensity"),
        enter_long=flag("enter_long"), enter_short=flag("enter_short"), exit_long=flag("exit_long"),
        exit_short=flag("exit_short"), strength=_f64(signals, "strength"), confidence=_f64(signals, "confidence"),
        source=np.ascontiguousarray(source, dtype=np.int64), regime_factor=regime_factor,
        flatten=flag("flatten"),
    )
