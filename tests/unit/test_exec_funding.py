"""Funding: times crossed between bars (boundaries included), signs, series, and the real BTCUSDT file."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from core.enums import Reason
from core.errors import ConfigError, DataError, RejectedError
from core.instrument import Instrument
from core.time import parse_time
from execution.funding import (
    FundingConfig,
    FundingSchedule,
    funding_due_nb,
    prepare_series,
)
from execution.ledger import Ledger

H = 3_600_000_000_000
BTC = Instrument(symbol="BTCUSDT", tick_size=0.1, step_size=0.001)
D0 = parse_time("2024-03-01")
A = int(Reason.SIGNAL_A)


def _due(prev, ts, cfg=None):
    params = (cfg or FundingConfig()).to_params()
    n, first = funding_due_nb(np.int64(prev), np.int64(ts), params)
    return int(n), int(first)


def test_times_crossed_between_bars():
    assert _due(D0 + 8 * H - 1_000_000_000, D0 + 8 * H) == (1, D0 + 8 * H)  # bar ending exactly at 08:00
    assert _due(D0 + 8 * H, D0 + 8 * H + 1) == (0, 0)  # 08:00 already paid by the previous step
    assert _due(D0 + 7 * H, D0 + 8 * H - 1) == (0, 0)  # one ns before: not yet
    assert _due(D0 - H, D0 + 9 * H) == (2, D0)  # gap over 00:00 and 08:00
    assert _due(D0, D0 + 24 * H) == (3, D0 + 8 * H)  # 08, 16, 24
    assert _due(D0 + H, D0 + H) == (0, 0)
    assert _due(D0 + 9 * H, D0 + H) == (0, 0)
    shifted = FundingConfig(interval="4h", offset="1h")
    assert _due(D0, D0 + 6 * H, shifted) == (2, D0 + H)  # 01:00, 05:00
    sched = FundingSchedule(FundingConfig())
    assert sched.due(D0 - 1, D0 + 16 * H) == [D0, D0 + 8 * H, D0 + 16 * H]


@pytest.mark.parametrize("side,rate,expected_paid", [
    (1, 0.001, 0.2),  # long pays when rate > 0: 2 · 100 · 0.001
    (-1, 0.001, -0.2),  # short receives
    (1, -0.0005, -0.1),  # long receives when rate < 0
    (-1, -0.0005, 0.1),  # short pays
])
def test_sign_conventions(side, rate, expected_paid):
    led = Ledger([BTC], 1_000.0)
    led.apply_fill(0, D0 + H, side, 2.0, 100.0, 0.0, False, A)
    paid = FundingSchedule(FundingConfig(rate=rate)).step(led, 0, D0 + 7 * H, D0 + 8 * H, 100.0)
    assert paid == pytest.approx(expected_paid, rel=1e-14)
    assert led.wallet == pytest.approx(1_000.0 - expected_paid, rel=1e-15)
    assert led.position(0).funding == pytest.approx(expected_paid, rel=1e-14)
    led.apply_fill(0, D0 + 9 * H, -side, 2.0, 100.0, 0.0, False, A)
    assert led.trades_frame()["funding"].to_list() == pytest.approx([expected_paid], rel=1e-14)


def test_flat_and_spot_pay_nothing():
    spot = Instrument(symbol="BTCUSDT", market="spot", tick_size=0.01, step_size=0.00001, max_leverage=1)
    led = Ledger([BTC, spot], 1_000.0)
    led.apply_fill(1, D0, 1, 1.0, 100.0, 0.0, False, A)
    sched = FundingSchedule(FundingConfig(rate=0.01))
    assert sched.step(led, 0, D0, D0 + 8 * H, 100.0) == 0.0
    assert sched.step(led, 1, D0, D0 + 8 * H, 100.0) == 0.0
    assert led.wallet == 1_000.0


def test_series_snaps_jitter_uses_own_mark_and_skips_past_events():
    ts = np.array([D0 + 8 * H + 8_000_000, D0 + 16 * H, D0 + 24 * H - 3_000_000], dtype=np.int64)
    rate = np.array([0.001, -0.002, 0.0005])
    mark = np.array([np.nan, 200.0, np.nan])
    sched = FundingSchedule(FundingConfig(source="series"), ts, rate, mark)
    assert sched.ts.tolist() == [D0 + 8 * H, D0 + 16 * H, D0 + 24 * H]
    led = Ledger([BTC], 1_000.0)
    led.apply_fill(0, D0 + 12 * H, 1, 1.0, 100.0, 0.0, False, A)
    # first step starts after the 08:00 event: skipped (not held then); 16:00 paid at its own mark 200
    assert sched.step(led, 0, D0 + 12 * H, D0 + 16 * H, 150.0) == pytest.approx(1 * 200 * -0.002, rel=1e-14)
    assert sched.step(led, 0, D0 + 16 * H, D0 + 23 * H, 150.0) == 0.0
    assert sched.step(led, 0, D0 + 23 * H, D0 + 24 * H, 150.0) == pytest.approx(150 * 0.0005, rel=1e-14)
    assert led.acc[4] == pytest.approx(-0.4 + 0.075, rel=1e-14)


def test_bad_funding_inputs():
    with pytest.raises(DataError, match="strictly increasing"):
        prepare_series(np.array([D0 + 8 * H, D0 + 8 * H + 1_000], dtype=np.int64), np.array([0.0, 0.0]))
    with pytest.raises(DataError, match="not finite"):
        prepare_series(np.array([D0], dtype=np.int64), np.array([np.nan]))
    with pytest.raises(DataError, match="integer ns"):
        prepare_series(np.array([1.5]), np.array([0.0]))
    with pytest.raises(ConfigError, match="offset"):
        FundingConfig(interval="8h", offset="9h")
    with pytest.raises(ConfigError, match="interval"):
        FundingConfig(interval="bogus")
    with pytest.raises(RejectedError, match="series_ts"):
        FundingSchedule(FundingConfig(source="series"))
    led = Ledger([BTC], 1_000.0)
    with pytest.raises(RejectedError, match="mark"):
        FundingSchedule(FundingConfig()).step(led, 0, D0, D0 + 8 * H, float("nan"))


@pytest.mark.realdata
def test_real_btcusdt_funding_over_a_week(shared_data):
    from market.ingest import read_funding_csv, read_ohlcv_csv

    fpath = shared_data("binance", "funding", "BTCUSDT-usdm-funding-2023-01-01_2025-06-30.csv")
    kpath = shared_data("binance", "klines_1h", "BTCUSDT-usdm-1h-2023-01-01_2025-06-30.csv")
    funding = read_funding_csv(fpath).frame
    start, end = parse_time("2024-03-04 05:00"), parse_time("2024-03-11 05:00")
    bars = (read_ohlcv_csv(kpath, interval="1h").frame
            .filter((pl.col("open_time") >= start) & (pl.col("open_time") < end))
            .with_columns((pl.col("open_time") + H).alias("ts_event")))
    assert bars.height == 168
    qty = 0.75
    sched = FundingSchedule(FundingConfig(source="series"), funding["ts_event"].to_numpy(),
                            funding["funding_rate"].to_numpy())
    led = Ledger([BTC], 100_000.0)
    first = bars.row(0, named=True)
    led.apply_fill(0, first["open_time"], 1, qty, first["open"], 0.0, False, A)
    prev = first["open_time"]
    paid = 0.0
    for ts, close in zip(bars["ts_event"].to_list(), bars["close"].to_list()):
        paid += sched.step(led, 0, prev, ts, close)
        prev = ts
    # independent expectation: each 8 h stamp (file time floored to the second) joined to the close of the
    # hourly bar that ends exactly then; Σ qty · mark · rate
    stamps = (funding.with_columns((pl.col("ts_event") // 1_000_000_000 * 1_000_000_000).alias("t"))
              .filter((pl.col("t") > start) & (pl.col("t") <= end)))
    assert stamps.height == 21  # 7 days × 3
    assert (stamps["t"] % (8 * H) == 0).all()
    joined = stamps.join(bars.select(pl.col("ts_event").alias("t"), "close"), on="t", how="inner")
    assert joined.height == 21
    expected = float(sum(qty * c * r for c, r in zip(joined["close"].to_list(), joined["funding_rate"].to_list())))
    assert paid == pytest.approx(expected, rel=1e-12)
    assert led.position(0).funding == pytest.approx(expected, rel=1e-12)
    assert led.wallet == pytest.approx(100_000.0 - expected, rel=1e-14)
