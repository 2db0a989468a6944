"""Trade quality checks: each defect with exact counts, the outlier rule against a plain-python
reference, reconciliation and chunked == one-shot properties."""

from __future__ import annotations

import json
import math
import statistics

import numpy as np
import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from core.config import build_config
from core.errors import ConfigError, SchemaError
from market.quality import QualityConfig, QualityReport, TradeValidator, check_trades
from market.schema import AGG_TRADES_SCHEMA, QUARANTINE_EXTRA, TRADES_SCHEMA

T0 = 1_700_000_000_000_000_000
MS = 1_000_000


def agg(rows: list[tuple]) -> pl.DataFrame:
    """rows: (id, ts_ms_offset, price, qty[, is_buyer_maker]) -> agg_trades frame; first/last id = 2id, 2id+1."""
    ids, ts, px, q, m = [], [], [], [], []
    for r in rows:
        ids.append(r[0])
        ts.append(None if r[1] is None else T0 + r[1] * MS)
        px.append(r[2])
        q.append(r[3])
        m.append(r[4] if len(r) > 4 else False)
    return pl.DataFrame(
        {
            "id": ids,
            "ts_event": ts,
            "ts_init": ts,
            "price": px,
            "quantity": q,
            "is_buyer_maker": m,
            "first_trade_id": [None if i is None else 2 * i for i in ids],
            "last_trade_id": [None if i is None else 2 * i + 1 for i in ids],
        },
        schema=AGG_TRADES_SCHEMA,
    )


def reasons(res) -> dict[int, str]:
    return dict(zip(res.quarantine["row_number"].to_list(), res.quarantine["reason"].to_list()))


def test_clean_input_passes_unchanged():
    df = agg([(1, 0, 10.0, 1.0), (2, 5, 10.1, 2.0, True), (3, 5, 10.0, 0.5)])
    res = check_trades(df)
    assert res.clean.equals(df)
    assert res.quarantine.height == 0
    r = res.report
    assert (r.rows_in, r.rows_kept, r.rows_quarantined, r.duplicates, r.out_of_order) == (3, 3, 0, 0, 0)
    assert (r.first_ts, r.last_ts, r.first_id, r.last_id) == (T0, T0 + 5 * MS, 1, 3)
    assert r.is_clean and r.reconciles()


def test_row_level_defects_each_get_their_reason():
    df = agg([
        (1, 0, 10.0, 1.0),
        (2, 1, float("nan"), 1.0),
        (3, 2, 10.0, float("inf")),
        (4, 3, 0.0, 1.0),
        (5, 4, 10.0, -1.0),
        (6, None, 10.0, 1.0),
        (None, 5, 10.0, 1.0),
        (7, 6, float("-inf"), float("nan")),  # price reason wins over quantity reason
        (8, 7, -5.0, 0.0),  # non-positive price wins over non-positive quantity
        (9, 8, 10.0, 1.0),
    ])
    df = df.with_columns(
        last_trade_id=pl.when(pl.col("id") == 9).then(pl.lit(0, pl.Int64)).otherwise(pl.col("last_trade_id"))
    )
    res = check_trades(df)
    assert reasons(res) == {
        1: "non_finite_price", 2: "non_finite_quantity", 3: "non_positive_price", 4: "non_positive_quantity",
        5: "null_value", 6: "null_value", 7: "non_finite_price", 8: "non_positive_price", 9: "invalid_trade_id_range",
    }
    assert res.clean["id"].to_list() == [1]
    assert res.report.quarantine_by_reason == {
        "non_finite_price": 2, "non_finite_quantity": 1, "non_positive_price": 2, "non_positive_quantity": 1,
        "null_value": 2, "invalid_trade_id_range": 1,
    }
    assert list(res.quarantine.columns) == list(AGG_TRADES_SCHEMA) + list(QUARANTINE_EXTRA)
    assert res.quarantine.schema["row_number"] == pl.Int64 and res.quarantine.schema["reason"] == pl.Utf8
    # quarantined rows are the original values, untouched
    assert res.quarantine.filter(pl.col("row_number") == 3)["price"].item() == 0.0
    assert res.report.reconciles()


def test_exact_and_conflicting_duplicates():
    df = agg([
        (1, 0, 10.0, 1.0),
        (2, 1, 10.0, 1.0),
        (2, 1, 10.0, 1.0),  # exact copy -> duplicate
        (2, 1, 10.5, 1.0),  # same id, other price -> conflict
        (3, 2, 10.0, 1.0),
        (1, 0, 10.0, 1.0),  # exact copy arriving late -> out of order + duplicate
    ])
    res = check_trades(df)
    r = res.report
    assert res.clean["id"].to_list() == [1, 2, 3]
    assert res.clean["price"].to_list() == [10.0, 10.0, 10.0]
    assert reasons(res) == {3: "conflicting_duplicate"}
    assert (r.duplicates, r.rows_quarantined, r.rows_kept, r.out_of_order) == (2, 1, 3, 1)


def test_copy_of_quarantined_row_shares_its_fate():
    df = agg([(1, 10, 10.0, 1.0), (2, 5, 10.0, 1.0), (2, 5, 10.0, 1.0), (3, 11, 10.0, 1.0)])
    res = check_trades(df)
    assert reasons(res) == {1: "ts_before_previous", 2: "ts_before_previous"}
    assert res.report.duplicates == 0 and res.clean["id"].to_list() == [1, 3]


def test_out_of_order_rows_are_sorted_and_counted():
    df = agg([(3, 2, 10.0, 1.0), (1, 0, 10.0, 2.0), (2, 1, 10.0, 3.0), (5, 4, 10.0, 4.0), (4, 3, 10.0, 5.0)])
    res = check_trades(df)
    assert res.clean["id"].to_list() == [1, 2, 3, 4, 5]
    assert res.clean["quantity"].to_list() == [2.0, 3.0, 1.0, 5.0, 4.0]
    assert res.report.out_of_order == 3  # ids 1, 2, 4 arrived after a larger id
    assert res.report.rows_kept == 5 and res.quarantine.height == 0


def test_ts_going_backwards_is_quarantined_relative_to_last_kept():
    df = agg([(1, 100, 10.0, 1.0), (2, 90, 10.0, 1.0), (3, 95, 10.0, 1.0), (4, 100, 10.0, 1.0), (5, 101, 10.0, 1.0)])
    res = check_trades(df)
    assert reasons(res) == {1: "ts_before_previous", 2: "ts_before_previous"}
    assert res.clean["id"].to_list() == [1, 4, 5]  # equal timestamps are fine


def test_id_gaps_reported_as_ranges_not_quarantined():
    df = agg([(1, 0, 10.0, 1.0), (2, 1, 10.0, 1.0), (5, 2, 10.0, 1.0), (6, 3, 10.0, 1.0), (16, 4, 10.0, 1.0)])
    r = check_trades(df).report
    assert r.id_gaps == [(2, 5, 2), (6, 16, 9)]
    assert (r.id_gap_total, r.id_gap_count, r.rows_kept) == (11, 2, 5)
    limited = check_trades(df, config=QualityConfig(max_listed_gaps=1)).report
    assert limited.id_gaps == [(6, 16, 9)] and limited.id_gap_total == 11 and limited.id_gap_count == 2


def test_id_gap_counts_ids_of_quarantined_rows_as_present():
    df = agg([(1, 0, 10.0, 1.0), (2, 1, float("nan"), 1.0), (3, 2, 10.0, 1.0)])
    assert check_trades(df).report.id_gap_count == 0


def test_time_gaps_longer_than_limit_are_reported():
    minute = 60_000
    df = agg([(1, 0, 10.0, 1.0), (2, 5 * minute, 10.0, 1.0), (3, 5 * minute + 6 * minute, 10.0, 1.0),
              (4, 12 * minute, 10.0, 1.0)])
    r = check_trades(df).report  # default 5m: exactly 5 min is not a gap
    assert r.time_gaps == [(T0 + 5 * minute * MS, T0 + 11 * minute * MS)] and r.time_gap_count == 1
    r2 = check_trades(df, config=QualityConfig(max_time_gap="30s")).report
    assert r2.time_gap_count == 3 and r2.rows_kept == 4


def reference_outliers(prices, window, k, min_jump, reset_after):
    """Plain-python statement of the rule: flags per trade (all trades valid, in id order)."""
    kept: list[float] = []
    flags, consec = [], 0
    for p in prices:
        lp = math.log(p)
        flag = False
        if len(kept) == window:
            med = statistics.median(kept)
            mad = statistics.median([abs(x - med) for x in kept])
            flag = abs(lp - med) > max(k * 1.4826 * mad, min_jump)
        if flag:
            consec += 1
            if reset_after and consec >= reset_after:
                kept.clear()
                consec = 0
        else:
            consec = 0
            kept.append(lp)
            if len(kept) > window:
                kept.pop(0)
        flags.append(flag)
    return np.array(flags)


def walk_with_spikes(rng, n, vol, n_spikes, shift_at=None):
    logp = np.log(100.0) + np.cumsum(rng.normal(0, vol, n))
    if shift_at is not None:
        logp[shift_at:] += 0.2  # a genuine level shift
    pos = rng.choice(n, n_spikes, replace=False)
    logp[pos] += rng.choice([-1, 1], n_spikes) * rng.uniform(0.01, 0.3, n_spikes)
    return np.exp(logp)


def trades_from_prices(prices) -> pl.DataFrame:
    n = len(prices)
    ts = T0 + np.arange(n, dtype=np.int64) * MS
    return pl.DataFrame({"id": np.arange(n, dtype=np.int64), "ts_event": ts, "ts_init": ts, "price": prices,
                         "quantity": np.ones(n), "is_buyer_maker": np.zeros(n, bool)}, schema=TRADES_SCHEMA)


@pytest.mark.parametrize(
    "seed,window,k,min_jump,vol,reset_after,shift_at",
    [(1, 64, 12.0, 0.05, 1e-3, 64, None), (2, 16, 3.0, 0.0, 1e-3, 0, None), (3, 7, 5.0, 0.02, 5e-3, 0, None),
     (4, 32, 12.0, 0.05, 1e-3, 20, 1500), (5, 32, 12.0, 0.05, 1e-3, 0, 1500)],
)
def test_outlier_kernel_matches_python_reference(seed, window, k, min_jump, vol, reset_after, shift_at):
    rng = np.random.default_rng(seed)
    prices = walk_with_spikes(rng, 3000, vol, 60, shift_at)
    cfg = QualityConfig(outlier_window=window, outlier_mad_k=k, outlier_min_jump=min_jump,
                        outlier_reset_after=reset_after)
    res = check_trades(trades_from_prices(prices), kind="trades", config=cfg)
    expected = np.flatnonzero(reference_outliers(prices, window, k, min_jump, reset_after))
    got = np.sort(res.quarantine["row_number"].to_numpy())
    assert set(res.quarantine["reason"].to_list()) <= {"outlier_price"}
    assert len(expected) > 10
    np.testing.assert_array_equal(got, expected)
    if shift_at is not None and reset_after:
        assert res.report.outlier_resets >= 1 and res.clean["id"].max() == 2999
    if shift_at is not None and not reset_after:
        assert res.report.rows_quarantined > 1400  # without a reset everything after the shift is lost


def test_outlier_needs_full_window():
    prices = [100.0] * 5 + [200.0] + [100.0] * 3
    cfg = QualityConfig(outlier_window=6)
    res = check_trades(trades_from_prices(np.array(prices)), kind="trades", config=cfg)
    assert res.quarantine.height == 0  # window had only 5 kept trades at the spike
    prices = [100.0] * 6 + [200.0] + [100.0] * 3
    res = check_trades(trades_from_prices(np.array(prices)), kind="trades", config=cfg)
    assert reasons(res) == {6: "outlier_price"}


# -- random frames with random defects ----------------------------------------------------------

def random_defective(seed: int, n: int, shuffle: bool) -> pl.DataFrame:
    rng = np.random.default_rng(seed)
    ids = np.cumsum(rng.choice([1, 1, 1, 2, 5], n)).astype(np.int64)
    ts = T0 + np.cumsum(rng.integers(0, 3, n)) * MS
    price = 100 * np.exp(np.cumsum(rng.normal(0, 1e-3, n)))
    qty = rng.uniform(0.1, 2, n)
    df = pl.DataFrame({"id": ids, "ts_event": ts, "ts_init": ts, "price": price, "quantity": qty,
                       "is_buyer_maker": rng.random(n) < 0.5, "first_trade_id": ids * 3, "last_trade_id": ids * 3 + 2})
    k = max(1, n // 10)
    bad = rng.choice(n, k)
    kinds = rng.integers(0, 7, k)
    price = price.copy(); qty = qty.copy(); ts = ts.copy()
    for i, kd in zip(bad, kinds):
        if kd == 0: price[i] = np.nan
        elif kd == 1: price[i] = -price[i]
        elif kd == 2: qty[i] = 0.0
        elif kd == 3: price[i] *= 1.5
        elif kd == 4: ts[i] -= 50 * MS
        elif kd == 5: qty[i] = np.inf
    df = df.with_columns(pl.Series("price", price), pl.Series("quantity", qty), pl.Series("ts_event", ts))
    nulls = rng.choice(n, max(1, n // 40))
    df = df.with_columns(pl.when(pl.int_range(n).is_in(nulls.tolist())).then(None).otherwise(pl.col("ts_init"))
                         .alias("ts_init"))
    dup = df[rng.choice(n, max(1, n // 8)).tolist()]
    conflict = df[rng.choice(n, max(1, n // 20)).tolist()].with_columns(pl.col("quantity") + 1.0)
    # copies directly after their original keep the input sorted (so chunking is well defined)
    out = pl.concat([df, dup, conflict]).with_row_index("__o").sort("id", "__o").drop("__o")
    if shuffle:
        out = out.sample(fraction=1.0, shuffle=True, seed=seed)
    return out


def assert_clean_invariants(res, n_in):
    r = res.report
    assert r.reconciles() and r.rows_in == n_in
    assert r.rows_kept + r.rows_quarantined + r.duplicates == n_in
    c = res.clean
    assert c.height == r.rows_kept
    ids = c["id"].to_numpy()
    assert np.all(np.diff(ids) > 0)  # sorted, unique
    assert np.all(np.diff(c["ts_event"].to_numpy()) >= 0)
    assert np.all(np.isfinite(c["price"].to_numpy())) and np.all(c["price"].to_numpy() > 0)
    assert np.all(np.isfinite(c["quantity"].to_numpy())) and np.all(c["quantity"].to_numpy() > 0)
    assert c.null_count().sum_horizontal().item() == 0
    assert res.quarantine.height == r.rows_quarantined
    assert sum(r.quarantine_by_reason.values()) == r.rows_quarantined


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 10**6), n=st.integers(1, 400), shuffle=st.booleans(), window=st.integers(3, 20))
def test_random_defects_always_reconcile(seed, n, shuffle, window):
    df = random_defective(seed, n, shuffle)
    res = check_trades(df, config=QualityConfig(outlier_window=window))
    assert_clean_invariants(res, df.height)
    # every input row is accounted for exactly once: kept ids, quarantined row numbers, duplicates
    q_rows = set(res.quarantine["row_number"].to_list())
    assert len(q_rows) == res.quarantine.height
    not_q = df.with_row_index("rn").filter(~pl.col("rn").is_in(list(q_rows)))
    assert not_q.unique(subset=list(AGG_TRADES_SCHEMA)).height == res.clean.height
    assert res.clean.join(not_q, on=list(AGG_TRADES_SCHEMA), how="anti").height == 0


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 10**6), n=st.integers(1, 300), data=st.data())
def test_chunked_validator_equals_one_shot(seed, n, data):
    df = random_defective(seed, n, shuffle=False)
    cfg = QualityConfig(outlier_window=8, max_time_gap="2ms", max_listed_gaps=5)
    one = check_trades(df, config=cfg, dataset="X")
    cuts = sorted(data.draw(st.lists(st.integers(0, df.height), max_size=6)))
    v = TradeValidator(config=cfg, dataset="X")
    parts, bounds = [], [0, *cuts, df.height]
    for a, b in zip(bounds[:-1], bounds[1:]):
        parts.append(v.check(df.slice(a, b - a)))
    assert pl.concat([p.clean for p in parts]).equals(one.clean)
    offsets = np.cumsum([0] + [b - a for a, b in zip(bounds[:-1], bounds[1:])])[:-1]
    q = pl.concat([p.quarantine.with_columns(pl.col("row_number") + int(o)) for p, o in zip(parts, offsets)])
    assert q.equals(one.quarantine)
    merged = parts[0].report
    for p in parts[1:]:
        merged = merged.merge(p.report)
    d1, d2 = one.report.to_dict(), merged.to_dict()
    d2.pop("batches")
    d1.pop("batches")
    assert d1 == d2


def test_validator_across_batches_detects_late_ids_and_boundary_duplicates():
    v = TradeValidator(dataset="BTCUSDT")
    r1 = v.check(agg([(1, 0, 10.0, 1.0), (2, 1, 10.0, 1.0), (3, 2, 10.0, 1.0)]))
    assert v.last_kept_id == 3
    r2 = v.check(agg([(3, 2, 10.0, 1.0), (3, 2, 11.0, 1.0), (2, 1, 10.0, 1.0), (6, 3, 10.0, 1.0)]))
    assert reasons(r2) == {1: "conflicting_duplicate", 2: "id_before_previous"}
    assert r2.report.duplicates == 1 and r2.clean["id"].to_list() == [6]
    assert r2.report.id_gaps == [(3, 6, 2)]
    total = r1.report.merge(r2.report)
    assert (total.rows_in, total.rows_kept, total.duplicates, total.rows_quarantined, total.batches) == (7, 4, 1, 2, 2)


def test_bad_inputs_raise_typed_errors():
    df = agg([(1, 0, 10.0, 1.0)])
    with pytest.raises(SchemaError, match="missing.*last_trade_id"):
        check_trades(df.drop("last_trade_id"))
    with pytest.raises(SchemaError, match="unexpected.*extra"):
        check_trades(df.with_columns(extra=pl.lit(1)))
    with pytest.raises(SchemaError, match="id: Float64"):
        check_trades(df.with_columns(pl.col("id").cast(pl.Float64)))
    with pytest.raises(SchemaError, match="first_trade_id"):
        check_trades(df, kind="trades")  # trades frames have no first/last trade id
    with pytest.raises(ConfigError, match="unknown trade kind"):
        TradeValidator(kind="klines")
    with pytest.raises(ConfigError, match="outlier_window"):
        build_config(QualityConfig, {"outlier_window": 1})
    with pytest.raises(ConfigError, match="unknown key"):
        build_config(QualityConfig, {"outlier_windw": 10})
    with pytest.raises(ConfigError, match="max_time_gap"):
        build_config(QualityConfig, {"max_time_gap": "5 parsecs"})
    # lossless widening is accepted
    assert check_trades(df.with_columns(pl.col("id").cast(pl.Int32))).report.rows_kept == 1


def test_empty_frame():
    res = check_trades(pl.DataFrame(schema=AGG_TRADES_SCHEMA))
    assert res.report.rows_in == 0 and res.report.first_ts is None and res.clean.height == 0


def test_report_serialisation_and_text():
    df = agg([(1, 0, 10.0, 1.0), (4, 1, float("nan"), 1.0), (5, 400_000, 10.0, 1.0), (5, 400_000, 10.0, 1.0)])
    r = check_trades(df, dataset="binance/usdm/BTCUSDT").report
    d = json.loads(r.to_json())
    assert d["rows_in"] == 4 and d["id_gaps"] == [[1, 4, 2]] and d["quarantine_by_reason"] == {"non_finite_price": 1}
    assert QualityReport.from_dict(d) == r
    text = r.to_text()
    for s in ("binance/usdm/BTCUSDT", "non_finite_price", "after 1 before 4: 2 missing", "duplicates     : 1",
              "reconciles     : yes", "6.7min"):
        assert s in text
    with pytest.raises(AssertionError, match="does not reconcile"):
        QualityReport(dataset="", kind="trades", rows_in=3, rows_kept=1, rows_quarantined=0, duplicates=0,
                      out_of_order=0, quarantine_by_reason={}, id_gaps=[], id_gap_total=0, time_gaps=[],
                      first_ts=None, last_ts=None)
    with pytest.raises(ValueError, match="different datasets"):
        r.merge(check_trades(df, dataset="other").report)
