"""A local HTTP server that answers like the Binance public REST API (spot /api/v3 and USD-M /fapi/v1).

Serves in-memory agg trades and klines (frames in `market.schema` layout, ns timestamps) on
127.0.0.1 with an ephemeral port, so the real ccxt client can be tested end to end without the
internet. It reproduces the behaviour a backfill depends on:

- endpoints ping, time, exchangeInfo, aggTrades (fromId | startTime/endTime | latest) and klines
  (startTime/endTime/limit), with Binance's JSON field names, string prices and parameter rules
  (limit caps, the 1-hour startTime/endTime rule for aggTrades, fromId not combinable with times);
- Binance error bodies: -1121 invalid symbol, -1100 illegal characters, -1102 missing parameter,
  -1120 invalid interval, -1127/-1128/-1130 parameter rules, all with HTTP 400;
- request weight counted in a window (`X-MBX-USED-WEIGHT-1M` on every response); over the limit →
  429 + Retry-After; any request while told to back off → 418 + Retry-After (an IP "ban");
- fault injection (`Fault`, `BinanceServer.schedule`): a given request answers with a status, is
  delayed, or has its connection dropped;
- a log of every request (path, params, monotonic time, status, weight, fault) for assertions.

Data "exists" only up to the server clock (`now_ms`): like the venue, nothing after now is served.
Use as a context manager: `with BinanceServer(...) as srv: srv.base_url`.
"""

from __future__ import annotations

import json
import math
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qsl, urlsplit

import numpy as np
import polars as pl

NS_PER_MS = 1_000_000
HOUR_MS = 3_600_000

INTERVAL_MS = {
    "1s": 1_000, "1m": 60_000, "3m": 180_000, "5m": 300_000, "15m": 900_000, "30m": 1_800_000,
    "1h": 3_600_000, "2h": 7_200_000, "4h": 14_400_000, "6h": 21_600_000, "8h": 28_800_000,
    "12h": 43_200_000, "1d": 86_400_000, "3d": 259_200_000, "1w": 604_800_000,
}
_SYMBOL_RE = re.compile(r"^[A-Z0-9\-_.]{1,20}$")

# (prefix, endpoint) → (weight, default limit, max limit). Kept independent of the client's table
# on purpose: a wrong client table must show up as a server-side 429, not agree with itself.
_SPOT = "/api/v3/"
_FAPI = "/fapi/v1/"
_ENDPOINTS: dict[tuple[str, str], tuple[int, int, int]] = {
    (_SPOT, "ping"): (1, 0, 0),
    (_SPOT, "time"): (1, 0, 0),
    (_SPOT, "exchangeInfo"): (20, 0, 0),
    (_SPOT, "aggTrades"): (4, 500, 1000),
    (_SPOT, "klines"): (2, 500, 1000),
    (_FAPI, "ping"): (1, 0, 0),
    (_FAPI, "time"): (1, 0, 0),
    (_FAPI, "exchangeInfo"): (1, 0, 0),
    (_FAPI, "aggTrades"): (20, 500, 1000),
    (_FAPI, "klines"): (0, 500, 1500),  # weight by limit, see _fapi_klines_weight
}


def _fapi_klines_weight(limit: int) -> int:
    return 1 if limit < 100 else 2 if limit < 500 else 5 if limit <= 1000 else 10


@dataclass(frozen=True)
class Fault:
    """What a scheduled request gets instead of a normal answer.

    kind "status": answer `status` with `body` (JSON text) and optional Retry-After; a 429/418
    also starts the server's back-off period, like a real rate-limit answer.
    kind "drop": close the connection without answering. kind "delay": sleep `delay_s`, then
    answer normally (drives client timeouts).
    """

    kind: str
    status: int = 503
    retry_after: int | None = None
    body: str = '{"code":-1001,"msg":"Internal error; unable to process your request. Please try again."}'
    delay_s: float = 0.0

    @classmethod
    def rate_limited(cls, retry_after: int | None = 1) -> "Fault":
        return cls("status", 429, retry_after, '{"code":-1003,"msg":"Too many requests; please use the websocket for live updates."}')

    @classmethod
    def banned(cls, retry_after: int | None = 1) -> "Fault":
        return cls("status", 418, retry_after, '{"code":-1003,"msg":"Way too many requests; IP banned."}')

    @classmethod
    def server_error(cls, status: int = 503) -> "Fault":
        return cls("status", status, None, "<html><body>Service Unavailable</body></html>")

    @classmethod
    def drop(cls) -> "Fault":
        return cls("drop")

    @classmethod
    def delay(cls, seconds: float) -> "Fault":
        return cls("delay", delay_s=seconds)


@dataclass
class _Rule:
    fault: Fault
    at: int  # 1-based index among matching requests
    times: int
    endpoint: str | None


@dataclass(frozen=True)
class RequestRecord:
    n: int  # 1-based over all requests
    method: str
    path: str
    endpoint: str
    params: dict[str, str]
    t: float  # time.monotonic() on arrival
    status: int = 0
    weight: int = 0
    fault: str | None = None


@dataclass
class BinanceServer:
    """Binance-like REST server on 127.0.0.1 (see module docstring).

    agg_trades: {symbol: frame in AGG_TRADES_SCHEMA} (ts_event in whole ms);
    klines: {(symbol, interval): frame in KLINES_SCHEMA}. Both serve spot and fapi paths.
    now_ms: the server clock (ms) or a callable returning it; default: wall clock.
    """

    agg_trades: dict[str, pl.DataFrame] = field(default_factory=dict)
    klines: dict[tuple[str, str], pl.DataFrame] = field(default_factory=dict)
    now_ms: int | Callable[[], int] | None = None
    weight_limit: int = 6000
    window_s: float = 60.0
    ban_s: int = 2

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        self.requests: list[RequestRecord] = []
        self._rules: list[_Rule] = []
        self._counts: dict[str | None, int] = {}
        self._window_start = time.monotonic()
        self._used = 0
        self._backoff_until = 0.0
        self._trades = {s: self._trade_arrays(df) for s, df in self.agg_trades.items()}
        self._klines = {k: self._kline_arrays(df) for k, df in self.klines.items()}
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- data ---------------------------------------------------------------------------------

    @staticmethod
    def _trade_arrays(df: pl.DataFrame) -> dict[str, np.ndarray]:
        df = df.sort("id")
        ts = df["ts_event"].to_numpy()
        if np.any(ts % NS_PER_MS):
            raise ValueError("served agg trades must have whole-millisecond ts_event")
        return {
            "a": df["id"].to_numpy(), "T": ts // NS_PER_MS, "p": df["price"].to_numpy(),
            "q": df["quantity"].to_numpy(), "m": df["is_buyer_maker"].to_numpy(),
            "f": df["first_trade_id"].to_numpy(), "l": df["last_trade_id"].to_numpy(),
        }

    @staticmethod
    def _kline_arrays(df: pl.DataFrame) -> dict[str, np.ndarray]:
        df = df.sort("open_time")
        out = {c: df[c].to_numpy() for c in df.columns}
        out["open_time"] = out["open_time"] // NS_PER_MS
        out["close_time"] = out["close_time"] // NS_PER_MS
        return out

    def server_time_ms(self) -> int:
        if self.now_ms is None:
            return time.time_ns() // NS_PER_MS
        return self.now_ms() if callable(self.now_ms) else int(self.now_ms)

    # -- lifecycle ----------------------------------------------------------------------------

    def start(self) -> "BinanceServer":
        server = self

        class Handler(_Handler):
            owner = server

        self._httpd = _QuietServer(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(target=self._httpd.serve_forever, name="binance-http", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None

    def __enter__(self) -> "BinanceServer":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    @property
    def base_url(self) -> str:
        assert self._httpd is not None, "server not started"
        return f"http://127.0.0.1:{self._httpd.server_address[1]}"

    # -- test controls ------------------------------------------------------------------------

    def schedule(self, fault: Fault, *, at: int, times: int = 1, endpoint: str | None = None) -> None:
        """Answer the `at`-th (1-based) request matching `endpoint` (e.g. "aggTrades"; None = any)
        counted from now, and the `times - 1` following matching ones, with `fault`."""
        if at < 1 or times < 1:
            raise ValueError(f"at and times must be >= 1, got at={at}, times={times}")
        with self._lock:
            seen = self._counts.get(endpoint, 0)
            self._rules.append(_Rule(fault, seen + at, times, endpoint))

    def records(self, endpoint: str | None = None) -> list[RequestRecord]:
        with self._lock:
            return [r for r in self.requests if endpoint is None or r.endpoint == endpoint]

    # -- request handling (called from handler threads) --------------------------------------

    def _admit(self, method: str, path: str, params: dict[str, str]) -> tuple[RequestRecord, Fault | None]:
        endpoint = path.rsplit("/", 1)[-1]
        with self._lock:
            n = len(self.requests) + 1
            self._counts[None] = self._counts.get(None, 0) + 1
            self._counts[endpoint] = self._counts.get(endpoint, 0) + 1
            fault = None
            for rule in self._rules:
                k = self._counts[None] if rule.endpoint is None else (
                    self._counts[endpoint] if rule.endpoint == endpoint else 0)
                if rule.at <= k < rule.at + rule.times:
                    fault = rule.fault
                    break
            rec = RequestRecord(n, method, path, endpoint, dict(params), time.monotonic())
            self.requests.append(rec)
            return rec, fault

    def _finish(self, rec: RequestRecord, status: int, weight: int, fault: str | None) -> None:
        with self._lock:
            i = rec.n - 1
            self.requests[i] = RequestRecord(rec.n, rec.method, rec.path, rec.endpoint, rec.params, rec.t,
                                             status, weight, fault)

    def _charge(self, weight: int) -> tuple[int, int | None, int]:
        """Book `weight`; returns (status, retry_after, used) — status 200, 429 or 418."""
        with self._lock:
            now = time.monotonic()
            if now - self._window_start >= self.window_s:
                self._window_start = now - ((now - self._window_start) % self.window_s)
                self._used = 0
            if now < self._backoff_until:
                self._backoff_until = max(self._backoff_until, now + self.ban_s)
                return 418, self.ban_s, self._used
            if self._used + weight > self.weight_limit:
                remaining = self._window_start + self.window_s - now
                retry = max(1, math.ceil(remaining))
                self._backoff_until = now + retry
                return 429, retry, self._used
            self._used += weight
            return 200, None, self._used

    def _start_backoff(self, seconds: int | None) -> None:
        with self._lock:
            self._backoff_until = max(self._backoff_until, time.monotonic() + (seconds or 0))

    def used_weight(self) -> int:
        with self._lock:
            return self._used

    # -- endpoint logic: returns (status, payload) ----------------------------------------------

    def answer(self, prefix: str, endpoint: str, params: dict[str, str]) -> tuple[int, object, int]:
        spec = _ENDPOINTS.get((prefix, endpoint))
        if spec is None:
            return 404, {"code": -1, "msg": f"unknown path {prefix}{endpoint}"}, 0
        weight, default_limit, max_limit = spec
        limit = default_limit
        if default_limit:
            if "limit" in params:
                try:
                    limit = _int_param(params, "limit")
                except _ApiError as e:
                    return 400, e.payload, weight or 1
                if not 1 <= limit <= max_limit:
                    return 400, {"code": -1130, "msg": f"Data sent for parameter 'limit' is not valid; 1..{max_limit}."}, weight or 1
        if prefix == _FAPI and endpoint == "klines":
            weight = _fapi_klines_weight(limit)
        try:
            if endpoint == "ping":
                return 200, {}, weight
            if endpoint == "time":
                return 200, {"serverTime": self.server_time_ms()}, weight
            if endpoint == "exchangeInfo":
                return 200, self._exchange_info(prefix), weight
            if endpoint == "aggTrades":
                return 200, self._agg_trades(params, limit), weight
            return 200, self._klines_answer(params, limit), weight
        except _ApiError as e:
            return 400, e.payload, weight

    def _symbol(self, params: dict[str, str], known) -> str:
        s = params.get("symbol")
        if not s:
            raise _ApiError(-1102, "Mandatory parameter 'symbol' was not sent, was empty/null, or malformed.")
        if not _SYMBOL_RE.match(s):
            raise _ApiError(-1100, "Illegal characters found in parameter 'symbol'; legal range is '^[A-Z0-9-_.]{1,20}$'.")
        if s not in known:
            raise _ApiError(-1121, "Invalid symbol.")
        return s

    def _agg_trades(self, params: dict[str, str], limit: int) -> list[dict]:
        sym = self._symbol(params, self._trades)
        arr = self._trades[sym]
        now = self.server_time_ms()
        n_visible = int(np.searchsorted(arr["T"], now, side="right"))
        has_time = "startTime" in params or "endTime" in params
        if "fromId" in params and has_time:
            raise _ApiError(-1128, "Combination of optional parameters invalid.")
        if "fromId" in params:
            from_id = _int_param(params, "fromId")
            lo = int(np.searchsorted(arr["a"], from_id, side="left"))
            hi = min(lo + limit, n_visible)
        elif has_time:
            start = _int_param(params, "startTime") if "startTime" in params else None
            end = _int_param(params, "endTime") if "endTime" in params else None
            if start is not None and end is not None and end - start > HOUR_MS:
                raise _ApiError(-1127, "More than 1 hours between startTime and endTime.")
            lo = 0 if start is None else int(np.searchsorted(arr["T"], start, side="left"))
            stop = n_visible if end is None else min(n_visible, int(np.searchsorted(arr["T"], end, side="right")))
            if start is None:
                lo = max(0, stop - limit)
            hi = min(lo + limit, stop)
        else:
            hi = n_visible
            lo = max(0, hi - limit)
        out = []
        for i in range(lo, max(lo, hi)):
            out.append({
                "a": int(arr["a"][i]), "p": f"{arr['p'][i]:.8f}", "q": f"{arr['q'][i]:.8f}",
                "f": int(arr["f"][i]), "l": int(arr["l"][i]), "T": int(arr["T"][i]),
                "m": bool(arr["m"][i]), "M": True,
            })
        return out

    def _klines_answer(self, params: dict[str, str], limit: int) -> list[list]:
        sym = params.get("symbol")
        self._symbol(params, {s for s, _ in self._klines})
        interval = params.get("interval")
        if not interval:
            raise _ApiError(-1102, "Mandatory parameter 'interval' was not sent, was empty/null, or malformed.")
        if interval not in INTERVAL_MS:
            raise _ApiError(-1120, "Invalid interval.")
        arr = self._klines.get((sym, interval))
        if arr is None:
            return []
        now = self.server_time_ms()
        ot = arr["open_time"]
        n_visible = int(np.searchsorted(ot, now, side="right"))  # includes the unclosed kline
        start = _int_param(params, "startTime") if "startTime" in params else None
        end = _int_param(params, "endTime") if "endTime" in params else None
        stop = n_visible if end is None else min(n_visible, int(np.searchsorted(ot, end, side="right")))
        lo = max(0, stop - limit) if start is None else int(np.searchsorted(ot, start, side="left"))
        hi = min(lo + limit, stop)
        rows = []
        for i in range(lo, max(lo, hi)):
            rows.append([
                int(ot[i]), f"{arr['open'][i]:.8f}", f"{arr['high'][i]:.8f}", f"{arr['low'][i]:.8f}",
                f"{arr['close'][i]:.8f}", f"{arr['volume'][i]:.8f}", int(arr["close_time"][i]),
                f"{arr['quote_volume'][i]:.8f}", int(arr["trade_count"][i]), f"{arr['taker_buy_volume'][i]:.8f}",
                f"{arr['taker_buy_quote_volume'][i]:.8f}", "0",
            ])
        return rows

    def _exchange_info(self, prefix: str) -> dict:
        symbols = sorted(set(self._trades) | {s for s, _ in self._klines})
        limit = {"rateLimitType": "REQUEST_WEIGHT", "interval": "MINUTE", "intervalNum": 1, "limit": self.weight_limit}
        filters = [
            {"filterType": "PRICE_FILTER", "minPrice": "0.01000000", "maxPrice": "1000000.00000000", "tickSize": "0.01000000"},
            {"filterType": "LOT_SIZE", "minQty": "0.00001000", "maxQty": "9000.00000000", "stepSize": "0.00001000"},
            {"filterType": "MIN_NOTIONAL", "minNotional": "5.00000000", "applyToMarket": True, "avgPriceMins": 5},
        ]
        out = []
        for s in symbols:
            quote = next((q for q in ("USDT", "USDC", "BUSD", "BTC") if s.endswith(q) and len(s) > len(q)), s[-4:])
            base = s[: -len(quote)]
            entry = {"symbol": s, "status": "TRADING", "baseAsset": base, "quoteAsset": quote,
                     "baseAssetPrecision": 8, "quotePrecision": 8, "quoteAssetPrecision": 8,
                     "orderTypes": ["LIMIT", "MARKET"], "filters": filters}
            if prefix == _SPOT:
                entry.update({"isSpotTradingAllowed": True, "isMarginTradingAllowed": False,
                              "permissions": ["SPOT"], "permissionSets": [["SPOT"]]})
            else:
                entry.update({"pair": s, "contractType": "PERPETUAL", "deliveryDate": 4133404800000,
                              "onboardDate": 1569398400000, "marginAsset": quote, "pricePrecision": 2,
                              "quantityPrecision": 3, "underlyingType": "COIN", "status": "TRADING",
                              "timeInForce": ["GTC", "IOC", "FOK", "GTX"]})
            out.append(entry)
        return {"timezone": "UTC", "serverTime": self.server_time_ms(), "rateLimits": [limit],
                "exchangeFilters": [], "symbols": out}


class _QuietServer(ThreadingHTTPServer):
    def handle_error(self, request, client_address) -> None:
        # A client that timed out closes its socket before a delayed answer: expected in fault tests.
        import sys

        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


class _ApiError(Exception):
    def __init__(self, code: int, msg: str):
        super().__init__(msg)
        self.payload = {"code": code, "msg": msg}


def _int_param(params: dict[str, str], name: str) -> int:
    raw = params[name]
    if not re.fullmatch(r"-?\d{1,19}", raw):
        raise _ApiError(-1100, f"Illegal characters found in parameter '{name}'; legal range is '^[0-9]{{1,20}}$'.")
    return int(raw)


class _Handler(BaseHTTPRequestHandler):
    owner: BinanceServer
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args) -> None:  # keep test output clean
        pass

    def do_GET(self) -> None:
        srv = self.owner
        parts = urlsplit(self.path)
        params = dict(parse_qsl(parts.query, keep_blank_values=True))
        rec, fault = srv._admit("GET", parts.path, params)
        if fault is not None and fault.kind == "drop":
            srv._finish(rec, 0, 0, "drop")
            self.close_connection = True
            return
        if fault is not None and fault.kind == "delay":
            time.sleep(fault.delay_s)
        if fault is not None and fault.kind == "status":
            if fault.status in (418, 429):
                srv._start_backoff(fault.retry_after)
            srv._finish(rec, fault.status, 0, f"status {fault.status}")
            self._send(fault.status, fault.body.encode(), fault.retry_after, srv.used_weight(),
                       "application/json" if fault.body.startswith("{") else "text/html")
            return
        prefix = _SPOT if parts.path.startswith(_SPOT) else _FAPI if parts.path.startswith(_FAPI) else ""
        status, payload, weight = srv.answer(prefix, rec.endpoint, params)
        if status != 404:
            gate, retry, used = srv._charge(max(weight, 1))
            if gate != 200:
                body = {"code": -1003, "msg": "Too many requests." if gate == 429 else "Way too many requests; IP banned."}
                srv._finish(rec, gate, 0, None)
                self._send(gate, json.dumps(body).encode(), retry, used, "application/json")
                return
        else:
            used = srv.used_weight()
        srv._finish(rec, status, weight, fault.kind if fault else None)
        self._send(status, json.dumps(payload, separators=(",", ":")).encode(), None, used, "application/json")

    def _send(self, status: int, body: bytes, retry_after: int | None, used: int, ctype: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", f"{ctype};charset=UTF-8")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("X-MBX-USED-WEIGHT-1M", str(used))
        if retry_after is not None:
            self.send_header("Retry-After", str(retry_after))
        self.end_headers()
        self.wfile.write(body)
