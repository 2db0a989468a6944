"""REST backfill end to end: the real ccxt client against the local Binance-like server.

Served data is a seeded random walk (5,000 agg trades over 3 UTC days, 4,320 1m klines); what
lands in the catalog must equal it exactly. Faults are injected per request via the server's
schedule and asserted on its request log.
"""

from __future__ import annotations

import time
from urllib.parse import urlsplit

import numpy as np
import polars as pl
import pytest
from polars.testing import assert_frame_equal

from core.config import build_config
from core.errors import ConfigError, DataError, RateLimitedError, RejectedError, RetryableError
from market.catalog import Catalog
from market.ingest.rate_limit import RateLimitConfig, WeightLimiter
from market.ingest.rest import BackfillConfig, backfill_agg_trades, backfill_klines, make_binance_client
from market.schema import AGG_TRADES_SCHEMA, KLINES_SCHEMA
from tests.support.binance_http import BinanceServer, Fault

pytestmark = pytest.mark.network_local

MS = 1_000_000
T0_MS = 1_704_067_200_000  # 2024-01-01 00:00 UTC
DAY_MS = 86_400_000
N_TRADES = 5_000
FIRST_ID = 1_000_000
SYMBOL = "BTCUSDT"
NOW_MS = T0_MS + 3 * DAY_MS + 30_000  # server clock: just after the served data


def make_trades(seed: int = 7) -> pl.DataFrame:
    rng = np.random.default_rng(seed)
    gaps = np.maximum(1, rng.exponential(3 * DAY_MS / N_TRADES, N_TRADES).astype(np.int64))
    t_ms = T0_MS + np.cumsum(gaps) - gaps[0]
    t_ms = np.minimum(t_ms, T0_MS + 3 * DAY_MS - 1)
    price = np.round(42_000 * np.exp(np.cumsum(rng.normal(0, 4e-4, N_TRADES))), 2)
    qty = np.round(rng.exponential(0.05, N_TRADES) + 1e-5, 5)
    counts = rng.integers(1, 4, N_TRADES)
    first = 5_000_000 + np.concatenate([[0], np.cumsum(counts)[:-1]])
    return pl.DataFrame({
        "id": FIRST_ID + np.arange(N_TRADES), "ts_event": t_ms * MS, "ts_init": t_ms * MS, "price": price,
        "quantity": qty, "is_buyer_maker": rng.random(N_TRADES) < 0.5, "first_trade_id": first,
        "last_trade_id": first + counts - 1,
    }, schema=AGG_TRADES_SCHEMA)


def make_klines(seed: int = 11, n: int = 3 * 1440) -> pl.DataFrame:
    rng = np.random.default_rng(seed)
    close = np.round(42_000 * np.exp(np.cumsum(rng.normal(0, 8e-4, n))), 2)
    open_ = np.round(np.concatenate([[42_000.0], close[:-1]]), 2)
    high = np.round(np.maximum(open_, close) + rng.exponential(5, n), 2)
    low = np.round(np.minimum(open_, close) - rng.exponential(5, n), 2)
    vol = np.round(rng.exponential(20, n) + 0.001, 3)
    quote = np.round(vol * close, 2)
    u = rng.random(n)
    open_ms = T0_MS + np.arange(n, dtype=np.int64) * 60_000
    return pl.DataFrame({
        "open_time": open_ms * MS, "close_time": (open_ms + 59_999) * MS, "open": open_, "high": high,
        "low": low, "close": close, "volume": vol, "quote_volume": quote,
        "trade_count": rng.integers(1, 500, n), "taker_buy_volume": np.round(vol * u, 3),
        "taker_buy_quote_volume": np.round(quote * u, 2),
    }, schema=KLINES_SCHEMA)


TRADES = make_trades()
KLINES = make_klines()
QUIET = BackfillConfig()


class VirtualTime:
    def __init__(self):
        self.now = 0
        self.sleeps: list[float] = []

    def clock(self) -> int:
        return self.now

    def sleep(self, s: float) -> None:
        self.sleeps.append(s)
        self.now += int(s * 1e9)


def virtual_limiter(market: str = "spot") -> tuple[WeightLimiter, VirtualTime]:
    vt = VirtualTime()
    return WeightLimiter(RateLimitConfig.for_market(market), clock=vt.clock, sleeper=vt.sleep), vt


@pytest.fixture
def server():
    with BinanceServer(agg_trades={SYMBOL: TRADES}, klines={(SYMBOL, "1m"): KLINES}, now_ms=NOW_MS) as srv:
        yield srv


def stored(catalog: Catalog, market: str, kind: str = "agg_trades") -> pl.DataFrame:
    df = catalog.read(exchange="binance", market=market, symbol=SYMBOL, kind=kind)
    return df.sort("id" if kind == "agg_trades" else "open_time")


def agg_requests(srv: BinanceServer) -> list:
    return srv.records("aggTrades")


def test_client_points_every_url_at_the_local_server():
    for market in ("spot", "usdm"):
        client = make_binance_client(market, base_url="http://127.0.0.1:9")
        urls = []

        def walk(node):
            if isinstance(node, dict):
                for v in node.values():
                    walk(v)
            elif isinstance(node, str):
                urls.append(node)

        walk(client.urls["api"])
        assert urls and all(urlsplit(u).netloc == "127.0.0.1:9" for u in urls)
        assert client.urls["api"]["fapiPublic"] == "http://127.0.0.1:9/fapi/v1"
        assert client.urls["api"]["public"] == "http://127.0.0.1:9/api/v3"
        assert client.enableRateLimit is False
        assert client.options["fetchCurrencies"] is False and client.options["fetchMargins"] is False
    with pytest.raises(ConfigError, match="coinm"):
        make_binance_client("coinm")
    with pytest.raises(ConfigError, match="base_url"):
        make_binance_client("spot", base_url="127.0.0.1:9")


@pytest.mark.parametrize("market", ["spot", "usdm"])
def test_full_backfill_equals_served_data(server, tmp_path, market):
    catalog = Catalog(tmp_path)
    client = make_binance_client(market, base_url=server.base_url)
    limiter, _ = virtual_limiter(market)
    res = backfill_agg_trades(client, catalog, market=market, symbol=SYMBOL, start_ts=T0_MS * MS,
                              limiter=limiter, progress=False)
    assert_frame_equal(stored(catalog, market), TRADES)
    # 5 full pages, then one empty page confirms the end.
    assert (res.pages, res.rows_fetched, res.rows_added, res.duplicates, res.quarantined) == (6, 5000, 5000, 0, 0)
    assert (res.first_key, res.last_key, res.retries, res.rate_limited) == (FIRST_ID, FIRST_ID + 4999, 0, 0)
    assert res.report.rows_kept == 5000 and res.report.id_gap_total == 0 and res.report.reconciles()
    reqs = agg_requests(server)
    assert reqs[0].params == {"symbol": SYMBOL, "startTime": str(T0_MS), "endTime": str(T0_MS + 3_599_999), "limit": "1"}
    assert [int(r.params["fromId"]) for r in reqs[1:]] == [FIRST_ID + 1000 * k for k in range(6)]
    assert all(r.status == 200 for r in server.requests)
    prefix = "/api/v3/" if market == "spot" else "/fapi/v1/"
    assert all(r.path.startswith(prefix) for r in server.requests)


def test_start_inside_a_quiet_hour_and_end_bound(server, tmp_path):
    catalog = Catalog(tmp_path)
    client = make_binance_client("spot", base_url=server.base_url)
    start = T0_MS * MS + 36 * 3_600_000 * MS + 123
    end = start + 10 * 3_600_000 * MS
    res = backfill_agg_trades(client, catalog, market="spot", symbol=SYMBOL, start_ts=start, end_ts=end,
                              limiter=virtual_limiter()[0], progress=False)
    want = TRADES.filter((pl.col("ts_event") >= start) & (pl.col("ts_event") < end))
    assert want.height > 500
    assert_frame_equal(stored(catalog, "spot"), want)
    assert res.rows_added == want.height and res.last_key == want["id"][-1]


def test_resume_after_interruption_fetches_no_stored_id(server, tmp_path):
    catalog = Catalog(tmp_path)
    client = make_binance_client("spot", base_url=server.base_url)
    cfg = BackfillConfig(page_limit_agg=500, max_retries=0)
    mid = TRADES["ts_event"][1700]
    # Run 1 stops at an end time.
    r1 = backfill_agg_trades(client, catalog, market="spot", symbol=SYMBOL, start_ts=T0_MS * MS, end_ts=mid,
                             limiter=virtual_limiter()[0], progress=False, config=cfg)
    assert r1.last_key == FIRST_ID + 1699
    # Run 2 dies on a fault after two pages (no retries allowed).
    server.schedule(Fault.server_error(502), at=3, endpoint="aggTrades")
    n_before = len(agg_requests(server))
    with pytest.raises(RetryableError, match="ExchangeNotAvailable"):
        backfill_agg_trades(client, catalog, market="spot", symbol=SYMBOL, from_id=FIRST_ID,
                            limiter=virtual_limiter()[0], progress=False, config=cfg)
    run2 = agg_requests(server)[n_before:]
    assert [int(r.params["fromId"]) for r in run2] == [FIRST_ID + 1700, FIRST_ID + 2200, FIRST_ID + 2700]
    assert stored(catalog, "spot")["id"][-1] == FIRST_ID + 2699
    # Run 3 continues at last_key + 1 and completes.
    n_before = len(agg_requests(server))
    r3 = backfill_agg_trades(client, catalog, market="spot", symbol=SYMBOL, start_ts=T0_MS * MS,
                             limiter=virtual_limiter()[0], progress=False, config=cfg)
    run3 = [int(r.params["fromId"]) for r in agg_requests(server)[n_before:]]
    assert run3 == [FIRST_ID + 2700 + 500 * k for k in range(5)]
    assert (r3.rows_added, r3.duplicates, r3.first_key) == (2300, 0, FIRST_ID + 2700)
    assert_frame_equal(stored(catalog, "spot"), TRADES)


def test_429_retry_after_is_honoured_in_real_time(server, tmp_path):
    catalog = Catalog(tmp_path)
    client = make_binance_client("spot", base_url=server.base_url)
    server.schedule(Fault.rate_limited(retry_after=1), at=2, endpoint="aggTrades")
    res = backfill_agg_trades(client, catalog, market="spot", symbol=SYMBOL, from_id=FIRST_ID,
                              limiter=WeightLimiter(RateLimitConfig.for_market("spot")), progress=False)
    reqs = agg_requests(server)
    assert [r.status for r in reqs[:3]] == [200, 429, 200]
    assert reqs[2].params == reqs[1].params  # the same page was asked again
    assert reqs[2].t - reqs[1].t >= 1.0
    assert (res.rate_limited, res.retries, res.rows_added) == (1, 1, 5000)
    assert_frame_equal(stored(catalog, "spot"), TRADES)


def test_418_ban_blocks_then_resumes_and_is_recorded(server, tmp_path):
    catalog = Catalog(tmp_path)
    client = make_binance_client("spot", base_url=server.base_url)
    limiter = WeightLimiter(RateLimitConfig.for_market("spot"))
    server.schedule(Fault.banned(retry_after=1), at=1, endpoint="aggTrades")
    res = backfill_agg_trades(client, catalog, market="spot", symbol=SYMBOL, from_id=FIRST_ID,
                              limiter=limiter, progress=False)
    reqs = agg_requests(server)
    assert [r.status for r in reqs[:2]] == [418, 200] and reqs[1].t - reqs[0].t >= 1.0
    assert limiter.bans == 1 and res.rate_limited == 1
    assert_frame_equal(stored(catalog, "spot"), TRADES)


def test_long_ban_raises_instead_of_sleeping(server, tmp_path):
    client = make_binance_client("spot", base_url=server.base_url)
    limiter = WeightLimiter(RateLimitConfig(weight_limit=6000, max_block_s=5))
    server.schedule(Fault.banned(retry_after=600), at=1, endpoint="aggTrades")
    t0 = time.monotonic()
    with pytest.raises(RateLimitedError) as ei:
        backfill_agg_trades(client, Catalog(tmp_path), market="spot", symbol=SYMBOL, from_id=FIRST_ID,
                            limiter=limiter, progress=False)
    assert ei.value.banned and ei.value.retry_after >= 599
    assert time.monotonic() - t0 < 5 and len(agg_requests(server)) == 1


def test_client_that_ignores_retry_after_gets_banned(server, tmp_path):
    # A limiter whose sleeps are virtual retries at once: the server escalates 429 → 418.
    client = make_binance_client("spot", base_url=server.base_url)
    server.schedule(Fault.rate_limited(retry_after=1), at=1, endpoint="aggTrades")
    with pytest.raises(RateLimitedError) as ei:
        backfill_agg_trades(client, Catalog(tmp_path), market="spot", symbol=SYMBOL, from_id=FIRST_ID,
                            limiter=virtual_limiter()[0], progress=False, config=BackfillConfig(max_retries=2))
    assert [r.status for r in agg_requests(server)] == [429, 418, 418]
    assert ei.value.banned is True


def test_client_limiter_keeps_under_the_server_budget(tmp_path):
    # Server allows 40 weight per fixed 1 s window. Our rolling window counts grant times while the
    # server counts arrival times; with a 1 s window, ms of latency jitter matter, so keep one
    # request (4) of margin. (With Binance's 60 s window the jitter is negligible.)
    with BinanceServer(agg_trades={SYMBOL: TRADES}, now_ms=NOW_MS, weight_limit=40, window_s=1.0) as srv:
        client = make_binance_client("spot", base_url=srv.base_url)
        limiter = WeightLimiter(RateLimitConfig(weight_limit=36, window_s=1.0))
        t0 = time.monotonic()
        res = backfill_agg_trades(client, Catalog(tmp_path), market="spot", symbol=SYMBOL, from_id=FIRST_ID,
                                  limiter=limiter, progress=False, config=BackfillConfig(page_limit_agg=400))
        elapsed = time.monotonic() - t0
        assert all(r.status == 200 for r in srv.requests)
        assert res.rows_added == 5000 and res.rate_limited == 0
        # 1 time + 13 pages = 53 weight > 36: the limiter must have waited for the window.
        assert elapsed >= 0.9 and limiter.stats().waits >= 1


def test_5xx_drop_and_timeout_are_retried(server, tmp_path):
    catalog = Catalog(tmp_path)
    client = make_binance_client("spot", base_url=server.base_url)
    client.timeout = 300  # ms
    server.schedule(Fault.server_error(503), at=2, endpoint="aggTrades")
    server.schedule(Fault.drop(), at=4, endpoint="aggTrades")
    server.schedule(Fault.delay(0.6), at=6, endpoint="aggTrades")
    limiter, vt = virtual_limiter()
    res = backfill_agg_trades(client, catalog, market="spot", symbol=SYMBOL, from_id=FIRST_ID,
                              limiter=limiter, progress=False)
    assert res.retries == 3 and res.rate_limited == 0
    assert len(vt.sleeps) == 3 and all(0 < s <= 60 for s in vt.sleeps)
    ids = [int(r.params["fromId"]) for r in agg_requests(server)]
    assert ids == [FIRST_ID, FIRST_ID + 1000, FIRST_ID + 1000, FIRST_ID + 2000, FIRST_ID + 2000,
                   FIRST_ID + 3000, FIRST_ID + 3000, FIRST_ID + 4000, FIRST_ID + 5000]
    assert_frame_equal(stored(catalog, "spot"), TRADES)


@pytest.mark.parametrize("symbol, error, code", [("ETHUSDT", DataError, "-1121"), ("BTCUSDT" * 3, RejectedError, "-1100")])
def test_invalid_symbol_is_typed_and_not_retried(server, tmp_path, symbol, error, code):
    client = make_binance_client("spot", base_url=server.base_url)
    with pytest.raises(error, match=code):
        backfill_agg_trades(client, Catalog(tmp_path), market="spot", symbol=symbol, from_id=0,
                            limiter=virtual_limiter()[0], progress=False)
    assert len(agg_requests(server)) == 1


def test_bad_arguments_raise_config_errors(server, tmp_path):
    client = make_binance_client("spot", base_url=server.base_url)
    kw = dict(limiter=virtual_limiter()[0], progress=False)
    with pytest.raises(ConfigError, match="start_ts or from_id"):
        backfill_agg_trades(client, Catalog(tmp_path), market="spot", symbol=SYMBOL, **kw)
    with pytest.raises(ConfigError, match="interval"):
        backfill_klines(client, Catalog(tmp_path), market="spot", symbol=SYMBOL, interval="1M",
                        start_ts=0, end_ts=1, **kw)
    with pytest.raises(ConfigError, match="maximum 1000"):
        backfill_klines(client, Catalog(tmp_path), market="spot", symbol=SYMBOL, interval="1m", start_ts=0,
                        end_ts=1, config=BackfillConfig(page_limit_klines=1500), **kw)
    with pytest.raises(ConfigError, match="page_limit_agg"):
        build_config(BackfillConfig, {"page_limit_agg": 1001})


def test_klines_skip_unclosed_and_resume_by_time(server, tmp_path):
    catalog = Catalog(tmp_path)
    client = make_binance_client("usdm", base_url=server.base_url)
    cfg = BackfillConfig(page_limit_klines=1500)
    start, end = T0_MS * MS, (T0_MS + 3 * DAY_MS) * MS
    server.now_ms = T0_MS + DAY_MS + 30_000  # the kline opened at T0 + 1 day is still open
    r1 = backfill_klines(client, catalog, market="usdm", symbol=SYMBOL, interval="1m", start_ts=start, end_ts=end,
                         limiter=virtual_limiter("usdm")[0], progress=False, config=cfg)
    assert r1.rows_added == 1440 and r1.last_key == (T0_MS + DAY_MS - 60_000) * MS
    assert_frame_equal(stored(catalog, "usdm", "klines_1m"), KLINES.head(1440))
    server.now_ms = NOW_MS
    n_before = len(server.records("klines"))
    r2 = backfill_klines(client, catalog, market="usdm", symbol=SYMBOL, interval="1m", start_ts=start, end_ts=end,
                         limiter=virtual_limiter("usdm")[0], progress=False, config=cfg)
    run2 = server.records("klines")[n_before:]
    assert int(run2[0].params["startTime"]) == T0_MS + DAY_MS
    assert [int(r.params["startTime"]) for r in run2] == [T0_MS + DAY_MS, T0_MS + DAY_MS + 1500 * 60_000]
    assert all(r.path == "/fapi/v1/klines" and r.weight == 10 for r in run2)
    assert (r2.pages, r2.rows_added, r2.duplicates, r2.first_key) == (2, 2880, 0, (T0_MS + DAY_MS) * MS)
    assert_frame_equal(stored(catalog, "usdm", "klines_1m"), KLINES)


def test_spot_klines_partial_range(server, tmp_path):
    catalog = Catalog(tmp_path)
    client = make_binance_client("spot", base_url=server.base_url)
    start = (T0_MS + 90 * 60_000) * MS + 1  # not aligned: first kline is the next one
    end = (T0_MS + 2_590 * 60_000) * MS
    res = backfill_klines(client, catalog, market="spot", symbol=SYMBOL, interval="1m", start_ts=start, end_ts=end,
                          limiter=virtual_limiter()[0], progress=False)
    assert_frame_equal(stored(catalog, "spot", "klines_1m"), KLINES.slice(91, 2_590 - 91))
    assert res.pages == 3 and res.rows_added == 2_499


def test_klines_gap_between_pages_is_reported(tmp_path):
    holed = KLINES.head(1500).filter(~pl.col("open_time").is_between(KLINES["open_time"][1000], KLINES["open_time"][1004]))
    with BinanceServer(klines={(SYMBOL, "1m"): holed}, now_ms=NOW_MS) as srv:
        client = make_binance_client("spot", base_url=srv.base_url)
        res = backfill_klines(client, Catalog(tmp_path), market="spot", symbol=SYMBOL, interval="1m",
                              start_ts=T0_MS * MS, end_ts=(T0_MS + 1500 * 60_000) * MS,
                              limiter=virtual_limiter()[0], progress=True)
    assert res.rows_added == 1495 and res.pages == 2
    assert res.report.missing_bar_total == 5
    assert res.report.missing_bars == [(KLINES["open_time"][1000], KLINES["open_time"][1004], 5)]
    assert res.report.rows_kept == 1495 and res.report.reconciles()
