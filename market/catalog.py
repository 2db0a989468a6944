"""Parquet catalog of market data, partitioned hive-style by dataset and UTC date.

Layout: `<root>/exchange=<e>/market=<m>/symbol=<S>/kind=<k>/date=YYYY-MM-DD/data.parquet`, one
file per partition, date = UTC date of the kind's time column. Beside the partitions,
`kind=<k>/_dataset.json` records schema version, the synthetic flag and provenance.
Quarantined rows live under `<root>/_quarantine/<same dataset path>/date=.../part-<n>.parquet`
and reports under `<root>/_reports/<same dataset path>/report-<n>.json`.

Guarantees:
- Writes are idempotent: rows merge with the stored partition on the kind's key; an identical
  row is a duplicate, a key stored with different content is a conflict and the stored row wins.
- Each partition file is replaced atomically (temp file, fsync, os.replace): a crash leaves the
  old or the new file, never half of one. A multi-partition write is not one transaction; a
  crash between partitions leaves some updated, and re-running the write completes it.
- Writers to one dataset are serialised with an advisory lock (POSIX flock) on `kind=<k>/.lock`.
- Synthetic and real data never share a dataset (`SyntheticMixError`).
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import json
import os
import re
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

import polars as pl
import pyarrow.parquet as pq

from core.errors import ConfigError, DataError, SchemaError
from core.time import NS_PER_DAY
from market.quality.columns import strict_conform
from market.schema import (
    AGG_TRADES_SCHEMA,
    BOOK_TICKER_SCHEMA,
    DEPTH_SCHEMA,
    FUNDING_SCHEMA,
    KLINES_SCHEMA,
    MARK_PRICE_SCHEMA,
    QUARANTINE_EXTRA,
    TRADES_SCHEMA,
)

try:  # POSIX only; elsewhere writers must not run concurrently on one dataset.
    import fcntl
except ImportError:  # pragma: no cover
    fcntl = None  # type: ignore[assignment]

SCHEMA_VERSION = 1

# Not yet in market.schema (requested): Binance funding history (fundingTime, fundingRate,
# markPrice; markPrice null when the venue does not send it).

_FIXED_KINDS: dict[str, tuple[dict[str, pl.DataType], tuple[str, ...] | None, str]] = {
    # kind: (schema, key columns (None = the whole row), time column)
    "agg_trades": (AGG_TRADES_SCHEMA, ("id",), "ts_event"),
    "trades": (TRADES_SCHEMA, ("id",), "ts_event"),
    "book_ticker": (BOOK_TICKER_SCHEMA, ("update_id",), "ts_event"),
    "depth": (DEPTH_SCHEMA, None, "ts_event"),
    "mark_price": (MARK_PRICE_SCHEMA, ("ts_event",), "ts_event"),
    "funding": (FUNDING_SCHEMA, ("ts_event",), "ts_event"),
}
# Monthly klines are excluded: variable length, and "1M" vs "1m" collide on case-insensitive disks.
_KLINES_RE = re.compile(r"^klines_([1-9][0-9]*)(s|m|h|d|w)$")
# The column last_key() reports for each kind family (depth: the last applied update id).
_RESUME_COLUMN = {"agg_trades": "id", "trades": "id", "book_ticker": "update_id", "depth": "final_update_id",
                  "mark_price": "ts_event", "funding": "ts_event"}

_LOWER_RE = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")
_SYMBOL_RE = re.compile(r"^[A-Z0-9][A-Z0-9._-]{0,63}$")
_DATE_DIR_RE = re.compile(r"^date=(\d{4}-\d{2}-\d{2})$")
_PART_RE = re.compile(r"^part-(\d+)\.parquet$")
_REPORT_RE = re.compile(r"^report-(\d+)\.json$")
_EPOCH = _dt.date(1970, 1, 1)


class SyntheticMixError(DataError):
    """A write would mix synthetic and real rows in one dataset."""


def valid_kinds() -> list[str]:
    """Kind names the catalog accepts (klines take any `klines_<n><s|m|h|d|w>`)."""
    return sorted(_FIXED_KINDS) + ["klines_<n><s|m|h|d|w> (e.g. klines_1m, klines_1h)"]


def _kind_spec(kind: str) -> tuple[dict[str, pl.DataType], tuple[str, ...] | None, str]:
    if isinstance(kind, str):
        if kind in _FIXED_KINDS:
            return _FIXED_KINDS[kind]
        if _KLINES_RE.match(kind):
            return KLINES_SCHEMA, ("open_time",), "open_time"
    raise ConfigError(f"unknown data kind {kind!r}; valid kinds: {', '.join(valid_kinds())}")


def schema_for_kind(kind: str) -> dict[str, pl.DataType]:
    """Column names and dtypes stored for `kind` (ConfigError listing valid kinds if unknown)."""
    return dict(_kind_spec(kind)[0])


def key_for_kind(kind: str) -> list[str]:
    """Columns that identify a row of `kind` (the whole row for depth)."""
    schema, key, _ = _kind_spec(kind)
    return list(key) if key is not None else list(schema)


def time_column_for_kind(kind: str) -> str:
    """Column whose UTC date decides the partition (ts_event, or open_time for klines)."""
    return _kind_spec(kind)[2]


def _resume_column(kind: str) -> str:
    return "open_time" if kind.startswith("klines_") else _RESUME_COLUMN[kind]


@dataclass(frozen=True)
class DatasetKey:
    """One dataset: an exchange, a market segment, a symbol and a data kind."""

    exchange: str
    market: str
    symbol: str
    kind: str

    def __post_init__(self) -> None:
        for name, regex, hint in (("exchange", _LOWER_RE, "lower-case"), ("market", _LOWER_RE, "lower-case")):
            value = getattr(self, name)
            if not isinstance(value, str) or not regex.match(value):
                raise ConfigError(f"invalid {name} {value!r}: expected {hint} letters, digits, '_' or '-' (<= 64)")
        if not isinstance(self.symbol, str) or not _SYMBOL_RE.match(self.symbol):
            raise ConfigError(
                f"invalid symbol {self.symbol!r}: expected upper-case letters, digits, '.', '_' or '-' (<= 64), "
                "starting with a letter or digit"
            )
        _kind_spec(self.kind)

    @property
    def relpath(self) -> Path:
        return Path(f"exchange={self.exchange}", f"market={self.market}", f"symbol={self.symbol}", f"kind={self.kind}")


@dataclass
class WriteResult:
    """Outcome of `Catalog.write`: rows_in = rows_added + duplicates + conflicts.

    `partitions` lists the partition files rewritten (relative to the root); a write that adds
    nothing rewrites nothing.
    """

    rows_in: int
    rows_added: int
    duplicates: int
    conflicts: int
    partitions: list[str] = field(default_factory=list)


def _date_of_day(day: int) -> str:
    return (_EPOCH + _dt.timedelta(days=int(day))).isoformat()


def _day_of_date(text: str) -> int:
    return (_dt.date.fromisoformat(text) - _EPOCH).days


def _fsync_dir(path: Path) -> None:
    with contextlib.suppress(OSError):  # not supported everywhere (e.g. Windows)
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _atomic_write_bytes(path: Path, write: Any) -> None:
    """Write through `write(tmp_path)` then atomically rename onto `path`."""
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}-{uuid.uuid4().hex}")
    try:
        write(tmp)
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
    _fsync_dir(path.parent)


def _write_parquet(df: pl.DataFrame, path: Path, metadata: dict[str, str]) -> None:
    table = df.to_arrow()
    table = table.replace_schema_metadata({**(table.schema.metadata or {}), **metadata})
    _atomic_write_bytes(path, lambda tmp: pq.write_table(table, tmp, compression="zstd"))


def _file_meta(path: Path) -> dict[str, str]:
    raw = pq.read_schema(path).metadata or {}
    return {k.decode(): v.decode() for k, v in raw.items() if k.startswith(b"flowtrader.")}


def _provenance_list(meta: dict[str, str]) -> list[dict[str, Any]]:
    return json.loads(meta.get("flowtrader.provenance", "[]"))


class Catalog:
    """Partitioned Parquet store of market data under one root folder (see module docstring)."""

    def __init__(self, root: str | os.PathLike):
        self.root = Path(root)

    # -- paths -------------------------------------------------------------------------------
    def _key(self, exchange: str, market: str, symbol: str, kind: str) -> DatasetKey:
        return DatasetKey(exchange, market, symbol, kind)

    def _dir(self, key: DatasetKey) -> Path:
        return self.root / key.relpath

    def _partitions(self, key: DatasetKey) -> list[tuple[int, Path]]:
        """(day, file) of every stored partition, in date order."""
        base = self._dir(key)
        out = []
        try:
            entries = list(os.scandir(base))
        except FileNotFoundError:
            return []
        for e in entries:
            m = _DATE_DIR_RE.match(e.name)
            if m and e.is_dir():
                f = Path(e.path) / "data.parquet"
                if f.is_file():
                    out.append((_day_of_date(m.group(1)), f))
        out.sort()
        return out

    @contextlib.contextmanager
    def _locked(self, key: DatasetKey) -> Iterator[None]:
        base = self._dir(key)
        base.mkdir(parents=True, exist_ok=True)
        with open(base / ".lock", "a+") as fh:
            if fcntl is not None:
                fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
            try:
                yield
            finally:
                if fcntl is not None:
                    fcntl.flock(fh.fileno(), fcntl.LOCK_UN)

    # -- dataset sidecar ---------------------------------------------------------------------
    def _read_sidecar(self, key: DatasetKey) -> dict[str, Any] | None:
        path = self._dir(key) / "_dataset.json"
        try:
            return json.loads(path.read_text())
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as exc:
            raise DataError(f"unreadable dataset sidecar: {exc}", source=str(path)) from None

    def _stored_synthetic(self, key: DatasetKey) -> bool | None:
        """The dataset's synthetic flag, checked against every partition's metadata; None if empty."""
        side = self._read_sidecar(key)
        flags = {}
        for _, f in self._partitions(key):
            value = _file_meta(f).get("flowtrader.synthetic")
            if value not in ("true", "false"):
                raise DataError("partition has no flowtrader.synthetic metadata", source=str(f))
            flags[str(f)] = value == "true"
        if side is not None:
            if side.get("schema_version") != SCHEMA_VERSION:
                raise SchemaError(
                    f"dataset schema version {side.get('schema_version')!r}, this code reads {SCHEMA_VERSION}",
                    source=str(self._dir(key) / "_dataset.json"),
                )
            expected = bool(side["synthetic"])
        elif flags:
            expected = next(iter(flags.values()))
        else:
            return None
        wrong = [f for f, v in flags.items() if v != expected]
        if wrong:
            raise SyntheticMixError(
                f"partitions disagree with the dataset's synthetic={expected}: {wrong[:5]}", source=str(self._dir(key))
            )
        return expected

    def is_synthetic(self, *, exchange: str, market: str, symbol: str, kind: str) -> bool:
        """Whether the dataset holds synthetic data (DataError if it does not exist)."""
        key = self._key(exchange, market, symbol, kind)
        flag = self._stored_synthetic(key)
        if flag is None:
            raise DataError("no such dataset", source=str(self._dir(key)))
        return flag

    def provenance(self, *, exchange: str, market: str, symbol: str, kind: str) -> list[dict[str, Any]]:
        """Distinct provenance records of every write into the dataset (from the sidecar)."""
        side = self._read_sidecar(self._key(exchange, market, symbol, kind))
        return list(side["provenance"]) if side else []

    # -- write -------------------------------------------------------------------------------
    def write(
        self,
        df: pl.DataFrame,
        *,
        exchange: str,
        market: str,
        symbol: str,
        kind: str,
        synthetic: bool = False,
        provenance: dict | None = None,
    ) -> WriteResult:
        """Merge `df` into the dataset's date partitions (idempotent; see module docstring).

        `synthetic=True` requires a provenance naming its `generator` (and ideally `seed`);
        it is stored in every touched partition's Parquet metadata and in the sidecar.
        """
        key = self._key(exchange, market, symbol, kind)
        schema, key_cols, time_col = _kind_spec(kind)
        keys = list(key_cols) if key_cols is not None else list(schema)
        where = str(key.relpath)
        df = strict_conform(df, schema, where)
        if not isinstance(synthetic, bool):
            raise ConfigError(f"synthetic must be a bool, got {synthetic!r}")
        if synthetic and not (provenance and provenance.get("generator")):
            raise ConfigError("synthetic data needs provenance with at least a 'generator' (and its 'seed')")
        prov = dict(provenance or {})
        try:
            prov_json = json.dumps(prov, sort_keys=True)
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"provenance must be JSON-serialisable: {exc}") from None
        null_keys = [c for c in dict.fromkeys([time_col, *keys]) if df.get_column(c).null_count()]
        if key_cols is not None and null_keys:
            raise DataError(f"null values in key/time columns {null_keys}", source=where)
        if key_cols is None and time_col in null_keys:
            raise DataError(f"null values in time column {time_col!r}", source=where)
        result = WriteResult(rows_in=df.height, rows_added=0, duplicates=0, conflicts=0)
        if df.height == 0:
            return result

        with self._locked(key):
            side = self._read_sidecar(key)
            if side is not None and side.get("schema_version") != SCHEMA_VERSION:
                raise SchemaError(
                    f"dataset schema version {side.get('schema_version')!r}, this code writes {SCHEMA_VERSION}",
                    source=where,
                )
            # The sidecar decides (cheap); each touched partition's own flag is checked on merge.
            stored = bool(side["synthetic"]) if side is not None else self._stored_synthetic(key)
            if stored is not None and stored != synthetic:
                what = "synthetic" if synthetic else "real"
                raise SyntheticMixError(
                    f"refusing to write {what} rows into a dataset holding {'synthetic' if stored else 'real'} data",
                    source=where,
                )
            days = df.get_column(time_col) // NS_PER_DAY
            base = self._dir(key)
            for (day,), part in sorted(df.with_columns(days.alias("__day")).partition_by("__day", as_dict=True,
                                                                                      maintain_order=True).items()):
                part = part.drop("__day")
                pdir = base / f"date={_date_of_day(day)}"
                path = pdir / "data.parquet"
                added, dups, conflicts, merged, old_prov = self._merge_partition(path, part, keys, synthetic)
                result.duplicates += dups
                result.conflicts += conflicts
                result.rows_added += added
                if added == 0:
                    continue
                pdir.mkdir(parents=True, exist_ok=True)
                for stale in pdir.glob(".data.parquet.tmp-*"):  # leftovers of a crashed writer
                    with contextlib.suppress(OSError):
                        stale.unlink()
                provs = old_prov + ([prov] if prov not in old_prov else [])
                meta = {
                    "flowtrader.synthetic": "true" if synthetic else "false",
                    "flowtrader.schema_version": str(SCHEMA_VERSION),
                    "flowtrader.kind": kind,
                    "flowtrader.provenance": json.dumps(provs, sort_keys=True),
                }
                if len(provs) == 1:
                    meta.update({f"flowtrader.{k}": json.dumps(v) if not isinstance(v, str) else v
                                 for k, v in provs[0].items() if k not in ("synthetic", "provenance")})
                _write_parquet(merged, path, meta)
                result.partitions.append(str(path.relative_to(self.root)))
            self._update_sidecar(key, synthetic, prov, prov_json)
        return result

    def _merge_partition(
        self, path: Path, new: pl.DataFrame, keys: list[str], synthetic: bool
    ) -> tuple[int, int, int, pl.DataFrame, list[dict[str, Any]]]:
        """Merge `new` into the stored partition: (added, duplicates, conflicts, merged frame, provenance)."""
        n = new.height
        uniq = new.unique(maintain_order=True)  # identical rows (nulls and NaNs compare equal)
        dups = n - uniq.height
        first = uniq.unique(subset=keys, keep="first", maintain_order=True)
        conflicts = uniq.height - first.height  # same key, other content, within the batch: first wins
        if not path.exists():
            return first.height, dups, conflicts, first.sort(keys, maintain_order=True), []
        meta = _file_meta(path)
        if meta.get("flowtrader.synthetic") != ("true" if synthetic else "false"):
            raise SyntheticMixError(
                f"stored partition has flowtrader.synthetic={meta.get('flowtrader.synthetic')!r}, "
                f"refusing to merge synthetic={synthetic} rows",
                source=str(path),
            )
        old = pl.read_parquet(path, hive_partitioning=False)
        old_prov = _provenance_list(meta)
        if len(keys) == 1 and first.get_column(keys[0]).min() > old.get_column(keys[0]).max():
            fresh = first  # the common append: nothing to compare
        else:
            cols = list(new.columns)
            same = first.join(old, on=cols, how="semi", nulls_equal=True).height
            rest = first.join(old, on=cols, how="anti", nulls_equal=True)
            fresh = rest.join(old.select(keys), on=keys, how="anti", nulls_equal=True)
            dups += same
            conflicts += rest.height - fresh.height
        merged = pl.concat([old, fresh]).sort(keys, maintain_order=True) if fresh.height else old
        return fresh.height, dups, conflicts, merged, old_prov

    def _update_sidecar(self, key: DatasetKey, synthetic: bool, prov: dict[str, Any], prov_json: str) -> None:
        side = self._read_sidecar(key)
        if side is not None and prov in side["provenance"]:
            return
        if side is None:
            side = {"schema_version": SCHEMA_VERSION, "kind": key.kind, "synthetic": synthetic, "provenance": []}
        side["provenance"].append(json.loads(prov_json))
        text = json.dumps(side, indent=2, sort_keys=True)
        path = self._dir(key) / "_dataset.json"
        _atomic_write_bytes(path, lambda tmp: Path(tmp).write_text(text))

    # -- read --------------------------------------------------------------------------------
    def _selected_files(self, key: DatasetKey, start: int | None, end: int | None) -> list[Path]:
        lo = None if start is None else start // NS_PER_DAY
        hi = None if end is None else (end - 1) // NS_PER_DAY  # last day touching [start, end)
        return [f for day, f in self._partitions(key) if (lo is None or day >= lo) and (hi is None or day <= hi)]

    def scan(
        self, *, exchange: str, market: str, symbol: str, kind: str, start: int | None = None, end: int | None = None
    ) -> pl.LazyFrame:
        """Lazy frame of rows with start <= time < end (None = unbounded), sorted by the kind's key.

        Only the date partitions intersecting the range are opened (pruned by directory name).
        """
        key = self._key(exchange, market, symbol, kind)
        schema, _, time_col = _kind_spec(kind)
        if start is not None and end is not None and end <= start:
            raise ConfigError(f"empty time range: end {end} <= start {start}")
        files = self._selected_files(key, start, end)
        if not files:
            return pl.LazyFrame(schema=schema)
        lf = pl.scan_parquet([str(f) for f in files], hive_partitioning=False, schema=schema)
        if start is not None:
            lf = lf.filter(pl.col(time_col) >= start)
        if end is not None:
            lf = lf.filter(pl.col(time_col) < end)
        return lf.sort(key_for_kind(kind), maintain_order=True)

    def read(self, **kwargs: Any) -> pl.DataFrame:
        """`scan(...)` collected."""
        return self.scan(**kwargs).collect()

    def _column_stat(self, path: Path, column: str, which: str) -> int:
        md = pq.ParquetFile(path).metadata
        idx = md.schema.names.index(column)
        values = []
        for g in range(md.num_row_groups):
            st = md.row_group(g).column(idx).statistics
            if st is None or not st.has_min_max:
                col = pl.read_parquet(path, columns=[column], hive_partitioning=False).get_column(column)
                return int(col.max() if which == "max" else col.min())
            values.append(st.max if which == "max" else st.min)
        return int(max(values) if which == "max" else min(values))

    def last_key(self, *, exchange: str, market: str, symbol: str, kind: str) -> int | None:
        """Largest stored id (trades kinds, update id for book_ticker/depth) or time (klines:
        open_time; funding / mark_price: ts_event); None for an empty dataset.

        Reads Parquet footer statistics only: the last partition for time-keyed kinds (the time
        column decides the partition), every partition's footer for id-keyed kinds (an id's date
        is not implied by the id).
        """
        key = self._key(exchange, market, symbol, kind)
        column = _resume_column(kind)
        parts = self._partitions(key)
        if not parts:
            return None
        if column == time_column_for_kind(kind):
            return self._column_stat(parts[-1][1], column, "max")
        return max(self._column_stat(f, column, "max") for _, f in parts)

    def time_bounds(self, *, exchange: str, market: str, symbol: str, kind: str) -> tuple[int, int] | None:
        """(earliest, latest) stored time-column value, from the first and last partitions' footers."""
        key = self._key(exchange, market, symbol, kind)
        col = time_column_for_kind(kind)
        parts = self._partitions(key)
        if not parts:
            return None
        return self._column_stat(parts[0][1], col, "min"), self._column_stat(parts[-1][1], col, "max")

    def datasets(self) -> list[DatasetKey]:
        """Every dataset with at least one stored partition, sorted."""
        out = []
        for d in sorted(self.root.glob("exchange=*/market=*/symbol=*/kind=*")):
            parts = [p.name.split("=", 1)[1] for p in (d.parent.parent.parent, d.parent.parent, d.parent, d)]
            try:
                key = DatasetKey(*parts)
            except ConfigError:
                continue  # not written by this catalog
            if self._partitions(key):
                out.append(key)
        return out

    # -- quarantine and reports --------------------------------------------------------------
    def write_quarantine(self, df: pl.DataFrame, *, exchange: str, market: str, symbol: str, kind: str) -> int:
        """Append quarantined rows (kind's columns + row_number + reason); returns rows written.

        One new `part-<n>.parquet` per date touched; rows whose time is null go to `date=unknown`.
        """
        key = self._key(exchange, market, symbol, kind)
        schema = {**schema_for_kind(kind), **QUARANTINE_EXTRA}
        df = strict_conform(df, schema, f"_quarantine/{key.relpath}")
        if df.height == 0:
            return 0
        time_col = time_column_for_kind(kind)
        base = self.root / "_quarantine" / key.relpath
        with self._locked(key):
            day = df.get_column(time_col) // NS_PER_DAY
            for (d,), part in df.with_columns(day.alias("__day")).partition_by(
                "__day", as_dict=True, maintain_order=True
            ).items():
                pdir = base / ("date=unknown" if d is None else f"date={_date_of_day(d)}")
                pdir.mkdir(parents=True, exist_ok=True)
                nums = [int(m.group(1)) for p in pdir.iterdir() if (m := _PART_RE.match(p.name))]
                path = pdir / f"part-{(max(nums) + 1) if nums else 0:06d}.parquet"
                _write_parquet(part.drop("__day"), path, {"flowtrader.kind": kind, "flowtrader.quarantine": "true"})
        return df.height

    def scan_quarantine(self, *, exchange: str, market: str, symbol: str, kind: str) -> pl.LazyFrame:
        """Every quarantined row of the dataset (date order, then append order)."""
        key = self._key(exchange, market, symbol, kind)
        schema = {**schema_for_kind(kind), **QUARANTINE_EXTRA}
        base = self.root / "_quarantine" / key.relpath
        files = sorted(base.glob("date=*/part-*.parquet")) if base.exists() else []
        if not files:
            return pl.LazyFrame(schema=schema)
        return pl.scan_parquet([str(f) for f in files], hive_partitioning=False, schema=schema)

    def write_report(self, report: Any, *, exchange: str, market: str, symbol: str, kind: str) -> Path:
        """Store a quality report (anything with `to_json()`, or a dict) as the next `report-<n>.json`."""
        key = self._key(exchange, market, symbol, kind)
        if hasattr(report, "to_json"):
            text = report.to_json()
        elif isinstance(report, dict):
            text = json.dumps(report, indent=2, sort_keys=True)
        else:
            raise ConfigError(f"cannot store a report of type {type(report).__name__}: expected to_json() or a dict")
        base = self.root / "_reports" / key.relpath
        base.mkdir(parents=True, exist_ok=True)
        with self._locked(key):
            nums = [int(m.group(1)) for p in base.iterdir() if (m := _REPORT_RE.match(p.name))]
            path = base / f"report-{(max(nums) + 1) if nums else 0:06d}.json"
            _atomic_write_bytes(path, lambda tmp: Path(tmp).write_text(text))
        return path
