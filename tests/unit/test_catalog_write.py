"""Catalog writes: round trip with dtypes, idempotence, overlaps, conflicts, atomicity, bad input."""

from __future__ import annotations

import json

import numpy as np
import polars as pl
import pyarrow.parquet as pq
import pytest

import market.catalog as catalog_mod
from core.errors import ConfigError, DataError, SchemaError
from core.time import NS_PER_DAY, NS_PER_MIN, NS_PER_MS
from market.catalog import Catalog, SyntheticMixError, schema_for_kind
from market.schema import AGG_TRADES_SCHEMA, KLINES_SCHEMA

DAY0 = 19_700 * NS_PER_DAY  # 2023-12-09
DS = dict(exchange="binance", market="usdm", symbol="BTCUSDT", kind="agg_trades")


def trades(ids, ts, price=None) -> pl.DataFrame:
    ids = np.asarray(ids, np.int64)
    ts = np.asarray(ts, np.int64)
    price = np.asarray(price if price is not None else 100.0 + ids * 0.5, np.float64)
    return pl.DataFrame({"id": ids, "ts_event": ts, "ts_init": ts + 5, "price": price, "quantity": ids * 0.1 + 1,
                         "is_buyer_maker": ids % 2 == 0, "first_trade_id": ids * 2, "last_trade_id": ids * 2 + 1},
                        schema=AGG_TRADES_SCHEMA)


def spanning(n=30, days=3, start=0):
    ids = np.arange(start, start + n)
    return trades(ids, DAY0 + ids * (days * NS_PER_DAY // n))


def test_round_trip_with_dtypes_and_partition_layout(tmp_path):
    cat = Catalog(tmp_path)
    df = spanning()
    res = cat.write(df.sample(fraction=1.0, shuffle=True, seed=1), **DS)
    assert (res.rows_in, res.rows_added, res.duplicates, res.conflicts) == (30, 30, 0, 0)
    assert res.partitions == [f"exchange=binance/market=usdm/symbol=BTCUSDT/kind=agg_trades/date={d}/data.parquet"
                              for d in ("2023-12-09", "2023-12-10", "2023-12-11")]
    out = cat.read(**DS)
    assert out.schema == pl.Schema(AGG_TRADES_SCHEMA)
    assert out.equals(df)  # sorted by id
    for p in res.partitions:
        part = pl.read_parquet(tmp_path / p, hive_partitioning=False)
        date = p.split("date=")[1][:10]
        assert (part["ts_event"] // NS_PER_DAY).unique().to_list() == [
            (np.datetime64(date) - np.datetime64("1970-01-01")).astype(int)]
    side = json.loads((tmp_path / "exchange=binance/market=usdm/symbol=BTCUSDT/kind=agg_trades/_dataset.json")
                      .read_text())
    assert side == {"schema_version": 1, "kind": "agg_trades", "synthetic": False, "provenance": [{}]}


def test_rewrite_is_idempotent_and_overlaps_merge(tmp_path):
    cat = Catalog(tmp_path)
    df = spanning(40, 4)
    first = cat.write(df.slice(0, 25), **DS)
    again = cat.write(df.slice(0, 25), **DS)
    assert (again.rows_added, again.duplicates, again.conflicts, again.partitions) == (0, 25, 0, [])
    over = cat.write(df.slice(15, 25), **DS)  # 10 rows overlap, 15 new
    assert (over.rows_in, over.rows_added, over.duplicates, over.conflicts) == (25, 15, 10, 0)
    assert first.rows_added == 25
    out = cat.read(**DS)
    assert out.equals(df)
    assert out["id"].is_unique().all()


def test_conflicting_rows_keep_stored_history(tmp_path):
    cat = Catalog(tmp_path)
    df = spanning(10, 1)
    cat.write(df, **DS)
    changed = df.with_columns(pl.when(pl.col("id").is_in([2, 5])).then(pl.col("price") + 1).otherwise("price"))
    batch = pl.concat([changed, trades([10], [DAY0 + 10])])
    res = cat.write(batch, **DS)
    assert (res.rows_added, res.duplicates, res.conflicts) == (1, 8, 2)
    out = cat.read(**DS)
    assert out.filter(pl.col("id") < 10).equals(df)  # stored rows unchanged
    # within one batch: identical copies are duplicates, a differing copy is a conflict (first kept)
    b2 = pl.concat([trades([20, 20], [DAY0 + 20] * 2), trades([20], [DAY0 + 20], price=[1.0])])
    r2 = cat.write(b2, **DS)
    assert (r2.rows_added, r2.duplicates, r2.conflicts) == (1, 1, 1)
    assert cat.read(**DS).filter(pl.col("id") == 20)["price"].item() == 110.0


def test_klines_keyed_by_open_time_and_nan_rows_are_idempotent(tmp_path):
    cat = Catalog(tmp_path)
    ot = DAY0 + np.arange(5, dtype=np.int64) * NS_PER_MIN
    k = pl.DataFrame({"open_time": ot, "close_time": ot + NS_PER_MIN - NS_PER_MS, "open": 1.0, "high": 2.0,
                      "low": 0.5, "close": 1.5, "volume": [1.0, float("nan"), 3.0, 4.0, 5.0], "quote_volume": None,
                      "trade_count": None, "taker_buy_volume": None, "taker_buy_quote_volume": None},
                     schema=KLINES_SCHEMA)
    kw = {**DS, "kind": "klines_1m"}
    assert cat.write(k, **kw).rows_added == 5
    assert (cat.write(k, **kw).duplicates, cat.write(k, **kw).conflicts) == (5, 0)
    assert cat.read(**kw).equals(k)
    assert cat.last_key(**kw) == int(ot[-1])


def test_schema_mismatch_and_bad_values_raise(tmp_path):
    cat = Catalog(tmp_path)
    df = spanning(3, 1)
    with pytest.raises(SchemaError, match=r"missing \['last_trade_id'\]"):
        cat.write(df.drop("last_trade_id"), **DS)
    with pytest.raises(SchemaError, match=r"unexpected \['foo'\]"):
        cat.write(df.with_columns(foo=pl.lit(1)), **DS)
    with pytest.raises(SchemaError, match="price: String"):
        cat.write(df.with_columns(pl.col("price").cast(pl.Utf8)), **DS)
    with pytest.raises(DataError, match="null values in key/time columns"):
        cat.write(df.with_columns(pl.lit(None, pl.Int64).alias("id")), **DS)
    with pytest.raises(ConfigError, match="valid kinds: agg_trades, book_ticker"):
        schema_for_kind("klines_1M")
    assert not (tmp_path / "exchange=binance").exists()


@pytest.mark.parametrize("field,value", [("symbol", "../x"), ("symbol", "BTC/USDT"), ("symbol", "btcusdt"),
                                         ("exchange", ".."), ("market", "usdm/../../etc"), ("kind", "../trades"),
                                         ("symbol", ""), ("exchange", "a=b")])
def test_partition_values_are_validated(tmp_path, field, value):
    cat = Catalog(tmp_path)
    with pytest.raises(ConfigError):
        cat.write(spanning(2, 1), **{**DS, field: value})
    with pytest.raises(ConfigError):
        cat.scan(**{**DS, field: value})
    assert list(tmp_path.iterdir()) == []


def test_failed_write_leaves_old_partition_intact(tmp_path, monkeypatch):
    cat = Catalog(tmp_path)
    df = spanning(10, 1)
    cat.write(df, **DS)
    path = tmp_path / "exchange=binance/market=usdm/symbol=BTCUSDT/kind=agg_trades/date=2023-12-09/data.parquet"
    before = path.read_bytes()

    def crash(table, where, **kw):
        with open(where, "wb") as fh:
            fh.write(b"PAR1 half a file")
        raise OSError("disk full")

    monkeypatch.setattr(catalog_mod.pq, "write_table", crash)
    with pytest.raises(OSError, match="disk full"):
        cat.write(trades([50], [DAY0 + 50]), **DS)
    assert path.read_bytes() == before
    assert sorted(p.name for p in path.parent.iterdir()) == ["data.parquet"]  # temp file removed
    monkeypatch.undo()

    def crash_on_rename(src, dst):
        raise OSError("power cut")

    monkeypatch.setattr(catalog_mod.os, "replace", crash_on_rename)
    with pytest.raises(OSError, match="power cut"):
        cat.write(trades([51], [DAY0 + 51]), **DS)
    monkeypatch.undo()
    assert cat.read(**DS).equals(df)
    assert cat.write(trades([51], [DAY0 + 51]), **DS).rows_added == 1


def test_synthetic_marking_and_refusal_to_mix(tmp_path):
    cat = Catalog(tmp_path)
    prov = {"generator": "market.synth.hawkes", "seed": 7, "conditioned_on": "FILUSDT-1m-2023-08"}
    syn = {**DS, "symbol": "SYNUSDT"}
    cat.write(spanning(10, 2), **syn, synthetic=True, provenance=prov)
    assert cat.is_synthetic(**syn) is True
    for f in (tmp_path / "exchange=binance/market=usdm/symbol=SYNUSDT/kind=agg_trades").glob("date=*/data.parquet"):
        meta = {k.decode(): v.decode() for k, v in pq.read_schema(f).metadata.items()}
        assert meta["flowtrader.synthetic"] == "true"
        assert meta["flowtrader.generator"] == "market.synth.hawkes" and meta["flowtrader.seed"] == "7"
        assert json.loads(meta["flowtrader.provenance"]) == [prov]
    assert cat.provenance(**syn) == [prov]
    with pytest.raises(SyntheticMixError, match="refusing to write real rows"):
        cat.write(spanning(5, 1, start=100), **syn)
    cat.write(spanning(10, 2), **DS)
    assert cat.is_synthetic(**DS) is False
    with pytest.raises(SyntheticMixError, match="refusing to write synthetic rows"):
        cat.write(spanning(5, 1, start=100), **DS, synthetic=True, provenance=prov)
    with pytest.raises(ConfigError, match="generator"):
        cat.write(spanning(5, 1), **{**DS, "symbol": "NEWUSDT"}, synthetic=True)
    with pytest.raises(DataError, match="no such dataset"):
        cat.is_synthetic(**{**DS, "symbol": "NOPE"})
    # a partition whose own flag disagrees with the dataset is detected
    f = next((tmp_path / "exchange=binance/market=usdm/symbol=BTCUSDT/kind=agg_trades").glob("date=*/data.parquet"))
    t = pq.read_table(f)
    pq.write_table(t.replace_schema_metadata({**t.schema.metadata, b"flowtrader.synthetic": b"true"}), f)
    with pytest.raises(SyntheticMixError):
        cat.is_synthetic(**DS)
