"""Emulator: signed-request checks, fault injection seen through the real ccxt client, market data
causality, the request log and the CLI."""

from __future__ import annotations

import json
import subprocess
import sys
import time

import ccxt
import pytest

from emulator import FaultConfig, FaultRule
from emulator.testing import BTC, KEY, make_server

pytestmark = pytest.mark.network_local

SYM = "BTC/USDT:USDT"


@pytest.fixture
def usdm():
    emu = make_server("usdm")
    client = emu.client()
    client.load_markets()
    yield emu, client
    emu.stop()


# -- auth -----------------------------------------------------------------------------------------


def test_bad_signature_unknown_key_missing_key_and_stale_timestamp(usdm):
    emu, c = usdm
    bad_secret = emu.client(secret="not-the-secret")
    bad_secret.markets, bad_secret.markets_by_id = c.markets, c.markets_by_id
    with pytest.raises(ccxt.AuthenticationError, match="-1022"):
        bad_secret.fetch_balance()
    unknown = emu.client(api_key="nobody")
    with pytest.raises(ccxt.AuthenticationError, match="-2015"):
        unknown.fetch_balance()
    assert emu.records("account")[-1].status == 401
    stale = emu.client()
    stale.options["timeDifference"] = 30_000  # signs with a clock 30 s behind: outside recvWindow
    with pytest.raises(ccxt.InvalidNonce, match="-1021"):
        stale.fetch_balance()
    ahead = emu.client()
    ahead.options["timeDifference"] = -5_000  # 5 s ahead of the server
    with pytest.raises(ccxt.InvalidNonce, match="ahead of the server"):
        ahead.fetch_balance()
    with pytest.raises(ccxt.ExchangeError, match="-1131"):  # ccxt has no class for -1131 on linear
        c.fetch_balance({"recvWindow": 70_000})
    import requests
    r = requests.get(emu.base_url + "/fapi/v3/account?timestamp=1&signature=00", timeout=5)
    assert r.status_code == 401 and r.json()["code"] == -2014  # no X-MBX-APIKEY header
    assert c.fetch_balance()["USDT"]["total"] == 10_000.0  # the good client still works


def test_signature_covers_query_and_body():
    from emulator.auth import sign, verify_signed
    from emulator.errors import ApiError

    q, b = "symbol=BTCUSDT&side=BUY", "quantity=1&timestamp=1000"
    sig = sign(q + b, "s")
    verify_signed(q, b + "&signature=" + sig, {"timestamp": "1000"}, "s", 1000)
    with pytest.raises(ApiError) as e:
        verify_signed(q, "quantity=2&timestamp=1000&signature=" + sig, {"timestamp": "1000"}, "s", 1000)
    assert e.value.code == -1022


# -- faults ---------------------------------------------------------------------------------------


def test_server_error_is_a_network_error(usdm):
    emu, c = usdm
    emu.add_fault(FaultRule(kind="server_error", endpoint="account", status=503))
    with pytest.raises(ccxt.ExchangeNotAvailable):
        c.fetch_balance()
    assert c.fetch_balance()["USDT"]["total"] == 10_000.0  # only the scheduled request failed
    recs = emu.records("account")
    assert [(r.status, r.fault) for r in recs[-2:]] == [(503, "server_error"), (200, None)]


def test_rate_limit_retry_after_then_ban_inside_the_window(usdm):
    emu, c = usdm
    emu.add_fault(FaultRule(kind="rate_limit", endpoint="account", retry_after_s=1))
    with pytest.raises(ccxt.DDoSProtection, match="429"):
        c.fetch_balance()
    assert c.last_response_headers["Retry-After"] == "1"
    with pytest.raises(ccxt.DDoSProtection, match="418"):  # ignoring Retry-After gets an IP ban
        c.fetch_balance()
    time.sleep(1.05)
    assert c.fetch_balance()["USDT"]["total"] == 10_000.0
    assert [r.status for r in emu.records("account")[-3:]] == [429, 418, 200]


def test_ban_418(usdm):
    emu, c = usdm
    emu.add_fault(FaultRule(kind="ban", endpoint="order", method="POST", retry_after_s=1))
    with pytest.raises(ccxt.DDoSProtection, match="418"):
        c.create_order(SYM, "market", "buy", 0.01)
    assert c.last_response_headers["Retry-After"] == "1"
    with pytest.raises(ccxt.DDoSProtection):
        c.fetch_balance()
    time.sleep(1.05)
    assert emu.engine.accounts[KEY].orders == {}  # a banned order was never stored


def test_lost_ack_order_exists_when_queried_by_client_order_id(usdm):
    emu, c = usdm
    emu.add_fault(FaultRule(kind="lost_ack", endpoint="order", method="POST"))
    last = emu.engine.last_price(BTC)
    with pytest.raises(ccxt.NetworkError):
        c.create_order(SYM, "limit", "buy", 0.01, round(last - 100, 1), {"clientOrderId": "oms-42-1"})
    got = c.fetch_order(None, SYM, {"clientOrderId": "oms-42-1"})  # the key property for the OMS
    assert got["status"] == "open" and got["clientOrderId"] == "oms-42-1" and got["amount"] == 0.01
    rec = [r for r in emu.records("order") if r.method == "POST"][-1]
    assert rec.status == 0 and rec.fault == "lost_ack" and rec.params["newClientOrderId"] == "oms-42-1"
    with pytest.raises(ccxt.InvalidOrder, match="-4116"):  # a blind resubmission is refused
        c.create_order(SYM, "limit", "buy", 0.01, round(last - 100, 1), {"clientOrderId": "oms-42-1"})


def test_drop_before_processing_creates_nothing(usdm):
    emu, c = usdm
    emu.add_fault(FaultRule(kind="drop", endpoint="order", method="POST"))
    last = emu.engine.last_price(BTC)
    with pytest.raises(ccxt.NetworkError):
        c.create_order(SYM, "limit", "buy", 0.01, round(last - 100, 1), {"clientOrderId": "oms-43-1"})
    with pytest.raises(ccxt.OrderNotFound):
        c.fetch_order(None, SYM, {"clientOrderId": "oms-43-1"})


def test_delay_times_out_the_client_but_the_order_is_placed(usdm):
    emu, c = usdm
    emu.add_fault(FaultRule(kind="delay", endpoint="order", method="POST", delay_s=0.6))
    c.timeout = 300  # ms
    last = emu.engine.last_price(BTC)
    with pytest.raises(ccxt.RequestTimeout):
        c.create_order(SYM, "limit", "buy", 0.01, round(last - 100, 1), {"clientOrderId": "oms-44-1"})
    c.timeout = 10_000
    time.sleep(0.5)
    assert c.fetch_order(None, SYM, {"clientOrderId": "oms-44-1"})["status"] == "open"


def test_latency_jitter_is_seeded():
    cfg = FaultConfig(latency_ms=5, jitter_ms=20, seed=3)
    from emulator.faults import FaultGate
    a, b = FaultGate(cfg), FaultGate(cfg)
    da, db = [a.latency_s() for _ in range(5)], [b.latency_s() for _ in range(5)]
    assert da == db and all(0.005 <= x < 0.025 for x in da) and len(set(da)) == 5
    emu = make_server("usdm", faults=cfg)
    try:
        c = emu.client()
        t0 = time.monotonic()
        c.fetch_time()
        assert time.monotonic() - t0 >= 0.005
    finally:
        emu.stop()


def test_fault_rules_from_config_count_matching_requests():
    rules = (FaultRule(kind="server_error", endpoint="time", at=2, times=2),)
    emu = make_server("usdm", faults=FaultConfig(rules=rules))
    try:
        c = emu.client()
        out = []
        for _ in range(4):
            try:
                c.fetch_time()
                out.append("ok")
            except ccxt.ExchangeNotAvailable:
                out.append("503")
        assert out == ["ok", "503", "503", "ok"]
        assert [r.status for r in emu.records("time")] == [200, 503, 503, 200]
    finally:
        emu.stop()


# -- market data ----------------------------------------------------------------------------------


def test_market_data_never_shows_the_future(usdm):
    emu, c = usdm
    tape = emu.tapes[BTC]
    trades = c.fapiPublicGetAggTrades({"symbol": BTC, "limit": 1000})
    assert int(trades[-1]["a"]) == int(tape.agg_id[tape.cursor - 1])
    assert all(int(t["T"]) <= emu.engine.now_ms() for t in trades)
    nxt = emu.next_trade(BTC)
    emu.advance_trades(BTC, 1)
    after = c.fapiPublicGetAggTrades({"symbol": BTC, "limit": 1})
    assert float(after[0]["p"]) == nxt[0] and int(after[0]["a"]) == int(tape.agg_id[tape.cursor - 1])
    ohlcv = c.fetch_ohlcv(SYM, "1m", limit=5)
    assert ohlcv[-1][4] == emu.engine.last_price(BTC)  # the unclosed candle closes at the last trade
    book = c.fetch_order_book(SYM, 5)
    assert book["bids"][0][0] < emu.engine.last_price(BTC) < book["asks"][0][0]
    with pytest.raises(ccxt.BadSymbol):
        c.fapiPublicGetDepth({"symbol": "NOPEUSDT"})
    assert abs(c.fetch_time() - time.time() * 1000) < 5_000  # /time is the auth (wall) clock


def test_exchange_info_filters_reach_ccxt_markets(usdm):
    _, c = usdm
    m = c.market(SYM)
    assert m["precision"]["price"] == 0.1 and m["precision"]["amount"] == 0.001
    assert m["limits"]["amount"]["min"] == 0.001 and m["limits"]["cost"]["min"] == 5.0
    assert m["limits"]["market"]["max"] == 100.0


def test_cli_serves_and_prints_its_url():
    proc = subprocess.Popen([sys.executable, "-m", "emulator", "--symbols", "BTCUSDT,ETHUSDT", "--market", "usdm",
                             "--speed", "10", "--port", "0", "--seed", "7", "--duration", "1h"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        info = json.loads(proc.stdout.readline())
        from emulator.client import make_emulator_client
        c = make_emulator_client("usdm", info["base_url"], info["api_key"], info["secret"])
        c.load_markets()
        assert sorted(c.markets) == ["BTC/USDT:USDT", "ETH/USDT:USDT"]
        a = c.fapiPublicGetAggTrades({"symbol": "BTCUSDT", "limit": 1})[0]
        time.sleep(1.0)  # 1 s wall = 10 s of market time
        b = c.fapiPublicGetAggTrades({"symbol": "BTCUSDT", "limit": 1})[0]
        assert int(b["a"]) > int(a["a"]) and int(b["T"]) - int(a["T"]) <= 12_000
        assert c.fetch_balance()["USDT"]["total"] == 10_000.0
    finally:
        proc.terminate()
        proc.wait(10)
