"""Multi-timeframe joins: visibility rule, streaming joiner == batch join, bad inputs."""

from __future__ import annotations

import math

import numpy as np
import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from core.errors import DataError, SchemaError
from market.features import HigherTimeframeJoiner, join_higher_timeframe

HOUR = 3_600_000_000_000


def _higher(ts: list[int]) -> pl.DataFrame:
    return pl.DataFrame({"ts_event": ts, "atr14": [float(i) + 0.5 for i in range(len(ts))],
                         "rsi": [math.nan] + [50.0 + i for i in range(1, len(ts))]},
                        schema={"ts_event": pl.Int64, "atr14": pl.Float64, "rsi": pl.Float64})


def _base(ts: list[int]) -> pl.DataFrame:
    return pl.DataFrame({"ts_event": ts, "ofi": [0.1 * i for i in range(len(ts))]},
                        schema={"ts_event": pl.Int64, "ofi": pl.Float64})


def test_higher_bar_closing_exactly_at_base_ts_is_visible_one_ns_later_is_not():
    higher = _higher([HOUR, 2 * HOUR])
    base = _base([HOUR - 1, HOUR, 2 * HOUR - 1, 2 * HOUR, 2 * HOUR + 5])
    out = join_higher_timeframe(base, higher, "h1_")
    assert out.columns == ["ts_event", "ofi", "h1_ts_event", "h1_atr14", "h1_rsi"]
    assert out.get_column("h1_ts_event").to_list() == [None, HOUR, HOUR, 2 * HOUR, 2 * HOUR]
    assert out.get_column("h1_atr14").to_list() == [None, 0.5, 0.5, 1.5, 1.5]
    rsi = out.get_column("h1_rsi")
    assert rsi[0] is None and math.isnan(rsi[1]) and rsi[3] == 51.0  # null = no bar yet, NaN = warm-up
    assert out.get_column("ofi").to_list() == base.get_column("ofi").to_list()


def test_base_bars_sharing_a_close_time_get_the_same_higher_row():
    out = join_higher_timeframe(_base([5, 10, 10, 10, 12]), _higher([10, 11]), "h_")
    assert out.get_column("h_ts_event").to_list() == [None, 10, 10, 10, 11]


def test_reference_loop_agrees_with_batch_join_on_random_times():
    rng = np.random.default_rng(3)
    h_ts = np.cumsum(rng.integers(1, 50, 80))
    b_ts = np.cumsum(rng.integers(1, 20, 300))
    out = join_higher_timeframe(_base(b_ts.tolist()), _higher(h_ts.tolist()), "x_")
    expected = []
    for t in b_ts:  # plain loop: last higher bar with ts <= t
        visible = [i for i, h in enumerate(h_ts) if h <= t]
        expected.append(int(h_ts[visible[-1]]) if visible else None)
    assert out.get_column("x_ts_event").to_list() == expected


def _assert_same(a: pl.DataFrame, b: pl.DataFrame) -> None:
    assert a.schema == b.schema
    assert a.equals(b, null_equal=True)
    for c in a.columns:  # NaN-aware bit check on floats
        if a.schema[c] == pl.Float64:
            x, y = a.get_column(c).fill_null(-1.0).to_numpy(), b.get_column(c).fill_null(-1.0).to_numpy()
            assert np.array_equal(x.view(np.int64), y.view(np.int64)), c


@settings(max_examples=40, deadline=None)
@given(st.integers(0, 2**32 - 1), st.lists(st.integers(0, 12), min_size=1, max_size=40))
def test_streaming_joiner_equals_batch_join(seed, base_chunks):
    rng = np.random.default_rng(seed)
    h_ts = np.cumsum(rng.integers(1, 40, 60))
    b_ts = np.cumsum(rng.integers(0, 15, 200))  # 0 steps: base bars sharing a close time
    higher, base = _higher(h_ts.tolist()), _base(b_ts.tolist())
    batch = join_higher_timeframe(base, higher, "h1_")
    joiner = HigherTimeframeJoiner("h1_", higher_schema=higher.schema)
    parts, start, h_fed = [], 0, 0
    sizes = base_chunks + [base.height]
    for size in sizes:
        chunk = base.slice(start, size)
        start += size
        if chunk.height == 0:
            parts.append(joiner.join(chunk))
            continue
        # feed every higher bar closed by the end of this chunk, in random sub-batches, before joining
        last = int(chunk.get_column("ts_event")[-1])
        upto = int(np.searchsorted(h_ts, last, side="right"))
        while h_fed < upto:
            k = int(rng.integers(1, upto - h_fed + 1))
            joiner.update_higher(higher.slice(h_fed, k))
            h_fed += k
        parts.append(joiner.join(chunk))
        if start >= base.height:
            break
    _assert_same(pl.concat(parts), batch)


def test_joiner_before_any_higher_bar_gives_nulls_and_keeps_memory_bounded():
    higher = _higher([10, 20, 30, 40])
    joiner = HigherTimeframeJoiner("h_", higher_schema=higher.schema)
    first = joiner.join(_base([5]))
    assert first.get_column("h_ts_event").to_list() == [None]
    joiner.update_higher(higher.slice(0, 3))
    assert joiner.join(_base([25])).get_column("h_atr14").to_list() == [1.5]
    assert joiner._rows.height == 2  # latest visible (20) and pending (30)
    assert joiner.join(_base([35])).get_column("h_ts_event").to_list() == [30]
    assert joiner._rows.height == 1


def test_joiner_rejects_late_higher_bar_and_out_of_order_base():
    joiner = HigherTimeframeJoiner("h_")
    joiner.update_higher(_higher([10]))
    joiner.join(_base([20]))
    with pytest.raises(DataError, match="late higher-timeframe bar"):
        joiner.update_higher(_higher([20]))
    with pytest.raises(DataError, match="must be non-decreasing"):
        joiner.join(_base([19]))
    with pytest.raises(DataError, match="must be strictly increasing"):
        joiner.update_higher(_higher([10]).with_columns(ts_event=pl.lit(10, pl.Int64)))
    assert joiner.join(_base([20, 20])).get_column("h_ts_event").to_list() == [10, 10]  # ties are fine


def test_joiner_needs_schema_before_first_join_and_checks_it():
    with pytest.raises(SchemaError, match="higher_schema"):
        HigherTimeframeJoiner("h_").join(_base([1]))
    joiner = HigherTimeframeJoiner("h_", higher_schema=_higher([1]).schema)
    with pytest.raises(SchemaError, match="expected the columns declared first"):
        joiner.update_higher(_higher([1]).drop("rsi"))


def test_batch_join_bad_inputs():
    with pytest.raises(DataError, match="not non-decreasing") as info:
        join_higher_timeframe(_base([1, 3, 2]), _higher([1]), "h_")
    assert info.value.line == 3
    with pytest.raises(DataError, match="higher-timeframe frame ts_event not strictly increasing"):
        join_higher_timeframe(_base([1, 3]), _higher([2, 2]), "h_")
    with pytest.raises(DataError, match="higher-timeframe frame ts_event not strictly increasing"):
        join_higher_timeframe(_base([1, 3]), _higher([5, 2]), "h_")
    with pytest.raises(SchemaError, match="dtype"):
        join_higher_timeframe(_base([1]).with_columns(pl.col("ts_event").cast(pl.Float64)), _higher([1]), "h_")
    with pytest.raises(SchemaError, match="no ts_event"):
        join_higher_timeframe(_base([1]), _higher([1]).rename({"ts_event": "t"}), "h_")
    with pytest.raises(SchemaError, match="already exist"):
        join_higher_timeframe(_base([1]).with_columns(h_rsi=pl.lit(1.0)), _higher([1]), "h_")
    with pytest.raises(SchemaError, match="non-empty"):
        join_higher_timeframe(_base([1]), _higher([1]), "")
