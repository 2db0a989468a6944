"""Perpetual funding: when payments fall due between two bars, how much, and booking to the ledger.

payment = qty · contract_size · mark · rate (quote). Positive = we pay: longs pay shorts when the
rate is positive, shorts pay longs when it is negative. Funding time T is "crossed" by a bar step
(prev_ts, ts] when prev_ts < T ≤ ts: half-open, so each T is paid exactly once over consecutive
bars, and a bar ending exactly at T pays it with the position held during that bar.

Two sources of rates:
- constant: `FundingConfig.rate` every `interval` from `offset` (Binance USD-M: 00:00, 08:00, 16:00 UTC);
- series: (ts, rate) arrays, e.g. the columns of `market.ingest.read_funding_csv(path).frame`
  (`ts_event`, `funding_rate`, optional `mark_price`). execution may not import market, so the
  caller passes arrays; `prepare_series` validates them and snaps the venue's settlement jitter
  (08:00:00.008) to the whole `snap` (default 1 s) so that boundary semantics stay exact.
"""

from __future__ import annotations

import math
from typing import Literal

import numpy as np
from numba import njit
from pydantic import Field, field_validator, model_validator

from core.config import FrozenConfig
from core.errors import DataError, RejectedError
from core.time import NS_PER_HOUR, NS_PER_S, parse_duration
from execution.ledger import S_CONTRACT_SIZE, S_IS_PERP, S_QTY, book_funding_nb

P_INTERVAL_NS = 0
P_OFFSET_NS = 1
P_RATE = 2  # constant rate per interval (fraction)
N_PARAMS = 3


class FundingConfig(FrozenConfig):
    """Funding schedule. `interval`/`offset` accept durations ('8h', '0h' → 0) or int ns."""

    source: Literal["constant", "series"] = "constant"
    rate: float = Field(0.0001, ge=-0.05, le=0.05)  # Binance's base rate 0.01 % per 8 h
    interval: int = 8 * NS_PER_HOUR
    offset: int = 0

    @field_validator("interval", "offset", mode="before")
    @classmethod
    def _duration(cls, v: object) -> int:
        if isinstance(v, str) and v.strip() in ("0", "0h", "0s", "0m", "0ns"):
            return 0
        if isinstance(v, bool):
            raise ValueError("expected a duration, got a boolean")  # noqa: TRY004 (pydantic needs ValueError)
        return parse_duration(v) if isinstance(v, str) else v  # type: ignore[return-value]

    @field_validator("interval")
    @classmethod
    def _interval(cls, v: int) -> int:
        if v < NS_PER_S:
            raise ValueError(f"interval must be >= 1s, got {v} ns")
        return v

    @field_validator("offset")
    @classmethod
    def _offset(cls, v: int) -> int:
        if v < 0:
            raise ValueError(f"offset must be >= 0, got {v} ns")
        return v

    @model_validator(mode="after")
    def _offset_within_interval(self) -> FundingConfig:
        if self.offset >= self.interval:
            raise ValueError(f"offset {self.offset} ns must be < interval {self.interval} ns")
        return self

    def to_params(self) -> np.ndarray:
        """Pack into the float64 vector read by the funding kernels (slots `P_*`; ns exact < 2**53)."""
        p = np.zeros(N_PARAMS, dtype=np.float64)
        p[P_INTERVAL_NS] = float(self.interval)
        p[P_OFFSET_NS] = float(self.offset)
        p[P_RATE] = self.rate
        return p


@njit(cache=True)
def funding_due_nb(prev_ts, ts, params):
    """Grid funding times T = offset + k·interval with prev_ts < T ≤ ts (ns).

    Returns (count, first T or 0 when count = 0); the others are first + i·interval.
    """
    interval = np.int64(params[P_INTERVAL_NS])
    off = np.int64(params[P_OFFSET_NS])
    if ts <= prev_ts:
        return 0, np.int64(0)
    k_prev = (prev_ts - off) // interval
    k_now = (ts - off) // interval
    n = k_now - k_prev
    if n <= 0:
        return 0, np.int64(0)
    return n, off + (k_prev + 1) * interval


@njit(cache=True)
def funding_payment_nb(qty, contract_size, mark, rate):
    """Funding paid (quote, + = we pay) by a position of signed `qty` contracts at `mark`."""
    return qty * contract_size * mark * rate


@njit(cache=True)
def apply_funding_nb(pos, acc, sym, rate, mark):
    """Book one funding event for `sym` at `rate` and `mark`; returns the payment (0 flat or spot)."""
    q = pos[sym, S_QTY]
    if q == 0.0 or pos[sym, S_IS_PERP] == 0.0:
        return 0.0
    pay = funding_payment_nb(q, pos[sym, S_CONTRACT_SIZE], mark, rate)
    book_funding_nb(pos, acc, sym, pay)
    return pay


@njit(cache=True)
def funding_step_constant_nb(params, pos, acc, sym, prev_ts, ts, mark):
    """Per-bar call, constant rate: book every grid time in (prev_ts, ts] at `mark`; returns Σ payments."""
    n, _ = funding_due_nb(prev_ts, ts, params)
    total = 0.0
    for _i in range(n):
        total += apply_funding_nb(pos, acc, sym, params[P_RATE], mark)
    return total


@njit(cache=True)
def funding_step_series_nb(series_ts, series_rate, series_mark, cursor, pos, acc, sym, prev_ts, ts, mark):
    """Per-bar call, rate series: book every event with prev_ts < series_ts ≤ ts; returns (cursor, Σ payments).

    `cursor` is the index of the first event not yet examined (start at 0, keep per symbol). Events at
    or before prev_ts are skipped unpaid (they precede this bar step). An event's own mark
    (`series_mark`, NaN = unknown) is used when known, else `mark` (the caller's bar price).
    """
    n = series_ts.shape[0]
    k = cursor
    while k < n and series_ts[k] <= prev_ts:
        k += 1
    total = 0.0
    while k < n and series_ts[k] <= ts:
        m = series_mark[k]
        total += apply_funding_nb(pos, acc, sym, series_rate[k], mark if math.isnan(m) else m)
        k += 1
    return k, total


def prepare_series(ts: np.ndarray, rate: np.ndarray, mark: np.ndarray | None = None,
                   snap_ns: int = NS_PER_S) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Validate (ts, rate[, mark]) and return contiguous (int64 ts snapped to `snap_ns`, rate, mark).

    Timestamps are rounded to the nearest multiple of `snap_ns` (venue settlement jitter of a few ms);
    they must then be strictly increasing. Rates must be finite; marks finite > 0 or NaN (unknown).
    Raises `DataError` naming the first bad row.
    """
    t = np.asarray(ts)
    r = np.asarray(rate, dtype=np.float64)
    if t.ndim != 1 or r.shape != t.shape:
        raise DataError(f"funding series: ts and rate must be 1-D of equal length, got {t.shape} and {r.shape}")
    if not np.issubdtype(t.dtype, np.integer):
        raise DataError(f"funding series: ts must be integer ns, got dtype {t.dtype}")
    if snap_ns < 1:
        raise DataError(f"funding series: snap_ns must be >= 1, got {snap_ns}")
    t = t.astype(np.int64)
    snapped = ((t + snap_ns // 2) // snap_ns) * snap_ns
    bad = np.flatnonzero(~np.isfinite(r))
    if bad.size:
        raise DataError(f"funding series: rate is not finite ({r[bad[0]]!r})", line=int(bad[0]) + 1)
    if snapped.size > 1:
        nonincr = np.flatnonzero(np.diff(snapped) <= 0)
        if nonincr.size:
            i = int(nonincr[0]) + 1
            raise DataError(f"funding series: ts not strictly increasing after snapping to {snap_ns} ns "
                            f"({snapped[i - 1]} then {snapped[i]})", line=i + 1)
    if mark is None:
        m = np.full(t.shape, np.nan)
    else:
        m = np.asarray(mark, dtype=np.float64)
        if m.shape != t.shape:
            raise DataError(f"funding series: mark has shape {m.shape}, expected {t.shape}")
        badm = np.flatnonzero(~np.isnan(m) & ~(np.isfinite(m) & (m > 0)))
        if badm.size:
            raise DataError(f"funding series: mark must be > 0 or NaN, got {m[badm[0]]!r}", line=int(badm[0]) + 1)
    return np.ascontiguousarray(snapped), np.ascontiguousarray(r), np.ascontiguousarray(m)


class FundingSchedule:
    """Python face of the funding kernels for one symbol (constant or series source)."""

    def __init__(self, config: FundingConfig, series_ts: np.ndarray | None = None,
                 series_rate: np.ndarray | None = None, series_mark: np.ndarray | None = None):
        self.config = config
        self.params = config.to_params()
        if config.source == "series":
            if series_ts is None or series_rate is None:
                raise RejectedError("funding source 'series' needs series_ts and series_rate")
            self.ts, self.rate, self.mark = prepare_series(series_ts, series_rate, series_mark)
        else:
            if series_ts is not None:
                raise RejectedError("funding source 'constant' takes no series; set source: series")
            self.ts = np.zeros(0, dtype=np.int64)
            self.rate = np.zeros(0)
            self.mark = np.zeros(0)
        self.cursor = 0

    def due(self, prev_ts: int, ts: int) -> list[int]:
        """Funding times in (prev_ts, ts] (does not move the cursor)."""
        if self.config.source == "constant":
            n, first = funding_due_nb(np.int64(prev_ts), np.int64(ts), self.params)
            return [int(first) + i * self.config.interval for i in range(int(n))]
        lo = np.searchsorted(self.ts, prev_ts, side="right")
        hi = np.searchsorted(self.ts, ts, side="right")
        return [int(x) for x in self.ts[lo:hi]]

    def step(self, ledger, sym: int | str, prev_ts: int, ts: int, mark: float) -> float:
        """Book the funding due in (prev_ts, ts] to `ledger` for `sym`; returns Σ payments (quote)."""
        if not (math.isfinite(mark) and mark > 0):
            raise RejectedError(f"funding mark price must be finite > 0, got {mark!r}")
        if ts < prev_ts:
            raise RejectedError(f"funding step goes back in time: ts {ts} < prev_ts {prev_ts}")
        s = ledger._sym(sym)
        if self.config.source == "constant":
            return float(funding_step_constant_nb(self.params, ledger.pos, ledger.acc, s, np.int64(prev_ts),
                                                  np.int64(ts), float(mark)))
        self.cursor, total = funding_step_series_nb(self.ts, self.rate, self.mark, self.cursor, ledger.pos,
                                                    ledger.acc, s, np.int64(prev_ts), np.int64(ts), float(mark))
        self.cursor = int(self.cursor)
        return float(total)
