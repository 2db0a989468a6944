"""`Reconciler`: the journal against the venue, on start and periodically (docs/venue.md).

One pass (`run_once`):

1. Every open journal order is settled with the venue: in-flight orders are asked about by client
   id (the not-found grace applies), working orders are synced (new trades applied once, terminal
   states taken over).
2. Venue open orders missing from the journal: under one of our namespaces → claimed (journaled
   and synced); any other client id → flagged (`ForeignOrderFlagged`), never touched.
3. Recent venue trades (fills-since) not in the journal: of an open journal order → applied once
   (`FillApplied`); of a terminal one → `LateFill` (a halt-level discrepancy); of no journal order
   → `UnattributedFill` (reported once).
4. Positions: journal (fills, plus a baseline for what existed before) against the venue (USD-M
   positions; spot base-asset balances) → `PositionMismatch` with both amounts and the difference.

Every finding is a typed event in the pass's `ReconcileReport`.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal

from core.errors import HaltError, RejectedError, RetryableError
from core.time import NS_PER_MS
from execution.order_manager import OrderManager
from execution.orders import OrderStatus, parse_client_order_id
from execution.orders.errors import InvalidClientOrderIdError
from execution.venue import VenueOpenOrder

# -- events ---------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class OrderSettled:
    """A journal order whose status changed after asking the venue."""

    client_order_id: str
    from_status: OrderStatus
    to_status: OrderStatus


@dataclass(frozen=True, slots=True)
class OrderClaimed:
    client_order_id: str
    symbol: str
    venue_order_id: str
    status: OrderStatus


@dataclass(frozen=True, slots=True)
class ForeignOrderFlagged:
    """A live venue order under a client id that is not ours (placed by hand or another system)."""

    symbol: str
    client_order_id: str
    venue_order_id: str
    side: str
    qty: Decimal
    price: Decimal | None


@dataclass(frozen=True, slots=True)
class FillApplied:
    client_order_id: str
    trade_id: str
    qty: Decimal
    price: Decimal


@dataclass(frozen=True, slots=True)
class LateFill:
    """A venue trade of an order the journal holds as terminal without it: escalate."""

    client_order_id: str
    trade_id: str
    qty: Decimal
    price: Decimal


@dataclass(frozen=True, slots=True)
class UnattributedFill:
    """A venue trade of an order the journal does not know (foreign orders, manual trades)."""

    symbol: str
    venue_order_id: str
    trade_id: str
    side: str
    qty: Decimal
    price: Decimal


@dataclass(frozen=True, slots=True)
class PositionMismatch:
    """journal_qty (baseline + journal fills) ≠ venue_qty; difference = venue − journal."""

    symbol: str
    journal_qty: Decimal
    venue_qty: Decimal
    difference: Decimal


@dataclass(frozen=True, slots=True)
class ReconcileFailure:
    """A check that could not complete (venue unavailable) or found a contradiction (halt)."""

    subject: str
    error: str
    halt: bool


ReconcileEvent = (OrderSettled | OrderClaimed | ForeignOrderFlagged | FillApplied | LateFill | UnattributedFill
                  | PositionMismatch | ReconcileFailure)


@dataclass
class ReconcileReport:
    events: list[ReconcileEvent] = field(default_factory=list)

    def of(self, cls: type) -> list:
        return [e for e in self.events if isinstance(e, cls)]

    @property
    def clean(self) -> bool:
        """Nothing to look at: no claims, flags, late/unattributed fills, mismatches or failures."""
        return not any(isinstance(e, (OrderClaimed, ForeignOrderFlagged, LateFill, UnattributedFill,
                                      PositionMismatch, ReconcileFailure)) for e in self.events)


# -- the reconciler -------------------------------------------------------------------------------


class Reconciler:
    """Reconciles one manager's journal with its venue for `symbols`.

    account_tag: namespaces `tag + 7 base-36 digits` (earlier runs of this account, see
        `run_namespace`) count as ours and are claimed; so do `extra_namespaces`.
    baseline: positions that existed before the journal's first order (symbol → signed qty; spot:
        the base-asset balance), added to the journal's fills for the position check.
    fills_since_ms: where the first pass starts listing venue trades (default: the manager's clock
        minus `fills_lookback_ms`); later passes continue from the highest trade id seen, minus
        `fills_overlap` ids (trade ids grow per symbol), so no clock is involved after the first pass.
    """

    def __init__(self, manager: OrderManager, symbols: Sequence[str], *, account_tag: str | None = None,
                 extra_namespaces: Sequence[str] = (), claim: bool = True,
                 baseline: Mapping[str, Decimal] | None = None, fills_lookback_ms: int = 24 * 3_600_000,
                 fills_since_ms: int | None = None, fills_overlap: int = 100, check_positions: bool = True):
        self.manager = manager
        self.symbols = tuple(symbols)
        self.account_tag = account_tag
        self.namespaces = {manager.namespace, *extra_namespaces}
        self.claim = claim
        self.baseline = dict(baseline or {})
        self.fills_lookback_ms = int(fills_lookback_ms)
        self.check_positions = check_positions
        self._reported: set[tuple] = set()
        self.fills_since_ms = fills_since_ms
        self.fills_overlap = int(fills_overlap)
        self._last_trade_id: dict[str, int] = {}

    def is_ours(self, client_order_id: str) -> bool:
        try:
            ns = parse_client_order_id(client_order_id).namespace
        except InvalidClientOrderIdError:
            return False
        if ns in self.namespaces:
            return True
        tag = self.account_tag
        return tag is not None and len(ns) == len(tag) + 7 and ns.startswith(tag)

    async def run_once(self) -> ReconcileReport:
        report = ReconcileReport()
        await self._settle_journal(report)
        await self._venue_orders(report)
        await self._venue_fills(report)
        if self.check_positions:
            await self._positions(report)
        return report

    async def run_forever(self, interval_s: float, stop: asyncio.Event,
                          on_report: Callable[[ReconcileReport], Awaitable[None] | None] | None = None) -> None:
        """Run a pass every `interval_s` until `stop` is set; each report goes to `on_report`."""
        while not stop.is_set():
            report = await self.run_once()
            if on_report is not None:
                res = on_report(report)
                if asyncio.iscoroutine(res):
                    await res
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(stop.wait(), interval_s)

    # -- steps ------------------------------------------------------------------------------------

    def _fail(self, report: ReconcileReport, subject: str, err: BaseException) -> None:
        report.events.append(ReconcileFailure(subject, f"{type(err).__name__}: {err}", isinstance(err, HaltError)))

    async def _settle_journal(self, report: ReconcileReport) -> None:
        m = self.manager
        for snap in m.journal.open_orders():
            if snap.status is OrderStatus.NEW or snap.order.symbol not in self.symbols:
                continue
            cid = snap.client_order_id
            try:
                after = (await m.resolve(cid, timeout_s=0)) if snap.is_in_flight else await m.sync_order(cid)
            except (RetryableError, HaltError, RejectedError) as err:
                self._fail(report, cid, err)
                continue
            if after.status is not snap.status:
                report.events.append(OrderSettled(cid, snap.status, after.status))

    async def _venue_orders(self, report: ReconcileReport) -> None:
        m = self.manager
        for symbol in self.symbols:
            try:
                live: Sequence[VenueOpenOrder] = await m.venue.open_orders(symbol)
            except (RetryableError, RejectedError) as err:
                self._fail(report, f"open orders {symbol}", err)
                continue
            for vo in live:
                if vo.client_order_id in m.journal:
                    continue
                if self.claim and self.is_ours(vo.client_order_id):
                    try:
                        snap = await m.claim(vo)
                    except (RetryableError, HaltError, RejectedError) as err:
                        self._fail(report, vo.client_order_id, err)
                        continue
                    report.events.append(OrderClaimed(vo.client_order_id, symbol, vo.venue_order_id, snap.status))
                else:
                    key = ("foreign", symbol, vo.client_order_id, vo.venue_order_id)
                    report.events.append(ForeignOrderFlagged(symbol, vo.client_order_id, vo.venue_order_id,
                                                             vo.side.value, vo.qty, vo.price))
                    self._reported.add(key)

    async def _venue_fills(self, report: ReconcileReport) -> None:
        m = self.manager
        since = (m._now() // NS_PER_MS - self.fills_lookback_ms) if self.fills_since_ms is None else self.fills_since_ms
        by_venue_id: dict[tuple[str, str], str] = {}
        applied: set[tuple[str, str]] = set()
        for snap in m.journal.orders():
            if snap.venue_order_id is not None:
                by_venue_id[(snap.order.symbol, snap.venue_order_id)] = snap.client_order_id
            for f in snap.fills:
                applied.add((snap.order.symbol, f.trade_id))
        for symbol in self.symbols:
            try:
                last = self._last_trade_id.get(symbol)
                if last is None:
                    fills = await m.venue.fills_since(symbol, max(0, since))
                else:
                    fills = await m.venue.fills_since(symbol, from_id=max(0, last + 1 - self.fills_overlap))
            except (RetryableError, RejectedError) as err:
                self._fail(report, f"fills {symbol}", err)
                continue
            for vf in fills:
                with contextlib.suppress(ValueError):
                    tid = int(vf.fill.trade_id)
                    self._last_trade_id[symbol] = max(tid, self._last_trade_id.get(symbol, tid))
                if (symbol, vf.fill.trade_id) in applied:
                    continue
                cid = by_venue_id.get((symbol, vf.venue_order_id))
                f = vf.fill
                if cid is None:
                    key = ("unattributed", symbol, f.trade_id)
                    if key not in self._reported:
                        self._reported.add(key)
                        report.events.append(UnattributedFill(symbol, vf.venue_order_id, f.trade_id, vf.side.value,
                                                              f.qty, f.price))
                    continue
                snap = m.journal.get(cid)
                if snap.is_terminal:
                    key = ("late", cid, f.trade_id)
                    if key not in self._reported:
                        self._reported.add(key)
                        report.events.append(LateFill(cid, f.trade_id, f.qty, f.price))
                    continue
                try:
                    if m.apply_fill(cid, f):
                        report.events.append(FillApplied(cid, f.trade_id, f.qty, f.price))
                        applied.add((symbol, f.trade_id))
                except (RejectedError, HaltError) as err:
                    self._fail(report, cid, err)

    async def _positions(self, report: ReconcileReport) -> None:
        m = self.manager
        journal = m.positions()
        try:
            if m.venue.market == "spot":
                balances = await m.venue.balances()
                venue = {}
                for s in self.symbols:
                    base = m.base_asset(s)
                    if base is None:
                        continue
                    b = balances.get(base)
                    venue[s] = b.total if b is not None else Decimal(0)
            else:
                venue = {s: p.qty for s, p in (await m.venue.positions()).items()}
        except (RetryableError, RejectedError) as err:
            self._fail(report, "positions", err)
            return
        for s in self.symbols:
            if m.venue.market == "spot" and m.base_asset(s) is None:
                continue
            mine = self.baseline.get(s, Decimal(0)) + journal.get(s, Decimal(0))
            theirs = venue.get(s, Decimal(0))
            if mine != theirs:
                report.events.append(PositionMismatch(s, mine, theirs, theirs - mine))
