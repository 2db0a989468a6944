"""Implementations of the `python -m market` sub-commands (argument parsing lives in cli.py)."""

from __future__ import annotations

import re
import sys
import time
from pathlib import Path

import polars as pl

from core.errors import ConfigError, DataError
from core.time import parse_duration, parse_time
from market.catalog import Catalog, DatasetKey
from market.cli import print_json

# detect_format name → catalog kind
_FORMAT_KIND = {
    "binance_agg_trades": "agg_trades",
    "binance_trades": "trades",
    "tardis_trades": "trades",
    "nautilus_trades_parquet": "trades",
}
_SYMBOL_IN_NAME = re.compile(r"^([A-Z0-9]{4,20})[-_]")


def _range(args) -> tuple[int | None, int | None]:
    try:
        start = parse_time(args.start) if getattr(args, "start", None) else None
        end = parse_time(args.end) if getattr(args, "end", None) else None
    except ValueError as exc:
        raise ConfigError(f"--start/--end: {exc}") from None
    if start is not None and end is not None and end <= start:
        raise ConfigError(f"--end ({args.end}) must be after --start ({args.start})")
    return start, end


def _symbol_for(path: Path, given: str | None) -> str:
    if given:
        return given.upper()
    m = _SYMBOL_IN_NAME.match(path.name.upper().removeprefix("TARDIS_").removeprefix("NAUTILUS_"))
    if not m:
        raise ConfigError(f"cannot tell the symbol of {path.name}: pass --symbol")
    return m.group(1)


def _interval_of(klines: pl.DataFrame, path: Path) -> str:
    if klines.height == 0:
        raise DataError("no klines to infer the interval from", source=str(path))
    step_ms = int(klines["close_time"][0] - klines["open_time"][0]) // 1_000_000 + 1
    for label, ms in (("1s", 1_000), ("1m", 60_000), ("3m", 180_000), ("5m", 300_000), ("15m", 900_000),
                      ("30m", 1_800_000), ("1h", 3_600_000), ("2h", 7_200_000), ("4h", 14_400_000),
                      ("6h", 21_600_000), ("8h", 28_800_000), ("12h", 43_200_000), ("1d", 86_400_000)):
        if ms == step_ms:
            return label
    raise DataError(f"unsupported kline interval of {step_ms} ms", source=str(path))


def _store_klines(catalog: Catalog, frame: pl.DataFrame, key: DatasetKey, interval: str, **write_kw) -> dict:
    from market.quality import check_klines

    res = check_klines(frame, interval_ns=parse_duration(interval), dataset=f"{key.symbol} {key.kind}")
    wr = catalog.write(res.clean, exchange=key.exchange, market=key.market, symbol=key.symbol, kind=key.kind,
                       **write_kw)
    if res.quarantine.height:
        catalog.write_quarantine(res.quarantine, exchange=key.exchange, market=key.market, symbol=key.symbol,
                                 kind=key.kind)
    catalog.write_report(res.report, exchange=key.exchange, market=key.market, symbol=key.symbol, kind=key.kind)
    print(res.report.to_text())
    return {"dataset": key.kind, "added": wr.rows_added, "duplicates": wr.duplicates, "conflicts": wr.conflicts}


def _store_trades(catalog: Catalog, frame: pl.DataFrame, key: DatasetKey, **write_kw) -> dict:
    from market.pipeline import ingest_trades

    out = ingest_trades(catalog, frame, key, **write_kw)
    print(out.report.to_text())
    return {"dataset": key.kind, "added": out.write.rows_added, "duplicates": out.write.duplicates,
            "conflicts": out.write.conflicts, "quarantined": out.report.rows_quarantined}


def _write_rejected(store: Path, path: Path, rejected: pl.DataFrame) -> None:
    if rejected.height:
        target = store / "_rejected" / (path.name + ".parquet")
        target.parent.mkdir(parents=True, exist_ok=True)
        rejected.write_parquet(target)
        print(f"{rejected.height} malformed line(s) of {path.name} kept in {target}")


def cmd_ingest(args) -> int:
    from market.ingest import WsCapture, detect_format, read_any

    catalog = Catalog(args.store)
    summary = []
    for path in args.paths:
        fmt = detect_format(path)
        data = read_any(path, on_error=args.on_error)
        if isinstance(data, WsCapture):
            _write_rejected(Path(args.store), path, data.rejected)
            for symbol in sorted(data.symbols()):
                for kind, frame in data.frames_for(symbol).items():
                    if frame.height == 0:
                        continue
                    key = DatasetKey(args.exchange, args.market, symbol, kind)
                    if kind in ("agg_trades", "trades"):
                        summary.append(_store_trades(catalog, frame, key))
                    elif kind.startswith("klines_"):
                        summary.append(_store_klines(catalog, frame, key, kind.removeprefix("klines_")))
                    else:
                        wr = catalog.write(frame, exchange=args.exchange, market=args.market, symbol=symbol,
                                           kind=kind)
                        summary.append({"dataset": kind, "added": wr.rows_added, "duplicates": wr.duplicates,
                                        "conflicts": wr.conflicts})
            continue
        _write_rejected(Path(args.store), path, data.rejected)
        symbol = _symbol_for(path, args.symbol)
        if fmt in _FORMAT_KIND:
            key = DatasetKey(args.exchange, args.market, symbol, _FORMAT_KIND[fmt])
            summary.append(_store_trades(catalog, data.frame, key))
        elif fmt in ("binance_klines", "ohlcv_csv"):
            interval = _interval_of(data.frame, path)
            key = DatasetKey(args.exchange, args.market, symbol, f"klines_{interval}")
            summary.append(_store_klines(catalog, data.frame, key, interval))
        elif fmt == "funding_csv":
            wr = catalog.write(data.frame, exchange=args.exchange, market=args.market, symbol=symbol, kind="funding")
            summary.append({"dataset": "funding", "added": wr.rows_added, "duplicates": wr.duplicates,
                            "conflicts": wr.conflicts})
        else:
            raise DataError(f"format {fmt} cannot be ingested", source=str(path))
    print_json(summary)
    return 0


def cmd_backfill(args) -> int:
    from market.ingest.rest import backfill_agg_trades, backfill_klines, make_binance_client

    start, end = _range(args)
    catalog = Catalog(args.store)
    client = make_binance_client(args.market, base_url=args.base_url)
    symbol = args.symbol.upper()
    if args.what == "agg-trades":
        res = backfill_agg_trades(client, catalog, market=args.market, symbol=symbol, start_ts=start, end_ts=end,
                                  exchange_name=args.exchange)
    else:
        if start is None or end is None:
            raise ConfigError("klines backfill needs --start and --end")
        res = backfill_klines(client, catalog, market=args.market, symbol=symbol, interval=args.interval,
                              start_ts=start, end_ts=end, exchange_name=args.exchange)
    print(res.report.to_text())
    print_json({k: v for k, v in vars(res).items() if k != "report"})
    return 0


def cmd_quality(args) -> int:
    from market.quality import check_klines, check_trades

    start, end = _range(args)
    catalog = Catalog(args.store)
    df = catalog.read(exchange=args.exchange, market=args.market, symbol=args.symbol.upper(), kind=args.kind,
                      start=start, end=end)
    label = f"{args.exchange}/{args.market}/{args.symbol.upper()}/{args.kind}"
    if args.kind.startswith("klines_"):
        res = check_klines(df, interval_ns=parse_duration(args.kind.removeprefix("klines_")), dataset=label)
    else:
        res = check_trades(df, kind=args.kind, dataset=label)
    print(res.report.to_text())
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(res.report.to_json())
    return 0


def cmd_bars(args) -> int:
    from market.bars.spec import parse_bar_spec
    from market.pipeline import stream_bars

    start, end = _range(args)
    spec = parse_bar_spec(args.spec)
    key = DatasetKey(args.exchange, args.market, args.symbol.upper(), args.kind)
    t0 = time.perf_counter()
    (bars,), n = stream_bars(Catalog(args.store), key, [spec], start=start, end=end, progress=sys.stderr.isatty())
    dt = time.perf_counter() - t0
    args.out.parent.mkdir(parents=True, exist_ok=True)
    bars.write_parquet(args.out)
    print(f"{n:,} trades → {bars.height:,} bars ({args.spec}) in {dt:.2f}s → {args.out}")
    return 0


def cmd_features(args) -> int:
    from market.bars.spec import parse_bar_spec
    from market.config import PipelineConfig, load_pipeline_config
    from market.pipeline import bars_and_features, bars_with_features

    start, end = _range(args)
    cfg = load_pipeline_config(args.config) if args.config.exists() else PipelineConfig()
    if args.spec:
        cfg = cfg.model_copy(update={"bars": parse_bar_spec(args.spec)})
    key = DatasetKey(args.exchange, args.market, args.symbol.upper(), args.kind)
    t0 = time.perf_counter()
    out = bars_and_features(Catalog(args.store), key, cfg, start=start, end=end, progress=sys.stderr.isatty())
    dt = time.perf_counter() - t0
    joined = bars_with_features(out.bars, out.features)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    joined.write_parquet(args.out)
    print(f"{out.trades_in:,} trades → {out.bars.height:,} bars × {out.features.width - 1} features "
          f"in {dt:.2f}s → {args.out}")
    return 0


def cmd_synth(args) -> int:
    from market.synth import SynthConfig, generate_trades, provenance, synthesize_from_klines

    catalog = Catalog(args.store)
    if args.synth_command == "trades":
        if args.config:
            from core.config import load_yaml_config

            cfg = load_yaml_config(SynthConfig, args.config)
        else:
            cfg = SynthConfig(seed=args.seed, symbol=args.symbol.upper(), start=args.start, duration=args.duration)
        trades = generate_trades(cfg)
        key = DatasetKey("synthetic", args.market, cfg.symbol, "agg_trades")
        summary = _store_trades(catalog, trades, key, synthetic=True, provenance=provenance(cfg))
    else:
        from market.ingest import read_binance_klines

        klines = read_binance_klines(args.klines).frame
        syn = synthesize_from_klines(klines, seed=args.seed)
        if syn.infeasible.height:
            print(f"{syn.infeasible.height} minute(s) could not be matched exactly; see the report")
        key = DatasetKey("synthetic", args.market, args.symbol.upper(), "agg_trades")
        prov = provenance(args.seed) | {"conditioned_on": args.klines.name}
        summary = _store_trades(catalog, syn.trades, key, synthetic=True, provenance=prov)
    print_json(summary)
    return 0


def cmd_list(args) -> int:
    catalog = Catalog(args.store)
    rows = []
    for k in catalog.datasets():
        b = catalog.time_bounds(exchange=k.exchange, market=k.market, symbol=k.symbol, kind=k.kind)
        rows.append({"exchange": k.exchange, "market": k.market, "symbol": k.symbol, "kind": k.kind,
                     "synthetic": catalog.is_synthetic(exchange=k.exchange, market=k.market, symbol=k.symbol,
                                                       kind=k.kind),
                     "first": _iso(b[0]) if b else None, "last": _iso(b[1]) if b else None})
    print_json(rows)
    return 0


def _iso(ts: int) -> str:
    from core.time import ns_to_datetime

    return ns_to_datetime(ts).isoformat()


def cmd_demo(args) -> int:
    from market.config import load_demo_config
    from market.demo import run_demo

    cfg = load_demo_config(args.config)
    if args.out:
        cfg = cfg.model_copy(update={"out_dir": args.out})
    if args.duration:
        cfg = cfg.model_copy(update={"markets": tuple(
            m.model_copy(update={"synth": replace_duration(m.synth, args.duration)}) for m in cfg.markets)})
    run_demo(cfg)
    return 0


def replace_duration(market_cfg, duration: str):
    """Re-validate rather than model_copy(update=...), which would skip validation."""
    from core.config import build_config

    data = market_cfg.model_dump() | {"duration": duration, "n_trades": None}
    return build_config(type(market_cfg), data, "--duration")
