"""Catalog queries: time-range scans with partition pruning, last_key / time_bounds, datasets,
quarantine and report storage."""

from __future__ import annotations

import json

import numpy as np
import polars as pl
import pytest

from core.errors import ConfigError, SchemaError
from core.time import NS_PER_DAY, NS_PER_HOUR
from market.catalog import Catalog, DatasetKey
from market.quality import check_trades
from market.schema import AGG_TRADES_SCHEMA, QUARANTINE_EXTRA

DAY0 = 19_700 * NS_PER_DAY
DS = dict(exchange="binance", market="spot", symbol="ETHUSDT", kind="agg_trades")


def hourly(days: int) -> pl.DataFrame:
    n = days * 24
    ids = np.arange(n, dtype=np.int64)
    ts = DAY0 + ids * NS_PER_HOUR
    return pl.DataFrame({"id": ids, "ts_event": ts, "ts_init": ts, "price": 100.0 + ids, "quantity": 1.0,
                         "is_buyer_maker": False, "first_trade_id": ids, "last_trade_id": ids},
                        schema=AGG_TRADES_SCHEMA)


@pytest.fixture
def cat(tmp_path):
    c = Catalog(tmp_path)
    c.write(hourly(5), **DS)
    return c


def reference_range(df, start, end):
    return df.filter((pl.col("ts_event") >= start) & (pl.col("ts_event") < end)).sort("id")


@pytest.mark.parametrize("start_h,end_h", [(0, 120), (5, 29), (24, 48), (47, 49), (100, 500), (-50, 3)])
def test_scan_returns_exact_range(cat, start_h, end_h):
    df = hourly(5)
    s, e = DAY0 + start_h * NS_PER_HOUR, DAY0 + end_h * NS_PER_HOUR
    assert cat.read(**DS, start=s, end=e).equals(reference_range(df, s, e))


def test_scan_of_one_day_touches_only_that_partition(cat, tmp_path):
    base = tmp_path / "exchange=binance/market=spot/symbol=ETHUSDT/kind=agg_trades"
    lf = cat.scan(**DS, start=DAY0 + NS_PER_DAY, end=DAY0 + 2 * NS_PER_DAY)
    plan = lf.explain()
    assert "date=2023-12-10" in plan
    for other in ("2023-12-09", "2023-12-11", "2023-12-12", "2023-12-13"):
        assert other not in plan
    # corrupt every other partition: a scan that opened them would fail
    for d in ("2023-12-09", "2023-12-11", "2023-12-12", "2023-12-13"):
        (base / f"date={d}" / "data.parquet").write_bytes(b"not parquet")
    out = cat.read(**DS, start=DAY0 + NS_PER_DAY, end=DAY0 + 2 * NS_PER_DAY)
    assert out["id"].to_list() == list(range(24, 48))
    with pytest.raises(Exception):
        cat.read(**DS)


def test_empty_and_invalid_ranges(cat):
    assert cat.read(**DS, start=DAY0 + 100 * NS_PER_DAY).height == 0
    assert cat.read(**{**DS, "symbol": "NONE"}).schema == pl.Schema(AGG_TRADES_SCHEMA)
    with pytest.raises(ConfigError, match="empty time range"):
        cat.scan(**DS, start=DAY0 + 5, end=DAY0 + 5)


def test_last_key_and_time_bounds(cat):
    assert cat.last_key(**DS) == 119
    assert cat.time_bounds(**DS) == (DAY0, DAY0 + 119 * NS_PER_HOUR)
    assert cat.last_key(**{**DS, "symbol": "NONE"}) is None
    assert cat.time_bounds(**{**DS, "symbol": "NONE"}) is None
    # an id larger than any later one stored in an earlier day is still found
    late = hourly(1).slice(3, 1).with_columns(pl.lit(10_000, pl.Int64).alias("id"))
    cat.write(late, **DS)
    assert cat.last_key(**DS) == 10_000


def test_datasets_lists_written_datasets(cat):
    cat.write(hourly(1), **{**DS, "symbol": "BTCUSDT"})
    cat.write_quarantine(pl.DataFrame(schema={**AGG_TRADES_SCHEMA, **QUARANTINE_EXTRA}), **{**DS, "symbol": "X"})
    assert cat.datasets() == [DatasetKey("binance", "spot", "BTCUSDT", "agg_trades"),
                              DatasetKey("binance", "spot", "ETHUSDT", "agg_trades")]


def test_quarantine_append_and_scan(cat, tmp_path):
    df = hourly(2).with_columns(
        pl.when(pl.col("id").is_in([3, 30])).then(float("nan")).otherwise("price").alias("price"))
    df = df.with_columns(pl.when(pl.col("id") == 7).then(None).otherwise("ts_event").alias("ts_event"))
    res = check_trades(df)
    assert res.quarantine.height == 3
    assert cat.write_quarantine(res.quarantine, **DS) == 3
    assert cat.write_quarantine(res.quarantine, **DS) == 3
    base = tmp_path / "_quarantine/exchange=binance/market=spot/symbol=ETHUSDT/kind=agg_trades"
    assert sorted(str(p.relative_to(base)) for p in base.rglob("*.parquet")) == [
        "date=2023-12-09/part-000000.parquet", "date=2023-12-09/part-000001.parquet",
        "date=2023-12-10/part-000000.parquet", "date=2023-12-10/part-000001.parquet",
        "date=unknown/part-000000.parquet", "date=unknown/part-000001.parquet"]
    q = cat.scan_quarantine(**DS).collect()
    assert q.height == 6 and q.schema == pl.Schema({**AGG_TRADES_SCHEMA, **QUARANTINE_EXTRA})
    assert sorted(q["reason"].to_list()) == ["non_finite_price"] * 4 + ["null_value"] * 2
    with pytest.raises(SchemaError, match="missing"):
        cat.write_quarantine(df, **DS)


def test_write_report(cat):
    r = check_trades(hourly(1), dataset="binance/spot/ETHUSDT").report
    p0 = cat.write_report(r, **DS)
    p1 = cat.write_report(r, **DS)
    assert (p0.name, p1.name) == ("report-000000.json", "report-000001.json")
    assert "_reports/exchange=binance/market=spot/symbol=ETHUSDT/kind=agg_trades" in str(p0)
    assert json.loads(p1.read_text()) == r.to_dict()
