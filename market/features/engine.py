"""The feature engine: one implementation for batch and streaming.

`FeatureEngine.update(bars)` consumes the next chunk of bars (any length, from one bar to the
whole history) and returns one feature row per bar. All cross-bar state lives in the primitive
objects (ring buffers, running sums, recursive-filter states), and every per-bar computation is
a numba kernel step that depends only on that state and the bar, so

    FeatureEngine(cfg).update(all_bars)  ==  concat(engine.update(chunk) for chunk in any split)

bit for bit. Nothing reads a later bar, so features are causal by construction.
"""

from __future__ import annotations

import numpy as np
import polars as pl

from market.features import kernels_bar as bk
from market.features.config import FeatureConfig, feature_warmups, zscore_column
from market.features.inputs import extract_arrays
from market.features.primitives import (
    EMA,
    RollingIndexSlope,
    RollingOLSSlope,
    RollingSkew,
    RollingSum,
    RollingZScore,
    WilderADX,
    WilderATR,
    WilderRSI,
    as_input,
)

_INT64_MIN = np.iinfo(np.int64).min


class _ColumnWriter:
    """Hands out the rows of the output matrix, one per feature column, and records which were
    written (so a missing column is an error, not uninitialised memory)."""

    def __init__(self, names: list[str], matrix: np.ndarray):
        self._row = {name: i for i, name in enumerate(names)}
        self._matrix = matrix
        self._written: set[str] = set()

    def slot(self, name: str) -> np.ndarray:
        self._written.add(name)
        return self._matrix[self._row[name]]

    def mark_written(self, names: tuple[str, ...]) -> None:
        self._written.update(names)

    def input(self, name: str) -> np.ndarray:
        if name not in self._written:
            raise RuntimeError(f"feature {name!r} read before it was computed")
        return as_input(self._matrix[self._row[name]])

    def complete(self) -> bool:
        return len(self._written) == len(self._row)


class FeatureEngine:
    """Causal bar features with carried state; batch = one `update`, streaming = many."""

    def __init__(self, config: FeatureConfig = FeatureConfig()):
        self.config = config
        cfg = config
        r = cfg.recompute_every
        self._warmups = feature_warmups(cfg)
        self._last_ts = _INT64_MIN
        self._bars_seen = 0
        self._flow_f = np.zeros(bk.RUNNING_FLOW_FSTATE)
        self._flow_i = np.zeros(bk.RUNNING_FLOW_ISTATE, dtype=np.int64)
        self._vwap_q = RollingSum(cfg.vwap_window, r)
        self._vwap_v = RollingSum(cfg.vwap_window, r)
        self._rv_short = RollingSum(cfg.realized_vol_short, r)
        self._rv_long = RollingSum(cfg.realized_vol_long, r)
        self._kyle = RollingOLSSlope(cfg.kyle_window, r)
        self._atr = {n: WilderATR(n) for n in cfg.atr_periods}
        self._ema = {s: EMA(s) for s in cfg.ema_spans}
        self._sma = {s: RollingSum(s, r) for s in cfg.sma_windows}
        self._rsi = WilderRSI(cfg.rsi_period)
        self._adx = WilderADX(cfg.adx_period)
        self._skew = RollingSkew(cfg.skew_window, r)
        self._ofi_ema = {s: EMA(s) for s in cfg.ofi_ema_spans}
        self._cd_slope = RollingIndexSlope(cfg.cum_delta_slope_window, r)
        self._dur_sum = RollingSum(cfg.duration_window, r)
        self._z = {(f, w): RollingZScore(w, r) for f in cfg.zscore_features for w in cfg.zscore_windows}
        names = list(self._warmups)
        self._row_targets = np.array([names.index(c) for c in bk.ROW_FEATURES], dtype=np.int64)

    @property
    def columns(self) -> list[str]:
        """Output columns: `ts_event` then every feature column, in order."""
        return ["ts_event", *self._warmups]

    def warmup_bars(self) -> dict[str, int]:
        """Per feature column: bars needed before it is non-NaN (its first non-NaN row index) on
        bars where every ratio is defined (both sides traded, upticks + downticks > 0, some
        realized variance, non-constant series)."""
        return dict(self._warmups)

    @property
    def bars_seen(self) -> int:
        """Number of bars consumed since the engine was created."""
        return self._bars_seen

    def update(self, bars: pl.DataFrame) -> pl.DataFrame:
        """Consume the next chunk of bars (BAR_SCHEMA columns, ts_event non-decreasing, also across
        chunks) and return its feature rows. Raises SchemaError / DataError without changing state.

        Equal ts_event values are legitimate: trade-driven bars closed by trades of the same
        millisecond share their close time."""
        a = extract_arrays(bars, self._last_ts)
        n = bars.height
        if n == 0:
            return pl.DataFrame(schema={c: (pl.Int64 if c == "ts_event" else pl.Float64) for c in self.columns})
        cfg = self.config
        # Every feature column is written in place into its row of one (columns, n) matrix, which
        # becomes the output frame without further copies.
        names = list(self._warmups)
        matrix = np.empty((len(names), n))
        f = _ColumnWriter(names, matrix)

        bk.bar_row_features_nb(
            a["open"], a["close"], a["volume"], a["buy_volume"], a["sell_volume"], a["buy_count"],
            a["sell_count"], a["buy_vwap"], a["sell_vwap"], a["trade_count"], a["duration_ns"], a["upticks"],
            a["downticks"], a["large_volume"], matrix, self._row_targets,
        )
        f.mark_written(bk.ROW_FEATURES)
        dclose, log_ret = np.empty(n), np.empty(n)
        bk.running_flow_nb(a["close"], f.input("delta"), self._flow_f, self._flow_i, f.slot("cum_delta"), dclose,
                           log_ret)

        rvwap = f.slot("rvwap")
        bk.ratio_nb(as_input(self._vwap_q(a["quote_volume"])), as_input(self._vwap_v(a["volume"])), rvwap)
        bk.ratio_nb(as_input(a["close"] - rvwap), as_input(rvwap), f.slot("vwap_deviation"))
        rv_s, rv_l = f"realized_vol_{cfg.realized_vol_short}", f"realized_vol_{cfg.realized_vol_long}"
        bk.sqrt_mean_nb(as_input(self._rv_short(a["realized_var"])), float(cfg.realized_vol_short), f.slot(rv_s))
        bk.sqrt_mean_nb(as_input(self._rv_long(a["realized_var"])), float(cfg.realized_vol_long), f.slot(rv_l))
        bk.ratio_nb(f.input(rv_s), f.input(rv_l), f.slot("vol_ratio"))
        self._kyle(f.input("delta"), dclose, out=f.slot("kyle_lambda"))
        for p, atr in self._atr.items():
            atr(a["high"], a["low"], a["close"], out=f.slot(f"atr{p}"))
        for span, ema in self._ema.items():
            ema(a["close"], out=f.slot(f"ema{span}"))
        for window, sma in self._sma.items():
            out = sma(a["close"], out=f.slot(f"sma{window}"))
            np.divide(out, window, out=out)
        self._rsi(a["close"], out=f.slot("rsi"))
        self._adx(a["high"], a["low"], a["close"], f.slot("plus_di"), f.slot("minus_di"), f.slot("adx"))
        self._skew(log_ret, out=f.slot("return_skew"))
        for span, ema in self._ofi_ema.items():
            ema(f.input("ofi"), out=f.slot(f"ofi_ema{span}"))
        self._cd_slope(f.input("cum_delta"), out=f.slot("cum_delta_slope"))
        duration = a["duration_ns"].astype(np.float64)
        mean_duration = self._dur_sum(duration)
        np.divide(mean_duration, cfg.duration_window, out=mean_duration)
        bk.ratio_nb(as_input(duration), as_input(mean_duration), f.slot("duration_ratio"))
        for (feature, window), z in self._z.items():
            z(f.input(feature), out=f.slot(zscore_column(feature, window)))

        if not f.complete():  # an engine bug, never a data problem
            raise RuntimeError("feature engine left output columns unwritten")
        self._last_ts = int(a["ts_event"][-1])
        self._bars_seen += n
        features = pl.from_numpy(matrix, schema=names, orient="col")
        return features.insert_column(0, pl.Series("ts_event", a["ts_event"], dtype=pl.Int64))




def compute_features(bars: pl.DataFrame, config: FeatureConfig = FeatureConfig()) -> pl.DataFrame:
    """Batch features of a whole bar history (a fresh engine fed in one chunk)."""
    return FeatureEngine(config).update(bars)
