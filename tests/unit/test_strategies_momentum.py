"""Strategy A (order-flow momentum) on crafted rows: gates, 2-of-3 confirmations, strict
thresholds, NaN inputs, strength/confidence and the exit rules."""

from __future__ import annotations

import math

import polars as pl
import pytest

from core.errors import SchemaError
from strategies import MomentumParams, get

A = get("orderflow_momentum")
NAN = math.nan
COLS = ("ofi_ema10", "cum_delta_slope", "trade_intensity_z20", "large_trade_ratio_z20", "avg_buy_size",
        "avg_sell_size")


def frame(rows: list[tuple[float, ...]]) -> pl.DataFrame:
    data = {c: [float(r[i]) for r in rows] for i, c in enumerate(COLS)}
    return pl.DataFrame({"ts_event": list(range(1000, 1000 + len(rows))), **data},
                        schema={"ts_event": pl.Int64, **{c: pl.Float64 for c in COLS}})


# ofi, slope, iz, lz, buy, sell -> (enter_long, enter_short, n confirmations)
ENTRY_CASES = [
    ((0.2, 1.0, 2.0, 0.5, 1.0, 1.0), (False, False, 0)),  # 1 of 3 -> nothing
    ((0.2, 1.0, 2.0, 1.5, 1.0, 1.0), (True, False, 2)),  # 2 of 3 -> long
    ((0.2, 1.0, 2.0, 1.5, 2.0, 1.0), (True, False, 3)),  # 3 of 3
    ((0.2, 1.0, 0.0, 1.5, 2.0, 1.0), (True, False, 2)),  # large + size
    ((0.15, 1.0, 2.0, 1.5, 2.0, 1.0), (False, False, 0)),  # ofi gate strict: 0.15 is not > 0.15
    ((0.2, 0.0, 2.0, 1.5, 2.0, 1.0), (False, False, 0)),  # slope gate strict
    ((0.2, -1.0, 2.0, 1.5, 2.0, 1.0), (False, False, 0)),  # gates disagree
    ((0.2, 1.0, 1.5, 1.0, 1.2, 1.0), (False, False, 0)),  # every confirmation exactly at its threshold
    ((-0.2, -1.0, 2.0, 0.0, 1.0, 1.3), (False, True, 2)),  # short: activity z + sell size
    ((-0.2, -1.0, 2.0, 1.5, 1.0, 1.0), (False, True, 2)),  # short uses the same positive z thresholds
    ((-0.2, -1.0, 2.0, 0.0, 2.0, 1.0), (False, False, 0)),  # buy size does not confirm a short
    ((-0.15, -1.0, 2.0, 1.5, 1.0, 2.0), (False, False, 0)),  # short gate strict
    ((NAN, 1.0, 2.0, 1.5, 2.0, 1.0), (False, False, 0)),  # NaN gate: polars would call NaN > 0.15 True
    ((0.2, NAN, 2.0, 1.5, 2.0, 1.0), (False, False, 0)),
    ((0.2, 1.0, NAN, 1.5, 2.0, 1.0), (True, False, 2)),  # a NaN confirmation just does not count
    ((0.2, 1.0, NAN, NAN, 2.0, 1.0), (False, False, 0)),
    ((0.2, 1.0, 2.0, 1.5, NAN, 1.0), (True, False, 2)),  # no buys in the bar: avg_buy_size NaN
]


@pytest.mark.parametrize("row,expected", ENTRY_CASES)
def test_entry_conditions(row, expected):
    # a neutral first row so that the exit cross (which needs the previous row) stays quiet
    out = A.signals(frame([(0.0, 0.0, 0.0, 0.0, 1.0, 1.0), row]), MomentumParams()).row(1, named=True)
    long, short, n = expected
    assert (out["enter_long"], out["enter_short"]) == (long, short)
    if long or short:
        assert out["strength"] == pytest.approx(0.5 + n / 3, abs=1e-15)
        assert out["confidence"] == pytest.approx(n / 3, abs=1e-15)
    else:
        assert (out["strength"], out["confidence"]) == (1.0, 0.0)


def test_strength_values_exact():
    out = A.signals(frame([(0.2, 1.0, 2.0, 1.5, 1.0, 1.0), (0.2, 1.0, 2.0, 1.5, 2.0, 1.0)]), MomentumParams())
    assert out.get_column("strength").to_list() == [0.5 + 2.0 / 3.0, 1.5]
    assert out.get_column("confidence").to_list() == [2.0 / 3.0, 1.0]


def test_min_confirmations_and_thresholds_are_params():
    two = frame([(0.0, 0.0, 0.0, 0.0, 1.0, 1.0), (0.3, 1.0, 2.0, 1.5, 1.0, 1.0)])
    assert A.signals(two, MomentumParams(min_confirmations=3)).get_column("enter_long").to_list() == [False, False]
    assert A.signals(two, MomentumParams(min_confirmations=2)).get_column("enter_long").to_list() == [False, True]
    assert A.signals(two, MomentumParams(ofi_threshold=0.3)).get_column("enter_long").to_list() == [False, False]
    assert A.signals(two, MomentumParams(intensity_z=2.0)).get_column("enter_long").to_list() == [False, False]


def test_exits_cross_through_zero_and_opposite_entry():
    ofi = [0.2, 0.1, 0.0, -0.01, -0.05, 0.02, NAN, -0.1, 0.0, -0.05, -0.06]
    rows = [(o, 0.0, 0.0, 0.0, 1.0, 1.0) for o in ofi]
    # after a negative bar there is no cross, but a full short entry itself exits longs
    rows.append((-0.2, -1.0, 2.0, 1.5, 1.0, 2.0))
    out = A.signals(frame(rows), MomentumParams())
    # 0.0 -> -0.01 and 0.0 -> -0.05 cross (previous >= 0); after NaN nothing crosses
    assert out.get_column("exit_long").arg_true().to_list() == [3, 9, 11]
    # -0.05 -> 0.02 crosses up; -0.1 -> 0.0 does not (0 is not > 0)
    assert out.get_column("exit_short").arg_true().to_list() == [5]
    assert out.get_column("enter_short").arg_true().to_list() == [11]


def test_long_entry_exits_shorts_on_the_same_row():
    out = A.signals(frame([(0.3, 1.0, 0.0, 0.0, 1.0, 1.0), (0.2, 1.0, 2.0, 1.5, 1.0, 1.0)]), MomentumParams())
    assert out.get_column("exit_short").to_list() == [False, True]
    assert out.get_column("exit_long").to_list() == [False, False]


def test_params_map_to_columns():
    p = MomentumParams(ofi_lookback=5, zscore_window=100, delta_lookback=30)
    assert A.required_features(p) == ["ofi_ema5", "cum_delta_slope", "trade_intensity_z100",
                                      "large_trade_ratio_z100", "avg_buy_size", "avg_sell_size"]
    assert A.required_feature_settings(p) == {"cum_delta_slope_window": 30}
    assert A.warmup_bars(p) == 99
    assert A.warmup_bars(MomentumParams()) == 19
    with pytest.raises(SchemaError) as err:
        A.signals(frame([(0.2, 1.0, 2.0, 1.5, 1.0, 1.0)]), p)
    msg = str(err.value)
    assert "ofi_ema5" in msg and "trade_intensity_z100" in msg and "large_trade_ratio_z100" in msg
    assert "avg_buy_size" not in msg


def test_nulls_read_as_not_available():
    f = frame([(0.0, 0.0, 0.0, 0.0, 1.0, 1.0), (0.2, 1.0, 2.0, 1.5, 1.0, 1.0)])
    f = f.with_columns(pl.when(pl.col("ts_event") == 1001).then(None).otherwise(pl.col("ofi_ema10"))
                       .alias("ofi_ema10"))
    out = A.signals(f, MomentumParams())
    assert out.get_column("enter_long").to_list() == [False, False]
    assert out.null_count().sum_horizontal().item() == 0
