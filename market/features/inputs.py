"""Bar-frame checks and extraction into the arrays the feature kernels read.

A chunk is checked completely before any engine state changes, so a rejected chunk leaves the
engine exactly as it was (the caller may fix the data and feed it again).
"""

from __future__ import annotations

import numpy as np
import polars as pl

from core.errors import DataError, SchemaError
from market.features.kernels_bar import first_invalid_bar_nb
from market.features.primitives import as_input
from market.schema import BAR_SCHEMA

SOURCE = "feature engine input bars"

# Reason codes returned by `first_invalid_bar_nb`.
INVALID_BAR_REASONS = {
    1: "ts_event decreases (bars must be in time order, also across chunks; equal ts_event is allowed)",
    2: "open/high/low/close must be finite",
    3: "prices must satisfy 0 < low <= open, close <= high",
    4: "volume must be finite and > 0",
    5: "quote_volume must be finite and > 0",
    6: "buy_volume and sell_volume must be finite, >= 0, with buy_volume + sell_volume > 0",
    7: "trade_count must be >= 1 and buy_count, sell_count >= 0",
    8: "upticks and downticks must be >= 0",
    9: "duration_ns must be >= 0",
    10: "realized_var must be finite and >= 0",
    11: "large_volume must be finite and >= 0",
}

_CHECKED = (
    "open", "high", "low", "close", "volume", "quote_volume", "buy_volume", "sell_volume", "trade_count",
    "buy_count", "sell_count", "upticks", "downticks", "duration_ns", "realized_var", "large_volume",
)


def check_schema(bars: pl.DataFrame) -> None:
    """Every BAR_SCHEMA column present with its exact dtype and without nulls (extra columns are ignored)."""
    if not isinstance(bars, pl.DataFrame):
        raise SchemaError(f"expected a polars DataFrame of bars, got {type(bars).__name__}", source=SOURCE)
    schema = bars.schema
    missing = [c for c in BAR_SCHEMA if c not in schema]
    if missing:
        raise SchemaError(f"missing bar columns {missing}; have {bars.columns}", source=SOURCE)
    wrong = [f"{c}: {schema[c]} (expected {t})" for c, t in BAR_SCHEMA.items() if schema[c] != t]
    if wrong:
        raise SchemaError(f"bar columns with wrong dtypes: {wrong}", source=SOURCE)
    with_nulls = [c for c in BAR_SCHEMA if bars.get_column(c).has_nulls()]
    if with_nulls:
        raise SchemaError(f"bar columns contain nulls: {with_nulls}", source=SOURCE)


def extract_arrays(bars: pl.DataFrame, prev_ts: int) -> dict[str, np.ndarray]:
    """Check `bars` (schema and invariants) and return read-only numpy arrays of every bar column.

    `prev_ts` is the last ts_event already consumed (or the int64 minimum). Raises SchemaError or
    DataError naming the column / 1-based row of the chunk.
    """
    check_schema(bars)
    arrays = {
        c: as_input(bars.get_column(c).to_numpy(), np.float64 if t == pl.Float64 else np.int64)
        for c, t in BAR_SCHEMA.items()
    }
    row, code = first_invalid_bar_nb(arrays["ts_event"], np.int64(prev_ts), *(arrays[c] for c in _CHECKED))
    if row >= 0:
        values = {c: bars.get_column(c)[int(row)] for c in ("ts_event", *_CHECKED)}
        raise DataError(f"invalid bar: {INVALID_BAR_REASONS[int(code)]}; bar = {values}", source=SOURCE,
                        line=int(row) + 1)
    return arrays
