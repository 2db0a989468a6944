"""Quality checks for trade streams (aggregate trades and raw trades), batch or chunked.

Per row, in this order of precedence (one reason per row):
1. row-level: `null_value` (any null), `non_finite_price`, `non_finite_quantity`,
   `non_positive_price`, `non_positive_quantity`, and for agg_trades `invalid_trade_id_range`
   (last_trade_id < first_trade_id);
2. in id order (input stably sorted by id; each row that arrived after a larger id counts as
   `out_of_order`): the first valid row of an id is its candidate. A later row with the same id
   that is identical gets the candidate's fate (kept -> counted as a duplicate and dropped,
   quarantined -> quarantined for the same reason); one that differs -> `conflicting_duplicate`.
   A candidate whose ts_event is before the last kept row's -> `ts_before_previous`; a candidate
   failing the outlier rule (see `QualityConfig`) -> `outlier_price`; otherwise it is kept.

Chunked use: `TradeValidator` carries the last kept id/ts, the last candidate row (so a copy
of it at the start of the next batch is recognised), the last seen id (id gaps across batches)
and the outlier window. Rows of a later batch whose id is below the previous batches' last id
cannot be put back in order (those rows are already emitted): they are quarantined
`id_before_previous`; duplicates are only detected against the previous batch's last id.
For batches that each start at or after the previous batch's last id (REST pages, stream
chunks), chunked checking equals a one-shot check of the concatenation.

Id gaps are taken over every id present in the input (quarantined rows included: the source did
send those ids); time gaps between consecutive kept rows.
"""

from __future__ import annotations

import numpy as np
import polars as pl
from numba import njit

from core.errors import ConfigError
from market.quality.columns import strict_conform
from market.quality.config import QualityConfig
from market.quality.outliers import is_outlier_nb, new_window, window_clear_nb, window_push_nb
from market.quality.report import QualityReport, QualityResult
from market.schema import AGG_TRADES_SCHEMA, QUARANTINE_EXTRA, TRADES_SCHEMA

KEPT = 0
DUPLICATE = 1
NULL_VALUE = 2
NON_FINITE_PRICE = 3
NON_FINITE_QUANTITY = 4
NON_POSITIVE_PRICE = 5
NON_POSITIVE_QUANTITY = 6
INVALID_TRADE_ID_RANGE = 7
CONFLICTING_DUPLICATE = 8
ID_BEFORE_PREVIOUS = 9
TS_BEFORE_PREVIOUS = 10
OUTLIER_PRICE = 11

REASONS: dict[int, str] = {
    NULL_VALUE: "null_value",
    NON_FINITE_PRICE: "non_finite_price",
    NON_FINITE_QUANTITY: "non_finite_quantity",
    NON_POSITIVE_PRICE: "non_positive_price",
    NON_POSITIVE_QUANTITY: "non_positive_quantity",
    INVALID_TRADE_ID_RANGE: "invalid_trade_id_range",
    CONFLICTING_DUPLICATE: "conflicting_duplicate",
    ID_BEFORE_PREVIOUS: "id_before_previous",
    TS_BEFORE_PREVIOUS: "ts_before_previous",
    OUTLIER_PRICE: "outlier_price",
}
_REASON_NAMES = np.array([""] * 2 + [REASONS[c] for c in range(2, 12)], dtype=object)

TRADE_KINDS: dict[str, dict[str, pl.DataType]] = {"agg_trades": AGG_TRADES_SCHEMA, "trades": TRADES_SCHEMA}

# Carried state, int64 slots.
_HAS_CUR, _CUR_ID, _CUR_FATE, _CUR_TS, _CUR_TS_INIT, _CUR_IBM, _CUR_FTID, _CUR_LTID = 0, 1, 2, 3, 4, 5, 6, 7
_HAS_KEPT, _LAST_KEPT_TS, _HAS_SEEN, _LAST_SEEN_ID, _CONSEC, _RESETS, _LAST_KEPT_ID = 8, 9, 10, 11, 12, 13, 14
_N_STATE_I = 15
# float64 slots: candidate price and quantity.
_CUR_PRICE, _CUR_QTY = 0, 1


@njit(cache=True)
def trade_sequence_nb(ids, ts, ts_init, price, qty, ibm, ftid, ltid, pre,
                      ring, srt, wst, st_i, st_f,
                      max_gap_ns, window, mad_k, min_jump, reset_after,
                      status, gap_after, gap_before, tgap_from, tgap_to):
    """Sequence checks over rows sorted by id; writes `status` (KEPT, DUPLICATE or a reason code).

    `pre` holds the row-level reason (0 = valid). State arrays are updated in place so that the
    next batch continues where this one stopped. Returns (number of id gaps, number of time gaps).
    """
    # State lives in locals inside the loop (registers); arrays are only read/written at the ends.
    has_cur = st_i[_HAS_CUR]
    cur_id = st_i[_CUR_ID]
    cur_fate = st_i[_CUR_FATE]
    cur_ts = st_i[_CUR_TS]
    cur_ts_init = st_i[_CUR_TS_INIT]
    cur_ibm = st_i[_CUR_IBM]
    cur_ftid = st_i[_CUR_FTID]
    cur_ltid = st_i[_CUR_LTID]
    has_kept = st_i[_HAS_KEPT]
    last_kept_ts = st_i[_LAST_KEPT_TS]
    last_kept_id = st_i[_LAST_KEPT_ID]
    has_seen = st_i[_HAS_SEEN]
    last_seen = st_i[_LAST_SEEN_ID]
    consec = st_i[_CONSEC]
    resets = st_i[_RESETS]
    cur_price = st_f[_CUR_PRICE]
    cur_qty = st_f[_CUR_QTY]
    n_gaps = 0
    n_tgaps = 0
    for r in range(ids.shape[0]):
        idv = ids[r]
        if has_seen == 1:
            if idv > last_seen:
                if idv > last_seen + 1:
                    gap_after[n_gaps] = last_seen
                    gap_before[n_gaps] = idv
                    n_gaps += 1
                last_seen = idv
        else:
            has_seen = 1
            last_seen = idv
        code = pre[r]
        if code != 0:
            status[r] = code
            continue
        if has_cur == 1:
            if idv == cur_id:
                same = (ts[r] == cur_ts and ts_init[r] == cur_ts_init and price[r] == cur_price
                        and qty[r] == cur_qty and ibm[r] == cur_ibm and ftid[r] == cur_ftid
                        and ltid[r] == cur_ltid)
                if same:
                    status[r] = DUPLICATE if cur_fate == KEPT else cur_fate
                else:
                    status[r] = CONFLICTING_DUPLICATE
                continue
            if idv < cur_id:
                status[r] = ID_BEFORE_PREVIOUS
                continue
        has_cur = 1
        cur_id = idv
        cur_ts = ts[r]
        cur_ts_init = ts_init[r]
        cur_ibm = ibm[r]
        cur_ftid = ftid[r]
        cur_ltid = ltid[r]
        cur_price = price[r]
        cur_qty = qty[r]
        logp = np.log(cur_price)
        if has_kept == 1 and cur_ts < last_kept_ts:
            fate = TS_BEFORE_PREVIOUS
        elif is_outlier_nb(srt, wst, logp, window, mad_k, min_jump):
            fate = OUTLIER_PRICE
            consec += 1
            if reset_after > 0 and consec >= reset_after:
                window_clear_nb(wst)
                consec = 0
                resets += 1
        else:
            fate = KEPT
            if has_kept == 1 and cur_ts - last_kept_ts > max_gap_ns:
                tgap_from[n_tgaps] = last_kept_ts
                tgap_to[n_tgaps] = cur_ts
                n_tgaps += 1
            has_kept = 1
            last_kept_ts = cur_ts
            last_kept_id = idv
            consec = 0
            window_push_nb(ring, srt, wst, logp)
        cur_fate = fate
        status[r] = fate
    st_i[_HAS_CUR] = has_cur
    st_i[_CUR_ID] = cur_id
    st_i[_CUR_FATE] = cur_fate
    st_i[_CUR_TS] = cur_ts
    st_i[_CUR_TS_INIT] = cur_ts_init
    st_i[_CUR_IBM] = cur_ibm
    st_i[_CUR_FTID] = cur_ftid
    st_i[_CUR_LTID] = cur_ltid
    st_i[_HAS_KEPT] = has_kept
    st_i[_LAST_KEPT_TS] = last_kept_ts
    st_i[_LAST_KEPT_ID] = last_kept_id
    st_i[_HAS_SEEN] = has_seen
    st_i[_LAST_SEEN_ID] = last_seen
    st_i[_CONSEC] = consec
    st_i[_RESETS] = resets
    st_f[_CUR_PRICE] = cur_price
    st_f[_CUR_QTY] = cur_qty
    return n_gaps, n_tgaps


def _select_top(cols: list[np.ndarray], size: np.ndarray, limit: int) -> list[tuple[int, ...]]:
    """The `limit` largest rows by `size` (ties: earliest first), in time order, as int tuples."""
    if size.shape[0] > limit:
        pick = np.lexsort((cols[0], -size))[:limit]
        pick.sort()  # gaps were produced in time order
        cols = [c[pick] for c in cols]
    return list(zip(*(c.tolist() for c in cols)))


def _column(df: pl.DataFrame, name: str, fill) -> np.ndarray:
    s = df.get_column(name)
    if s.null_count():
        s = s.fill_null(fill)
    return s.to_numpy()


class TradeValidator:
    """Stateful trade checker: feed consecutive batches (REST pages, stream chunks) to `check`.

    See the module docstring for the rules and what state crosses batch boundaries.
    """

    def __init__(self, kind: str = "agg_trades", config: QualityConfig = QualityConfig(), dataset: str = ""):
        if kind not in TRADE_KINDS:
            raise ConfigError(f"unknown trade kind {kind!r}: expected one of {sorted(TRADE_KINDS)}")
        if not isinstance(config, QualityConfig):
            raise ConfigError(f"config must be a QualityConfig, got {type(config).__name__}")
        self.kind = kind
        self.config = config
        self.dataset = dataset
        self._schema = TRADE_KINDS[kind]
        self._max_gap_ns = config.max_time_gap_ns
        self._ring, self._srt, self._wst = new_window(config.outlier_window)
        self._st_i = np.zeros(_N_STATE_I, np.int64)
        self._st_f = np.zeros(2, np.float64)
        self._resets_seen = 0

    @property
    def last_kept_id(self) -> int | None:
        """Id of the last kept trade so far (None before any)."""
        return int(self._st_i[_LAST_KEPT_ID]) if self._st_i[_HAS_KEPT] else None

    def check(self, df: pl.DataFrame) -> QualityResult:
        """Check one batch; returns its clean rows, quarantined rows and report."""
        where = self.dataset or self.kind
        df = strict_conform(df, self._schema, where)
        n = df.height
        is_agg = self.kind == "agg_trades"

        pre = np.zeros(n, np.int8)
        if sum(df.null_count().row(0)):
            null_any = df.select(pl.any_horizontal(pl.all().is_null())).to_series().to_numpy()
            pre[null_any] = NULL_VALUE
        ids = _column(df, "id", 0)
        ts = _column(df, "ts_event", 0)
        ts_init = _column(df, "ts_init", 0)
        price = _column(df, "price", 1.0)
        qty = _column(df, "quantity", 1.0)
        ibm = _column(df, "is_buyer_maker", False).view(np.int8)
        if is_agg:
            ftid = _column(df, "first_trade_id", 0)
            ltid = _column(df, "last_trade_id", 0)
        else:
            ftid = ltid = np.zeros(n, np.int64)
        # Assign from lowest to highest precedence so that the first applicable reason wins.
        fin_p = np.isfinite(price)
        fin_q = np.isfinite(qty)
        ok = pre == 0
        if is_agg:
            pre[ok & (ltid < ftid)] = INVALID_TRADE_ID_RANGE
        pre[ok & fin_q & (qty <= 0.0)] = NON_POSITIVE_QUANTITY
        pre[ok & fin_p & (price <= 0.0)] = NON_POSITIVE_PRICE
        pre[ok & ~fin_q] = NON_FINITE_QUANTITY
        pre[ok & ~fin_p] = NON_FINITE_PRICE

        # Rows without an id cannot be placed in the sequence; they are already `null_value`.
        id_null = df.get_column("id").is_null().to_numpy() if pre.any() else None
        if id_null is not None and id_null.any():
            rows = np.flatnonzero(~id_null)
        else:
            rows = np.arange(n, dtype=np.int64)
        seq_ids = ids[rows]
        out_of_order = 0
        if seq_ids.shape[0] > 1:
            runmax = np.maximum.accumulate(seq_ids)
            out_of_order = int(np.count_nonzero(seq_ids[1:] < runmax[:-1]))
        if out_of_order:
            rows = rows[np.argsort(seq_ids, kind="stable")]
        # Gathering (or copying) makes every array writable and owned: one numba specialisation.
        identity = id_null is None or not id_null.any()
        identity = identity and not out_of_order

        def take(a: np.ndarray) -> np.ndarray:
            return a.copy() if identity else a[rows]

        m = rows.shape[0]
        status = np.empty(m, np.int8)
        gap_after = np.empty(m, np.int64)
        gap_before = np.empty(m, np.int64)
        tgap_from = np.empty(m, np.int64)
        tgap_to = np.empty(m, np.int64)
        cfg = self.config
        n_gaps, n_tgaps = trade_sequence_nb(
            take(ids), take(ts), take(ts_init), take(price), take(qty), take(ibm), take(ftid), take(ltid),
            take(pre), self._ring, self._srt, self._wst, self._st_i, self._st_f,
            self._max_gap_ns, cfg.outlier_window, float(cfg.outlier_mad_k), float(cfg.outlier_min_jump),
            cfg.outlier_reset_after, status, gap_after, gap_before, tgap_from, tgap_to,
        )
        resets = int(self._st_i[_RESETS]) - self._resets_seen
        self._resets_seen = int(self._st_i[_RESETS])

        codes = pre.copy()  # null-id rows keep NULL_VALUE
        codes[rows] = status
        kept_rows = rows[status == KEPT]
        if kept_rows.shape[0] == n and out_of_order == 0:
            clean = df
        else:
            clean = df[kept_rows]
        q_rows = np.flatnonzero(codes >= NULL_VALUE)
        quarantine = df[q_rows].with_columns(
            pl.Series("row_number", q_rows, dtype=QUARANTINE_EXTRA["row_number"]),
            pl.Series("reason", _REASON_NAMES[codes[q_rows]].tolist(), dtype=QUARANTINE_EXTRA["reason"]),
        )

        limit = cfg.max_listed_gaps
        ga, gb = gap_after[:n_gaps], gap_before[:n_gaps]
        gm = gb - ga - 1
        ta, tb = tgap_from[:n_tgaps], tgap_to[:n_tgaps]
        by_reason = np.bincount(codes, minlength=len(_REASON_NAMES))
        kept_ids = ids[kept_rows]
        kept_ts = ts[kept_rows]
        report = QualityReport(
            dataset=self.dataset,
            kind=self.kind,
            rows_in=n,
            rows_kept=int(kept_rows.shape[0]),
            rows_quarantined=int(q_rows.shape[0]),
            duplicates=int(by_reason[DUPLICATE]),
            out_of_order=out_of_order,
            quarantine_by_reason={REASONS[c]: int(by_reason[c]) for c in REASONS},
            id_gaps=_select_top([ga, gb, gm], gm, limit),  # type: ignore[arg-type]
            id_gap_total=int(gm.sum()),
            time_gaps=_select_top([ta, tb], tb - ta, limit),  # type: ignore[arg-type]
            first_ts=int(kept_ts[0]) if kept_ts.shape[0] else None,
            last_ts=int(kept_ts[-1]) if kept_ts.shape[0] else None,
            id_gap_count=int(n_gaps),
            time_gap_count=int(n_tgaps),
            first_id=int(kept_ids[0]) if kept_ids.shape[0] else None,
            last_id=int(kept_ids[-1]) if kept_ids.shape[0] else None,
            outlier_resets=resets,
            max_listed_gaps=limit,
        )
        return QualityResult(clean=clean, quarantine=quarantine, report=report)


def check_trades(
    df: pl.DataFrame, *, kind: str = "agg_trades", config: QualityConfig = QualityConfig(), dataset: str = ""
) -> QualityResult:
    """One-shot check of a complete trade frame (a fresh `TradeValidator`)."""
    return TradeValidator(kind=kind, config=config, dataset=dataset).check(df)


__all__ = ["REASONS", "TradeValidator", "check_trades", "trade_sequence_nb"]
