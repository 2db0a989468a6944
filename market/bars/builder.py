"""The bar builder: validates trades and drives the kernels; batch is one streaming call.

`BarBuilder` keeps a small carried state (see `market.bars.kernels`) and turns each chunk of
trades into the bars that close inside it. `build_bars` is `BarBuilder(...).update(all_trades)`.
Because both paths run the same kernel over the same state, any split of the trades into chunks
(including empty and one-trade chunks) gives bit-identical bars.

Input contract (violations raise, nothing is skipped or repaired): columns `id` (int),
`ts_event` (int ns), `price` and `quantity` (float, finite, > 0), `is_buyer_maker` (bool), no
nulls, `ts_event` non-decreasing within and across chunks. A chunk that fails validation leaves
the builder unchanged, so the caller may fix or quarantine the data and go on.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import polars as pl

from core.errors import ConfigError, DataError, SchemaError
from core.time import NS_PER_DAY
from market.bars import kernels as K
from market.bars import layout as L
from market.bars.spec import (
    BarSpec,
    DollarBars,
    DynamicVolumeBars,
    LargeTradeConfig,
    TickBars,
    TimeBars,
    VolumeBars,
    bar_spec_label,
)
from market.schema import BAR_SCHEMA, TRADE_CORE_COLUMNS

_INT_COLUMNS = ("ts_event", "ts_open", "ts_close", "duration_ns", "first_id", "last_id", "trade_count",
                "buy_count", "sell_count", "upticks", "downticks", "large_count")
_FLOAT_COLUMNS = ("open", "high", "low", "close", "volume", "quote_volume", "buy_volume", "sell_volume",
                  "vwap", "buy_vwap", "sell_vwap", "realized_var", "large_volume", "threshold")
# Kernel output rows -> BAR_SCHEMA columns; checked against the kernel's index constants at import.
_COLUMN_SOURCES = {name: (0, i) for i, name in enumerate(_INT_COLUMNS)}
_COLUMN_SOURCES.update({name: (1, i) for i, name in enumerate(_FLOAT_COLUMNS)})
assert set(_COLUMN_SOURCES) == set(BAR_SCHEMA) and len(_INT_COLUMNS) == L.N_OUT_I
assert len(_FLOAT_COLUMNS) == L.N_OUT_F and _FLOAT_COLUMNS[L.OF_THRESHOLD] == "threshold"
assert _INT_COLUMNS[L.OI_LARGE_COUNT] == "large_count" and _INT_COLUMNS[L.OI_DURATION] == "duration_ns"

_KERNEL_SLICE = 1 << 22  # trades per kernel call
_INT_DTYPES = (pl.Int8, pl.Int16, pl.Int32, pl.Int64, pl.UInt8, pl.UInt16, pl.UInt32, pl.UInt64)
_NUM_DTYPES = _INT_DTYPES + (pl.Float32, pl.Float64)


def _readonly(a: np.ndarray) -> np.ndarray:
    # Every array reaches the kernels read-only and C-contiguous, so numba compiles one
    # specialisation whether the data came from polars (read-only) or from the caller.
    v = np.ascontiguousarray(a).view()
    v.flags.writeable = False
    return v


class BarBuilder:
    """Streaming bar builder; feed it chunks of trades in time order, get the bars they close.

    `daily_volumes` (dynamic volume bars only) seeds the daily volume history with
    {UTC day number (`core.time.day_of`): base volume} of days before the first trade, so a live
    builder can start with its thresholds calibrated from stored data.
    """

    def __init__(self, spec: BarSpec, large: LargeTradeConfig = LargeTradeConfig(),
                 daily_volumes: Mapping[int, float] | None = None):
        if not isinstance(spec, (TimeBars, TickBars, VolumeBars, DollarBars, DynamicVolumeBars)):
            raise ConfigError(f"BarBuilder needs a bar spec model, got {spec!r}")
        if not isinstance(large, LargeTradeConfig):
            raise ConfigError(f"BarBuilder needs a LargeTradeConfig, got {large!r}")
        self._spec = spec
        self._large = large
        self._label = bar_spec_label(spec)
        self._chunks = 0
        lookback = spec.lookback_days if isinstance(spec, DynamicVolumeBars) else 1
        self._params_i = np.zeros(L.N_PARAMS_I, dtype=np.int64)
        self._params_f = np.zeros(L.N_PARAMS_F, dtype=np.float64)
        pi, pf = self._params_i, self._params_f
        pi[L.P_LARGE_WINDOW] = large.window
        pi[L.P_LARGE_REFRESH] = large.refresh
        pf[L.P_QUANTILE] = large.quantile
        pf[L.P_INITIAL] = np.nan
        if isinstance(spec, TimeBars):
            pi[L.P_MODE] = L.MODE_TIME
            pi[L.P_EVERY] = spec.every_ns
        elif isinstance(spec, TickBars):
            pi[L.P_MODE] = L.MODE_TICK
            pi[L.P_TICKS] = spec.trades
        elif isinstance(spec, VolumeBars):
            pi[L.P_MODE] = L.MODE_VOLUME
            pf[L.P_THRESHOLD] = spec.threshold
        elif isinstance(spec, DollarBars):
            pi[L.P_MODE] = L.MODE_DOLLAR
            pf[L.P_THRESHOLD] = spec.threshold
        else:
            pi[L.P_MODE] = L.MODE_DYNAMIC
            pi[L.P_LOOKBACK] = spec.lookback_days
            pi[L.P_TARGET] = spec.target_bars_per_day
            if spec.initial_threshold is not None:
                pi[L.P_HAS_INITIAL] = 1
                pf[L.P_INITIAL] = spec.initial_threshold
        self._state_i, self._state_f, self._ring, self._hist_day, self._hist_vol = L.new_state(
            large.window, lookback)
        if daily_volumes:
            self._seed_daily_volumes(daily_volumes)

    def _seed_daily_volumes(self, daily_volumes: Mapping[int, float]) -> None:
        if not isinstance(self._spec, DynamicVolumeBars):
            raise ConfigError(f"daily_volumes only applies to dynamic volume bars, not {self._label}")
        lookback = self._spec.lookback_days
        for day in daily_volumes:
            if not isinstance(day, (int, np.integer)) or isinstance(day, bool):
                raise ConfigError(f"daily_volumes key {day!r} must be an int UTC day number (core.time.day_of)")
        for day in sorted(daily_volumes):
            vol = daily_volumes[day]
            if not (isinstance(vol, (int, float, np.floating, np.integer)) and 0 < float(vol) < np.inf):
                raise ConfigError(f"daily_volumes[{day}] = {vol!r}: must be a positive finite volume "
                                  f"(days without trades are left out, not given as 0)")
            self._hist_day[day % lookback] = int(day)
            self._hist_vol[day % lookback] = float(vol)
            self._state_i[L.I_LAST_HIST_DAY] = int(day)

    @property
    def spec(self) -> BarSpec:
        return self._spec

    @property
    def label(self) -> str:
        """`bar_spec_label` of the spec, e.g. "volume-250.5"."""
        return self._label

    @property
    def trades_seen(self) -> int:
        """Number of trades consumed so far (the global trade counter of the large-trade window)."""
        return int(self._state_i[L.I_TRADES])

    def update(self, trades: pl.DataFrame) -> pl.DataFrame:
        """Consume a chunk of trades (columns id, ts_event, price, quantity, is_buyer_maker; others are
        ignored) and return the bars it closes, with exactly `BAR_SCHEMA`'s columns."""
        where = self._where()
        if not isinstance(trades, pl.DataFrame):
            raise SchemaError(f"expected a polars DataFrame of trades, got {type(trades).__name__}", source=where)
        missing = [c for c in TRADE_CORE_COLUMNS if c not in trades.columns]
        if missing:
            raise SchemaError(f"trades lack columns {missing}; have {trades.columns}", source=where)
        expected = {"id": _INT_DTYPES, "ts_event": _INT_DTYPES, "price": _NUM_DTYPES,
                    "quantity": _NUM_DTYPES, "is_buyer_maker": (pl.Boolean,)}
        for name, allowed in expected.items():
            dtype = trades.schema[name]
            if dtype not in allowed:
                raise SchemaError(f"column {name!r} has dtype {dtype}; expected one of "
                                  f"{[str(d) for d in allowed]}", source=where)
            nulls = trades.get_column(name).null_count()
            if nulls:
                row = int(trades.get_column(name).is_null().arg_true()[0])
                raise DataError(f"column {name!r} has {nulls} null(s), first at row {row} (0-based)",
                                source=where, line=row + 1)
        return self._update(*(trades.get_column(c).to_numpy() for c in TRADE_CORE_COLUMNS))

    def update_arrays(self, ids, ts, price, qty, is_buyer_maker) -> pl.DataFrame:
        """`update` over plain arrays: ids and ts integer (ts in ns), price and qty float, bool flags."""
        return self._update(ids, ts, price, qty, is_buyer_maker)

    def close_until(self, ts_ns: int) -> pl.DataFrame:
        """Time bars: close the open bar if its bucket ended at or before `ts_ns` (the clock passed it).

        Trades later given for a bucket closed this way are rejected as late. Other bar kinds close
        only on trades and return an empty frame.
        """
        ts_ns = int(ts_ns)
        out_i = np.empty((L.N_OUT_I, 1), dtype=np.int64)
        out_f = np.empty((L.N_OUT_F, 1), dtype=np.float64)
        n = K.close_time_bar_nb(np.int64(ts_ns), self._params_i, self._params_f, self._state_i, self._state_f,
                                out_i, out_f)
        return _frame(out_i, out_f, n)

    def partial(self) -> pl.DataFrame:
        """The open (incomplete) bar as a 0- or 1-row frame; the builder's state is not touched.

        Its `ts_event` is what it would be if it closed now: the bucket end for time bars, the last
        trade's time otherwise; `threshold` is the one in force.
        """
        out_i = np.empty((L.N_OUT_I, 1), dtype=np.int64)
        out_f = np.empty((L.N_OUT_F, 1), dtype=np.float64)
        n = K.write_open_bar_nb(self._params_i, self._params_f, self._state_i, self._state_f, out_i, out_f, 0)
        return _frame(out_i, out_f, n)

    def _where(self) -> str:
        return f"BarBuilder[{self._label}] chunk {self._chunks}"

    def _update(self, ids, ts, price, qty, is_buyer_maker) -> pl.DataFrame:
        where = self._where()
        arrays = {}
        for name, a, kinds in (("id", ids, "iu"), ("ts_event", ts, "iu"), ("price", price, "iuf"),
                               ("quantity", qty, "iuf"), ("is_buyer_maker", is_buyer_maker, "b")):
            a = np.asarray(a)
            if a.ndim != 1 or a.dtype.kind not in kinds:
                raise SchemaError(f"{name} must be a 1-D array of kind {kinds!r}, got {a.ndim}-D {a.dtype}",
                                  source=where)
            if a.dtype == np.uint64 and a.size and a.max() > np.iinfo(np.int64).max:
                raise SchemaError(f"{name} has values beyond int64", source=where)
            arrays[name] = a
        n = arrays["ts_event"].shape[0]
        if any(a.shape[0] != n for a in arrays.values()):
            raise SchemaError(f"arrays differ in length: { {k: a.shape[0] for k, a in arrays.items()} }",
                              source=where)
        ids_a = _readonly(arrays["id"].astype(np.int64, copy=False))
        ts_a = _readonly(arrays["ts_event"].astype(np.int64, copy=False))
        price_a = _readonly(arrays["price"].astype(np.float64, copy=False))
        qty_a = _readonly(arrays["quantity"].astype(np.float64, copy=False))
        ibm_a = _readonly(arrays["is_buyer_maker"])
        self._validate(ts_a, price_a, qty_a, where)
        # Long inputs go through the kernel in slices (the carried state makes that exact) so that the
        # worst-case output buffers (one row per trade) stay bounded.
        frames = []
        for lo in range(0, max(n, 1), _KERNEL_SLICE):
            hi = min(n, lo + _KERNEL_SLICE)
            out_i = np.empty((L.N_OUT_I, hi - lo + 1), dtype=np.int64)
            out_f = np.empty((L.N_OUT_F, hi - lo + 1), dtype=np.float64)
            n_out = K.build_bars_nb(ids_a[lo:hi], ts_a[lo:hi], price_a[lo:hi], qty_a[lo:hi], ibm_a[lo:hi],
                                    self._params_i, self._params_f, self._state_i, self._state_f, self._ring,
                                    self._hist_day, self._hist_vol, out_i, out_f)
            frames.append(_frame(out_i, out_f, n_out))
        self._chunks += 1
        return frames[0] if len(frames) == 1 else pl.concat(frames, rechunk=True)

    def _validate(self, ts: np.ndarray, price: np.ndarray, qty: np.ndarray, where: str) -> None:
        si = self._state_i
        last_ts = int(si[L.I_LAST_TS])
        closed_end = int(si[L.I_CLOSED_END])
        dynamic = isinstance(self._spec, DynamicVolumeBars)
        last_day = int(si[L.I_CUR_DAY]) if si[L.I_CUR_DAY] != L.NO_DAY else int(si[L.I_LAST_HIST_DAY])
        if dynamic and ts.size and si[L.I_CUR_DAY] == L.NO_DAY and last_day != L.NO_DAY \
                and int(ts[0]) // NS_PER_DAY <= last_day:
            raise DataError(f"first trade (ts_event {int(ts[0])}) falls on UTC day {int(ts[0]) // NS_PER_DAY}, "
                            f"not after the latest seeded daily volume day {last_day}", source=where, line=1)
        check_history = dynamic and self._spec.initial_threshold is None
        code, row = K.validate_trades_nb(ts, price, qty, np.int64(max(last_ts, closed_end)), check_history,
                                         np.int64(last_day), np.int64(self._spec.lookback_days if dynamic else 1))
        if code == L.OK:
            return
        row = int(row)
        if code == L.ERR_TS_ORDER:
            if row == 0 and int(ts[0]) >= last_ts:
                msg = (f"row 0 (0-based): ts_event {int(ts[0])} is late: its time bar ended at {closed_end} "
                       f"and was already closed by close_until")
            else:
                before = int(ts[row - 1]) if row > 0 else last_ts
                which = f"row {row - 1}" if row > 0 else "the previous chunk's last trade"
                msg = (f"ts_event not non-decreasing at row {row} (0-based): {int(ts[row])} < {before} "
                       f"({which})")
        elif code == L.ERR_PRICE:
            msg = f"price {float(price[row])!r} at row {row} (0-based) is not finite and > 0"
        elif code == L.ERR_QTY:
            msg = f"quantity {float(qty[row])!r} at row {row} (0-based) is not finite and > 0"
        else:
            day = int(ts[row]) // NS_PER_DAY
            msg = (f"dynamic volume bars: the trade at row {row} (0-based, ts_event {int(ts[row])}) opens "
                   f"UTC day {day} with no trading day in the previous {self._spec.lookback_days} days to "
                   f"calibrate its threshold; set initial_threshold or pass daily_volumes")
        raise DataError(msg, source=where, line=row + 1)


def _frame(out_i: np.ndarray, out_f: np.ndarray, n: int) -> pl.DataFrame:
    # Copy the used rows out: the buffers are sized for the worst case and must not be kept alive.
    cols = []
    for name, dtype in BAR_SCHEMA.items():
        which, i = _COLUMN_SOURCES[name]
        src = out_i if which == 0 else out_f
        cols.append(pl.Series(name, src[i, :n].copy(), dtype=dtype))
    return pl.DataFrame(cols)


def build_bars(trades: pl.DataFrame, spec: BarSpec, large: LargeTradeConfig = LargeTradeConfig(),
               daily_volumes: Mapping[int, float] | None = None) -> pl.DataFrame:
    """Closed bars of `trades` in one call (the same kernel and state as streaming). The last,
    still-open bar is not included; use `BarBuilder.partial()` / `close_until()` for it."""
    return BarBuilder(spec, large, daily_volumes).update(trades)
