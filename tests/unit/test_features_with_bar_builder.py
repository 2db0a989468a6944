"""The feature engine accepts what the project's bar builder produces (real trades, bursts of
same-millisecond trades giving bars that share ts_event, one-sided bars), batch == streaming."""

from __future__ import annotations

import numpy as np
import pandas as pd
import polars as pl
import pytest

from market.bars.builder import build_bars
from market.bars.spec import TickBars, TimeBars
from market.features import FeatureEngine, compute_features, join_higher_timeframe
from tests.conftest import shared_data_path


@pytest.mark.realdata
def test_real_trades_through_bar_builder_and_features():
    raw = pd.read_csv(shared_data_path("binance", "trades", "tardis_BTCUSDT-usdm-trades-2020-02-22.csv"))
    trades = pl.DataFrame({
        "id": raw["id"].to_numpy(), "ts_event": raw["timestamp"].to_numpy() * 1000,
        "ts_init": raw["local_timestamp"].to_numpy() * 1000, "price": raw["price"].astype(float).to_numpy(),
        "quantity": raw["amount"].astype(float).to_numpy(), "is_buyer_maker": (raw["side"] == "sell").to_numpy(),
    })
    bars = build_bars(trades, TickBars(trades=25))
    assert (bars.get_column("ts_event").diff().drop_nulls() == 0).any(), "sample should contain tied close times"
    batch = compute_features(bars)
    engine = FeatureEngine()
    rng = np.random.default_rng(0)
    parts, start = [], 0
    while start < bars.height:
        size = int(rng.integers(1, 40))
        parts.append(engine.update(bars.slice(start, size)))
        start += size
    streamed = pl.concat(parts)
    for c in batch.columns:
        assert np.array_equal(streamed.get_column(c).to_numpy().view(np.int64),
                              batch.get_column(c).to_numpy().view(np.int64)), c
    ten_minute = compute_features(build_bars(trades, TimeBars(every="10m")))
    joined = join_higher_timeframe(batch, ten_minute.select("ts_event", "atr14"), "m10_")
    visible = joined.drop_nulls("m10_ts_event")
    assert (visible.get_column("m10_ts_event") <= visible.get_column("ts_event")).all()
