"""`python -m market` — the market-data pipeline from the command line.

Sub-commands: ingest, backfill, quality, bars, features, synth, list, demo. Every sub-command
has `--help`. Errors of this project (bad files, bad configs) print a one-paragraph message and
exit with status 2; nothing prints a traceback for a user mistake.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from core.errors import TradingError

DEFAULT_STORE = "var/store"
STORE_HELP = f"root folder of the Parquet catalog (default {DEFAULT_STORE})"


def _add_key_args(p: argparse.ArgumentParser, kind_default: str | None = "agg_trades") -> None:
    p.add_argument("--store", default=DEFAULT_STORE, help=STORE_HELP)
    p.add_argument("--exchange", default="binance", help="exchange name in the catalog (default binance)")
    p.add_argument("--market", default="usdm", choices=["spot", "usdm", "coinm"], help="market segment")
    p.add_argument("--symbol", required=True, help="symbol, e.g. BTCUSDT")
    if kind_default is not None:
        p.add_argument("--kind", default=kind_default,
                       help=f"dataset kind: agg_trades, trades, klines_<interval> (default {kind_default})")


def _add_range_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--start", help="inclusive start: ISO date/time (UTC) or ns")
    p.add_argument("--end", help="exclusive end: ISO date/time (UTC) or ns")


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="python -m market", description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("ingest", help="read Binance/Tardis files or websocket captures, validate, store",
                       description="Read files (Binance public-data aggTrades/trades/klines CSV or zip, "
                       "recorded websocket captures, Tardis trades CSV, OHLCV CSV), run the quality checks, "
                       "store clean rows in the Parquet catalog and rejected rows in its quarantine. The "
                       "format is detected from the content. Re-ingesting the same files adds nothing.")
    p.add_argument("paths", nargs="+", type=Path, help="files to ingest")
    p.add_argument("--store", default=DEFAULT_STORE, help=STORE_HELP)
    p.add_argument("--exchange", default="binance")
    p.add_argument("--market", default="usdm", choices=["spot", "usdm", "coinm"])
    p.add_argument("--symbol", help="symbol for files that do not name it (Binance CSVs); captures carry it")
    p.add_argument("--on-error", default="raise", choices=["raise", "quarantine"],
                   help="malformed lines: stop with the file and line (raise) or keep going and count them")

    p = sub.add_parser("backfill", help="download history through ccxt (aggTrades by id, klines by time)",
                       description="Backfill from Binance REST through ccxt, resuming from what the catalog "
                       "already holds, with a weight-aware rate limiter that honours 429/418 Retry-After.")
    p.add_argument("what", choices=["agg-trades", "klines"])
    _add_key_args(p, kind_default=None)
    _add_range_args(p)
    p.add_argument("--interval", default="1m", help="kline interval (klines only)")
    p.add_argument("--base-url", help="talk to this server instead of Binance (e.g. the local emulator)")

    p = sub.add_parser("quality", help="run the quality checks over a stored dataset and print the report",
                       description="Re-validate stored trades or klines: duplicates, ordering, id and time "
                       "gaps, non-finite/non-positive values, impossible OHLC, outliers. Prints the readable "
                       "report; --json writes the full report.")
    _add_key_args(p)
    _add_range_args(p)
    p.add_argument("--json", type=Path, help="also write the report as JSON here")

    p = sub.add_parser("bars", help="build bars from stored trades and write them as Parquet",
                       description="Bar specs: time:1m, tick:1000, volume:250.5, dollar:1e6, dynamic:50 "
                       "(dynamic volume bars, target bars per UTC day from the past 7 days).")
    _add_key_args(p)
    _add_range_args(p)
    p.add_argument("--spec", default="time:1m", help="bar spec (default time:1m)")
    p.add_argument("--out", type=Path, required=True, help="output Parquet file")

    p = sub.add_parser("features", help="bars + order-flow features (+ higher-timeframe join) to Parquet",
                       description="Build bars and every feature of docs/features.md from stored trades, "
                       "with the pipeline config (configs/market.yaml).")
    _add_key_args(p)
    _add_range_args(p)
    p.add_argument("--config", type=Path, default=Path("configs/market.yaml"), help="pipeline config YAML")
    p.add_argument("--spec", help="override the config's bar spec, e.g. volume:100")
    p.add_argument("--out", type=Path, required=True, help="output Parquet file (bars joined with features)")

    p = sub.add_parser("synth", help="generate a seeded synthetic market into the catalog (marked synthetic)",
                       description="`synth trades`: the seeded generator (clustered arrivals, heavy-tailed "
                       "sizes, regime-switching volatility, order-flow impact). `synth klines FILE`: trades "
                       "that match each real kline's OHLC, volume, count and taker-buy volume exactly.")
    sp = p.add_subparsers(dest="synth_command", required=True, metavar="SOURCE")
    q = sp.add_parser("trades", help="the seeded generator")
    q.add_argument("--store", default=DEFAULT_STORE, help=STORE_HELP)
    q.add_argument("--market", default="usdm", choices=["spot", "usdm", "coinm"])
    q.add_argument("--symbol", default="SYNUSDT")
    q.add_argument("--seed", type=int, default=7)
    q.add_argument("--start", default="2024-01-01")
    q.add_argument("--duration", default="1d", help="e.g. 6h, 3d")
    q.add_argument("--config", type=Path, help="SynthConfig YAML (overrides the flags above)")
    q = sp.add_parser("klines", help="kline-conditioned trades from a real klines file")
    q.add_argument("klines", type=Path, help="Binance klines CSV/zip")
    q.add_argument("--store", default=DEFAULT_STORE, help=STORE_HELP)
    q.add_argument("--market", default="usdm", choices=["spot", "usdm", "coinm"])
    q.add_argument("--symbol", required=True)
    q.add_argument("--seed", type=int, default=7)

    p = sub.add_parser("list", help="list the datasets in the catalog with their time range and provenance",
                       description="Print every dataset of the catalog as JSON: exchange, market, symbol, kind, "
                       "first and last timestamp (UTC), and whether it is synthetic.")
    p.add_argument("--store", default=DEFAULT_STORE, help=STORE_HELP)

    p = sub.add_parser("demo", help="the whole pipeline on a seeded synthetic market, with an HTML report",
                       description="Generate a seeded synthetic market for two symbols, validate and store "
                       "it, build bars and features, and write an HTML report with charts.")
    p.add_argument("--config", type=Path, default=Path("configs/demo.yaml"))
    p.add_argument("--out", type=Path, help="output folder (default from the config)")
    p.add_argument("--duration", help="override each market's duration, e.g. 6h")
    return ap


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from market import commands

    try:
        return getattr(commands, "cmd_" + args.command)(args)
    except TradingError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


def print_json(obj) -> None:
    print(json.dumps(obj, indent=2, sort_keys=True, default=str))
