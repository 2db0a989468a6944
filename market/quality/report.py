"""Quality report and result types shared by the trade and kline checks."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields
from typing import Any

import polars as pl

from core.time import ns_to_datetime

# Gap lists keep only the `max_listed_gaps` largest gaps (ties: earliest first) and are shown in
# time order; the totals and counts always cover every gap. Selecting "largest N" with a total
# tie-break makes merge() of chunk reports equal to the one-shot report.


def top_gaps(gaps: list[tuple[int, ...]], size_of, limit: int) -> list[tuple[int, ...]]:
    """The `limit` largest gaps by `size_of(gap)` (ties: earliest first), returned in time order."""
    if len(gaps) <= limit:
        return sorted(gaps)
    chosen = sorted(gaps, key=lambda g: (-size_of(g), g))[:limit]
    return sorted(chosen)


def _id_gap_size(g: tuple[int, ...]) -> int:
    return g[2]


def _time_gap_size(g: tuple[int, ...]) -> int:
    return g[1] - g[0]


def _fmt_ts(ts: int | None) -> str:
    if ts is None:
        return "-"
    return ns_to_datetime(ts).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3] + "Z"


def _fmt_duration(ns: int) -> str:
    s = ns / 1e9
    if s < 120:
        return f"{s:.3f}s"
    if s < 7200:
        return f"{s / 60:.1f}min"
    return f"{s / 3600:.2f}h"


@dataclass
class QualityReport:
    """Counts and findings of one quality check (or of several merged chunk checks).

    Invariant (checked on construction, see `reconciles`):
    rows_in = rows_kept + rows_quarantined + duplicates, and the reasons sum to rows_quarantined.

    - duplicates: identical copies of a kept row, dropped (nothing lost).
    - out_of_order: rows that arrived after a row with a larger id (trades) / open_time (klines);
      they were re-sorted, not dropped.
    - id_gaps: (after_id, before_id, missing) for jumps > 1 between consecutive ids present in the
      input; id_gap_total counts every missing id, id_gap_count every gap.
    - time_gaps: (from_ts, to_ts) between consecutive kept rows further apart than the configured
      limit (trades) or one interval (klines).
    - missing_bars (klines): (first missing open_time, last missing open_time, count).
    - first_ts / last_ts: time of the first / last kept row (ts_event, or open_time for klines).
    """

    dataset: str
    kind: str
    rows_in: int
    rows_kept: int
    rows_quarantined: int
    duplicates: int
    out_of_order: int
    quarantine_by_reason: dict[str, int]
    id_gaps: list[tuple[int, int, int]]
    id_gap_total: int
    time_gaps: list[tuple[int, int]]
    first_ts: int | None
    last_ts: int | None
    id_gap_count: int = 0
    time_gap_count: int = 0
    first_id: int | None = None
    last_id: int | None = None
    missing_bars: list[tuple[int, int, int]] = field(default_factory=list)
    missing_bar_total: int = 0
    outlier_resets: int = 0
    interval_ns: int | None = None
    max_listed_gaps: int = 100
    batches: int = 1

    def __post_init__(self) -> None:
        self.quarantine_by_reason = {k: int(v) for k, v in sorted(self.quarantine_by_reason.items()) if v}
        self.id_gaps = [tuple(int(x) for x in g) for g in self.id_gaps]  # type: ignore[misc]
        self.time_gaps = [tuple(int(x) for x in g) for g in self.time_gaps]  # type: ignore[misc]
        self.missing_bars = [tuple(int(x) for x in g) for g in self.missing_bars]  # type: ignore[misc]
        if not self.reconciles():
            # An internal bug, never a data problem: refuse to hand out a report that loses rows.
            raise AssertionError(
                f"quality report for {self.dataset or self.kind!r} does not reconcile: rows_in={self.rows_in}, "
                f"kept={self.rows_kept}, quarantined={self.rows_quarantined}, duplicates={self.duplicates}, "
                f"reasons={self.quarantine_by_reason}"
            )

    def reconciles(self) -> bool:
        """True when every input row is accounted for: kept, quarantined (with a reason) or a duplicate."""
        counts = (self.rows_in, self.rows_kept, self.rows_quarantined, self.duplicates, self.out_of_order)
        return (
            all(c >= 0 for c in counts)
            and self.rows_in == self.rows_kept + self.rows_quarantined + self.duplicates
            and sum(self.quarantine_by_reason.values()) == self.rows_quarantined
        )

    @property
    def is_clean(self) -> bool:
        """No row quarantined, no gap, nothing reordered (exact duplicates are tolerated)."""
        return (
            self.rows_quarantined == 0
            and self.out_of_order == 0
            and self.id_gap_count == 0
            and self.time_gap_count == 0
            and self.missing_bar_total == 0
        )

    def merge(self, other: QualityReport) -> QualityReport:
        """Combine the reports of consecutive chunks of one dataset into one report.

        Gaps across the chunk boundary are only known if the chunks were checked by one stateful
        `TradeValidator` (which attributes them to the later chunk); merging reports of independent
        checks cannot see them.
        """
        if other.kind != self.kind:
            raise ValueError(f"cannot merge a {other.kind!r} report into a {self.kind!r} report")
        if other.dataset != self.dataset:
            raise ValueError(f"cannot merge reports of different datasets: {self.dataset!r} and {other.dataset!r}")
        if self.interval_ns != other.interval_ns:
            raise ValueError(f"cannot merge kline reports of intervals {self.interval_ns} and {other.interval_ns}")
        limit = self.max_listed_gaps
        reasons = dict(self.quarantine_by_reason)
        for k, v in other.quarantine_by_reason.items():
            reasons[k] = reasons.get(k, 0) + v

        def _min(a: int | None, b: int | None) -> int | None:
            return b if a is None else a if b is None else min(a, b)

        def _max(a: int | None, b: int | None) -> int | None:
            return b if a is None else a if b is None else max(a, b)

        return QualityReport(
            dataset=self.dataset,
            kind=self.kind,
            rows_in=self.rows_in + other.rows_in,
            rows_kept=self.rows_kept + other.rows_kept,
            rows_quarantined=self.rows_quarantined + other.rows_quarantined,
            duplicates=self.duplicates + other.duplicates,
            out_of_order=self.out_of_order + other.out_of_order,
            quarantine_by_reason=reasons,
            id_gaps=top_gaps(self.id_gaps + other.id_gaps, _id_gap_size, limit),  # type: ignore[arg-type]
            id_gap_total=self.id_gap_total + other.id_gap_total,
            time_gaps=top_gaps(self.time_gaps + other.time_gaps, _time_gap_size, limit),  # type: ignore[arg-type]
            first_ts=_min(self.first_ts, other.first_ts),
            last_ts=_max(self.last_ts, other.last_ts),
            id_gap_count=self.id_gap_count + other.id_gap_count,
            time_gap_count=self.time_gap_count + other.time_gap_count,
            first_id=_min(self.first_id, other.first_id),
            last_id=_max(self.last_id, other.last_id),
            missing_bars=top_gaps(self.missing_bars + other.missing_bars, _id_gap_size, limit),  # type: ignore[arg-type]
            missing_bar_total=self.missing_bar_total + other.missing_bar_total,
            outlier_resets=self.outlier_resets + other.outlier_resets,
            interval_ns=self.interval_ns,
            max_listed_gaps=limit,
            batches=self.batches + other.batches,
        )

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-compatible dict (tuples become lists)."""
        d = asdict(self)
        for k in ("id_gaps", "time_gaps", "missing_bars"):
            d[k] = [list(g) for g in d[k]]
        return d

    def to_json(self, indent: int | None = 2) -> str:
        return json.dumps(self.to_dict(), indent=indent, sort_keys=True)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> QualityReport:
        """Inverse of `to_dict` (unknown keys rejected)."""
        names = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - names)
        if unknown:
            raise ValueError(f"unknown QualityReport keys {unknown}")
        return cls(**data)

    def to_text(self, max_gaps: int = 10) -> str:
        """Human-readable summary: counts, reasons, the largest gaps."""
        title = f"quality report: {self.dataset or '<unnamed>'} ({self.kind})"
        lines = [title, "=" * len(title)]
        lines.append(f"time range     : {_fmt_ts(self.first_ts)} -> {_fmt_ts(self.last_ts)}")
        if self.first_id is not None:
            lines.append(f"id range       : {self.first_id} -> {self.last_id}")
        lines.append(f"rows in        : {self.rows_in:,}" + (f" ({self.batches} batches)" if self.batches > 1 else ""))
        lines.append(f"kept           : {self.rows_kept:,}")
        lines.append(f"quarantined    : {self.rows_quarantined:,}")
        for reason, n in sorted(self.quarantine_by_reason.items(), key=lambda kv: (-kv[1], kv[0])):
            lines.append(f"  {reason:<26}: {n:,}")
        lines.append(f"duplicates     : {self.duplicates:,} (identical copies, dropped)")
        lines.append(f"out of order   : {self.out_of_order:,} (re-sorted)")
        if self.outlier_resets:
            lines.append(f"outlier resets : {self.outlier_resets} (level shifts accepted after consecutive outliers)")
        if self.kind.startswith("klines"):
            lines.append(f"missing bars   : {self.missing_bar_total:,} in {self.time_gap_count:,} gaps")
            for a, b, n in sorted(self.missing_bars, key=lambda g: (-g[2], g))[:max_gaps]:
                lines.append(f"  {_fmt_ts(a)} .. {_fmt_ts(b)}: {n:,} bars")
        else:
            lines.append(f"id gaps        : {self.id_gap_count:,} gaps, {self.id_gap_total:,} ids missing")
            for a, b, n in sorted(self.id_gaps, key=lambda g: (-g[2], g))[:max_gaps]:
                lines.append(f"  after {a} before {b}: {n:,} missing")
            lines.append(f"time gaps      : {self.time_gap_count:,}")
            for a, b in sorted(self.time_gaps, key=lambda g: (g[0] - g[1], g))[:max_gaps]:
                lines.append(f"  {_fmt_ts(a)} -> {_fmt_ts(b)} ({_fmt_duration(b - a)})")
        lines.append("reconciles     : " + ("yes" if self.reconciles() else "NO"))
        return "\n".join(lines)


@dataclass
class QualityResult:
    """Output of a check: the clean rows, the quarantined rows and the report.

    `clean` has the input schema, sorted by id (trades) / open_time (klines), unique on that key.
    `quarantine` has the input columns plus `row_number` (0-based position in the input batch)
    and `reason` (schema.QUARANTINE_EXTRA), in input order.
    """

    clean: pl.DataFrame
    quarantine: pl.DataFrame
    report: QualityReport
