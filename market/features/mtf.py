"""Multi-timeframe joins: higher-timeframe features onto base bars, using closed higher bars only.

A higher bar (e.g. a 1h time bar, ts_event = bucket end) is visible to a base bar iff
`higher.ts_event <= base.ts_event`. Each base row gets the columns of the latest visible higher
row, renamed with `prefix`, including `{prefix}ts_event` (the higher bar's close time, so callers
can check staleness). Before the first visible higher bar the joined columns are null: null
means "no higher bar yet", NaN means "higher bar present, feature still warming up".

Batch (`join_higher_timeframe`) and streaming (`HigherTimeframeJoiner`) use the same asof-join
function, on the same candidate rows, so their outputs are identical.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import polars as pl

from core.errors import DataError, SchemaError

_SOURCE = "multi-timeframe join"


def _check_ts(frame: pl.DataFrame, what: str, after: int | None = None, strict: bool = True) -> None:
    """Int64 ts_event without nulls, increasing (strictly, or non-decreasing when not `strict`),
    and after `after` (the last ts_event of the previous call)."""
    if "ts_event" not in frame.columns:
        raise SchemaError(f"{what} has no ts_event column; have {frame.columns}", source=_SOURCE)
    ts = frame.get_column("ts_event")
    if ts.dtype != pl.Int64:
        raise SchemaError(f"{what} ts_event has dtype {ts.dtype}, expected Int64", source=_SOURCE)
    if ts.has_nulls():
        raise SchemaError(f"{what} ts_event contains nulls", source=_SOURCE)
    values = ts.to_numpy()
    if values.shape[0] == 0:
        return
    steps = np.diff(values)
    bad = np.flatnonzero(steps <= 0 if strict else steps < 0)
    order = "strictly increasing" if strict else "non-decreasing"
    if bad.shape[0]:
        i = int(bad[0]) + 1
        raise DataError(f"{what} ts_event not {order}: {values[i - 1]} then {values[i]}",
                        source=_SOURCE, line=i + 1)
    if after is not None and (values[0] <= after if strict else values[0] < after):
        raise DataError(f"{what} ts_event {values[0]} out of order after the previous call's {after} (must be {order})",
                        source=_SOURCE, line=1)


def _check_prefix(prefix: str) -> None:
    if not isinstance(prefix, str) or not prefix:
        raise SchemaError(f"prefix must be a non-empty string, got {prefix!r}", source=_SOURCE)


def _prefixed(higher: pl.DataFrame, prefix: str) -> pl.DataFrame:
    return higher.rename({c: f"{prefix}{c}" for c in higher.columns})


def _asof(base: pl.DataFrame, higher_prefixed: pl.DataFrame, prefix: str) -> pl.DataFrame:
    clash = [c for c in higher_prefixed.columns if c in base.columns]
    if clash:
        raise SchemaError(f"prefixed higher-timeframe columns {clash} already exist in the base frame; "
                          f"choose another prefix than {prefix!r}", source=_SOURCE)
    return base.set_sorted("ts_event").join_asof(
        higher_prefixed.set_sorted(f"{prefix}ts_event"),
        left_on="ts_event",
        right_on=f"{prefix}ts_event",
        strategy="backward",
        check_sortedness=False,  # the order of ts_event is checked by _check_ts
    )


def join_higher_timeframe(base: pl.DataFrame, higher: pl.DataFrame, prefix: str) -> pl.DataFrame:
    """Base rows with the latest closed higher-timeframe row (higher.ts_event <= base.ts_event)
    joined as `{prefix}<column>` columns. Int64 ts_event: non-decreasing in `base` (trade-driven
    bars may share a close time), strictly increasing in `higher` (one row per close time)."""
    _check_prefix(prefix)
    _check_ts(base, "base frame", strict=False)
    _check_ts(higher, "higher-timeframe frame")
    return _asof(base, _prefixed(higher, prefix), prefix)


class HigherTimeframeJoiner:
    """Streaming multi-timeframe join, identical to `join_higher_timeframe` over the same rows.

    Feed every higher bar (`update_higher`) before the base bars at or after its ts_event
    (`join`). A higher bar arriving after a base bar it should have been visible to is an
    ordering error (batch would have shown it) and raises DataError. Memory is bounded: only the
    latest visible higher row and not-yet-visible rows are kept.

    `higher_schema` declares the higher-timeframe columns up front, so base bars joined before
    the first higher bar closes get null columns; otherwise the first `update_higher` call
    (possibly with an empty frame) declares it.
    """

    def __init__(self, prefix: str, higher_schema: Mapping[str, pl.DataType] | None = None):
        _check_prefix(prefix)
        self.prefix = prefix
        self._rows: pl.DataFrame | None = None  # prefixed: [latest visible row] + pending rows
        self._last_higher_ts: int | None = None
        self._last_base_ts: int | None = None
        if higher_schema is not None:
            self._declare(pl.DataFrame(schema=dict(higher_schema)))

    def _declare(self, higher: pl.DataFrame) -> None:
        _check_ts(higher, "higher-timeframe schema")
        self._rows = _prefixed(higher.clear(), self.prefix)

    def update_higher(self, higher_rows: pl.DataFrame) -> None:
        """Append newly closed higher-timeframe rows (ts_event strictly increasing, same columns)."""
        if self._rows is None:
            self._declare(higher_rows)
        _check_ts(higher_rows, "higher-timeframe rows", after=self._last_higher_ts)
        prefixed = _prefixed(higher_rows, self.prefix)
        if prefixed.schema != self._rows.schema:
            raise SchemaError(f"higher-timeframe rows have schema {dict(higher_rows.schema)}, expected the "
                              f"columns declared first: {dict(self._rows.schema)} (prefixed)", source=_SOURCE)
        if higher_rows.height == 0:
            return
        first = int(higher_rows.get_column("ts_event")[0])
        if self._last_base_ts is not None and first <= self._last_base_ts:
            raise DataError(f"late higher-timeframe bar ts_event {first}: base bars up to {self._last_base_ts} "
                            "were already joined without it; feed higher bars before base bars", source=_SOURCE)
        self._rows = pl.concat([self._rows, prefixed], how="vertical")
        self._last_higher_ts = int(higher_rows.get_column("ts_event")[-1])

    def join(self, base_rows: pl.DataFrame) -> pl.DataFrame:
        """Join base rows (ts_event non-decreasing, also across calls) with the visible higher rows."""
        if self._rows is None:
            raise SchemaError("no higher-timeframe columns known yet: pass higher_schema to the joiner or call "
                              "update_higher (an empty frame is enough) before join", source=_SOURCE)
        _check_ts(base_rows, "base rows", after=self._last_base_ts, strict=False)
        out = _asof(base_rows, self._rows, self.prefix)
        if base_rows.height:
            self._last_base_ts = int(base_rows.get_column("ts_event")[-1])
            # Later base rows are at or after this one: only the latest visible row and rows not
            # yet visible can still be matched.
            ts = self._rows.get_column(f"{self.prefix}ts_event").to_numpy()
            visible = int(np.searchsorted(ts, self._last_base_ts, side="right"))
            self._rows = self._rows.slice(max(visible - 1, 0))
        return out
