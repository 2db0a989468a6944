"""`OrderManager`: drives the order protocol of docs/orders.md end to end against a `Venue`.

    validate → journal intent → journal Submitted → venue submit →
        ack        → Accepted (and, when the ack is not NEW, the venue's view with the trades)
        rejected   → Rejected, raised as VenueRejectedError (Binance code and message)
        not processed (429/418, never sent) → Rejected "not processed…"; a NEW attempt with a NEW id
        unknown (timeout, disconnect, 5xx) → TimedOut (UNKNOWN) → resolve by client order id with
                     backoff; "not found" after the grace window → Rejected "not found at venue…"
                     → a new attempt with a new id. Never a blind resubmission of the same order.
    fills → deduplicated by trade id (state machine); cancel → CancelRequested → venue → venue's view.
    start() → recovery from the journal: NEW (never sent) canceled locally, in-flight resolved,
              working orders synced with the venue.

One manager owns one journal (single writer); it is asyncio-safe (journal calls are synchronous and
never interleave) but not thread-safe. See docs/venue.md.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path

from pydantic import Field

from core.config import FrozenConfig
from core.errors import RetryableError
from core.time import NS_PER_S
from execution.orders import (
    Accepted,
    CancelRequested,
    ClientOrderIdFactory,
    FillReceived,
    MissingFillsError,
    Order,
    OrderJournal,
    OrderRequest,
    OrderSide,
    OrderSnapshot,
    OrderStatus,
    Rejected,
    ResolutionInconclusiveError,
    Resolved,
    Submitted,
    SymbolRules,
    TerminalOrderError,
    TimedOut,
    VenueOrderView,
    VenueStatus,
    validate_order,
)
from execution.orders.model import Fill
from execution.venue import (
    AmbiguousSubmitError,
    SubmitNotProcessedError,
    Venue,
    VenueOpenOrder,
    VenueRejectedError,
    VenueUnavailableError,
    is_conditional,
)

NOT_PROCESSED = "not processed by the venue"
NOT_FOUND = "not found at venue"
S = OrderStatus
V = VenueStatus
# (journal status, venue status) pairs that need no Resolved record when no new trade came
_UNCHANGED = {(S.ACCEPTED, V.NEW), (S.PENDING_CANCEL, V.NEW), (S.PARTIALLY_FILLED, V.PARTIALLY_FILLED),
              (S.PENDING_CANCEL, V.PARTIALLY_FILLED), (S.FILLED, V.FILLED), (S.CANCELED, V.CANCELED),
              (S.EXPIRED, V.EXPIRED), (S.REJECTED, V.REJECTED), (S.CANCELED, V.NOT_FOUND), (S.REJECTED, V.NOT_FOUND)}


class OrderManagerConfig(FrozenConfig):
    """Timing of resolution and the new-attempt policy."""

    not_found_grace_s: float = Field(120.0, gt=0, description="after this since submission, 'not found' = never "
                                     "reached the venue; must exceed the venue's recvWindow + clock skew")
    resolve_timeout_s: float = Field(10.0, ge=0, description="how long submit()/start() keep asking about an "
                                     "UNKNOWN order before leaving it to the reconciler")
    backoff_base_s: float = Field(0.1, gt=0)
    backoff_max_s: float = Field(2.0, gt=0)
    max_attempts: int = Field(3, ge=1, description="attempts of one submit() when an attempt provably never "
                              "reached the venue (each attempt is a new order with a new client id)")


def never_reached_venue(snap: OrderSnapshot) -> bool:
    """REJECTED because the venue provably never had it (not processed, or not found after the grace)."""
    return snap.status is S.REJECTED and (snap.reason.startswith(NOT_PROCESSED) or snap.reason.startswith(NOT_FOUND))


@dataclass
class RecoveryReport:
    """What `OrderManager.start()` did with the journal's open orders."""

    canceled_unsent: list[str] = field(default_factory=list)  # NEW: never sent, canceled locally
    resolved: dict[str, OrderStatus] = field(default_factory=dict)  # in flight → the venue's answer
    never_placed: list[str] = field(default_factory=list)  # in flight, not found after the grace: REJECTED
    still_unknown: list[str] = field(default_factory=list)  # in flight, venue still undecided
    synced: dict[str, OrderStatus] = field(default_factory=dict)  # working orders after a sync
    errors: dict[str, str] = field(default_factory=dict)


class OrderManager:
    """The order protocol against one venue with one journal (see the module docstring).

    rules: symbol → `SymbolRules` (validation before anything reaches the venue).
    namespace: this run's client-id namespace (`run_namespace(account_tag, run_started_ns)`).
    clock: UTC ns for journal timestamps and the not-found grace; sleep: awaited between retries.
    """

    def __init__(self, journal: OrderJournal, venue: Venue, rules: Mapping[str, SymbolRules], *, namespace: str,
                 config: OrderManagerConfig | None = None, clock: Callable[[], int] = time.time_ns,
                 sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
                 base_assets: Mapping[str, str] | None = None):
        self.journal = journal
        self.venue = venue
        self.rules = dict(rules)
        self.namespace = namespace
        self.config = config or OrderManagerConfig()
        self._clock = clock
        self._sleep = sleep
        self.base_assets = dict(base_assets or {})
        self._grace_ns = int(self.config.not_found_grace_s * NS_PER_S)
        ClientOrderIdFactory(namespace, "x")  # validates the namespace now

    @classmethod
    def open(cls, path: str | Path, venue: Venue, rules: Mapping[str, SymbolRules], **kw) -> OrderManager:
        """A manager on the SQLite journal at `path` (created if absent)."""
        return cls(OrderJournal.open_sqlite(path), venue, rules, **kw)

    def close(self) -> None:
        self.journal.close()

    # -- reading ----------------------------------------------------------------------------------

    def get(self, client_order_id: str) -> OrderSnapshot:
        return self.journal.get(client_order_id)

    def orders(self) -> list[OrderSnapshot]:
        return self.journal.orders()

    def open_orders(self) -> list[OrderSnapshot]:
        return self.journal.open_orders()

    def base_asset(self, symbol: str) -> str | None:
        return self.base_assets.get(symbol)

    def positions(self) -> dict[str, Decimal]:
        """Net position per symbol from the journal's fills (buys − sells; spot: minus fees paid in
        the base asset when `base_assets` names it). The ledger view the reconciler compares."""
        out: dict[str, Decimal] = {}
        for snap in self.journal.orders():
            if not snap.fills:
                continue
            sign = 1 if snap.order.side is OrderSide.BUY else -1
            pos = out.get(snap.order.symbol, Decimal(0)) + sign * snap.filled_qty
            base = self.base_asset(snap.order.symbol)
            if base is not None:
                pos -= sum((f.fee for f in snap.fills if f.fee_asset == base), Decimal(0))
            out[snap.order.symbol] = pos
        return out

    def _now(self) -> int:
        return int(self._clock())

    def _backoff(self, attempt: int) -> float:
        return min(self.config.backoff_max_s, self.config.backoff_base_s * 2 ** min(attempt, 30))

    def _conditional(self, snap_or_order: OrderSnapshot | Order) -> bool:
        order = snap_or_order.order if isinstance(snap_or_order, OrderSnapshot) else snap_or_order
        return is_conditional(self.venue.market, order.type)

    # -- submit -----------------------------------------------------------------------------------

    async def submit(self, request: OrderRequest, *, strategy: str, strategy_id: str | None = None,
                     available: Decimal | None = None, reference_price: Decimal | None = None,
                     round_qty: bool = False, leverage: Decimal = Decimal(1), fee_rate: Decimal = Decimal(0),
                     resolve_timeout_s: float | None = None) -> OrderSnapshot:
        """Validate and send one order; return its snapshot (ACCEPTED/…/FILLED, or UNKNOWN when the
        venue has not decided within the resolve timeout: the reconciler goes on asking).

        Raises `OrderRejected` (local validation, nothing journaled) and `VenueRejectedError`
        (journaled REJECTED; `.code`, `.venue_message`, `.client_order_id`). When an attempt provably
        never reached the venue (429/418, or not found after the grace window) a new order with a
        new client id is sent, up to `config.max_attempts`; the last such snapshot (REJECTED) is
        returned when every attempt failed that way.
        """
        req = validate_order(request, self.rules, available=available, reference_price=reference_price,
                             round_qty=round_qty, leverage=leverage, fee_rate=fee_rate)
        snap = None
        for _ in range(self.config.max_attempts):
            snap = await self._send_new(req, strategy, strategy_id or strategy, resolve_timeout_s)
            if not never_reached_venue(snap):
                return snap
        return snap

    async def resubmit(self, client_order_id: str, *, resolve_timeout_s: float | None = None) -> OrderSnapshot:
        """A new attempt (new client id) of an order that provably never reached the venue (after a
        restart: `RecoveryReport.never_placed`). Refused for any other order."""
        snap = self.journal.get(client_order_id)
        if not never_reached_venue(snap):
            raise ValueError(f"{client_order_id}: status {snap.status.value} ({snap.reason!r}); only an order that "
                             "never reached the venue may be attempted again")
        o = snap.order
        req = OrderRequest(o.symbol, o.side, o.type, o.qty, o.price, o.stop_price, o.time_in_force, o.reduce_only)
        strategy = client_order_id.split(".")[1]
        return await self._send_new(req, strategy, o.strategy_id, resolve_timeout_s)

    async def _send_new(self, req: OrderRequest, strategy: str, strategy_id: str,
                        resolve_timeout_s: float | None) -> OrderSnapshot:
        cid = ClientOrderIdFactory(self.namespace, strategy,
                                   self.journal.next_sequence(self.namespace, strategy)).next_id()
        order = Order.create(req, cid, strategy_id, self._now())
        self.journal.record_intent(order)
        self.journal.apply(cid, Submitted(self._now()))  # durable BEFORE the venue call
        try:
            ack = await self.venue.submit(order)
        except VenueRejectedError as err:
            self.journal.apply(cid, Rejected(self._now(), f"venue rejected: code={err.code} {err.venue_message}"))
            err.client_order_id = cid
            err.snapshot = self.journal.get(cid)
            raise
        except SubmitNotProcessedError as err:
            self.journal.apply(cid, Rejected(self._now(), f"{NOT_PROCESSED}: {err}"))
            return self.journal.get(cid)
        except AmbiguousSubmitError:
            self.journal.apply(cid, TimedOut(self._now()))
            timeout = self.config.resolve_timeout_s if resolve_timeout_s is None else resolve_timeout_s
            return await self.resolve(cid, timeout_s=timeout)
        self.journal.apply(cid, Accepted(self._now(), ack.venue_order_id))
        if ack.status is not V.NEW or ack.executed_qty > 0:
            try:
                return await self.sync_order(cid)
            except RetryableError:
                pass  # the reconciler completes it
        return self.journal.get(cid)

    # -- resolution -------------------------------------------------------------------------------

    async def resolve(self, client_order_id: str, *, timeout_s: float | None = None) -> OrderSnapshot:
        """Ask the venue about an in-flight order by client id, with backoff, until it answers
        conclusively or `timeout_s` passes (0: one attempt). Never resends it."""
        timeout = self.config.resolve_timeout_s if timeout_s is None else timeout_s
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        attempt = 0
        while True:
            snap = self.journal.get(client_order_id)
            if not snap.is_in_flight:
                return snap
            try:
                view = await self.venue.query_order(snap.order.symbol, client_order_id,
                                                    conditional=self._conditional(snap))
                self.journal.apply(client_order_id, Resolved(self._now(), view, self._grace_ns))
                return self.journal.get(client_order_id)
            except (VenueUnavailableError, MissingFillsError, ResolutionInconclusiveError, RetryableError):
                pass  # not conclusive yet: ask again after the backoff, until the deadline
            if loop.time() >= deadline:
                return self.journal.get(client_order_id)
            await self._sleep(min(self._backoff(attempt), max(0.0, deadline - loop.time()) + 0.01))
            attempt += 1

    async def sync_order(self, client_order_id: str, *, retries: int = 3) -> OrderSnapshot:
        """Query a sent order and apply the venue's view (its trades included, each once). A record is
        written only when something changed."""
        for attempt in range(retries + 1):
            snap = self.journal.get(client_order_id)
            if snap.status is S.NEW:
                return snap
            if snap.is_in_flight:
                return await self.resolve(client_order_id, timeout_s=0)
            view = await self.venue.query_order(snap.order.symbol, client_order_id,
                                                conditional=self._conditional(snap))
            try:
                self.apply_view(client_order_id, view)
                return self.journal.get(client_order_id)
            except MissingFillsError:
                if attempt == retries:
                    raise
                await self._sleep(self._backoff(attempt))
        raise AssertionError("unreachable")

    def apply_view(self, client_order_id: str, view: VenueOrderView) -> bool:
        """Apply the venue's view unless it changes nothing. False: nothing to apply. Raises
        `TerminalOrderError` when a terminal order's view brings new trades (a late fill)."""
        snap = self.journal.get(client_order_id)
        known = {f.trade_id for f in snap.fills}
        new_trades = [f for f in view.fills if f.trade_id not in known]
        if not new_trades and (snap.status, view.status) in _UNCHANGED:
            return False
        if snap.is_terminal and not new_trades:
            return False  # e.g. a venue status that is only a different name for the same end
        return self.journal.apply(client_order_id, Resolved(self._now(), view, self._grace_ns))

    def apply_fill(self, client_order_id: str, fill: Fill) -> bool:
        """Apply one trade (stream or REST); False when already applied (same trade id)."""
        return self.journal.apply(client_order_id, FillReceived(self._now(), fill))

    # -- cancel -----------------------------------------------------------------------------------

    async def cancel(self, client_order_id: str) -> OrderSnapshot:
        """Cancel an order: NEW → canceled locally; in flight → resolved first; working →
        CancelRequested, the venue's cancel, then the venue's view (CANCELED, or FILLED when it
        filled first). A cancel the venue does not confirm leaves PENDING_CANCEL for the reconciler."""
        snap = self.journal.get(client_order_id)
        if snap.is_terminal:
            return snap
        if snap.status is S.NEW:
            self.journal.apply(client_order_id, CancelRequested(self._now()))
            return self.journal.get(client_order_id)
        if snap.is_in_flight:
            snap = await self.resolve(client_order_id)
            if snap.is_in_flight:
                raise ResolutionInconclusiveError(f"{client_order_id}: outcome still unknown; cannot cancel yet")
            if snap.is_terminal:
                return snap
        if snap.status is not S.PENDING_CANCEL:
            self.journal.apply(client_order_id, CancelRequested(self._now()))
        try:
            await self.venue.cancel(snap.order.symbol, client_order_id, conditional=self._conditional(snap))
        except VenueRejectedError:
            pass  # e.g. -2011: already final at the venue; its view says how
        except VenueUnavailableError:
            return self.journal.get(client_order_id)
        try:
            return await self.sync_order(client_order_id)
        except RetryableError:
            return self.journal.get(client_order_id)

    # -- claiming venue orders --------------------------------------------------------------------

    async def claim(self, vo: VenueOpenOrder, *, strategy_id: str | None = None) -> OrderSnapshot:
        """Journal an order found live at the venue under one of our client ids but missing from the
        journal (e.g. a journal lost with its run), then apply the venue's view."""
        order = Order(client_order_id=vo.client_order_id, strategy_id=strategy_id or f"claimed:{vo.client_order_id}",
                      symbol=vo.symbol, side=vo.side, type=vo.type, qty=vo.qty, price=vo.price,
                      stop_price=vo.stop_price, time_in_force=vo.time_in_force, reduce_only=vo.reduce_only,
                      ts_created=vo.ts_event or self._now())
        self.journal.record_intent(order)
        self.journal.apply(vo.client_order_id, Submitted(self._now()))
        self.journal.apply(vo.client_order_id, Accepted(self._now(), vo.venue_order_id))
        return await self.sync_order(vo.client_order_id)

    # -- recovery ---------------------------------------------------------------------------------

    async def start(self, *, resolve_timeout_s: float | None = None) -> RecoveryReport:
        """Recover after a (re)start: NEW orders were never sent (the Submitted record precedes every
        venue call) → canceled locally; in-flight orders are asked about by client id (concurrently,
        with backoff, up to the resolve timeout — past the grace window "not found" means never
        placed: `never_placed`, see `resubmit`); working orders are synced with the venue."""
        report = RecoveryReport()
        in_flight = []
        for snap in self.journal.open_orders():
            cid = snap.client_order_id
            if snap.status is S.NEW:
                self.journal.apply(cid, CancelRequested(self._now()))
                report.canceled_unsent.append(cid)
            elif snap.is_in_flight:
                in_flight.append(cid)
        timeout = self.config.resolve_timeout_s if resolve_timeout_s is None else resolve_timeout_s
        results = await asyncio.gather(*(self.resolve(c, timeout_s=timeout) for c in in_flight),
                                       return_exceptions=True)
        for cid, res in zip(in_flight, results):
            if isinstance(res, BaseException):
                report.errors[cid] = f"{type(res).__name__}: {res}"
            elif res.is_in_flight:
                report.still_unknown.append(cid)
            elif never_reached_venue(res):
                report.never_placed.append(cid)
            else:
                report.resolved[cid] = res.status
        for snap in self.journal.open_orders():
            if snap.status is S.NEW or snap.is_in_flight:
                continue
            try:
                report.synced[snap.client_order_id] = (await self.sync_order(snap.client_order_id)).status
            except (RetryableError, TerminalOrderError) as err:
                report.errors[snap.client_order_id] = f"{type(err).__name__}: {err}"
        return report
