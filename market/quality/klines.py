"""Quality checks for klines (OHLCV bars of a fixed interval).

Nullable columns (`close_time`, `quote_volume`, `trade_count`, `taker_buy_volume`,
`taker_buy_quote_volume`) mean "not provided by this source" when null and are then not checked;
`open_time`, `open`, `high`, `low`, `close`, `volume` are required.

Row-level reasons, first applicable wins: null_value, non_finite_price, non_positive_price,
non_finite_volume, negative_volume, negative_trade_count, impossible_ohlc,
taker_buy_exceeds_volume (also taker-buy quote volume > quote volume), bad_close_time
(close_time != open_time + interval - 1 ms), misaligned_open_time (open_time not on the interval
grid: the epoch grid for intervals dividing a day, else the grid of the first valid bar).
Then among valid rows, by open_time (first in input order is the candidate): identical copies are
dropped as duplicates, differing ones quarantined `conflicting_duplicate`. Rows are sorted by
open_time; rows that arrived after a later open_time count as out_of_order.
"""

from __future__ import annotations

import numpy as np
import polars as pl

from core.errors import ConfigError
from core.time import NS_PER_DAY, NS_PER_MS
from market.quality.columns import strict_conform
from market.quality.config import QualityConfig
from market.quality.report import QualityReport, QualityResult, top_gaps
from market.schema import KLINES_SCHEMA, QUARANTINE_EXTRA

KLINE_REASONS = (
    "null_value",
    "non_finite_price",
    "non_positive_price",
    "non_finite_volume",
    "negative_volume",
    "negative_trade_count",
    "impossible_ohlc",
    "taker_buy_exceeds_volume",
    "bad_close_time",
    "misaligned_open_time",
    "conflicting_duplicate",
)
_CODE = {name: i + 2 for i, name in enumerate(KLINE_REASONS)}  # 0 kept, 1 duplicate
_NAMES = np.array(["", ""] + list(KLINE_REASONS), dtype=object)

REQUIRED_KLINE_COLUMNS = ("open_time", "open", "high", "low", "close", "volume")
_PRICES = ("open", "high", "low", "close")
_VOLUMES = ("volume", "quote_volume", "taker_buy_volume", "taker_buy_quote_volume")


def check_klines(
    df: pl.DataFrame, *, interval_ns: int, config: QualityConfig = QualityConfig(), dataset: str = ""
) -> QualityResult:
    """Check a kline frame of one symbol and interval; see the module docstring for the rules."""
    if isinstance(interval_ns, bool) or not isinstance(interval_ns, (int, np.integer)) or interval_ns <= 0:
        raise ConfigError(f"interval_ns must be a positive integer number of nanoseconds, got {interval_ns!r}")
    interval_ns = int(interval_ns)
    where = dataset or "klines"
    df = strict_conform(df, KLINES_SCHEMA, where)
    n = df.height

    nulls = {c: df.get_column(c).is_null().to_numpy() for c in KLINES_SCHEMA}
    arr = {c: df.get_column(c).fill_null(0).to_numpy() for c in KLINES_SCHEMA}
    o, h, lo, c = (arr[k] for k in _PRICES)

    # Each rule is evaluated on every row; assigning from the lowest precedence up lets the first
    # applicable reason (in KLINE_REASONS order) win.
    rules: list[tuple[str, np.ndarray]] = []
    rules.append(("null_value", np.logical_or.reduce([nulls[k] for k in REQUIRED_KLINE_COLUMNS])))
    prices = np.stack([o, h, lo, c])
    rules.append(("non_finite_price", ~np.isfinite(prices).all(axis=0)))
    rules.append(("non_positive_price", (prices <= 0.0).any(axis=0)))
    vols = np.stack([arr[k] for k in _VOLUMES])
    vol_given = ~np.stack([nulls[k] for k in _VOLUMES])
    rules.append(("non_finite_volume", (vol_given & ~np.isfinite(vols)).any(axis=0)))
    rules.append(("negative_volume", (vol_given & (vols < 0.0)).any(axis=0)))
    rules.append(("negative_trade_count", ~nulls["trade_count"] & (arr["trade_count"] < 0)))
    rules.append(("impossible_ohlc", (h < np.maximum(np.maximum(o, c), lo)) | (lo > np.minimum(o, c))))
    tb_over = ~nulls["taker_buy_volume"] & (arr["taker_buy_volume"] > arr["volume"])
    tbq_over = (~nulls["taker_buy_quote_volume"] & ~nulls["quote_volume"]
                & (arr["taker_buy_quote_volume"] > arr["quote_volume"]))
    rules.append(("taker_buy_exceeds_volume", tb_over | tbq_over))
    ot = arr["open_time"]
    rules.append(("bad_close_time", ~nulls["close_time"] & (arr["close_time"] != ot + interval_ns - NS_PER_MS)))
    codes = np.zeros(n, np.int8)
    for name, mask in reversed(rules):
        codes[mask] = _CODE[name]
    valid = codes == 0
    if NS_PER_DAY % interval_ns == 0:
        misaligned = valid & (ot % interval_ns != 0)
    else:
        first = np.flatnonzero(valid)
        misaligned = valid & ((ot - ot[first[0]]) % interval_ns != 0) if first.shape[0] else valid
    codes[misaligned] = _CODE["misaligned_open_time"]

    # Order: out_of_order over every row with an open_time, in input order.
    has_ot = np.flatnonzero(~nulls["open_time"])
    seq = ot[has_ot]
    out_of_order = 0
    if seq.shape[0] > 1:
        out_of_order = int(np.count_nonzero(seq[1:] < np.maximum.accumulate(seq)[:-1]))

    cand = np.flatnonzero(codes == 0)
    if out_of_order:
        cand = cand[np.argsort(ot[cand], kind="stable")]
    if cand.shape[0]:
        cot = ot[cand]
        starts = np.ones(cand.shape[0], bool)
        starts[1:] = cot[1:] != cot[:-1]
        if not starts.all():
            head = cand[np.maximum.accumulate(np.where(starts, np.arange(cand.shape[0]), 0))]
            same = np.ones(cand.shape[0], bool)
            for k in KLINES_SCHEMA:
                a, z = arr[k], nulls[k]
                same &= (z[cand] == z[head]) & (z[cand] | (a[cand] == a[head]))
            rep = ~starts
            codes[cand[rep & same]] = 1
            codes[cand[rep & ~same]] = _CODE["conflicting_duplicate"]
        kept = cand[starts]
    else:
        kept = cand

    clean = df if (kept.shape[0] == n and out_of_order == 0) else df[kept]
    q_rows = np.flatnonzero(codes >= 2)
    quarantine = df[q_rows].with_columns(
        pl.Series("row_number", q_rows, dtype=QUARANTINE_EXTRA["row_number"]),
        pl.Series("reason", _NAMES[codes[q_rows]].tolist(), dtype=QUARANTINE_EXTRA["reason"]),
    )

    kot = ot[kept]
    diffs = np.diff(kot)
    g = np.flatnonzero(diffs > interval_ns)
    prev_ot, next_ot = kot[g], kot[g + 1]
    missing = (next_ot - prev_ot - 1) // interval_ns
    gaps = list(zip(prev_ot.tolist(), next_ot.tolist()))
    bars = list(zip((prev_ot + interval_ns).tolist(), (next_ot - interval_ns).tolist(), missing.tolist()))
    limit = config.max_listed_gaps
    by_code = np.bincount(codes, minlength=len(_NAMES))
    report = QualityReport(
        dataset=dataset,
        kind="klines",
        rows_in=n,
        rows_kept=int(kept.shape[0]),
        rows_quarantined=int(q_rows.shape[0]),
        duplicates=int(by_code[1]),
        out_of_order=out_of_order,
        quarantine_by_reason={name: int(by_code[_CODE[name]]) for name in KLINE_REASONS},
        id_gaps=[],
        id_gap_total=0,
        time_gaps=top_gaps(gaps, lambda x: x[1] - x[0], limit),  # type: ignore[arg-type]
        first_ts=int(kot[0]) if kot.shape[0] else None,
        last_ts=int(kot[-1]) if kot.shape[0] else None,
        time_gap_count=len(gaps),
        missing_bars=top_gaps(bars, lambda x: x[2], limit),  # type: ignore[arg-type]
        missing_bar_total=int(missing.sum()),
        interval_ns=interval_ns,
        max_listed_gaps=limit,
    )
    return QualityResult(clean=clean, quarantine=quarantine, report=report)
