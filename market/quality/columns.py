"""Strict column/dtype conformance shared by the quality checks and the catalog.

Unlike `market.schema.conform`, only casts that cannot change a value are accepted (integer
widening, Float32 -> Float64, small integers -> Float64, all-null columns): a Float64 id column
is refused rather than truncated, and extra columns are refused rather than dropped.
"""

from __future__ import annotations

import polars as pl

from core.errors import SchemaError

_LOSSLESS: dict[pl.DataType, frozenset] = {
    pl.Int64: frozenset({pl.Int8, pl.Int16, pl.Int32, pl.UInt8, pl.UInt16, pl.UInt32}),
    pl.Float64: frozenset({pl.Float32, pl.Int8, pl.Int16, pl.Int32, pl.UInt8, pl.UInt16, pl.UInt32}),
}


def strict_conform(df: pl.DataFrame, schema: dict[str, pl.DataType], where: str) -> pl.DataFrame:
    """Return `df` with exactly `schema`'s columns in schema order.

    Raises `SchemaError` naming missing columns, unexpected columns, and columns whose dtype
    cannot be converted without possibly changing a value.
    """
    if not isinstance(df, pl.DataFrame):
        raise SchemaError(f"expected a polars DataFrame, got {type(df).__name__}", source=where)
    missing = [c for c in schema if c not in df.columns]
    extra = [c for c in df.columns if c not in schema]
    if missing or extra:
        raise SchemaError(
            f"columns do not match the expected schema: missing {missing}, unexpected {extra}; "
            f"expected {list(schema)}",
            source=where,
        )
    bad = []
    cols = []
    for name, dtype in schema.items():
        col = df.get_column(name)
        if col.dtype != dtype:
            if col.dtype == pl.Null or col.dtype in _LOSSLESS.get(dtype, ()):
                col = col.cast(dtype)
            else:
                bad.append(f"{name}: {col.dtype} (expected {dtype})")
                continue
        cols.append(col)
    if bad:
        raise SchemaError(f"columns with wrong dtypes: {', '.join(bad)}", source=where)
    if list(df.columns) == list(schema) and all(df.get_column(c).dtype == t for c, t in schema.items()):
        return df
    return pl.DataFrame(cols)
