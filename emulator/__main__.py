"""`python -m emulator --symbols BTCUSDT,ETHUSDT --market usdm --speed 10 --port 0 --seed 7`

Prints one JSON line (base URL, market, API key and secret, market time) and serves until Ctrl-C.
The replayed market is `--source synthetic` (default: `--seed`, `--start`, `--duration`),
`--source store --store-root DIR [--exchange binance] [--store-market M] [--kind agg_trades|trades]
[--start T] [--end T]` (a `market.catalog` dataset per symbol) or `--source capture --capture FILE
[--kind trades|agg_trades]` (a recorded Binance websocket capture).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from core.errors import ConfigError, DataError
from emulator.config import (
    AccountConfig,
    CaptureSource,
    EmulatorConfig,
    StoreSource,
    SyntheticSource,
)
from emulator.server import EmulatorServer

# flag → the sources that accept it (every other flag is common to all sources)
_FLAG_SOURCES: dict[str, tuple[str, ...]] = {
    "seed": ("synthetic",),
    "duration": ("synthetic",),
    "start": ("synthetic", "store"),
    "end": ("store",),
    "store_root": ("store",),
    "exchange": ("store",),
    "store_market": ("store",),
    "capture": ("capture",),
    "kind": ("store", "capture"),
}


class UsageError(ValueError):
    pass


def _flag(dest: str) -> str:
    return "--" + dest.replace("_", "-")


def build_config(args: argparse.Namespace) -> EmulatorConfig:
    """The EmulatorConfig of parsed CLI args; a flag the source does not take → UsageError naming it."""
    for dest, sources in _FLAG_SOURCES.items():
        if getattr(args, dest) is not None and args.source not in sources:
            raise UsageError(f"{_flag(dest)} is not valid with --source {args.source} "
                             f"(only with --source {' / '.join(sources)})")
    if args.source == "store":
        if args.store_root is None:
            raise UsageError("--store-root is required with --source store")
        if not Path(args.store_root).is_dir():
            raise UsageError(f"--store-root {args.store_root!r} is not a directory")
        source = StoreSource(root=args.store_root, exchange=args.exchange or "binance", market=args.store_market,
                             kind=args.kind or "agg_trades", start=args.start, end=args.end)
        extra = {}
    elif args.source == "capture":
        if args.capture is None:
            raise UsageError("--capture is required with --source capture")
        if not Path(args.capture).is_file():
            raise UsageError(f"--capture {args.capture!r}: no such file")
        source = CaptureSource(path=args.capture, kind=args.kind or "trades")
        extra = {}
    else:
        source = SyntheticSource()
        extra = {"seed": 7 if args.seed is None else args.seed, "start": args.start or "2024-01-01",
                 "duration": args.duration or "6h"}
    symbols = [s.strip().upper() for s in args.symbols.split(",") if s.strip()]
    kwargs = {"speed": args.speed, "source": source, **extra,
              "accounts": (AccountConfig(api_key=args.api_key, secret=args.secret, balances={"USDT": args.balance}),)}
    if args.warmup is not None:
        kwargs["warmup"] = 0 if args.warmup.strip() == "0" else args.warmup
    return EmulatorConfig.for_symbols(symbols, args.market, **kwargs)


def parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="python -m emulator", description=__doc__.splitlines()[0])
    ap.add_argument("--symbols", default="BTCUSDT", help="comma-separated, e.g. BTCUSDT,ETHUSDT")
    ap.add_argument("--market", choices=["spot", "usdm"], default="usdm")
    ap.add_argument("--speed", type=float, default=1.0, help="market seconds per wall second")
    ap.add_argument("--port", type=int, default=0, help="0 = an ephemeral port (printed)")
    ap.add_argument("--warmup", default=None, help="market time already elapsed at launch: 0 or e.g. 30s, 5m (default 5m)")
    ap.add_argument("--source", choices=["synthetic", "store", "capture"], default="synthetic",
                    help="what is replayed (default synthetic)")
    ap.add_argument("--seed", type=int, default=None, help="synthetic: seed (default 7)")
    ap.add_argument("--start", default=None,
                    help="synthetic: first instant (ISO, default 2024-01-01); store: first instant kept")
    ap.add_argument("--duration", default=None, help="synthetic: market length per symbol (default 6h)")
    ap.add_argument("--end", default=None, help="store: end of the replayed range (exclusive)")
    ap.add_argument("--store-root", default=None, help="store: the market.catalog root directory")
    ap.add_argument("--exchange", default=None, help="store: dataset exchange (default binance)")
    ap.add_argument("--store-market", default=None, help="store: dataset market (default --market)")
    ap.add_argument("--kind", choices=["agg_trades", "trades"], default=None,
                    help="store (default agg_trades) / capture (default trades): which trades are replayed")
    ap.add_argument("--capture", default=None, help="capture: a recorded Binance websocket capture file")
    ap.add_argument("--api-key", default="emulator-key")
    ap.add_argument("--secret", default="emulator-secret")
    ap.add_argument("--balance", type=float, default=10_000.0, help="starting USDT")
    return ap


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        cfg = build_config(args)
        server = EmulatorServer(cfg, port=args.port)
    except (ConfigError, DataError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    server.start()
    print(json.dumps({"base_url": server.base_url, "market": args.market,
                      "symbols": [s.instrument.symbol for s in cfg.symbols], "source": args.source,
                      "api_key": args.api_key, "secret": args.secret, "speed": args.speed,
                      "market_time_ms": server.engine.now_ms()}), flush=True)
    server.serve_forever()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
