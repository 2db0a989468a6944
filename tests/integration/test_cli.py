"""The `python -m market` CLI end to end, in-process (main(argv)) and once as a real subprocess."""

from __future__ import annotations

import json
import subprocess
import sys

import polars as pl
import pytest

from market.cli import build_parser, main
from tests.conftest import REPO_ROOT, shared_data_path

SUBCOMMANDS = ["ingest", "backfill", "quality", "bars", "features", "synth", "list", "demo"]


def test_every_subcommand_has_help(capsys):
    for cmd in SUBCOMMANDS:
        with pytest.raises(SystemExit) as e:
            main([cmd, "--help"])
        assert e.value.code == 0
        out = capsys.readouterr().out
        assert f"python -m market {cmd}" in out and len(out) > 200


def test_parser_lists_all_subcommands():
    text = build_parser().format_help()
    for cmd in SUBCOMMANDS:
        assert cmd in text


def test_module_entry_point_runs_as_subprocess():
    r = subprocess.run([sys.executable, "-m", "market", "--help"], cwd=REPO_ROOT, capture_output=True, text=True,
                       timeout=60)
    assert r.returncode == 0 and "ingest" in r.stdout


def test_ingest_capture_then_bars_features_quality_list(tmp_path, capsys):
    capture = shared_data_path("binance", "ws", "usdm_btcusdt_20240808.gz")
    store = tmp_path / "store"
    assert main(["ingest", str(capture), "--store", str(store), "--market", "usdm"]) == 0
    summary = _last_json(capsys)
    trades = [s for s in summary if s["dataset"] == "trades"]
    assert trades and trades[0]["added"] == 21313  # README: 21,313 trades in this capture
    # re-ingesting the same file adds nothing
    assert main(["ingest", str(capture), "--store", str(store), "--market", "usdm"]) == 0
    again = [s for s in _last_json(capsys) if s["dataset"] == "trades"]
    assert again[0]["added"] == 0 and again[0]["duplicates"] == 21313

    out = tmp_path / "bars.parquet"
    assert main(["bars", "--store", str(store), "--symbol", "BTCUSDT", "--kind", "trades", "--spec", "volume:5",
                 "--out", str(out)]) == 0
    bars = pl.read_parquet(out)
    raw = pl.read_parquet(list((store / "exchange=binance").rglob("kind=trades/*/data.parquet")))
    # every bar except possibly none closes with volume >= 5 and all volume is accounted for except the open bar
    assert (bars["volume"] >= 5 - 1e-9).all()
    assert bars["trade_count"].sum() <= raw.height and bars["trade_count"].sum() > raw.height * 0.9

    fout = tmp_path / "feat.parquet"
    assert main(["features", "--store", str(store), "--symbol", "BTCUSDT", "--kind", "trades", "--spec",
                 "volume:5", "--out", str(fout), "--config", str(REPO_ROOT / "configs" / "market.yaml")]) == 0
    feats = pl.read_parquet(fout)
    assert feats.height == bars.height and "ofi" in feats.columns

    assert main(["quality", "--store", str(store), "--symbol", "BTCUSDT", "--kind", "trades",
                 "--json", str(tmp_path / "q.json")]) == 0
    rep = json.loads((tmp_path / "q.json").read_text())
    assert rep["rows_in"] == rep["rows_kept"] + rep["rows_quarantined"] + rep["duplicates"]

    capsys.readouterr()
    assert main(["list", "--store", str(store)]) == 0
    listing = json.loads(capsys.readouterr().out)
    kinds = {r["kind"] for r in listing if r["symbol"] == "BTCUSDT"}
    assert {"trades", "book_ticker"} <= kinds
    assert all(r["synthetic"] is False for r in listing)


def test_synth_trades_is_marked_synthetic(tmp_path, capsys):
    store = tmp_path / "s"
    assert main(["synth", "trades", "--store", str(store), "--symbol", "SYNUSDT", "--duration", "2h"]) == 0
    capsys.readouterr()
    assert main(["list", "--store", str(store)]) == 0
    listing = json.loads(capsys.readouterr().out)
    assert listing and all(r["synthetic"] is True and r["exchange"] == "synthetic" for r in listing)


def test_user_errors_exit_2_with_a_message(tmp_path, capsys):
    bad = tmp_path / "BTCUSDT-aggTrades-2024-01-01.csv"
    bad.write_text("1,100.0,1.0,1,1,1704067200000,true\n2,abc,1.0,2,2,1704067200001,false\n")
    assert main(["ingest", str(bad), "--store", str(tmp_path / "st")]) == 2
    err = capsys.readouterr().err
    assert "error:" in err and ":2" in err  # names the file and line 2
    assert main(["bars", "--store", str(tmp_path / "st"), "--symbol", "X", "--spec", "volume:-1",
                 "--out", str(tmp_path / "o.parquet")]) == 2
    assert "volume:-1" in capsys.readouterr().err


def _last_json(capsys):
    out = capsys.readouterr().out
    start = out.rfind("\n[")
    start = 0 if start < 0 and out.startswith("[") else start + 1
    return json.loads(out[start:])
