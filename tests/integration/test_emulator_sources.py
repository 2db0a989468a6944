"""The emulator's replay sources beyond the synthetic generator: a `market.catalog` dataset (store) and a
recorded Binance websocket capture, through the config, the server (REST with the real ccxt client) and
the CLI's argument checks. The clock is manual with no warm-up: market time starts at the first trade.
"""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from core.errors import ConfigError
from core.time import NS_PER_MS, parse_time
from emulator import AccountConfig, EmulatorConfig, EmulatorServer
from emulator.__main__ import build_config, main, parser
from emulator.config import CaptureSource, StoreSource, SyntheticSource
from emulator.testing import BTC, KEY, SECRET, expected_market_fills
from market.catalog import Catalog
from market.synth import SizeConfig, SynthConfig, generate_trades
from tests.conftest import shared_data_path

pytestmark = pytest.mark.network_local

SYM = "BTC/USDT:USDT"
CAPTURE = ("binance", "ws", "usdm_btcusdt_20240808.gz")
CAPTURE_TRADES = 21_313


def _cfg(source, symbols=(BTC,), **kw) -> EmulatorConfig:
    acct = AccountConfig(api_key=KEY, secret=SECRET, balances={"USDT": 100_000.0})
    return EmulatorConfig.for_symbols(list(symbols), "usdm", manual_clock=True, warmup=0, source=source,
                                      accounts=(acct,), **kw)


# -- store --------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    """A catalog with 400 synthetic BTCUSDT aggTrades (usdm) written through market.catalog.Catalog."""
    root = tmp_path_factory.mktemp("store")
    df = generate_trades(SynthConfig(seed=11, symbol=BTC, start="2024-03-01T00:00:00", n_trades=400,
                                     initial_price=40_000.0, tick_size=0.1, lot_size=0.001, base_rate=5.0,
                                     sizes=SizeConfig(median=0.2)))
    Catalog(root).write(df, exchange="binance", market="usdm", symbol=BTC, kind="agg_trades", synthetic=True,
                        provenance={"generator": "market.synth.generate_trades", "seed": 11})
    return root, df.sort("id")


def _expected(df: pl.DataFrame, now_ms: int) -> list[tuple]:
    ms = df["ts_event"] // NS_PER_MS
    sel = df.filter(ms <= now_ms)
    return [(int(r["id"]), r["price"], r["quantity"], bool(r["is_buyer_maker"]), int(r["first_trade_id"]),
             int(r["last_trade_id"]), int(r["ts_event"] // NS_PER_MS)) for r in sel.iter_rows(named=True)]


def _got(rows: list[dict]) -> list[tuple]:
    return [(int(r["a"]), float(r["p"]), float(r["q"]), bool(r["m"]), int(r["f"]), int(r["l"]), int(r["T"]))
            for r in rows]


def test_store_replays_the_catalog_dataset_up_to_market_time(store):
    root, df = store
    with EmulatorServer(_cfg(StoreSource(root=str(root)))) as emu:
        tape = emu.tapes[BTC]
        assert len(tape) == df.height
        np.testing.assert_array_equal(tape.agg_id, df["id"].to_numpy())
        first_ms = int(df["ts_event"][0]) // NS_PER_MS
        assert emu.engine.now_ms() == first_ms  # market time starts at the first trade
        c = emu.client()
        c.load_markets()
        assert _got(c.fapiPublicGetAggTrades({"symbol": BTC, "limit": 1000})) == _expected(df, first_ms)
        emu.advance_trades(BTC, 150)
        now = emu.engine.now_ms()
        want = _expected(df, now)
        assert len(want) >= 150 and want[-1][-1] == now
        assert _got(c.fapiPublicGetAggTrades({"symbol": BTC, "limit": 1000})) == want  # nothing after market time
        assert _got(c.fapiPublicGetAggTrades({"symbol": BTC, "fromId": want[10][0], "limit": 5})) == want[10:15]
        emu.advance_to(int(tape.ts[-1]))
        assert _got(c.fapiPublicGetAggTrades({"symbol": BTC, "limit": 1000})) == _expected(df, 10**15)


def test_store_start_end_select_the_replayed_range_and_trades_kind(store, tmp_path):
    root, df = store
    lo, hi = int(df["ts_event"][100]), int(df["ts_event"][300])
    with EmulatorServer(_cfg(StoreSource(root=str(root), start=lo, end=hi))) as emu:
        want = df.filter((pl.col("ts_event") >= lo) & (pl.col("ts_event") < hi))
        np.testing.assert_array_equal(emu.tapes[BTC].agg_id, want["id"].to_numpy())
        assert emu.engine.now_ms() == lo // NS_PER_MS
    # kind trades: each raw trade is its own aggregate (a = f = l = the trade id)
    raw = df.select("id", "ts_event", "ts_init", "price", "quantity", "is_buyer_maker").head(50)
    Catalog(tmp_path).write(raw, exchange="binance", market="usdm", symbol=BTC, kind="trades", synthetic=True,
                            provenance={"generator": "test", "seed": 11})
    with EmulatorServer(_cfg(StoreSource(root=str(tmp_path), kind="trades"))) as emu:
        emu.advance_to(int(emu.tapes[BTC].ts[-1]))
        rows = emu.client().fapiPublicGetAggTrades({"symbol": BTC, "limit": 1000})
        assert [(int(r["a"]), int(r["f"]), int(r["l"]), float(r["p"]), float(r["q"]), r["m"]) for r in rows] == [
            (i, i, i, p, q, m) for i, p, q, m in raw.select("id", "price", "quantity", "is_buyer_maker").iter_rows()]


def test_store_errors_are_clear(store, tmp_path):
    root, _ = store
    with pytest.raises(ConfigError, match=r"symbol=ETHUSDT kind=agg_trades .*no such dataset"):
        EmulatorServer(_cfg(StoreSource(root=str(root)), symbols=(BTC, "ETHUSDT")))
    with pytest.raises(ConfigError, match=r"market=spot .*no such dataset"):
        EmulatorServer(_cfg(StoreSource(root=str(root), market="spot")))
    with pytest.raises(ConfigError, match="no rows"):
        EmulatorServer(_cfg(StoreSource(root=str(root), start="2030-01-01")))
    with pytest.raises(ConfigError, match="not a directory"):
        EmulatorServer(_cfg(StoreSource(root=str(tmp_path / "nowhere"))))
    with pytest.raises(ConfigError, match="end"):
        StoreSource(root=str(root), start="2024-03-02", end="2024-03-01")


# -- capture ------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def capture_emu():
    path = shared_data_path(*CAPTURE)
    emu = EmulatorServer(_cfg(CaptureSource(path=str(path)))).start()
    yield emu
    emu.stop()


def test_capture_replays_its_trades(capture_emu):
    emu = capture_emu
    tape = emu.tapes[BTC]
    assert len(tape) == CAPTURE_TRADES
    assert np.all(np.diff(tape.agg_id) == 1)  # contiguous raw trade ids, one aggregate each
    np.testing.assert_array_equal(tape.first_id, tape.agg_id)
    np.testing.assert_array_equal(tape.last_id, tape.agg_id)
    assert np.all(np.diff(tape.ts) >= 0)
    assert emu.engine.now_ms() == int(tape.ts[0]) // NS_PER_MS
    assert parse_time("2024-08-08T23:54") <= int(tape.ts[0]) < int(tape.ts[-1]) < parse_time("2024-08-09")
    c = emu.client()
    latest = c.fapiPublicGetAggTrades({"symbol": BTC, "limit": 1000})
    assert int(latest[-1]["a"]) == int(tape.agg_id[tape.cursor - 1])
    assert float(latest[-1]["p"]) == float(tape.price[tape.cursor - 1])


def test_capture_market_order_fills_against_the_recorded_tape(capture_emu):
    emu = capture_emu
    c = emu.client()
    c.load_markets()
    emu.advance_trades(BTC, 500)
    expected = expected_market_fills(emu, BTC, +1, 0.05)
    recorded = [emu.next_trade(BTC, k)[0] for k in range(len(expected))]
    o = c.create_order(SYM, "market", "buy", 0.05)
    assert o["status"] == "open" and o["filled"] == 0.0
    emu.advance_trades(BTC, len(expected) + 2)
    done = c.fetch_order(o["id"], SYM)
    assert done["status"] == "closed" and done["filled"] == pytest.approx(0.05)
    got = [(t["price"], t["amount"]) for t in c.fetch_my_trades(SYM)]
    assert [(round(p, 6), round(q, 6)) for p, q in got] == [(round(p, 6), round(q, 6)) for p, q in expected]
    # the fill model's price: the recorded trade price plus 1 bp of slippage against the buyer
    assert [p for p, _ in got] == pytest.approx([r * (1 + 1e-4) for r in recorded], rel=1e-9)
    emu.advance_to(int(emu.tapes[BTC].ts[-1]))
    assert emu.tapes[BTC].cursor == CAPTURE_TRADES


def test_capture_errors_are_clear(tmp_path):
    path = shared_data_path(*CAPTURE)
    with pytest.raises(ConfigError, match=r"no trade messages for symbol ETHUSDT .*BTCUSDT"):
        EmulatorServer(_cfg(CaptureSource(path=str(path)), symbols=(BTC, "ETHUSDT")))
    with pytest.raises(ConfigError, match=r"no aggTrade messages for symbol BTCUSDT"):
        EmulatorServer(_cfg(CaptureSource(path=str(path), kind="agg_trades")))
    with pytest.raises(ConfigError, match="no such file"):
        CaptureSource(path=str(tmp_path / "missing.gz"))


# -- CLI ------------------------------------------------------------------------------------------------


def _cli_error(capsys, argv: list[str]) -> str:
    assert main(argv) == 2
    return capsys.readouterr().err


def test_cli_builds_each_source(store, tmp_path):
    root, _ = store
    cfg = build_config(parser().parse_args(["--source", "store", "--store-root", str(root), "--start",
                                            "2024-03-01", "--kind", "agg_trades", "--speed", "5"]))
    assert cfg.source == StoreSource(root=str(root), start="2024-03-01") and cfg.speed == 5
    cap = tmp_path / "c.gz"
    cap.write_bytes(b"")
    cfg = build_config(parser().parse_args(["--source", "capture", "--capture", str(cap), "--warmup", "0"]))
    assert cfg.source == CaptureSource(path=str(cap), kind="trades") and cfg.warmup == 0
    cfg = build_config(parser().parse_args(["--seed", "3", "--duration", "1h"]))
    assert cfg.source == SyntheticSource() and cfg.seed == 3 and cfg.duration == 3600 * 10**9


def test_cli_bad_combinations_name_the_flag(capsys, store, tmp_path):
    root, _ = store
    assert "--store-root is required" in _cli_error(capsys, ["--source", "store"])
    assert "--capture is required" in _cli_error(capsys, ["--source", "capture"])
    assert "--duration is not valid with --source store" in _cli_error(
        capsys, ["--source", "store", "--store-root", str(root), "--duration", "1h"])
    assert "--seed is not valid with --source capture" in _cli_error(
        capsys, ["--source", "capture", "--capture", str(root), "--seed", "1"])
    assert "--capture is not valid with --source synthetic" in _cli_error(capsys, ["--capture", "x.gz"])
    assert "--end is not valid with --source synthetic" in _cli_error(capsys, ["--end", "2024-01-02"])
    assert "--store-root" in _cli_error(capsys, ["--source", "store", "--store-root", str(tmp_path / "no")])
    assert "--capture" in _cli_error(capsys, ["--source", "capture", "--capture", str(tmp_path / "no.gz")])
    err = _cli_error(capsys, ["--source", "store", "--store-root", str(root), "--symbols", "ETHUSDT"])
    assert "symbol=ETHUSDT" in err and "no such dataset" in err
