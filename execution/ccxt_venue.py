"""`CcxtVenue`: Binance spot and USD-M through ccxt's async client (the `Venue` port, docs/venue.md).

Binance's raw endpoints are called through ccxt's implicit API (`privatePostOrder`,
`fapiPrivatePostAlgoOrder`, ...): ccxt signs and transports, the exact decimal strings come back
untouched (ccxt's unified parsers go through floats). Every HTTP answer is captured per call
(status, headers, body) by a hook on the client, so errors are classified from what the venue
actually said, not from ccxt's exception class alone:

| what happened | submit | read / cancel |
|---|---|---|
| no HTTP answer (timeout, reset, refused, truncated body) | AmbiguousSubmitError | retry with backoff |
| HTTP 5xx, or Binance -1006 / -1007 (execution status unknown) | AmbiguousSubmitError | retry with backoff |
| HTTP 429 / 418 | limiter blocked for Retry-After; SubmitNotProcessedError | limiter blocked; retry |
| HTTP 4xx with a Binance code | VenueRejectedError(code, msg) | query -2013 → NOT_FOUND; else VenueRejectedError |
| 200 with an answer we cannot parse | AmbiguousSubmitError (the order may exist) | VenueUnavailableError |
| failure before anything was sent | SubmitNotProcessedError | VenueRejectedError |

USD-M conditional orders (our STOP_*/TAKE_PROFIT_*) go to `/fapi/v1/algoOrder` (`algoType=CONDITIONAL`,
`triggerPrice`, `clientAlgoId`); their venue order id is the algoId. Once triggered, the actual
order (`actualOrderId`) carries the status and the trades.

Request weights go through a `RateLimiter` (e.g. `market.ingest.rate_limit.WeightLimiter`, passed
in: execution does not import market); new orders also through an `OrderRateLimiter` (Binance's
ORDERS limits: spot 100 / 10 s and 200 000 / day, USD-M 300 / 10 s and 1 200 / min).
"""

from __future__ import annotations

import asyncio
import contextvars
import json
import math
import re
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from decimal import Decimal, InvalidOperation
from typing import Any, Protocol
from urllib.parse import urlsplit, urlunsplit

import ccxt
import ccxt.async_support as ccxt_async

from core.errors import ConfigError, RateLimitedError
from core.time import NS_PER_MS
from execution.orders.model import (
    Fill,
    Liquidity,
    Order,
    OrderSide,
    OrderType,
    TimeInForce,
    VenueOrderView,
    VenueStatus,
)
from execution.venue import (
    AmbiguousSubmitError,
    Balance,
    Position,
    SubmitAck,
    SubmitNotProcessedError,
    VenueFill,
    VenueOpenOrder,
    VenueRateLimitedError,
    VenueRejectedError,
    VenueUnavailableError,
    is_conditional,
)

MARKETS = ("spot", "usdm")

# Binance request weights of the endpoints used here (IP limit, X-MBX-USED-WEIGHT-1M).
ENDPOINT_WEIGHTS: dict[tuple[str, str], int] = {
    ("spot", "order.post"): 1, ("spot", "order.get"): 4, ("spot", "order.delete"): 1,
    ("spot", "openOrders"): 6, ("spot", "openOrders.all"): 80, ("spot", "myTrades"): 20,
    ("spot", "account"): 20,
    ("usdm", "order.post"): 1, ("usdm", "order.get"): 1, ("usdm", "order.delete"): 1,
    ("usdm", "openOrders"): 1, ("usdm", "openOrders.all"): 40, ("usdm", "userTrades"): 5,
    ("usdm", "algoOrder.post"): 1, ("usdm", "algoOrder.get"): 1, ("usdm", "algoOrder.delete"): 1,
    ("usdm", "openAlgoOrders"): 1, ("usdm", "openAlgoOrders.all"): 40,
    ("usdm", "account"): 5, ("usdm", "positionRisk"): 5,
}
# Binance ORDERS limits (count, window seconds) per account.
ORDER_RATE_LIMITS: dict[str, tuple[tuple[int, float], ...]] = {
    "spot": ((100, 10.0), (200_000, 86_400.0)),
    "usdm": ((300, 10.0), (1_200, 60.0)),
}
AMBIGUOUS_CODES = frozenset({-1006, -1007})  # "execution status unknown"
NOT_FOUND_CODES = frozenset({-2013})  # "Order does not exist."
UNKNOWN_ORDER_CODES = frozenset({-2011})  # cancel of an unknown / already final order

_VENUE_STATUS = {"NEW": VenueStatus.NEW, "PARTIALLY_FILLED": VenueStatus.PARTIALLY_FILLED,
                 "FILLED": VenueStatus.FILLED, "CANCELED": VenueStatus.CANCELED, "CANCELLED": VenueStatus.CANCELED,
                 "PENDING_CANCEL": VenueStatus.NEW, "REJECTED": VenueStatus.REJECTED, "EXPIRED": VenueStatus.EXPIRED,
                 "EXPIRED_IN_MATCH": VenueStatus.EXPIRED, "PENDING_NEW": VenueStatus.NEW}
_SPOT_TYPES = {OrderType.MARKET: "MARKET", OrderType.LIMIT: "LIMIT", OrderType.STOP_MARKET: "STOP_LOSS",
               OrderType.STOP_LIMIT: "STOP_LOSS_LIMIT", OrderType.TAKE_PROFIT_MARKET: "TAKE_PROFIT",
               OrderType.TAKE_PROFIT_LIMIT: "TAKE_PROFIT_LIMIT"}
_USDM_TYPES = {OrderType.MARKET: "MARKET", OrderType.LIMIT: "LIMIT", OrderType.STOP_MARKET: "STOP_MARKET",
               OrderType.STOP_LIMIT: "STOP", OrderType.TAKE_PROFIT_MARKET: "TAKE_PROFIT_MARKET",
               OrderType.TAKE_PROFIT_LIMIT: "TAKE_PROFIT"}
_FROM_SPOT = {v: k for k, v in _SPOT_TYPES.items()} | {"LIMIT_MAKER": OrderType.LIMIT}
_FROM_USDM = {v: k for k, v in _USDM_TYPES.items()}
_JSON_IN_TEXT = re.compile(r"\{.*\}", re.DOTALL)


# -- limiters -------------------------------------------------------------------------------------


class RateLimiter(Protocol):
    """The weight limiter's interface (`market.ingest.rate_limit.WeightLimiter` implements it; its
    `acquire` blocks, so the venue calls it in a worker thread)."""

    def acquire(self, weight: int) -> float: ...

    def record_response(self, headers: Mapping[str, str] | None) -> None: ...

    def on_rate_limited(self, retry_after: float | None, *, banned: bool = False) -> float: ...


class OrderRateLimiter:
    """Binance's ORDERS limits client side: at most `count` new orders in every `window_s` seconds,
    for each (count, window) pair (a sliding log: the bound holds for every window, not just
    aligned ones). `acquire()` waits asynchronously until a slot is free."""

    def __init__(self, limits: Sequence[tuple[int, float]], *, clock: Callable[[], int] = time.monotonic_ns):
        if not limits or any(c < 1 or w <= 0 for c, w in limits):
            raise ConfigError(f"order rate limits must be (count ≥ 1, window_s > 0) pairs, got {limits!r}")
        self.limits = tuple((int(c), float(w)) for c, w in limits)
        self._clock = clock
        self._log: deque[int] = deque()
        self._horizon_ns = int(max(w for _, w in self.limits) * 1e9)
        self._lock = asyncio.Lock()

    @classmethod
    def for_market(cls, market: str, **kw: Any) -> OrderRateLimiter:
        if market not in ORDER_RATE_LIMITS:
            raise ConfigError(f"unknown market {market!r}; expected one of {list(ORDER_RATE_LIMITS)}")
        return cls(ORDER_RATE_LIMITS[market], **kw)

    def _wait_ns(self, now: int) -> int:
        while self._log and self._log[0] <= now - self._horizon_ns:
            self._log.popleft()
        wait = 0
        for count, window_s in self.limits:
            w_ns = int(window_s * 1e9)
            recent = [t for t in self._log if t > now - w_ns]
            if len(recent) >= count:
                wait = max(wait, recent[len(recent) - count] + w_ns - now + 1)
        return wait

    async def acquire(self) -> float:
        """Wait for a slot and book it; returns the seconds waited."""
        async with self._lock:
            start = self._clock()
            while True:
                now = self._clock()
                wait = self._wait_ns(now)
                if wait <= 0:
                    self._log.append(now)
                    return (now - start) / 1e9
                await asyncio.sleep(wait / 1e9)

    def count_in(self, window_s: float) -> int:
        now = self._clock()
        return sum(1 for t in self._log if t > now - int(window_s * 1e9))


# -- the client -----------------------------------------------------------------------------------


def _rebase(url: str, base: Any) -> str:
    parts = urlsplit(url)
    scheme = base.scheme if parts.scheme not in ("ws", "wss") else ("wss" if base.scheme == "https" else "ws")
    return urlunsplit((scheme, base.netloc, base.path.rstrip("/") + parts.path, parts.query, parts.fragment))


def _rebase_tree(node: Any, base: Any) -> Any:
    if isinstance(node, str):
        return _rebase(node, base)
    if isinstance(node, dict):
        return {k: _rebase_tree(v, base) for k, v in node.items()}
    return node


def make_async_binance_client(market: str, *, api_key: str | None = None, secret: str | None = None,
                              base_url: str | None = None, timeout_ms: int = 10_000) -> ccxt_async.Exchange:
    """An async ccxt client for Binance `market` with ccxt's blind limiter off. With `base_url`
    (a Binance-compatible server such as the emulator) every API URL is rebased onto it, the /sapi
    calls are disabled, and Binance's per-market error tables are selected by market instead of by
    host name (ccxt matches fapi.binance.com etc., which a local URL never matches)."""
    classes = {"spot": ccxt_async.binance, "usdm": ccxt_async.binanceusdm}
    if market not in classes:
        raise ConfigError(f"unknown market {market!r}; expected one of {list(classes)}")
    params: dict[str, Any] = {"enableRateLimit": False, "timeout": int(timeout_ms)}
    if api_key is not None:
        params["apiKey"] = api_key
    if secret is not None:
        params["secret"] = secret
    client = classes[market](params)
    client.options["fetchMarkets"] = {**client.options.get("fetchMarkets", {}),
                                      "types": ["spot"] if market == "spot" else ["linear"]}
    if base_url is not None:
        base = urlsplit(base_url)
        if base.scheme not in ("http", "https") or not base.netloc:
            raise ConfigError(f"base_url must be http(s)://host[:port], got {base_url!r}")
        client.urls["api"] = _rebase_tree(client.urls["api"], base)
        client.options["fetchCurrencies"] = False
        client.options["fetchMargins"] = False
        table = client.exceptions.get("spot" if market == "spot" else "linear", {})
        client.get_exceptions_by_url = lambda url, exact_or_broad: table.get(exact_or_broad, {})
    return client


# -- answers captured per call --------------------------------------------------------------------

_CAPTURE: contextvars.ContextVar[list | None] = contextvars.ContextVar("ccxt_venue_capture", default=None)


class _Answer:
    __slots__ = ("body", "headers", "status")

    def __init__(self, status: int, headers: Mapping[str, str], body: str):
        self.status, self.headers, self.body = status, headers, body

    def header(self, name: str) -> str | None:
        name = name.lower()
        for k, v in (self.headers or {}).items():
            if k.lower() == name:
                return v
        return None

    def binance_error(self) -> tuple[int | None, str]:
        try:
            data = json.loads(self.body)
        except (TypeError, ValueError):
            return None, (self.body or "")[:200]
        if isinstance(data, dict):
            code = data.get("code")
            try:
                code = int(code) if code is not None else None
            except (TypeError, ValueError):
                code = None
            return code, str(data.get("msg", ""))
        return None, str(data)[:200]


def _install_capture(client: Any) -> None:
    if getattr(client, "_flowtrader_capture", False):
        return
    original = client.on_rest_response

    def on_rest_response(code, reason, url, method, headers, body, request_headers, request_body):
        holder = _CAPTURE.get()
        if holder is not None:
            holder.append(_Answer(int(code), dict(headers or {}), body if isinstance(body, str) else str(body)))
        return original(code, reason, url, method, headers, body, request_headers, request_body)

    client.on_rest_response = on_rest_response
    client._flowtrader_capture = True


def _retry_after(answer: _Answer | None) -> float | None:
    raw = answer.header("Retry-After") if answer is not None else None
    try:
        v = float(raw) if raw is not None else None
    except ValueError:
        return None
    return v if v is not None and math.isfinite(v) and v >= 0 else None


def _dec(value: Any, name: str) -> Decimal:
    if isinstance(value, bool) or value is None:
        raise ValueError(f"{name}={value!r}: not a number")
    try:
        d = Decimal(str(value))
    except InvalidOperation:
        raise ValueError(f"{name}={value!r}: not a number") from None
    if not d.is_finite():
        raise ValueError(f"{name}={value!r}: not finite")
    return d


def _opt_price(value: Any) -> Decimal | None:
    if value in (None, ""):
        return None
    d = _dec(value, "price")
    return d if d > 0 else None


class _Outcome:
    """Classification of a failed call."""

    NETWORK, SERVER, RATE, REJECT, NOT_SENT = "network", "server", "rate", "reject", "not_sent"


# -- the venue ------------------------------------------------------------------------------------


class CcxtVenue:
    """Binance spot or USD-M through an async ccxt client (see the module docstring).

    exchange: `ccxt.async_support.binance` / `binanceusdm` (e.g. `make_async_binance_client`).
    limiter: the shared weight limiter (None: no client-side weight limit — not for production).
    order_limiter: new-order rate limits (default: Binance's for the market).
    recv_window_ms: sent with every signed request: the venue drops a request older than this, which
        bounds how long an unanswered submission can still appear (the order manager's not-found
        grace must exceed it plus the clock skew).
    """

    def __init__(self, exchange: Any, market: str, *, limiter: RateLimiter | None = None,
                 order_limiter: OrderRateLimiter | None = None, recv_window_ms: int = 5_000,
                 read_retries: int = 6, backoff_base_s: float = 0.1, backoff_max_s: float = 5.0,
                 spot_resp_type: str = "RESULT"):
        if market not in MARKETS:
            raise ConfigError(f"unknown market {market!r}; expected one of {list(MARKETS)}")
        if not 1 <= recv_window_ms <= 60_000:
            raise ConfigError(f"recv_window_ms={recv_window_ms}: Binance accepts 1..60000")
        self.exchange = exchange
        self.market = market
        self.limiter = limiter
        self.order_limiter = order_limiter if order_limiter is not None else OrderRateLimiter.for_market(market)
        self.recv_window_ms = int(recv_window_ms)
        self.read_retries = int(read_retries)
        self.backoff_base_s = backoff_base_s
        self.backoff_max_s = backoff_max_s
        self.spot_resp_type = spot_resp_type
        exchange.options["recvWindow"] = self.recv_window_ms
        _install_capture(exchange)
        self.stats = {"requests": 0, "retries": 0, "rate_limited": 0, "ambiguous_submits": 0}

    # -- plumbing ---------------------------------------------------------------------------------

    def _weight(self, key: str) -> int:
        return ENDPOINT_WEIGHTS[(self.market, key)]

    async def _acquire(self, weight: int) -> None:
        if self.limiter is None:
            return
        try:
            await asyncio.to_thread(self.limiter.acquire, weight)
        except RateLimitedError:
            raise
        except Exception as err:  # a limiter misconfiguration is not the venue's fault
            raise ConfigError(f"rate limiter refused weight {weight}: {err}") from err

    async def _raw(self, method: str, params: dict[str, Any], weight: int) -> tuple[Any, None] | tuple[None, tuple]:
        """One HTTP call. (data, None) on success, (None, (outcome, answer, exc)) on failure."""
        await self._acquire(weight)
        holder: list[_Answer] = []
        token = _CAPTURE.set(holder)
        self.stats["requests"] += 1
        try:
            data = await getattr(self.exchange, method)(dict(params))
        except ccxt.BaseError as exc:
            answer = holder[-1] if holder else None
            return None, (self._classify(exc, answer), answer, exc)
        except (TimeoutError, OSError) as exc:
            return None, (_Outcome.NETWORK, holder[-1] if holder else None, exc)
        finally:
            _CAPTURE.reset(token)
        if self.limiter is not None and holder:
            self.limiter.record_response(holder[-1].headers)
        return data, None

    @staticmethod
    def _classify(exc: BaseException, answer: _Answer | None) -> str:
        if answer is None:
            cause = exc.__cause__
            if isinstance(exc, ccxt.NetworkError) or cause is not None:
                return _Outcome.NETWORK  # sent, no (complete) answer: outcome unknown
            return _Outcome.NOT_SENT  # raised while building/signing the request
        if answer.status in (429, 418):
            return _Outcome.RATE
        if answer.status >= 500:
            return _Outcome.SERVER
        code, _ = answer.binance_error()
        if code in AMBIGUOUS_CODES:
            return _Outcome.SERVER
        if answer.status < 400 and code is None:
            return _Outcome.SERVER  # a 2xx that ccxt refused: treat as unknown
        return _Outcome.REJECT

    def _on_rate(self, answer: _Answer | None) -> tuple[float | None, bool]:
        retry_after = _retry_after(answer)
        banned = answer is not None and answer.status == 418
        self.stats["rate_limited"] += 1
        if self.limiter is not None:
            self.limiter.on_rate_limited(retry_after, banned=banned)
        return retry_after, banned

    def _backoff(self, attempt: int) -> float:
        return min(self.backoff_max_s, self.backoff_base_s * 2 ** min(attempt, 30))

    def _rejected(self, what: str, answer: _Answer | None, exc: BaseException, cid: str | None = None) -> VenueRejectedError:
        code, msg = answer.binance_error() if answer is not None else (None, str(exc))
        status = answer.status if answer is not None else None
        return VenueRejectedError(f"{what}: venue rejected it: code={code} msg={msg!r} (HTTP {status}, "
                                  f"{type(exc).__name__})", code=code, venue_message=msg, http_status=status,
                                  client_order_id=cid)

    async def _read(self, what: str, method: str, params: dict[str, Any], weight: int,
                    ok_codes: frozenset[int] = frozenset()) -> Any:
        """A read (or a cancel): retried with backoff on network errors, 5xx and rate limits.
        Returns `("code", n)` for a Binance error code in `ok_codes` (the caller handles it)."""
        last = ""
        for attempt in range(self.read_retries + 1):
            data, err = await self._raw(method, params, weight)
            if err is None:
                return data
            outcome, answer, exc = err
            if outcome == _Outcome.REJECT:
                code, _ = answer.binance_error()
                if code in ok_codes:
                    return ("code", code)
                raise self._rejected(what, answer, exc)
            if outcome == _Outcome.NOT_SENT:
                raise self._rejected(what, answer, exc)
            last = f"{outcome}: {type(exc).__name__}: {str(exc)[:200]}"
            if attempt == self.read_retries:
                break
            self.stats["retries"] += 1
            if outcome == _Outcome.RATE:
                self._on_rate(answer)  # the limiter blocks the next acquire for Retry-After
                if self.limiter is None:
                    await asyncio.sleep(_retry_after(answer) or self._backoff(attempt))
            else:
                await asyncio.sleep(self._backoff(attempt))
        cls = VenueRateLimitedError if last.startswith(_Outcome.RATE) else VenueUnavailableError
        raise cls(f"{what}: gave up after {self.read_retries + 1} attempts ({last})")

    # -- submit -----------------------------------------------------------------------------------

    def order_params(self, order: Order) -> tuple[str, dict[str, Any], str]:
        """(ccxt method, Binance params, weight key) of a new order: our types and time in force
        mapped to Binance's (spot LIMIT_MAKER, USD-M GTX, spot STOP_LOSS / TAKE_PROFIT, USD-M algo
        STOP / TAKE_PROFIT for the limit variants)."""
        p: dict[str, Any] = {"symbol": order.symbol, "side": order.side.value, "quantity": str(order.qty)}
        tif = order.time_in_force
        if self.market == "spot":
            vtype = _SPOT_TYPES[order.type]
            if tif is TimeInForce.POST_ONLY:
                vtype, tif = "LIMIT_MAKER", None
            p["type"] = vtype
            p["newClientOrderId"] = order.client_order_id
            p["newOrderRespType"] = self.spot_resp_type
            method, key = "privatePostOrder", "order.post"
        else:
            p["type"] = _USDM_TYPES[order.type]
            if order.reduce_only:
                p["reduceOnly"] = "true"
            if tif is TimeInForce.POST_ONLY:
                tif = None
                p["timeInForce"] = "GTX"
            if is_conditional(self.market, order.type):
                p["algoType"] = "CONDITIONAL"
                p["clientAlgoId"] = order.client_order_id
                method, key = "fapiPrivatePostAlgoOrder", "algoOrder.post"
            else:
                p["newClientOrderId"] = order.client_order_id
                p["newOrderRespType"] = "RESULT"
                method, key = "fapiPrivatePostOrder", "order.post"
        if tif is not None:
            p["timeInForce"] = tif.value
        if order.price is not None:
            p["price"] = str(order.price)
        if order.stop_price is not None:
            p["triggerPrice" if "algoType" in p else "stopPrice"] = str(order.stop_price)
        return method, p, key

    async def submit(self, order: Order) -> SubmitAck:
        """Send `order` exactly once (never retried here)."""
        cid = order.client_order_id
        try:
            method, params, key = self.order_params(order)
        except KeyError as err:
            raise SubmitNotProcessedError(f"{cid}: cannot map {err} to a Binance order", cid) from None
        try:
            await self.order_limiter.acquire()
            await self._acquire(self._weight(key))
        except RateLimitedError as err:
            raise SubmitNotProcessedError(f"{cid}: not sent: {err}", cid, err.retry_after, err.banned) from err
        holder: list[_Answer] = []
        token = _CAPTURE.set(holder)
        self.stats["requests"] += 1
        what = f"submit {cid} ({order.side.value} {order.qty} {order.symbol} {order.type.value})"
        try:
            data = await getattr(self.exchange, method)(params)
        except ccxt.BaseError as exc:
            answer = holder[-1] if holder else None
            outcome = self._classify(exc, answer)
            if outcome == _Outcome.REJECT:
                raise self._rejected(what, answer, exc, cid) from exc
            if outcome == _Outcome.RATE:
                retry_after, banned = self._on_rate(answer)
                raise SubmitNotProcessedError(f"{what}: HTTP {answer.status} (not processed; Retry-After "
                                              f"{retry_after})", cid, retry_after, banned) from exc
            if outcome == _Outcome.NOT_SENT:
                raise SubmitNotProcessedError(f"{what}: not sent: {type(exc).__name__}: {exc}", cid) from exc
            self.stats["ambiguous_submits"] += 1
            raise AmbiguousSubmitError(f"{what}: outcome unknown ({outcome}: {type(exc).__name__}: "
                                       f"{str(exc)[:200]})", cid) from exc
        except (TimeoutError, OSError) as exc:
            self.stats["ambiguous_submits"] += 1
            raise AmbiguousSubmitError(f"{what}: outcome unknown ({type(exc).__name__}: {exc})", cid) from exc
        finally:
            _CAPTURE.reset(token)
        if self.limiter is not None and holder:
            self.limiter.record_response(holder[-1].headers)
        try:
            return self._parse_ack(order, data)
        except (ValueError, KeyError, TypeError) as err:
            self.stats["ambiguous_submits"] += 1
            raise AmbiguousSubmitError(f"{what}: answer not understood ({err}); the order may exist", cid) from err

    def _parse_ack(self, order: Order, data: Any) -> SubmitAck:
        if "algoId" in data:
            cid = data.get("clientAlgoId")
            status = self._algo_plain_status(str(data.get("algoStatus", "NEW")))
            return SubmitAck(order.client_order_id if cid is None else str(cid), str(data["algoId"]), status,
                             Decimal(0), int(data.get("createTime") or 0) * NS_PER_MS)
        cid = str(data.get("clientOrderId", order.client_order_id))
        if cid != order.client_order_id:
            raise ValueError(f"ack for clientOrderId={cid!r}, sent {order.client_order_id!r}")
        status = _VENUE_STATUS[str(data.get("status", "NEW"))]
        ts = int(data.get("transactTime") or data.get("updateTime") or 0) * NS_PER_MS
        return SubmitAck(cid, str(data["orderId"]), status, _dec(data.get("executedQty", "0"), "executedQty"), ts)

    @staticmethod
    def _algo_plain_status(s: str) -> VenueStatus:
        return {"NEW": VenueStatus.NEW, "TRIGGERING": VenueStatus.NEW, "TRIGGERED": VenueStatus.NEW,
                "FINISHED": VenueStatus.NEW, "CANCELED": VenueStatus.CANCELED, "CANCELLED": VenueStatus.CANCELED,
                "EXPIRED": VenueStatus.EXPIRED, "REJECTED": VenueStatus.REJECTED}.get(s, VenueStatus.NEW)

    # -- cancel -----------------------------------------------------------------------------------

    async def cancel(self, symbol: str, client_order_id: str, *, conditional: bool = False) -> None:
        """Cancel by client order id (retried on transient errors: a repeated cancel is harmless).
        Raises VenueRejectedError with code -2011 when the order is unknown or already final."""
        what = f"cancel {client_order_id}"
        if self.market == "spot":
            res = await self._read(what, "privateDeleteOrder", {"symbol": symbol, "origClientOrderId": client_order_id},
                                   self._weight("order.delete"), UNKNOWN_ORDER_CODES)
        elif not conditional:
            res = await self._read(what, "fapiPrivateDeleteOrder",
                                   {"symbol": symbol, "origClientOrderId": client_order_id},
                                   self._weight("order.delete"), UNKNOWN_ORDER_CODES)
        else:
            res = await self._read(what, "fapiPrivateDeleteAlgoOrder", {"symbol": symbol, "clientAlgoId": client_order_id},
                                   self._weight("algoOrder.delete"), UNKNOWN_ORDER_CODES)
            if isinstance(res, tuple):  # the algo may have triggered: cancel the actual order
                algo = await self._get_algo(symbol, client_order_id)
                actual = algo.get("actualOrderId") if isinstance(algo, dict) else None
                if actual:
                    res = await self._read(what, "fapiPrivateDeleteOrder", {"symbol": symbol, "orderId": actual},
                                           self._weight("order.delete"), UNKNOWN_ORDER_CODES)
        if isinstance(res, tuple):
            raise VenueRejectedError(f"{what}: unknown or already final order (code {res[1]})", code=res[1],
                                     venue_message="Unknown order sent.", http_status=400,
                                     client_order_id=client_order_id)

    # -- queries ----------------------------------------------------------------------------------

    async def _get_algo(self, symbol: str, cid: str) -> Any:
        return await self._read(f"query algo {cid}", "fapiPrivateGetAlgoOrder", {"symbol": symbol, "clientAlgoId": cid},
                                self._weight("algoOrder.get"), NOT_FOUND_CODES)

    async def _order_trades(self, symbol: str, order_id: str) -> list[VenueFill]:
        if self.market == "spot":
            rows = await self._read(f"trades of {order_id}", "privateGetMyTrades",
                                    {"symbol": symbol, "orderId": order_id, "limit": 1000}, self._weight("myTrades"))
        else:
            rows = await self._read(f"trades of {order_id}", "fapiPrivateGetUserTrades",
                                    {"symbol": symbol, "orderId": order_id, "limit": 1000}, self._weight("userTrades"))
        return [self._parse_trade(symbol, r) for r in rows]

    async def _get_order(self, symbol: str, params: dict[str, Any]) -> Any:
        if self.market == "spot":
            return await self._read(f"query {params}", "privateGetOrder", {"symbol": symbol, **params},
                                    self._weight("order.get"), NOT_FOUND_CODES)
        return await self._read(f"query {params}", "fapiPrivateGetOrder", {"symbol": symbol, **params},
                                self._weight("order.get"), NOT_FOUND_CODES)

    async def query_order(self, symbol: str, client_order_id: str, *, conditional: bool = False) -> VenueOrderView:
        """The venue's view of an order by client order id, with its trades. The order is asked
        first and its trades after; if the trades then exceed the executed quantity (a fill
        between the two calls) the order is asked again, so the view is consistent."""
        venue_id: str | None = None
        if conditional:
            algo = await self._get_algo(symbol, client_order_id)
            if isinstance(algo, tuple):
                return VenueOrderView(VenueStatus.NOT_FOUND)
            venue_id = str(algo["algoId"])
            actual = algo.get("actualOrderId")
            if not actual:
                status = self._algo_plain_status(str(algo.get("algoStatus", "NEW")))
                return VenueOrderView(status, Decimal(0), venue_id, (), f"algo {algo.get('algoStatus')}")
            key: dict[str, Any] = {"orderId": actual}
        else:
            key = {"origClientOrderId": client_order_id}
        for _ in range(4):
            data = await self._get_order(symbol, key)
            if isinstance(data, tuple):
                if conditional:
                    raise VenueUnavailableError(f"{client_order_id}: triggered order {key} not found yet")
                return VenueOrderView(VenueStatus.NOT_FOUND)
            if not conditional and str(data.get("clientOrderId")) != client_order_id:
                raise VenueUnavailableError(f"{client_order_id}: venue answered for {data.get('clientOrderId')!r}")
            executed = _dec(data.get("executedQty", "0"), "executedQty")
            order_id = str(data["orderId"])
            key = {"orderId": order_id}
            fills: list[VenueFill] = []
            if executed > 0:
                fills = await self._order_trades(symbol, order_id)
                if sum((f.fill.qty for f in fills), Decimal(0)) > executed:
                    continue  # a fill arrived between the two calls: ask the order again
            status = _VENUE_STATUS[str(data["status"])]
            return VenueOrderView(status, executed, venue_id or order_id, tuple(f.fill for f in fills),
                                  str(data["status"]) if data["status"] not in _VENUE_STATUS or
                                  data["status"] == "EXPIRED_IN_MATCH" else "")
        raise VenueUnavailableError(f"{client_order_id}: order and trades kept changing; ask again")

    def _parse_trade(self, symbol: str, r: Mapping[str, Any]) -> VenueFill:
        maker = r.get("isMaker", r.get("maker"))
        side = (OrderSide.BUY if r["isBuyer"] else OrderSide.SELL) if "isBuyer" in r else OrderSide(r["side"])
        fill = Fill(trade_id=str(r["id"]), qty=_dec(r["qty"], "qty"), price=_dec(r["price"], "price"),
                    fee=_dec(r.get("commission", "0"), "commission"), fee_asset=str(r.get("commissionAsset", "")),
                    ts_event=int(r["time"]) * NS_PER_MS,
                    liquidity=Liquidity.UNKNOWN if maker is None else (Liquidity.MAKER if maker else Liquidity.TAKER))
        return VenueFill(symbol, str(r["orderId"]), side, fill)

    async def open_orders(self, symbol: str | None = None) -> list[VenueOpenOrder]:
        sym = {} if symbol is None else {"symbol": symbol}
        suffix = "" if symbol is not None else ".all"
        out: list[VenueOpenOrder] = []
        if self.market == "spot":
            rows = await self._read("open orders", "privateGetOpenOrders", sym, self._weight("openOrders" + suffix))
            return [self._parse_open(r, False) for r in rows]
        rows = await self._read("open orders", "fapiPrivateGetOpenOrders", sym, self._weight("openOrders" + suffix))
        algos = await self._read("open algo orders", "fapiPrivateGetOpenAlgoOrders", sym,
                                 self._weight("openAlgoOrders" + suffix))
        out = [self._parse_open(r, False) for r in rows]
        algo_ids = {str(a["algoId"]) for a in algos}
        triggered = {str(r["orderId"]) for r in rows}
        out = [o for o in out if o.venue_order_id not in algo_ids]
        out += [self._parse_algo_open(a) for a in algos if str(a.get("actualOrderId") or "") not in triggered]
        return out

    def _parse_open(self, r: Mapping[str, Any], conditional: bool) -> VenueOpenOrder:
        vtype = str(r.get("origType") or r["type"])
        tif_raw = r.get("timeInForce")
        if self.market == "spot":
            otype = _FROM_SPOT[vtype]
            tif = TimeInForce.POST_ONLY if vtype == "LIMIT_MAKER" else None
        else:
            otype = _FROM_USDM[vtype]
            tif = TimeInForce.POST_ONLY if tif_raw == "GTX" else None
            conditional = conditional or otype.has_stop_price
        if tif is None and otype.has_limit_price and tif_raw in ("GTC", "IOC", "FOK"):
            tif = TimeInForce(tif_raw)
        return VenueOpenOrder(
            symbol=str(r["symbol"]), client_order_id=str(r["clientOrderId"]), venue_order_id=str(r["orderId"]),
            side=OrderSide(r["side"]), type=otype, qty=_dec(r["origQty"], "origQty"),
            price=_opt_price(r.get("price")) if otype.has_limit_price else None,
            stop_price=_opt_price(r.get("stopPrice")) if otype.has_stop_price else None,
            time_in_force=tif, reduce_only=bool(r.get("reduceOnly", False)),
            status=_VENUE_STATUS.get(str(r["status"]), VenueStatus.NEW),
            executed_qty=_dec(r.get("executedQty", "0"), "executedQty"),
            ts_event=int(r.get("time") or r.get("updateTime") or 0) * NS_PER_MS, conditional=conditional)

    def _parse_algo_open(self, a: Mapping[str, Any]) -> VenueOpenOrder:
        otype = _FROM_USDM[str(a["orderType"])]
        tif_raw = a.get("timeInForce")
        return VenueOpenOrder(
            symbol=str(a["symbol"]), client_order_id=str(a["clientAlgoId"]), venue_order_id=str(a["algoId"]),
            side=OrderSide(a["side"]), type=otype, qty=_dec(a["quantity"], "quantity"),
            price=_opt_price(a.get("price")) if otype.has_limit_price else None,
            stop_price=_opt_price(a.get("triggerPrice")), reduce_only=bool(a.get("reduceOnly", False)),
            time_in_force=(TimeInForce(tif_raw) if otype.has_limit_price and tif_raw in ("GTC", "IOC", "FOK")
                           else None),
            status=VenueStatus.NEW, executed_qty=Decimal(0), ts_event=int(a.get("createTime") or 0) * NS_PER_MS,
            conditional=True)

    async def fills_since(self, symbol: str, since_ms: int | None = None, *, from_id: int | None = None
                          ) -> list[VenueFill]:
        """The account's trades on `symbol` from trade id `from_id` on, else from `since_ms` on, else the
        most recent ones; oldest first, paged by trade id (1000 per request)."""
        out: list[VenueFill] = []
        method, key = ("privateGetMyTrades", "myTrades") if self.market == "spot" else ("fapiPrivateGetUserTrades",
                                                                                        "userTrades")
        params: dict[str, Any] = {"symbol": symbol, "limit": 1000}
        if from_id is not None:
            params["fromId"] = int(from_id)
        elif since_ms is not None:
            params["startTime"] = int(since_ms)
        while True:
            rows = await self._read(f"fills of {symbol}", method, params, self._weight(key))
            out += [self._parse_trade(symbol, r) for r in rows]
            if len(rows) < 1000:
                return out
            params = {"symbol": symbol, "fromId": int(rows[-1]["id"]) + 1, "limit": 1000}

    async def balances(self) -> dict[str, Balance]:
        if self.market == "spot":
            data = await self._read("account", "privateGetAccount", {}, self._weight("account"))
            return {b["asset"]: Balance(b["asset"], _dec(b["free"], "free"), _dec(b["locked"], "locked"))
                    for b in data["balances"]}
        data = await self._read("account", "fapiPrivateV3GetAccount", {}, self._weight("account"))
        out = {}
        for a in data["assets"]:
            wallet, avail = _dec(a["walletBalance"], "walletBalance"), _dec(a["availableBalance"], "availableBalance")
            out[a["asset"]] = Balance(a["asset"], avail, wallet - avail)
        return out

    async def positions(self) -> dict[str, Position]:
        if self.market == "spot":
            return {}
        rows = await self._read("positions", "fapiPrivateV3GetPositionRisk", {}, self._weight("positionRisk"))
        out = {}
        for r in rows:
            qty = _dec(r["positionAmt"], "positionAmt")
            if qty:
                out[r["symbol"]] = Position(r["symbol"], qty, _dec(r.get("entryPrice", "0"), "entryPrice"))
        return out

    async def close(self) -> None:
        await self.exchange.close()
