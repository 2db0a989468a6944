"""`python -m emulator --symbols BTCUSDT,ETHUSDT --market usdm --speed 10 --port 0 --seed 7`

Prints one JSON line (base URL, market, API key and secret, market time) and serves until Ctrl-C.
"""

from __future__ import annotations

import argparse
import json
import sys

from core.errors import ConfigError
from emulator.config import AccountConfig, EmulatorConfig
from emulator.server import EmulatorServer


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m emulator", description=__doc__.splitlines()[0])
    ap.add_argument("--symbols", default="BTCUSDT", help="comma-separated, e.g. BTCUSDT,ETHUSDT")
    ap.add_argument("--market", choices=["spot", "usdm"], default="usdm")
    ap.add_argument("--speed", type=float, default=1.0, help="market seconds per wall second")
    ap.add_argument("--port", type=int, default=0, help="0 = an ephemeral port (printed)")
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--start", default="2024-01-01", help="first synthetic instant (ISO)")
    ap.add_argument("--duration", default="6h", help="synthetic market length per symbol")
    ap.add_argument("--api-key", default="emulator-key")
    ap.add_argument("--secret", default="emulator-secret")
    ap.add_argument("--balance", type=float, default=10_000.0, help="starting USDT")
    args = ap.parse_args(argv)
    symbols = [s.strip().upper() for s in args.symbols.split(",") if s.strip()]
    try:
        cfg = EmulatorConfig.for_symbols(
            symbols, args.market, seed=args.seed, speed=args.speed, start=args.start, duration=args.duration,
            accounts=(AccountConfig(api_key=args.api_key, secret=args.secret, balances={"USDT": args.balance}),))
    except (ConfigError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    server = EmulatorServer(cfg, port=args.port).start()
    print(json.dumps({"base_url": server.base_url, "market": args.market, "symbols": symbols,
                      "api_key": args.api_key, "secret": args.secret, "speed": args.speed,
                      "market_time_ms": server.engine.now_ms()}), flush=True)
    server.serve_forever()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
