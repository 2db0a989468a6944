"""Tell a market-data file's format from its content (not its name), and read it with the right reader.

The decision uses the magic bytes (parquet, zip, gzip) and then the first line: a known header
names the layout; a header-less line is classified by its field count and which fields are
integers, decimals, booleans or date-times (e.g. a 7-field line with booleans in fields 6 and 7 is
a spot trades file, one with a boolean only in field 7 a USD-M aggTrades file).
"""

from __future__ import annotations

import re
import zipfile
import zlib
from pathlib import Path

import polars as pl

from core.errors import DataError
from market.ingest.binance_files import (
    AGG_TRADES_LAYOUTS,
    FUNDING_LAYOUTS,
    KLINES_LAYOUTS,
    OHLCV_LAYOUTS,
    TRADES_LAYOUTS,
    read_binance_agg_trades,
    read_binance_klines,
    read_binance_trades,
    read_funding_csv,
    read_nautilus_trades_parquet,
    read_ohlcv_csv,
)
from market.ingest.parsed import OnError, ParsedData, check_on_error, looks_like_header
from market.ingest.tardis import TARDIS_TRADES_LAYOUTS, read_tardis_trades
from market.ingest.ws_capture import WsCapture, read_ws_capture

FORMATS = ("binance_agg_trades", "binance_trades", "binance_klines", "ohlcv_csv", "funding_csv", "tardis_trades",
           "nautilus_trades_parquet", "ws_capture")
NAUTILUS_COLUMNS = ("timestamp", "trade_id", "price", "quantity", "buyer_maker")

_HEADERS: dict[tuple[str, ...], str] = {}
for _fmt, _layouts in (("binance_agg_trades", AGG_TRADES_LAYOUTS), ("binance_trades", TRADES_LAYOUTS),
                       ("binance_klines", KLINES_LAYOUTS), ("ohlcv_csv", OHLCV_LAYOUTS),
                       ("funding_csv", FUNDING_LAYOUTS), ("tardis_trades", TARDIS_TRADES_LAYOUTS)):
    for _names in _layouts.values():
        _HEADERS[tuple(_names)] = _fmt

_WS_LINE = re.compile(r"^[0-9]+ \{")
_INT = re.compile(r"^-?[0-9]+$")
_DEC = re.compile(r"^-?[0-9]+(\.[0-9]*)?([eE][-+]?[0-9]+)?$")
_BOOL = re.compile(r"^(True|False|true|false)$")
_DATETIME = re.compile(r"^[0-9]{4}-[0-9]{2}-[0-9]{2}"
                       r"([ T][0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]+)?(Z|[+-][0-9]{2}:[0-9]{2})?)?$")
_HEAD_BYTES = 65536


def detect_format(path: str | Path) -> str:
    """One of `FORMATS`; an unknown or unreadable file raises `DataError` naming it and what was seen."""
    p = Path(path)
    source = str(p)
    try:
        with p.open("rb") as fh:
            head = fh.read(_HEAD_BYTES)
    except OSError as exc:
        raise DataError(f"cannot read file: {exc.strerror}", source=source) from None
    if not head.strip():
        raise DataError("file is empty", source=source)
    if head.startswith(b"PAR1"):
        return _parquet_format(p)
    if head.startswith(b"PK\x03\x04") or head.startswith(b"PK\x05\x06"):
        head = _zip_head(p)
    elif head.startswith(b"\x1f\x8b"):
        try:
            head = zlib.decompressobj(wbits=31).decompress(head, _HEAD_BYTES)
        except zlib.error as exc:
            raise DataError(f"corrupt gzip data: {exc}", source=source) from None
        if not _WS_LINE.match(head.decode("utf-8", errors="replace")):
            raise DataError(f"gzip file whose first line is not '<receive ts> <json>': {_first_line(head)!r}",
                            source=source)
        return "ws_capture"
    return _text_format(head, source)


def read_any(path: str | Path, *, on_error: OnError = "raise") -> ParsedData | WsCapture:
    """Read any supported file with the reader `detect_format` picks (OHLCV: interval inferred)."""
    check_on_error(on_error)
    fmt = detect_format(path)
    if fmt == "ws_capture":
        return read_ws_capture(path, on_error=on_error)
    reader = {
        "binance_agg_trades": read_binance_agg_trades,
        "binance_trades": read_binance_trades,
        "binance_klines": read_binance_klines,
        "ohlcv_csv": read_ohlcv_csv,
        "funding_csv": read_funding_csv,
        "tardis_trades": read_tardis_trades,
        "nautilus_trades_parquet": read_nautilus_trades_parquet,
    }[fmt]
    return reader(path, on_error=on_error)


def _parquet_format(p: Path) -> str:
    try:
        cols = tuple(pl.read_parquet_schema(p))
    except (OSError, pl.exceptions.PolarsError) as exc:
        raise DataError(f"unreadable parquet file: {exc}", source=str(p)) from None
    if set(NAUTILUS_COLUMNS) <= set(cols):
        return "nautilus_trades_parquet"
    raise DataError(f"parquet file with unknown columns {list(cols)}; expected {list(NAUTILUS_COLUMNS)}",
                    source=str(p))


def _zip_head(p: Path) -> bytes:
    try:
        with zipfile.ZipFile(p) as zf:
            members = [i for i in zf.infolist() if not i.is_dir()]
            if len(members) != 1:
                raise DataError(f"zip must hold exactly one file, found {len(members)}", source=str(p))
            with zf.open(members[0]) as fh:
                return fh.read(_HEAD_BYTES)
    except DataError:
        raise
    except (zipfile.BadZipFile, zlib.error, EOFError, OSError, NotImplementedError, ValueError) as exc:
        raise DataError(f"corrupt or truncated zip: {exc}", source=str(p)) from None


def _first_line(head: bytes) -> str:
    if head.startswith(b"\xef\xbb\xbf"):
        head = head[3:]
    return head.split(b"\n", 1)[0].rstrip(b"\r").decode("utf-8", errors="replace")[:200]


def _text_format(head: bytes, source: str) -> str:
    line = _first_line(head)
    if _WS_LINE.match(line):
        return "ws_capture"
    fields = line.split(",")
    if looks_like_header(fields):
        fmt = _HEADERS.get(tuple(f.strip().lower() for f in fields))
        if fmt is None:
            raise DataError(f"unrecognised header {line!r}", source=source, line=1)
        return fmt
    fmt = _classify_row(fields)
    if fmt is None:
        raise DataError(f"unrecognised content: {len(fields)} fields, first line {line!r}", source=source, line=1)
    return fmt


def _classify_row(f: list[str]) -> str | None:
    def kinds(*patterns: re.Pattern) -> bool:
        return len(f) == len(patterns) and all(p.match(v) for p, v in zip(patterns, f))

    i, d, b = _INT, _DEC, _BOOL
    if kinds(i, d, d, d, d, d, i, d, i, d, d, _DEC):
        return "binance_klines"
    if kinds(i, d, d, i, i, i, b, b) or kinds(i, d, d, i, i, i, b):
        return "binance_agg_trades"
    if kinds(i, d, d, d, i, b, b) or kinds(i, d, d, d, i, b):
        return "binance_trades"
    if len(f) == 8 and f[5] in ("buy", "sell", "unknown") and _INT.match(f[2]) and _INT.match(f[3]):
        return "tardis_trades"
    ts = re.compile(f"{_INT.pattern}|{_DATETIME.pattern}")
    if kinds(ts, d, d, d, d, d):
        return "ohlcv_csv"
    if kinds(ts, d):
        return "funding_csv"
    return None
