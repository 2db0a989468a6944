"""`ParsedData`, the result of every file reader, and the format-independent parsing machinery.

Malformed-input policy (shared by every reader in `market.ingest`):

- *Structural* problems — a line that cannot be parsed, a wrong number of fields, a non-numeric
  number, a bad boolean, a timestamp of an unknown or inconsistent unit — make the reader raise
  `DataError(source=<file>, line=<1-based physical line>)` for the first such line
  (``on_error="raise"``, the default). With ``on_error="quarantine"`` the reader returns the good
  rows and a ``rejected`` frame (``line``, ``raw``, ``reason``), one row per bad line, and the
  counts reconcile: data lines in the file = ``frame.height + rejected.height``.
- *File-level* problems — unreadable or empty file, corrupt or truncated zip, a zip with zero or
  several members, a header that names unexpected columns — always raise: there is no row to
  quarantine.
- *Value* problems that parse fine (NaN, negative or zero quantities, duplicates, unsorted rows)
  are not the reader's business: they pass through unchanged to the quality layer.

Nothing is dropped or altered silently.
"""

from __future__ import annotations

import io
import zipfile
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import polars as pl

from core.errors import DataError, SchemaError
from core.time import NS_PER_MS, NS_PER_S, NS_PER_US
from market.schema import conform

OnError = Literal["raise", "quarantine"]

REJECTED_SCHEMA: dict[str, pl.DataType] = {"line": pl.Int64, "raw": pl.Utf8, "reason": pl.Utf8}
LINE = "__line"  # internal column: 1-based physical line (or row) number of each parsed row

_INT64_MAX = 2**63 - 1
_UNIT_NAMES = {1: "ns", NS_PER_US: "µs", NS_PER_MS: "ms", NS_PER_S: "s"}
_TRUE = ("true", "True")
_FALSE = ("false", "False")


@dataclass(frozen=True)
class ParsedData:
    """One file read into a canonical frame.

    `frame` has exactly the columns and dtypes of the reader's schema (see `market.schema`);
    `rejected` holds the malformed lines (``line`` Int64 1-based, ``raw`` Utf8, ``reason`` Utf8),
    empty unless the reader ran with ``on_error="quarantine"``; `source` names the file.
    """

    frame: pl.DataFrame
    rejected: pl.DataFrame
    source: str

    @property
    def rows_in(self) -> int:
        """Data rows (or lines) the file held: rows returned plus rows rejected."""
        return self.frame.height + self.rejected.height


def check_on_error(on_error: str) -> None:
    if on_error not in ("raise", "quarantine"):
        raise ValueError(f"on_error must be 'raise' or 'quarantine', got {on_error!r}")


def empty_rejected() -> pl.DataFrame:
    return pl.DataFrame(schema=REJECTED_SCHEMA)


def empty_reasons() -> pl.DataFrame:
    return pl.DataFrame(schema={"line": pl.Int64, "reason": pl.Utf8})


# ---------------------------------------------------------------------------------------------
# reading bytes


def read_file_bytes(path: str | Path) -> bytes:
    """The content of a plain file, or of the single member of a .zip file (detected by magic bytes).

    Unreadable files, corrupt or truncated zips and zips with zero or several members raise
    `DataError`; an empty file (or empty zip member) too.
    """
    p = Path(path)
    source = str(p)
    try:
        with p.open("rb") as fh:
            head = fh.read(4)
    except OSError as exc:
        raise DataError(f"cannot read file: {exc.strerror}", source=source) from None
    if head == b"PK\x03\x04" or head == b"PK\x05\x06":
        data = _read_single_zip_member(p)
    else:
        try:
            data = p.read_bytes()
        except OSError as exc:
            raise DataError(f"cannot read file: {exc.strerror}", source=source) from None
    if not data.strip():
        raise DataError("file is empty (no header, no data)", source=source)
    return data


def _read_single_zip_member(p: Path) -> bytes:
    source = str(p)
    try:
        with zipfile.ZipFile(p) as zf:
            members = [i for i in zf.infolist() if not i.is_dir()]
            if len(members) != 1:
                names = [m.filename for m in members][:5]
                raise DataError(f"zip must hold exactly one file, found {len(members)} {names}", source=source)
            return zf.read(members[0])  # checks the CRC
    except DataError:
        raise
    except (zipfile.BadZipFile, zlib.error, EOFError, NotImplementedError, ValueError) as exc:
        raise DataError(f"corrupt or truncated zip: {exc}", source=source) from None
    except OSError as exc:
        raise DataError(f"cannot read zip: {exc}", source=source) from None


# ---------------------------------------------------------------------------------------------
# delimited text → frame of strings with line numbers


def split_first_line(data: bytes) -> tuple[str, bytes]:
    """(first line decoded, the rest). A UTF-8 byte-order mark is not data and is skipped."""
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    first, _, rest = data.partition(b"\n")
    return first.rstrip(b"\r").decode("utf-8", errors="replace"), rest


def looks_like_header(fields: Sequence[str]) -> bool:
    """A header is a line whose every field is a name (letters, digits, '_' or ' ', starting with a letter)."""
    return all(f.strip() and f.strip()[0].isalpha() and f.replace("_", "").replace(" ", "").isalnum()
               for f in fields)


def check_header(fields: Sequence[str], layouts: dict[int, Sequence[str]], source: str) -> int:
    """Validate a header against the known layouts (keyed by field count); return the field count."""
    got = [f.strip().lower() for f in fields]
    want = layouts.get(len(got))
    if want is None or got != [w.lower() for w in want]:
        expected = " or ".join(",".join(w) for w in layouts.values())
        raise SchemaError(f"unexpected header {','.join(fields)!r}; expected {expected}", source=source, line=1)
    return len(got)


@dataclass(frozen=True)
class DelimitedText:
    """A delimited file split into Utf8 columns: `rows` (with the line column), `rejects`, raw-line lookup."""

    rows: pl.DataFrame
    rejects: pl.DataFrame
    names: tuple[str, ...]
    raw_of: Callable[[list[int]], list[str]]
    source: str


def read_delimited(path: str | Path, layouts: dict[int, Sequence[str]]) -> DelimitedText:
    """Read a comma-separated file (plain or single-member zip), with or without a header row.

    `layouts` maps a field count to the column names of that layout (e.g. aggTrades: 7 fields on
    USD-M, 8 on spot). A header, when present, must name one layout exactly (case-insensitive);
    without one, the layout is the field count of the first line that matches a layout.
    """
    source = str(path)
    data = read_file_bytes(path)
    first, rest = split_first_line(data)
    fields = first.split(",")
    if looks_like_header(fields):
        n = check_header(fields, layouts, source)
        body, first_no = rest, 2
    else:
        body = data[3:] if data.startswith(b"\xef\xbb\xbf") else data
        first_no = 1
        n = _layout_from_data(body, layouts)
    names = tuple(layouts[n])
    rows, rejects = split_delimited(body, names, first_no)
    return DelimitedText(rows, rejects, names, LineIndex(body, first_no).raw, source)


def _layout_from_data(body: bytes, layouts: dict[int, Sequence[str]]) -> int:
    for raw in io.BytesIO(body):
        k = raw.count(b",") + 1
        if k in layouts:
            return k
    return min(layouts)  # no line fits any layout: every line is rejected with its field count


class LineIndex:
    """Raw text of physical lines, split lazily: only needed when some line is rejected."""

    def __init__(self, body: bytes, first_line_number: int):
        self._body = body
        self._first = first_line_number
        self._lines: list[bytes] | None = None

    def raw(self, line_numbers: Sequence[int]) -> list[str]:
        if self._lines is None:
            self._lines = self._body.split(b"\n")
        out = []
        for n in line_numbers:
            i = n - self._first
            text = self._lines[i] if 0 <= i < len(self._lines) else b""
            out.append(text.rstrip(b"\r").decode("utf-8", errors="replace"))
        return out


def split_delimited(body: bytes, names: Sequence[str], first_line_number: int) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Split comma-separated `body` into one Utf8 column per name, plus the line number column.

    Returns (rows, rejects): rows whose field count differs from len(names), or that are not
    valid UTF-8, are rejected with their line number. Empty fields come back null. No quoting:
    Binance and Tardis files never quote, so a quote character is data (and fails to parse).
    """
    n = len(names)
    n_lines = body.count(b"\n") + (0 if body.endswith(b"\n") or not body else 1)
    if n_lines == 0:
        return pl.DataFrame(schema={LINE: pl.Int64} | {c: pl.Utf8 for c in names}), empty_reasons()
    try:
        df = pl.read_csv(body, has_header=False, schema={c: pl.Utf8 for c in names}, quote_char=None,
                         truncate_ragged_lines=False, raise_if_empty=False)
        fast = df.height == n_lines
    except pl.exceptions.PolarsError:
        fast = False
    if fast:
        # polars fills missing trailing fields with null: such rows are re-examined below by the
        # caller's null checks; a short row is told apart from an empty field by counting commas.
        df = df.with_columns(pl.int_range(first_line_number, first_line_number + n_lines, dtype=pl.Int64).alias(LINE))
        null_any = pl.any_horizontal(pl.col(c).is_null() for c in names)
        suspicious = df.filter(null_any)
        if suspicious.height == 0:
            return df.select(LINE, *names), empty_reasons()
        good = df.filter(~null_any)
        lines = LineIndex(body, first_line_number).raw(suspicious[LINE].to_list())
        counts = [t.count(",") + 1 for t in lines]
        short = [i for i, c in enumerate(counts) if c != n]
        keep = [i for i, c in enumerate(counts) if c == n]
        rejects = pl.DataFrame({"line": suspicious[LINE].gather(short),
                                "reason": [_count_reason(counts[i], n) for i in short]},
                               schema={"line": pl.Int64, "reason": pl.Utf8})
        rows = pl.concat([good, suspicious[keep]]).sort(LINE)
        return rows.select(LINE, *names), rejects
    return _split_delimited_slow(body, names, first_line_number)


def _split_delimited_slow(body: bytes, names: Sequence[str], first: int) -> tuple[pl.DataFrame, pl.DataFrame]:
    n = len(names)
    raw_lines = body.split(b"\n")
    if raw_lines and raw_lines[-1] == b"":
        raw_lines.pop()
    decoded: list[str | None] = []
    for b in raw_lines:
        try:
            decoded.append(b.rstrip(b"\r").decode("utf-8"))
        except UnicodeDecodeError:
            decoded.append(None)
    s = pl.DataFrame({"t": decoded}, schema={"t": pl.Utf8}).with_columns(
        pl.int_range(first, first + len(decoded), dtype=pl.Int64).alias(LINE),
        (pl.col("t").str.count_matches(",", literal=True) + 1).alias("k"),
    )
    bad = s.filter(pl.col("t").is_null() | (pl.col("k") != n))
    reasons = [
        "line is not valid UTF-8 text" if t is None else _count_reason(k, n)
        for t, k in zip(bad["t"].to_list(), bad["k"].to_list())
    ]
    rejects = pl.DataFrame({"line": bad[LINE], "reason": reasons}, schema={"line": pl.Int64, "reason": pl.Utf8})
    good = s.filter(pl.col("t").is_not_null() & (pl.col("k") == n))
    fields = good["t"].str.split_exact(",", n - 1).struct.rename_fields(list(names)).struct.unnest()
    rows = pl.concat([good.select(LINE), fields], how="horizontal").with_columns(
        pl.when(pl.col(c) == "").then(None).otherwise(pl.col(c)).alias(c) for c in names
    )
    return rows, rejects


def _count_reason(found: int, expected: int) -> str:
    return f"expected {expected} fields, found {found}"


# ---------------------------------------------------------------------------------------------
# typed casting with precise rejection


ColumnKind = Literal["int", "float", "bool", "str"]


def cast_checked(df: pl.DataFrame, rules: Sequence[tuple[str, ColumnKind, bool]]) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Cast Utf8 columns per `rules` (name, kind, nullable); rows where a value fails are rejected.

    A value fails when it is missing/empty (unless nullable) or does not parse as its kind
    (int: a base-10 int64; float: a decimal number, NaN/inf included — a value problem, not ours;
    bool: True/False/true/false). Returns (typed rows, rejects[line, reason]); the first failing
    column names the reason.
    """
    casts = []
    reason_parts = []
    for name, kind, nullable in rules:
        src = pl.col(name)
        empty = src.is_null() | (src == "")
        if kind == "int":
            parsed, what = src.cast(pl.Int64, strict=False), "an integer"
        elif kind == "float":
            parsed, what = src.cast(pl.Float64, strict=False), "a number"
        elif kind == "bool":
            parsed = pl.when(src.is_in(_TRUE)).then(True).when(src.is_in(_FALSE)).then(False).otherwise(None)
            what = "a boolean (True/False/true/false)"
        else:
            parsed, what = src, "text"
        if nullable:
            parsed = pl.when(empty).then(None).otherwise(parsed)
        casts.append(parsed.alias(name))
        invalid = ~empty & parsed.is_null()
        msg = pl.concat_str(pl.lit(f"{name}: '"), src.str.slice(0, 60), pl.lit(f"' is not {what}"))
        if nullable:
            reason_parts.append(pl.when(invalid).then(msg))
        else:
            reason_parts.append(pl.when(empty).then(pl.lit(f"{name}: empty or missing field")).when(invalid).then(msg))
    reason = pl.coalesce(reason_parts) if reason_parts else pl.lit(None, pl.Utf8)
    out = df.with_columns(*casts, reason.alias("__reason"))
    bad = out.filter(pl.col("__reason").is_not_null())
    rejects = bad.select(pl.col(LINE).alias("line"), pl.col("__reason").alias("reason"))
    return out.filter(pl.col("__reason").is_null()).drop("__reason"), rejects


def epoch_factor_expr(col: str | pl.Expr) -> pl.Expr:
    """Vectorised `core.time.epoch_to_ns_factor`: the ns factor of each epoch value by its magnitude."""
    a = (pl.col(col) if isinstance(col, str) else col).abs()
    return (pl.when(a < 10**11).then(pl.lit(NS_PER_S, pl.Int64))
            .when(a < 10**14).then(pl.lit(NS_PER_MS, pl.Int64))
            .when(a < 10**17).then(pl.lit(NS_PER_US, pl.Int64))
            .otherwise(pl.lit(1, pl.Int64)))


def epochs_to_ns(df: pl.DataFrame, cols: Sequence[str], *, allowed: Sequence[int],
                 what: str = "this file") -> tuple[pl.DataFrame, pl.DataFrame]:
    """Convert int64 epoch columns of unknown unit to ns, the unit judged by magnitude.

    All values of `cols` must share one unit: that of the first row holding a value of an allowed
    unit. Rows with another unit (a file mixing ms and µs) or a value too large for int64 ns are
    rejected, naming the unit found and the unit expected. Nulls pass (nullable columns are checked
    by `cast_checked`), and so does 0, Binance's "not set", which is 0 in every unit.
    """
    if df.height == 0:
        return df, empty_reasons()
    allowed = list(allowed)
    cand = df.select(LINE, pl.coalesce([
        pl.when(epoch_factor_expr(c).is_in(allowed) & (pl.col(c) != 0)).then(epoch_factor_expr(c)) for c in cols
    ]).alias("f")).drop_nulls("f")
    allowed_txt = "/".join(_UNIT_NAMES[a] for a in allowed)
    if cand.height == 0:
        ref, ref_line = None, None
    else:
        ref, ref_line = int(cand["f"][0]), int(cand[LINE][0])
    reason_parts = []
    for c in cols:
        f = epoch_factor_expr(c)
        value = pl.col(c).cast(pl.Utf8)
        if ref is None:
            reason_parts.append(pl.when(pl.col(c) != 0).then(pl.concat_str(
                pl.lit(f"{c}: "), value, pl.lit(f" is not an epoch timestamp in {allowed_txt}"))))
            continue
        unit_name = (pl.when(f == NS_PER_S).then(pl.lit("s")).when(f == NS_PER_MS).then(pl.lit("ms"))
                     .when(f == NS_PER_US).then(pl.lit("µs")).otherwise(pl.lit("ns")))
        reason_parts.append(
            pl.when((f != ref) & (pl.col(c) != 0)).then(pl.concat_str(
                pl.lit(f"{c}: "), value, pl.lit(" looks like "), unit_name,
                pl.lit(f" but {what} uses {_UNIT_NAMES[ref]} (line {ref_line}); mixed time units")))
            .when(pl.col(c).abs() > _INT64_MAX // ref).then(pl.concat_str(
                pl.lit(f"{c}: "), value, pl.lit(" overflows int64 nanoseconds")))
        )
    out = df.with_columns(pl.coalesce(reason_parts).alias("__reason"))
    bad = out.filter(pl.col("__reason").is_not_null())
    rejects = bad.select(pl.col(LINE).alias("line"), pl.col("__reason").alias("reason"))
    good = out.filter(pl.col("__reason").is_null()).drop("__reason")
    if ref is not None and ref != 1:
        good = good.with_columns(pl.col(c) * ref for c in cols)
    return good, rejects


# ---------------------------------------------------------------------------------------------
# assembling the result


def drop_lines(df: pl.DataFrame, rejects: pl.DataFrame) -> pl.DataFrame:
    """Rows of `df` whose line is not rejected (a rejected line loses all its rows)."""
    if rejects.height == 0 or df.height == 0:
        return df
    return df.join(rejects.select(pl.col("line").alias(LINE)).unique(), on=LINE, how="anti")


def merge_rejects(parts: Sequence[pl.DataFrame]) -> pl.DataFrame:
    """One row per rejected line, the earliest stage's reason kept, sorted by line."""
    parts = [p.select(pl.col("line").cast(pl.Int64), pl.col("reason").cast(pl.Utf8)) for p in parts if p.height]
    if not parts:
        return empty_reasons()
    return pl.concat(parts).unique(subset="line", keep="first", maintain_order=True).sort("line")


def finish(text: DelimitedText, frame: pl.DataFrame, stage_rejects: Sequence[pl.DataFrame], schema: dict,
           on_error: OnError) -> ParsedData:
    """Assemble a reader's result: conform `frame` to `schema`, apply the malformed-input policy."""
    rejects = merge_rejects([text.rejects, *stage_rejects])
    rejected = finalize_rejects(rejects, text.raw_of, text.source, on_error)
    return ParsedData(conform(frame.drop(LINE), schema, text.source), rejected, text.source)


def finalize_rejects(rejects: pl.DataFrame, raw_of: Callable[[list[int]], list[str]], source: str,
                     on_error: OnError) -> pl.DataFrame:
    """Raise for the first bad line (``raise``) or return the rejected frame with raw text (``quarantine``)."""
    if rejects.height == 0:
        return empty_rejected()
    if on_error == "raise":
        first = rejects.row(0, named=True)
        raw = raw_of([first["line"]])[0]
        shown = raw if len(raw) <= 120 else raw[:117] + "..."
        raise DataError(f"{first['reason']}: {shown!r}", source=source, line=int(first["line"]))
    lines = rejects["line"].to_list()
    return pl.DataFrame({"line": lines, "raw": raw_of(lines), "reason": rejects["reason"]}, schema=REJECTED_SCHEMA)
