"""Batch == streaming bit for bit, causality, partial bars and bad inputs."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from core.errors import ConfigError, DataError, SchemaError
from market.bars import (
    BarBuilder,
    DollarBars,
    DynamicVolumeBars,
    LargeTradeConfig,
    TickBars,
    TimeBars,
    VolumeBars,
    build_bars,
)
from market.schema import BAR_SCHEMA
from tests.conftest import shared_data_path
from tests.unit.test_bars_reference import DAY, random_trades, trades_from_rows

LARGE = LargeTradeConfig(quantile=0.9, window=64, refresh=5)
ALL_SPECS = [
    TimeBars(every="5s"),
    TickBars(trades=13),
    VolumeBars(threshold=2.5),
    DollarBars(threshold=300.0),
    DynamicVolumeBars(target_bars_per_day=300, lookback_days=1, initial_threshold=2.0),
]
SPEC_IDS = [s.kind for s in ALL_SPECS]


def tardis_trades() -> pl.DataFrame:
    path = shared_data_path("binance", "trades", "tardis_BTCUSDT-usdm-trades-2020-02-22.csv")
    raw = pl.read_csv(path)
    assert set(raw["side"].unique().to_list()) <= {"buy", "sell"}
    return raw.select(
        pl.col("id").cast(pl.Int64),
        (pl.col("timestamp").cast(pl.Int64) * 1_000).alias("ts_event"),
        pl.col("price").cast(pl.Float64),
        pl.col("amount").cast(pl.Float64).alias("quantity"),
        (pl.col("side") == "sell").alias("is_buyer_maker"),  # taker sold = the buyer was the maker
    )


def spot_trades() -> pl.DataFrame:
    path = shared_data_path("binance", "trades", "BTCUSDT-spot-trades-2021-01-08.parquet")
    raw = pl.read_parquet(path)
    assert set(raw["buyer_maker"].unique().to_list()) <= {"True", "False"}
    return raw.select(
        pl.col("trade_id").cast(pl.Int64).alias("id"),
        pl.col("timestamp").dt.epoch("ns").alias("ts_event"),
        pl.col("price").cast(pl.Float64),
        pl.col("quantity").cast(pl.Float64),
        (pl.col("buyer_maker") == "True").alias("is_buyer_maker"),
    )


def assert_bitwise_equal(a: pl.DataFrame, b: pl.DataFrame) -> None:
    assert a.schema == b.schema == pl.Schema(BAR_SCHEMA)
    assert a.height == b.height, (a.height, b.height)
    for c in a.columns:
        x, y = a[c].to_numpy(), b[c].to_numpy()
        assert x.dtype == y.dtype and x.tobytes() == y.tobytes(), c


def streamed(trades: pl.DataFrame, spec, large, cuts) -> pl.DataFrame:
    b = BarBuilder(spec, large)
    bounds = [0, *sorted(cuts), trades.height]
    parts = [b.update(trades.slice(lo, hi - lo)) for lo, hi in zip(bounds, bounds[1:])]
    assert b.trades_seen == trades.height
    return pl.concat(parts)


@pytest.mark.parametrize("spec", ALL_SPECS, ids=SPEC_IDS)
@settings(max_examples=12, deadline=None)
@given(data=st.data())
def test_streaming_equals_batch_random_splits(spec, data):
    n = data.draw(st.integers(0, 1_500), label="n")
    trades = random_trades(seed=data.draw(st.integers(0, 2**31)), n=n, days=data.draw(st.sampled_from([0.01, 3.0])))
    cuts = data.draw(st.lists(st.integers(0, n), max_size=30), label="cuts")  # repeats = empty chunks
    batch = build_bars(trades, spec, LARGE)
    assert_bitwise_equal(batch, streamed(trades, spec, LARGE, cuts))


@pytest.mark.parametrize("spec", ALL_SPECS, ids=SPEC_IDS)
def test_streaming_one_trade_at_a_time_and_update_arrays(spec):
    trades = random_trades(seed=7, n=600, days=2.5)
    batch = build_bars(trades, spec, LARGE)
    assert_bitwise_equal(batch, streamed(trades, spec, LARGE, range(1, trades.height)))
    b = BarBuilder(spec, LARGE)
    cols = [trades[c].to_numpy() for c in ("id", "ts_event", "price", "quantity", "is_buyer_maker")]
    # writable numpy arrays (not polars' read-only views) in two calls
    parts = [b.update_arrays(*(c[:250].copy() for c in cols)), b.update_arrays(*(c[250:].copy() for c in cols))]
    assert_bitwise_equal(batch, pl.concat(parts))


@pytest.mark.parametrize("loader", [tardis_trades, spot_trades], ids=["tardis_usdm", "binance_spot"])
@pytest.mark.parametrize("spec", [
    TimeBars(every="1s"), TickBars(trades=100), VolumeBars(threshold=5.0), DollarBars(threshold=1e5),
    DynamicVolumeBars(target_bars_per_day=2_000, initial_threshold=3.0),
], ids=SPEC_IDS)
def test_streaming_equals_batch_on_real_samples(loader, spec):
    trades = loader()
    large = LargeTradeConfig(quantile=0.95, window=500, refresh=50)
    batch = build_bars(trades, spec, large)
    assert batch.height > 3
    rng = np.random.default_rng(11)
    cuts = [*rng.integers(0, trades.height, 40).tolist(), *range(1, 200), 200, 200]
    assert_bitwise_equal(batch, streamed(trades, spec, large, cuts))
    # every trade is in exactly one bar or in the open bar, in order
    b = BarBuilder(spec, large)
    b.update(trades)
    bars = pl.concat([batch, b.partial()])
    ids = trades["id"].to_numpy()
    ends = np.cumsum(bars["trade_count"].to_numpy())
    assert ends[-1] == trades.height
    np.testing.assert_array_equal(bars["last_id"].to_numpy(), ids[ends - 1])
    np.testing.assert_array_equal(bars["first_id"].to_numpy(), ids[np.r_[0, ends[:-1]]])
    np.testing.assert_allclose(bars["volume"].sum(), trades["quantity"].sum(), rtol=1e-12)


@pytest.mark.parametrize("spec", ALL_SPECS, ids=SPEC_IDS)
@settings(max_examples=8, deadline=None)
@given(seed=st.integers(0, 2**31), frac=st.floats(0.05, 0.95))
def test_causality_future_changes_do_not_move_past_bars(spec, seed, frac):
    trades = random_trades(seed=seed, n=1_200, days=2.5)
    t = int(trades["ts_event"][int(frac * trades.height)])
    past, future = trades.filter(pl.col("ts_event") <= t), trades.filter(pl.col("ts_event") > t)
    rng = np.random.default_rng(seed)
    changed = future.with_columns(
        pl.col("price") * pl.Series(rng.uniform(0.5, 1.5, future.height)),
        pl.col("quantity") * 7.0,
        ~pl.col("is_buyer_maker"),
    )
    extra = changed.with_columns(pl.col("id") + 10**6)
    perturbed = pl.concat([past, pl.concat([changed, extra]).sort("ts_event", maintain_order=True)])
    a = build_bars(trades, spec, LARGE).filter(pl.col("ts_event") <= t)
    b = build_bars(perturbed, spec, LARGE).filter(pl.col("ts_event") <= t)
    assert_bitwise_equal(a, b)


def test_partial_leaves_state_untouched():
    trades = random_trades(seed=3, n=500)
    spec = VolumeBars(threshold=4.0)
    b = BarBuilder(spec, LARGE)
    first = b.update(trades.head(250))
    p1 = b.partial()
    assert p1.height == 1 and p1.schema == pl.Schema(BAR_SCHEMA)
    assert_bitwise_equal(p1, b.partial())
    assert b.close_until(2**62).height == 0  # trade-driven bars ignore the clock
    rest = b.update(trades.tail(250))
    assert_bitwise_equal(pl.concat([first, rest]), build_bars(trades, spec, LARGE))
    # the open bar is the prefix of the bar that later closes
    closing = rest.row(0, named=True)
    assert p1["first_id"][0] == closing["first_id"] and p1["open"][0] == closing["open"]
    assert p1["volume"][0] < 4.0 and p1["threshold"][0] == 4.0


def test_close_until_equals_later_trade_close():
    trades = random_trades(seed=4, n=400)
    spec = TimeBars(every="10s")
    ts = trades["ts_event"].to_numpy()
    b = BarBuilder(spec, LARGE)
    out = []
    for i in range(trades.height):
        out.append(b.close_until(int(ts[i])))  # the clock reaches each trade's time before the trade
        out.append(b.update(trades.slice(i, 1)))
    last = b.close_until(int(ts[-1]) + spec.every_ns)
    assert last.height == 1
    batch = build_bars(trades, spec, LARGE)
    assert_bitwise_equal(pl.concat(out), batch)
    assert last["ts_event"][0] == (int(ts[-1]) // spec.every_ns + 1) * spec.every_ns
    assert last["ts_open"][0] > batch["ts_close"][-1]


def test_long_inputs_are_sliced_without_changing_bars(monkeypatch):
    from market.bars import builder

    trades = random_trades(seed=9, n=1_000, days=3.0)
    for spec in ALL_SPECS:
        whole = build_bars(trades, spec, LARGE)
        monkeypatch.setattr(builder, "_KERNEL_SLICE", 7)
        assert_bitwise_equal(build_bars(trades, spec, LARGE), whole)
        monkeypatch.undo()


def test_large_disabled_gives_zero_columns_and_same_other_columns():
    trades = random_trades(seed=5, n=2_000)
    off = build_bars(trades, VolumeBars(threshold=3.0), LargeTradeConfig(window=0))
    on = build_bars(trades, VolumeBars(threshold=3.0), LargeTradeConfig(window=100, refresh=10))
    assert off["large_count"].sum() == 0 and off["large_volume"].sum() == 0.0
    assert on["large_count"].sum() > 0
    assert_bitwise_equal(off.with_columns(on["large_count"], on["large_volume"]), on)


# --------------------------------------------------------------------------- bad inputs
def _good() -> pl.DataFrame:
    return trades_from_rows([(1, 100, 10.0, 1.0, False), (2, 200, 10.5, 2.0, True), (3, 300, 10.2, 1.5, False)])


@pytest.mark.parametrize("column, row, value, match", [
    ("ts_event", 2, 150, r"row 2 .*150 < 200"),
    ("price", 1, float("nan"), "price nan at row 1"),
    ("price", 0, float("inf"), "price inf at row 0"),
    ("price", 2, -1.0, "price -1.0 at row 2"),
    ("quantity", 1, 0.0, "quantity 0.0 at row 1"),
    ("quantity", 2, float("nan"), "quantity nan at row 2"),
])
def test_bad_rows_raise_data_error_naming_row(column, row, value, match):
    df = _good()
    values = df[column].to_list()
    values[row] = value
    bad = df.with_columns(pl.Series(column, values, dtype=df.schema[column]))
    b = BarBuilder(VolumeBars(threshold=2.0), LARGE)
    with pytest.raises(DataError, match=match) as err:
        b.update(bad)
    assert err.value.line == row + 1
    # a rejected chunk leaves the builder as it was
    assert b.trades_seen == 0
    assert_bitwise_equal(b.update(_good()), build_bars(_good(), VolumeBars(threshold=2.0), LARGE))


def test_unsorted_across_chunks_names_both_timestamps():
    b = BarBuilder(TickBars(trades=2), LARGE)
    b.update(_good())
    with pytest.raises(DataError, match=r"row 0 .*299 < 300 \(the previous chunk"):
        b.update(trades_from_rows([(4, 299, 10.0, 1.0, False)]))
    assert b.trades_seen == 3
    assert b.update(trades_from_rows([(4, 300, 10.0, 1.0, False)])).height == 1  # equal ts is fine


def test_schema_problems_raise_schema_error():
    b = BarBuilder(VolumeBars(threshold=2.0), LARGE)
    with pytest.raises(SchemaError, match="is_buyer_maker"):
        b.update(_good().drop("is_buyer_maker"))
    with pytest.raises(SchemaError, match="'price'"):
        b.update(_good().with_columns(pl.col("price").cast(pl.Utf8)))
    with pytest.raises(SchemaError, match="is_buyer_maker"):
        b.update(_good().with_columns(pl.col("is_buyer_maker").cast(pl.Int8)))
    with pytest.raises(SchemaError, match="differ in length"):
        b.update_arrays(np.arange(3), np.arange(2), np.ones(3), np.ones(3), np.zeros(3, bool))
    with pytest.raises(SchemaError, match="ts_event"):
        b.update_arrays(np.arange(3), np.ones(3), np.ones(3), np.ones(3), np.zeros(3, bool))
    with pytest.raises(SchemaError):
        b.update(_good().to_pandas())  # type: ignore[arg-type]
    assert b.trades_seen == 0


def test_nulls_raise_data_error_naming_column_and_row():
    df = _good().with_columns(pl.Series("quantity", [1.0, None, 2.0]))
    with pytest.raises(DataError, match=r"'quantity' has 1 null.*row 1"):
        build_bars(df, VolumeBars(threshold=2.0), LARGE)


def test_lossless_dtypes_are_accepted():
    df = _good()
    narrow = df.with_columns(pl.col("id").cast(pl.Int32), pl.col("quantity").cast(pl.Float32))
    assert_bitwise_equal(build_bars(narrow, TickBars(trades=1), LARGE), build_bars(df, TickBars(trades=1), LARGE))


def test_builder_config_errors():
    with pytest.raises(ConfigError):
        BarBuilder("volume:5")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="dynamic"):
        BarBuilder(VolumeBars(threshold=1.0), daily_volumes={1: 2.0})
    with pytest.raises(ConfigError, match="positive"):
        BarBuilder(DynamicVolumeBars(target_bars_per_day=2), daily_volumes={1: 0.0})
    with pytest.raises(ConfigError, match="day number"):
        BarBuilder(DynamicVolumeBars(target_bars_per_day=2), daily_volumes={"2024-01-01": 2.0})


def test_multi_day_dynamic_streaming_crosses_midnight_with_open_bar():
    # 3 days, few trades per day: bars span midnights, thresholds change inside an open bar
    rows = [(i, (i // 4) * DAY + (i % 4) * 1_000, 10.0 + i % 3, 1.0 + (i % 5), i % 2 == 0) for i in range(12)]
    trades = trades_from_rows(rows)
    spec = DynamicVolumeBars(target_bars_per_day=1, lookback_days=1, initial_threshold=100.0)
    bars = build_bars(trades, spec, LargeTradeConfig(window=0))
    # day 0 volume 1+2+3+4 = 10 < 100 stays open; day 1 threshold 10: cum 10+5 = 15 >= 10 closes on trade 4
    assert bars["last_id"].to_list()[0] == 4
    assert bars["threshold"].to_list()[0] == 10.0
    assert_bitwise_equal(bars, streamed(trades, spec, LargeTradeConfig(window=0), range(12)))
