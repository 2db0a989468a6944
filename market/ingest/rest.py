"""REST backfill of Binance aggTrades (by id) and klines (by time) through ccxt.

The raw implicit endpoints (`publicGetAggTrades`, `fapiPublicGetKlines`, ...) are used instead of
ccxt's unified `fetch_trades`/`fetch_ohlcv` so that Binance's exact fields come back (aggregate id,
first/last trade ids, buyer-maker flag, all 11 kline fields) without ccxt's float rounding or
market loading. Every request goes through a weight-aware `WeightLimiter`; ccxt's own blind
limiter is disabled (DESIGN §8). ccxt exceptions are translated at this edge into `core.errors`.

Both backfills are resumable from the catalog: agg trades continue at the stored max id + 1,
klines at the stored max open_time + interval. Each page is validated (stateful across pages),
written to the catalog, and rejected rows go to its quarantine, so a crash loses at most one page
of work and a rerun never refetches stored rows.

Ranges are half-open: rows with `start_ts <= ts < end_ts` (ns). Only what exists at the server's
time of the run is fetched; an unclosed kline is never stored (it would change later).
"""

from __future__ import annotations

import dataclasses
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import ccxt
import numpy as np
import polars as pl
from pydantic import Field
from tqdm import tqdm

from core.config import FrozenConfig
from core.errors import ConfigError, DataError, RateLimitedError, RejectedError, RetryableError, TradingError
from core.time import NS_PER_MS, NS_PER_S
from market.catalog import Catalog
from market.ingest.rate_limit import RateLimitConfig, WeightLimiter, endpoint_weight, retry_after_from_headers
from market.quality import QualityConfig, QualityReport, QualityResult, TradeValidator, check_klines
from market.quality.report import top_gaps
from market.schema import AGG_TRADES_SCHEMA, KLINES_SCHEMA

MARKETS = ("spot", "usdm")
HOUR_MS = 3_600_000

# Fixed-length Binance intervals. "1M" (calendar month) is excluded: its length varies and
# "klines_1M" would collide with "klines_1m" on case-insensitive file systems.
INTERVAL_NS: dict[str, int] = {
    "1s": NS_PER_S, "1m": 60 * NS_PER_S, "3m": 180 * NS_PER_S, "5m": 300 * NS_PER_S,
    "15m": 900 * NS_PER_S, "30m": 1_800 * NS_PER_S, "1h": 3_600 * NS_PER_S, "2h": 7_200 * NS_PER_S,
    "4h": 14_400 * NS_PER_S, "6h": 21_600 * NS_PER_S, "8h": 28_800 * NS_PER_S, "12h": 43_200 * NS_PER_S,
    "1d": 86_400 * NS_PER_S, "3d": 259_200 * NS_PER_S, "1w": 604_800 * NS_PER_S,
}
_MAX_KLINES_LIMIT = {"spot": 1000, "usdm": 1500}
_API_PREFIX = {"spot": "public", "usdm": "fapiPublic"}
_STATUS_IN_MESSAGE = re.compile(r"^\S+ (\d{3}) ")


class BackfillConfig(FrozenConfig):
    """Paging and retry settings of a REST backfill."""

    page_limit_agg: int = Field(1000, ge=1, le=1000, description="aggTrades rows per request (Binance max 1000)")
    page_limit_klines: int = Field(1000, ge=1, le=1500, description="klines per request (spot max 1000, usdm 1500)")
    max_retries: int = Field(8, ge=0, description="retries of one request after transient errors / 429 / 418")
    quality: QualityConfig = QualityConfig()


@dataclass
class BackfillResult:
    """What one backfill run did. Keys are agg ids (agg_trades) or open_time ns (klines)."""

    pages: int
    rows_fetched: int
    rows_added: int
    duplicates: int
    quarantined: int
    first_key: int | None
    last_key: int | None
    retries: int
    rate_limited: int
    report: QualityReport


# -- client ---------------------------------------------------------------------------------------


def _rebase(url: str, base: Any) -> str:
    parts = urlsplit(url)
    scheme = base.scheme
    if parts.scheme in ("ws", "wss"):
        scheme = "wss" if base.scheme == "https" else "ws"
    return urlunsplit((scheme, base.netloc, base.path.rstrip("/") + parts.path, parts.query, parts.fragment))


def _rebase_tree(node: Any, base: Any) -> Any:
    if isinstance(node, str):
        return _rebase(node, base)
    if isinstance(node, dict):
        return {k: _rebase_tree(v, base) for k, v in node.items()}
    return node


def make_binance_client(market: str, *, base_url: str | None = None, api_key: str | None = None,
                        secret: str | None = None) -> ccxt.Exchange:
    """A sync ccxt client for Binance `market` ("spot" → ccxt.binance, "usdm" → ccxt.binanceusdm).

    ccxt's rate limiter is off (`WeightLimiter` replaces it). With `base_url` every URL in
    `urls['api']` (nested ones included) keeps its path but points at `base_url`, and the signed
    `/sapi` calls that `load_markets` would make are disabled, so nothing leaves that host.
    """
    classes = {"spot": ccxt.binance, "usdm": ccxt.binanceusdm}
    if market not in classes:
        raise ConfigError(f"unknown market {market!r}; expected one of {list(classes)}")
    params: dict[str, Any] = {"enableRateLimit": False}
    if api_key is not None:
        params["apiKey"] = api_key
    if secret is not None:
        params["secret"] = secret
    client = classes[market](params)
    # One client per market: load_markets must not also query the other segments' hosts.
    client.options["fetchMarkets"] = {**client.options.get("fetchMarkets", {}),
                                      "types": ["spot"] if market == "spot" else ["linear"]}
    if base_url is not None:
        base = urlsplit(base_url)
        if base.scheme not in ("http", "https") or not base.netloc:
            raise ConfigError(f"base_url must be http(s)://host[:port], got {base_url!r}")
        client.urls["api"] = _rebase_tree(client.urls["api"], base)
        client.options["fetchCurrencies"] = False
        client.options["fetchMargins"] = False
    return client


# -- error translation ----------------------------------------------------------------------------


def _http_status(exc: BaseException) -> int | None:
    # ccxt formats HTTP errors as "<exchange id> <status> <reason> <body>".
    m = _STATUS_IN_MESSAGE.match(str(exc))
    return int(m.group(1)) if m else None


def translate_ccxt_error(exc: Exception, client: ccxt.Exchange, *, what: str) -> TradingError:
    """Map a ccxt exception raised by a public GET to the project's error hierarchy.

    429/418 (ccxt DDoSProtection / RateLimitExceeded) → `RateLimitedError` with `retry_after` from
    the response's Retry-After header and `banned` for 418; network, timeout and 5xx → 
    `RetryableError`; an invalid symbol → `DataError`; other rejected requests → `RejectedError`.
    """
    msg = f"{what}: {type(exc).__name__}: {exc}"
    if isinstance(exc, (ccxt.DDoSProtection, ccxt.RateLimitExceeded)):
        retry_after = retry_after_from_headers(getattr(client, "last_response_headers", None))
        banned = _http_status(exc) == 418
        return RateLimitedError(msg, retry_after=retry_after, banned=banned)
    if isinstance(exc, ccxt.OperationFailed):  # NetworkError, RequestTimeout, ExchangeNotAvailable, ...
        return RetryableError(msg)
    if isinstance(exc, ccxt.BadSymbol):
        return DataError(f"invalid symbol ({exc})", source=what)
    return RejectedError(msg)


class _Rest:
    """One market's GET calls with weight accounting, retries and counters."""

    def __init__(self, client: ccxt.Exchange, market: str, limiter: WeightLimiter, max_retries: int):
        self.client = client
        self.market = market
        self.limiter = limiter
        self.max_retries = max_retries
        self.retries = 0
        self.rate_limited = 0

    def get(self, endpoint: str, params: dict[str, Any]) -> Any:
        name = f"{_API_PREFIX[self.market]}Get{endpoint[0].upper()}{endpoint[1:]}"
        call: Callable[[dict], Any] = getattr(self.client, name)
        weight = endpoint_weight(self.market, endpoint, params.get("limit"))
        what = f"{self.client.id} {endpoint} {params}"
        for attempt in range(self.max_retries + 1):
            self.limiter.acquire(weight)
            try:
                data = call(dict(params))
            except ccxt.BaseError as exc:
                err = translate_ccxt_error(exc, self.client, what=what)
                if not isinstance(err, RetryableError):
                    raise err from exc
                if attempt == self.max_retries:
                    raise type(err)(f"{err} (gave up after {attempt + 1} attempts)", *_rate_args(err)) from exc
                self.retries += 1
                if isinstance(err, RateLimitedError):
                    self.rate_limited += 1
                    self.limiter.on_rate_limited(err.retry_after, banned=err.banned)
                else:
                    self.limiter.sleep(self.limiter.backoff_delay(attempt))
                continue
            self.limiter.record_response(getattr(self.client, "last_response_headers", None))
            return data
        raise AssertionError("unreachable")

    def server_time_ns(self) -> int:
        data = self.get("time", {})
        try:
            return int(data["serverTime"]) * NS_PER_MS
        except (KeyError, TypeError, ValueError):
            raise DataError(f"unexpected server time answer {data!r}", source=f"{self.client.id} time") from None


def _rate_args(err: TradingError) -> tuple:
    return (err.retry_after, err.banned) if isinstance(err, RateLimitedError) else ()


# -- parsing --------------------------------------------------------------------------------------


def _ceil_div(a: int, b: int) -> int:
    return -(-a // b)


def parse_agg_trades(rows: Any, *, source: str) -> pl.DataFrame:
    """Binance aggTrades JSON rows → AGG_TRADES_SCHEMA frame (ts_init = ts_event, as for files).

    A malformed row raises `DataError` naming `source` and the 1-based row number.
    """
    if not isinstance(rows, list):
        raise DataError(f"expected a JSON array of agg trades, got {type(rows).__name__}", source=source)
    n = len(rows)
    ids = np.empty(n, np.int64)
    ts = np.empty(n, np.int64)
    px = np.empty(n, np.float64)
    qty = np.empty(n, np.float64)
    maker = np.empty(n, np.bool_)
    first = np.empty(n, np.int64)
    last = np.empty(n, np.int64)
    for i, r in enumerate(rows):
        try:
            m = r["m"]
            if not isinstance(m, bool):
                raise ValueError(f"field 'm' must be a boolean, got {m!r}")
            ids[i], ts[i] = _strict_int(r["a"]), _strict_int(r["T"]) * NS_PER_MS
            px[i], qty[i] = float(r["p"]), float(r["q"])
            first[i], last[i] = _strict_int(r["f"]), _strict_int(r["l"])
            maker[i] = m
        except (KeyError, TypeError, ValueError) as exc:
            raise DataError(f"malformed agg trade {r!r}: {type(exc).__name__}: {exc}", source=source, line=i + 1) from None
    return pl.DataFrame({"id": ids, "ts_event": ts, "ts_init": ts, "price": px, "quantity": qty,
                         "is_buyer_maker": maker, "first_trade_id": first, "last_trade_id": last},
                        schema=AGG_TRADES_SCHEMA)


def parse_klines(rows: Any, *, source: str) -> pl.DataFrame:
    """Binance klines JSON arrays (12 fields) → KLINES_SCHEMA frame with ns times."""
    if not isinstance(rows, list):
        raise DataError(f"expected a JSON array of klines, got {type(rows).__name__}", source=source)
    cols: dict[str, list] = {c: [] for c in KLINES_SCHEMA}
    float_fields = (("open", 1), ("high", 2), ("low", 3), ("close", 4), ("volume", 5), ("quote_volume", 7),
                    ("taker_buy_volume", 9), ("taker_buy_quote_volume", 10))
    for i, r in enumerate(rows):
        try:
            if not isinstance(r, list) or len(r) < 11:
                raise ValueError(f"expected an array of 12 fields, got {len(r) if isinstance(r, list) else type(r).__name__}")
            cols["open_time"].append(_strict_int(r[0]) * NS_PER_MS)
            cols["close_time"].append(_strict_int(r[6]) * NS_PER_MS)
            for name, k in float_fields:
                cols[name].append(float(r[k]))
            cols["trade_count"].append(_strict_int(r[8]))
        except (TypeError, ValueError) as exc:
            raise DataError(f"malformed kline {r!r}: {exc}", source=source, line=i + 1) from None
    return pl.DataFrame(cols, schema=KLINES_SCHEMA)


def _strict_int(v: Any) -> int:
    # JSON ints only (bools and floats would be silently truncated by int()).
    if isinstance(v, bool) or not isinstance(v, int):
        raise ValueError(f"expected an integer, got {v!r}")
    return v


# -- backfills ------------------------------------------------------------------------------------


def _check_market(market: str) -> None:
    if market not in MARKETS:
        raise ConfigError(f"unknown market {market!r}; expected one of {list(MARKETS)}")


def _store(catalog: Catalog, result: Any, dataset: dict[str, str], totals: dict[str, int]) -> None:
    if result.clean.height:
        wr = catalog.write(result.clean, **dataset, provenance={"source": "binance-rest"})
        totals["added"] += wr.rows_added
        totals["duplicates"] += wr.duplicates
    if result.quarantine.height:
        totals["quarantined"] += catalog.write_quarantine(result.quarantine, **dataset)


class _Progress:
    """tqdm bar over the time range covered (seconds), with rows and rows/s as postfix."""

    def __init__(self, enabled: bool, desc: str, end_ns: int):
        self.end_ns = end_ns
        self.start_ns: int | None = None
        self.t0 = time.monotonic()
        self.rows = 0
        self.bar = tqdm(total=0, unit="s", desc=desc, disable=not enabled, leave=False)

    def begin(self, start_ns: int) -> None:
        """Set where the covered range starts (once; the first page's time if no start was given)."""
        if self.start_ns is None:
            self.start_ns = start_ns
            self.bar.total = round(max(0, self.end_ns - start_ns) / NS_PER_S)
            self.bar.refresh()

    def update(self, covered_to_ns: int, rows: int) -> None:
        self.begin(covered_to_ns)
        self.rows += rows
        done = round(max(0, covered_to_ns - self.start_ns) / NS_PER_S)
        self.bar.update(max(0, min(done, self.bar.total) - self.bar.n))
        rate = self.rows / max(1e-9, time.monotonic() - self.t0)
        self.bar.set_postfix(rows=self.rows, rows_s=f"{rate:,.0f}", refresh=False)

    def close(self) -> None:
        self.bar.close()


def backfill_agg_trades(client: ccxt.Exchange, catalog: Catalog, *, market: str, symbol: str,
                        start_ts: int | None = None, end_ts: int | None = None, from_id: int | None = None,
                        limiter: WeightLimiter | None = None, exchange_name: str = "binance",
                        progress: bool = True, config: BackfillConfig = BackfillConfig()) -> BackfillResult:
    """Fetch aggTrades into the catalog, paginating by id (resumable).

    Where to start: stored max id + 1 if the dataset exists (`from_id`/`start_ts` then ignored);
    else `from_id`; else the first trade at/after `start_ts` (located with 1-hour startTime/endTime
    windows). With none of these, `ConfigError` (a whole symbol history is never fetched by
    accident). Stops at the first trade at/after `end_ts` (default: the server's time at the start)
    or when the server has no more trades.
    """
    _check_market(market)
    rest = _Rest(client, market, limiter or WeightLimiter(RateLimitConfig.for_market(market)), config.max_retries)
    dataset = {"exchange": exchange_name, "market": market, "symbol": symbol, "kind": "agg_trades"}
    validator = TradeValidator(kind="agg_trades", config=config.quality, dataset=f"{exchange_name}/{market}/{symbol}")
    report: QualityReport | None = None
    totals = {"pages": 0, "fetched": 0, "added": 0, "duplicates": 0, "quarantined": 0}
    first_key: int | None = None
    last_key: int | None = None

    now_ns = rest.server_time_ns()
    end_ns = now_ns + NS_PER_MS if end_ts is None else min(end_ts, now_ns + NS_PER_MS)
    stored = catalog.last_key(**dataset)
    if stored is not None:
        next_id: int | None = stored + 1
    elif from_id is not None:
        if from_id < 0:
            raise ConfigError(f"from_id must be >= 0, got {from_id}")
        next_id = from_id
    elif start_ts is not None:
        next_id = _locate_first_id(rest, symbol, start_ts, end_ns)
    else:
        raise ConfigError(f"nothing stored for {exchange_name}/{market}/{symbol} agg_trades: give start_ts or from_id")

    bar = _Progress(progress, f"{symbol} aggTrades", end_ns)
    if start_ts is not None and stored is None:
        bar.begin(start_ts)
    try:
        while next_id is not None:
            limit = config.page_limit_agg
            source = f"{client.id} aggTrades {symbol} fromId={next_id}"
            page = parse_agg_trades(rest.get("aggTrades", {"symbol": symbol, "fromId": next_id, "limit": limit}),
                                    source=source)
            totals["pages"] += 1
            if page.height == 0:
                break
            if page["id"][-1] < next_id:
                raise DataError(f"server returned ids up to {page['id'][-1]} for fromId={next_id}", source=source)
            bar.begin(int(page["ts_event"][0]))
            # Paging is by id, so cut at the first trade at/after the end (rows beyond it belong to
            # a later run, which resumes from the stored max id).
            beyond = page["ts_event"] >= end_ns
            cut = bool(beyond.any())
            if cut:
                page = page.head(int(beyond.arg_true()[0]))
            if page.height:
                totals["fetched"] += page.height
                res = validator.check(page)
                report = res.report if report is None else report.merge(res.report)
                _store(catalog, res, dataset, totals)
                first_key = int(page["id"][0]) if first_key is None else first_key
                last_key = int(page["id"][-1])
                bar.update(int(page["ts_event"][-1]), page.height)
            if cut or page.height < limit:
                break
            next_id = last_key + 1
    finally:
        bar.close()
    if report is None:
        report = validator.check(pl.DataFrame(schema=AGG_TRADES_SCHEMA)).report
    if totals["pages"]:
        catalog.write_report(report, **dataset)
    return BackfillResult(totals["pages"], totals["fetched"], totals["added"], totals["duplicates"],
                          totals["quarantined"], first_key, last_key, rest.retries, rest.rate_limited, report)


def _locate_first_id(rest: _Rest, symbol: str, start_ns: int, end_ns: int) -> int | None:
    """Id of the first trade with start_ns <= ts < end_ns, or None.

    Binance only accepts startTime/endTime pairs less than an hour apart, so scan hour windows.
    """
    lo_ms = _ceil_div(start_ns, NS_PER_MS)
    last_ms = _ceil_div(end_ns, NS_PER_MS) - 1
    while lo_ms <= last_ms:
        hi_ms = min(lo_ms + HOUR_MS - 1, last_ms)
        rows = rest.get("aggTrades", {"symbol": symbol, "startTime": lo_ms, "endTime": hi_ms, "limit": 1})
        page = parse_agg_trades(rows, source=f"aggTrades {symbol} startTime={lo_ms}")
        if page.height:
            return int(page["id"][0])
        lo_ms = hi_ms + 1
    return None


def _with_boundary_gap(res: QualityResult, prev_open: int, first_open: int, step: int) -> QualityResult:
    """Add the klines missing between two pages (invisible to a per-page check) to the report."""
    missing = (first_open - prev_open) // step - 1
    if missing <= 0:
        return res
    rep = res.report
    gaps = top_gaps(rep.missing_bars + [(prev_open + step, first_open - step, missing)], lambda g: g[2],
                    rep.max_listed_gaps)
    report = dataclasses.replace(rep, missing_bars=gaps, missing_bar_total=rep.missing_bar_total + missing)
    return dataclasses.replace(res, report=report)


def backfill_klines(client: ccxt.Exchange, catalog: Catalog, *, market: str, symbol: str, interval: str,
                    start_ts: int, end_ts: int, limiter: WeightLimiter | None = None,
                    exchange_name: str = "binance", progress: bool = True,
                    config: BackfillConfig = BackfillConfig()) -> BackfillResult:
    """Fetch closed klines with `start_ts <= open_time < end_ts` into the catalog (kind klines_<interval>).

    Resumes at max(stored max open_time + interval, start_ts). Klines not yet closed at the
    server's time are not fetched.
    """
    _check_market(market)
    if interval not in INTERVAL_NS:
        raise ConfigError(f"unsupported kline interval {interval!r}; expected one of {list(INTERVAL_NS)}")
    if end_ts <= start_ts:
        raise ConfigError(f"end_ts ({end_ts}) must be after start_ts ({start_ts})")
    limit = config.page_limit_klines
    if limit > _MAX_KLINES_LIMIT[market]:
        raise ConfigError(f"page_limit_klines={limit} exceeds Binance's {market} maximum {_MAX_KLINES_LIMIT[market]}")
    step = INTERVAL_NS[interval]
    rest = _Rest(client, market, limiter or WeightLimiter(RateLimitConfig.for_market(market)), config.max_retries)
    dataset = {"exchange": exchange_name, "market": market, "symbol": symbol, "kind": f"klines_{interval}"}
    totals = {"pages": 0, "fetched": 0, "added": 0, "duplicates": 0, "quarantined": 0}
    report: QualityReport | None = None
    first_key: int | None = None
    last_key: int | None = None

    now_ns = rest.server_time_ns()
    bound = min(end_ts, now_ns - step + 1)  # open_time < bound ⇒ inside the range and closed
    dataset_name = f"{exchange_name}/{market}/{symbol}"
    stored = catalog.last_key(**dataset)
    cursor = start_ts if stored is None else max(start_ts, stored + step)
    # Open time of the kline right before the next page, when the next page must follow it
    # (continuing stored data, or the previous page): a later first kline is a venue gap.
    prev_open = stored if stored is not None and cursor == stored + step else None
    bar = _Progress(progress, f"{symbol} klines {interval}", bound)
    bar.begin(cursor)
    try:
        while cursor < bound:
            params = {"symbol": symbol, "interval": interval, "startTime": _ceil_div(cursor, NS_PER_MS),
                      "endTime": _ceil_div(bound, NS_PER_MS) - 1, "limit": limit}
            source = f"{client.id} klines {symbol} {interval} startTime={params['startTime']}"
            page = parse_klines(rest.get("klines", params), source=source)
            totals["pages"] += 1
            if page.height == 0:
                break
            short = page.height < limit
            if page["open_time"][-1] < cursor:
                raise DataError(f"server returned klines before startTime {params['startTime']}", source=source)
            page = page.filter(pl.col("open_time") < bound)
            if page.height == 0:
                break
            totals["fetched"] += page.height
            res = check_klines(page, interval_ns=step, config=config.quality, dataset=dataset_name)
            if prev_open is not None:
                res = _with_boundary_gap(res, prev_open, int(page["open_time"][0]), step)
            prev_open = int(page["open_time"][-1])
            report = res.report if report is None else report.merge(res.report)
            _store(catalog, res, dataset, totals)
            first_key = int(page["open_time"][0]) if first_key is None else first_key
            last_key = int(page["open_time"][-1])
            cursor = last_key + step
            bar.update(cursor, page.height)
            if short:
                break
    finally:
        bar.close()
    if report is None:
        report = check_klines(pl.DataFrame(schema=KLINES_SCHEMA), interval_ns=step, config=config.quality,
                               dataset=dataset_name).report
    if totals["pages"]:
        catalog.write_report(report, **dataset)
    return BackfillResult(totals["pages"], totals["fetched"], totals["added"], totals["duplicates"],
                          totals["quarantined"], first_key, last_key, rest.retries, rest.rate_limited, report)
