"""`UserStream`: the account's user-data stream (websockets) feeding an `OrderManager`.

    ccxt.pro client (built by the caller) ── watch_my_trades ──► OrderManager.apply_fill (dedup by trade id)
                                          └─ watch_orders ────► terminal updates → OrderManager.sync_order
    disconnect → backoff → re-subscribe → reconcile() (e.g. `Reconciler.run_once`): messages lost while
    disconnected are recovered over REST, each trade applied once.

Spot: ccxt.pro 4.5 subscribes on the WebSocket API (`userDataStream.subscribe.signature`), no listenKey.
USD-M: listenKey at `/private/ws?listenKey=`. ccxt.pro schedules one keep-alive PUT `listenKeyRefreshRate`
after each POST, but its re-scheduling never fires in the Python build (it looks subscriptions up with
`safe_dict` on `Client` objects, which are not dicts), so a quiet stream's key would lapse; `UserStream`
therefore PUTs the key itself every `keepalive_s` (USD-M only). A failed keep-alive (-1125: the key
expired) forces a reconnect, which POSTs a new key and reconciles. See docs/venue.md.

The order path is never blocked: stream handlers only touch the journal synchronously (asyncio-safe)
or queue work (`sync_order`) for a worker task. Fills of an order still in flight (SUBMITTED/UNKNOWN:
the REST ack has not been journaled yet) are held back and applied once the order is accepted, so the
stream never races the submit path's own transitions.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from core.errors import RetryableError
from core.time import NS_PER_MS
from execution.orders import Liquidity, OrderStatus
from execution.orders.errors import (
    InvalidTransitionError,
    MissingFillsError,
    UnknownOrderError,
)
from execution.orders.model import Fill

log = logging.getLogger(__name__)

_TERMINAL = {"FILLED", "CANCELED", "EXPIRED", "EXPIRED_IN_MATCH", "REJECTED"}


@dataclass
class UserStreamStats:
    """Counters, for tests and monitoring."""

    connects: int = 0  # sessions started (1 + reconnects)
    disconnects: int = 0
    fills_applied: int = 0  # new trades journaled from the stream
    fills_duplicate: int = 0  # already in the journal (REST got there first)
    fills_deferred: int = 0  # held back while the order was in flight
    fills_unattributed: int = 0  # client id not in the journal (left to the reconciler)
    late_fills: int = 0  # a new trade of a terminal journal order (left to the reconciler)
    gaps: int = 0  # a trade message showed that earlier ones were lost → sync_order
    gaps_unchecked: int = 0  # a trade message without a usable cumulative quantity → sync_order to be safe
    syncs: int = 0  # sync_order calls made for terminal updates / gaps
    reconciles: int = 0
    reconcile_errors: int = 0
    keepalives: int = 0
    keepalive_errors: int = 0


def _event(info: Mapping[str, Any]) -> Mapping[str, Any]:
    """The order part of a raw user-data message: usdm ORDER_TRADE_UPDATE nests it in `o`."""
    inner = info.get("o")
    return inner if isinstance(inner, Mapping) else info


def _client_id(ev: Mapping[str, Any]) -> str:
    # spot executionReport of a cancel: `c` is the cancel request's id, `C` the order's
    orig = ev.get("C")
    return str(orig) if orig else str(ev.get("c") or "")


def fill_from_event(ev: Mapping[str, Any]) -> Fill:
    """A `Fill` from a raw TRADE event (spot executionReport or usdm ORDER_TRADE_UPDATE.o), Decimals
    from Binance's strings (the same values the REST trade lists carry)."""
    maker = ev.get("m")
    return Fill(trade_id=str(ev["t"]), qty=Decimal(str(ev["l"])), price=Decimal(str(ev["L"])),
                fee=Decimal(str(ev.get("n") or "0")), fee_asset=str(ev.get("N") or ""),
                ts_event=int(ev["T"]) * NS_PER_MS,
                liquidity=Liquidity.UNKNOWN if maker is None else (Liquidity.MAKER if maker else Liquidity.TAKER))


class UserStream:
    """Consume the user-data stream of `client` (a ccxt.pro binance / binanceusdm client) into `om`.

    symbols: Binance ids ("BTCUSDT"); events of other symbols are ignored.
    reconcile: awaited after every (re)connect once the stream is subscribed (`Reconciler.run_once`);
      `reconcile_on_first_connect` also runs it on the first one (covers the gap before subscribing).
    backoff_base_s / backoff_max_s: reconnect backoff (exponential, jittered, reset after a session
      that delivered anything or lasted `stable_s`).
    keepalive_s: USD-M listenKey PUT interval (Binance: a key lives 60 min after its last PUT);
      None/0: off. Ignored for spot (no listenKey).
    """

    def __init__(self, client: Any, om: Any, symbols: Iterable[str], *, market: str,
                 reconcile: Callable[[], Awaitable[Any]] | None = None, reconcile_on_first_connect: bool = True,
                 backoff_base_s: float = 0.5, backoff_max_s: float = 30.0, stable_s: float = 60.0,
                 keepalive_s: float | None = 30 * 60.0, subscribe_timeout_s: float = 10.0,
                 deferred_flush_s: float = 0.2):
        if market not in ("spot", "usdm"):
            raise ValueError(f"market must be 'spot' or 'usdm', not {market!r}")
        self.client = client
        self.om = om
        self.symbols = frozenset(symbols)
        self.market = market
        self.reconcile = reconcile
        self.reconcile_on_first_connect = reconcile_on_first_connect
        self.backoff_base_s = backoff_base_s
        self.backoff_max_s = backoff_max_s
        self.stable_s = stable_s
        self.keepalive_s = keepalive_s if market == "usdm" else None
        self.subscribe_timeout_s = subscribe_timeout_s
        self.deferred_flush_s = deferred_flush_s
        self.stats = UserStreamStats()
        self.connected = asyncio.Event()  # set while a session is subscribed and reconciled
        self._task: asyncio.Task | None = None
        self._sync_queue: asyncio.Queue[str] = asyncio.Queue()
        self._sync_pending: set[str] = set()
        self._deferred: dict[str, list[Fill]] = {}
        self._got_message = False

    # -- lifecycle ---------------------------------------------------------------------------------

    def start(self) -> asyncio.Task:
        """Start the stream task (idempotent); returns at once."""
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._run(), name="user-stream")
        return self._task

    async def stop(self, timeout_s: float = 5.0) -> None:
        """Cancel the stream and its helpers; waits at most `timeout_s`. The client is the caller's to close."""
        task, self._task = self._task, None
        if task is None:
            return
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError, asyncio.TimeoutError, Exception):
            await asyncio.wait_for(task, timeout_s)
        self.connected.clear()

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    # -- the session loop --------------------------------------------------------------------------

    async def _run(self) -> None:
        helpers = [asyncio.create_task(self._sync_worker(), name="user-stream-sync"),
                   asyncio.create_task(self._flush_deferred_loop(), name="user-stream-deferred")]
        if self.keepalive_s:
            helpers.append(asyncio.create_task(self._keepalive_loop(), name="user-stream-keepalive"))
        attempt = 0
        loop = asyncio.get_running_loop()
        try:
            while True:
                first = self.stats.connects == 0
                self.stats.connects += 1
                self._got_message = False
                started = loop.time()
                try:
                    await self._session(reconcile=self.reconcile is not None and
                                        (not first or self.reconcile_on_first_connect))
                except asyncio.CancelledError:
                    raise
                except Exception as err:  # noqa: BLE001 — any failure: reconnect
                    log.warning("user stream disconnected: %s: %s", type(err).__name__, err)
                self.connected.clear()
                self.stats.disconnects += 1
                if self._got_message or loop.time() - started >= self.stable_s:
                    attempt = 0
                delay = min(self.backoff_max_s, self.backoff_base_s * 2 ** attempt)
                attempt += 1
                await asyncio.sleep(delay * (0.5 + random.random() / 2))
        finally:
            for h in helpers:
                h.cancel()
            await asyncio.gather(*helpers, return_exceptions=True)
            self.connected.clear()

    async def _session(self, *, reconcile: bool) -> None:
        """One connection: subscribe both watchers, reconcile, then consume until one fails."""
        trades = asyncio.create_task(self._watch_trades())
        orders = asyncio.create_task(self._watch_orders())
        watchers = (trades, orders)
        try:
            await self._await_subscribed(watchers)
            if reconcile:
                await self._reconcile()
            self.connected.set()
            done, _ = await asyncio.wait(watchers, return_when=asyncio.FIRST_EXCEPTION)
            for t in done:
                t.result()  # raise the watcher's error
        finally:
            for t in watchers:
                t.cancel()
            await asyncio.gather(*watchers, return_exceptions=True)

    def _user_clients(self) -> list[Any]:
        out = []
        for url, c in list(getattr(self.client, "clients", {}).items()):
            if "listenKey=" in url or "/ws-api/" in url or (self.market == "usdm" and "/private/" in url):
                out.append(c)
        return out

    async def _await_subscribed(self, watchers: tuple[asyncio.Task, ...]) -> None:
        """Until the user-data connection is open (usdm: the listenKey URL is the subscription; spot: ccxt
        awaits the WebSocket API subscribe answer before registering its watch), bounded."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.subscribe_timeout_s
        while True:
            for t in watchers:
                if t.done():
                    t.result()
                    raise ConnectionError("user stream watcher ended before subscribing")
            clients = self._user_clients()
            if clients and all(self._client_open(c) for c in clients) and (
                    self.market == "spot" or self.client.options.get("linear", {}).get("listenKey")):
                await asyncio.sleep(0.05)  # let ccxt register the watch futures / subscription answer
                return
            if loop.time() >= deadline:
                raise TimeoutError("user stream: not subscribed in time")
            await asyncio.sleep(0.02)

    @staticmethod
    def _client_open(c: Any) -> bool:
        fut = getattr(c, "connected", None)
        if fut is None or not fut.done():
            return False
        if fut.cancelled() or fut.exception() is not None:
            return False
        conn = getattr(c, "connection", None)
        return conn is not None and not getattr(conn, "closed", False)

    async def _reconcile(self) -> None:
        try:
            await self.reconcile()
            self.stats.reconciles += 1
        except asyncio.CancelledError:
            raise
        except Exception as err:  # noqa: BLE001 — a failed pass is the periodic reconciler's to redo
            self.stats.reconcile_errors += 1
            log.warning("user stream: reconciliation after connect failed: %s: %s", type(err).__name__, err)

    async def _watch_trades(self) -> None:
        while True:
            trades = await self.client.watch_my_trades()
            self._got_message = True
            for t in trades:
                info = t.get("info") or {}
                ev = _event(info)
                if ev.get("x") not in (None, "TRADE") or "t" not in ev:
                    continue
                if str(ev.get("s", "")) not in self.symbols:
                    continue
                self.on_trade_event(ev)

    async def _watch_orders(self) -> None:
        while True:
            orders = await self.client.watch_orders()
            self._got_message = True
            for o in orders:
                ev = _event(o.get("info") or {})
                if str(ev.get("s", "")) not in self.symbols:
                    continue
                self.on_order_event(ev)

    # -- handlers (synchronous: journal calls only, or queued work) ---------------------------------

    def on_trade_event(self, ev: Mapping[str, Any]) -> None:
        """Apply the trade of a raw TRADE event once; gaps and odd states are queued for a REST sync."""
        cid = _client_id(ev)
        fill = fill_from_event(ev)
        try:
            snap = self.om.get(cid)
        except (UnknownOrderError, KeyError):
            self.stats.fills_unattributed += 1  # not ours / not journaled: the reconciler claims or flags it
            return
        if any(f.trade_id == fill.trade_id for f in snap.fills):
            self.stats.fills_duplicate += 1
            return
        if snap.is_in_flight or snap.status is OrderStatus.NEW:
            self._deferred.setdefault(cid, []).append(fill)
            self.stats.fills_deferred += 1
            return
        if snap.is_terminal:
            self.stats.late_fills += 1
            return
        # z = cumulative executed after this trade: earlier trades of the order we never saw → sync
        try:
            before = Decimal(str(ev["z"])) - fill.qty
            if before > snap.filled_qty:
                self.stats.gaps += 1
                self._queue_sync(cid)
        except (KeyError, ArithmeticError):
            # no usable cumulative quantity: a gap cannot be ruled out, so let REST settle the order
            self.stats.gaps_unchecked += 1
            self._queue_sync(cid)
        self._apply(cid, fill)

    def _apply(self, cid: str, fill: Fill) -> None:
        try:
            if self.om.apply_fill(cid, fill):
                self.stats.fills_applied += 1
            else:
                self.stats.fills_duplicate += 1
        except InvalidTransitionError as err:  # terminal meanwhile: a late fill, the reconciler reports it
            self.stats.late_fills += 1
            log.warning("user stream: fill %s of %s not applied: %s", fill.trade_id, cid, err)
        except Exception as err:  # noqa: BLE001 — e.g. an overfill: the REST view decides
            log.warning("user stream: fill %s of %s not applied: %s: %s", fill.trade_id, cid, type(err).__name__, err)
            self._queue_sync(cid)

    def on_order_event(self, ev: Mapping[str, Any]) -> None:
        """A terminal order update (CANCELED, EXPIRED, FILLED, REJECTED) the journal does not show yet →
        `sync_order` (the REST view, trades included, applied once)."""
        status = str(ev.get("X", ""))
        if status not in _TERMINAL:
            return
        cid = _client_id(ev)
        try:
            snap = self.om.get(cid)
        except (UnknownOrderError, KeyError):
            return
        if snap.is_terminal or snap.is_in_flight or snap.status is OrderStatus.NEW:
            return  # done already, or the submit path / resolve owns it now
        if status == "FILLED" and snap.filled_qty == snap.order.qty:
            return
        if status == "FILLED":
            # the trade event of this message may still be on its way through watch_my_trades: give it
            # the flush interval before asking REST
            asyncio.get_running_loop().call_later(self.deferred_flush_s, self._queue_sync_if_open, cid)
            return
        self._queue_sync(cid)

    def _queue_sync_if_open(self, cid: str) -> None:
        with contextlib.suppress(Exception):
            if not self.om.get(cid).is_terminal:
                self._queue_sync(cid)

    def _queue_sync(self, cid: str) -> None:
        if cid not in self._sync_pending:
            self._sync_pending.add(cid)
            self._sync_queue.put_nowait(cid)

    async def _sync_worker(self) -> None:
        while True:
            cid = await self._sync_queue.get()
            self._sync_pending.discard(cid)
            try:
                snap = self.om.get(cid)
                if snap.is_terminal or snap.is_in_flight:
                    continue
                self.stats.syncs += 1
                await self.om.sync_order(cid)
            except asyncio.CancelledError:
                raise
            except (RetryableError, MissingFillsError, InvalidTransitionError) as err:
                log.warning("user stream: sync of %s failed (left to the reconciler): %s", cid, err)
            except Exception as err:  # noqa: BLE001
                log.warning("user stream: sync of %s failed: %s: %s", cid, type(err).__name__, err)

    def flush_deferred(self) -> None:
        """Apply held-back fills of orders that are no longer in flight."""
        for cid in list(self._deferred):
            try:
                snap = self.om.get(cid)
            except (UnknownOrderError, KeyError):
                self._deferred.pop(cid, None)
                continue
            if snap.is_in_flight or snap.status is OrderStatus.NEW:
                continue
            fills = self._deferred.pop(cid)
            if snap.is_terminal:
                known = {f.trade_id for f in snap.fills}
                self.stats.late_fills += sum(1 for f in fills if f.trade_id not in known)
                continue
            for f in fills:
                self._apply(cid, f)

    async def _flush_deferred_loop(self) -> None:
        while True:
            await asyncio.sleep(self.deferred_flush_s)
            if self._deferred:
                self.flush_deferred()

    # -- USD-M listenKey keep-alive ---------------------------------------------------------------

    async def keepalive_once(self) -> bool:
        """PUT the current listenKey (USD-M). False: no key yet. A rejected PUT (-1125: expired) forces
        a reconnect (the next subscription POSTs a fresh key) and is raised to the caller."""
        key = self.client.options.get("linear", {}).get("listenKey")
        if not key:
            return False
        try:
            await self.client.fapiPrivatePutListenKey()
            self.stats.keepalives += 1
            return True
        except Exception:
            self.stats.keepalive_errors += 1
            self.client.options["linear"] = {**self.client.options.get("linear", {}), "listenKey": None,
                                             "lastAuthenticatedTime": 0}
            for c in self._user_clients():
                with contextlib.suppress(Exception):
                    await c.close()
            raise

    async def _keepalive_loop(self) -> None:
        while True:
            await asyncio.sleep(self.keepalive_s)
            try:
                await self.keepalive_once()
            except asyncio.CancelledError:
                raise
            except Exception as err:  # noqa: BLE001
                log.warning("user stream: listenKey keep-alive failed, reconnecting: %s: %s",
                            type(err).__name__, err)


__all__ = ["UserStream", "UserStreamStats", "fill_from_event"]
