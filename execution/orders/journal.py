"""The append-only, crash-safe order journal.

Protocol of the order manager (docs/orders.md):
  1. `record_intent(order)`: the order and its client id are durable before anything else;
  2. `apply(cid, Submitted(ts))`: durable, THEN the venue call;
  3. every answer / report → `apply(cid, event)`; a timeout → `TimedOut` (UNKNOWN); never resend;
  4. after a restart: `in_flight()` lists the orders to ask the venue about by client id
     (`Resolved` events), `open_orders()` every order not yet terminal.

An event is first planned on the order's state machine (a refused event raises and writes nothing),
then appended durably, and only then committed in memory: memory never runs ahead of the disk,
and replaying the records rebuilds every state machine exactly.

Storage sits behind `JournalStore` (append / records / close): `InMemoryJournalStore` for tests and
`SqliteJournalStore` (stdlib sqlite3, WAL, synchronous=FULL, one transaction per append). A later
SQLAlchemy/PostgreSQL store implements the same three methods. One journal has one writer
(`SqliteJournalStore` takes an exclusive lock file); `OrderJournal` is not thread-safe.
"""

from __future__ import annotations

import json
import os
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from execution.orders.client_ids import parse_client_order_id
from execution.orders.errors import (
    DuplicateClientOrderIdError,
    InvalidClientOrderIdError,
    JournalCorruptError,
    JournalLockedError,
    OrderValueError,
    UnknownOrderError,
)
from execution.orders.events import OrderEvent, event_from_record, event_to_record
from execution.orders.model import Order, OrderStatus
from execution.orders.state_machine import OrderSnapshot, OrderStateMachine

INTENT = "intent"
SCHEMA_VERSION = 1


@dataclass(frozen=True, slots=True)
class JournalRecord:
    """One appended record: an intent (`kind == "intent"`, payload = the order) or an event
    (`kind` = its `EventKind` value, payload = the event). `seq` orders the records."""

    seq: int
    client_order_id: str
    kind: str
    ts: int
    payload: str


class JournalStore(Protocol):
    """Durable append-only storage of journal records."""

    def append(self, client_order_id: str, kind: str, ts: int, payload: str) -> None:
        """Durably append one record (on disk when this returns). An intent whose client order id
        is already stored raises `DuplicateClientOrderIdError` and writes nothing."""

    def records(self) -> Iterator[JournalRecord]:
        """Every record, in append order."""

    def close(self) -> None: ...


class InMemoryJournalStore:
    """A store in a list (tests, backtests): same semantics, no durability."""

    def __init__(self) -> None:
        self._records: list[JournalRecord] = []
        self._intents: set[str] = set()

    def append(self, client_order_id: str, kind: str, ts: int, payload: str) -> None:
        if kind == INTENT:
            if client_order_id in self._intents:
                raise DuplicateClientOrderIdError(f"client_order_id={client_order_id} already journaled")
            self._intents.add(client_order_id)
        self._records.append(JournalRecord(len(self._records) + 1, client_order_id, kind, ts, payload))

    def records(self) -> Iterator[JournalRecord]:
        return iter(list(self._records))

    def close(self) -> None:
        pass


_SCHEMA = """
CREATE TABLE IF NOT EXISTS journal_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS order_journal (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    client_order_id TEXT NOT NULL,
    kind TEXT NOT NULL,
    ts INTEGER NOT NULL,
    payload TEXT NOT NULL
);
CREATE UNIQUE INDEX IF NOT EXISTS order_journal_one_intent ON order_journal (client_order_id) WHERE kind = 'intent';
CREATE INDEX IF NOT EXISTS order_journal_by_order ON order_journal (client_order_id, seq);
"""


class SqliteJournalStore:
    """SQLite file store: WAL journal, `synchronous=FULL` (each commit is fsynced), one
    `BEGIN IMMEDIATE … COMMIT` per append, so a crash leaves every record whole or absent.
    An exclusive `flock` on `<path>.lock` keeps a second writer (process or object) out."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self._lock_fd: int | None = None
        self._conn: sqlite3.Connection | None = None
        self._take_lock()
        try:
            self._conn = sqlite3.connect(str(self.path), isolation_level=None)
            mode = self._conn.execute("PRAGMA journal_mode=WAL").fetchone()[0]
            if str(mode).lower() != "wal":
                raise JournalCorruptError(f"{self.path}: could not switch SQLite to WAL mode (got {mode})")
            self._conn.execute("PRAGMA synchronous=FULL")
            self._conn.executescript(_SCHEMA)
            row = self._conn.execute("SELECT value FROM journal_meta WHERE key='schema_version'").fetchone()
            if row is None:
                self._conn.execute("INSERT INTO journal_meta VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),))
            elif int(row[0]) != SCHEMA_VERSION:
                raise JournalCorruptError(f"{self.path}: journal schema {row[0]}, this code reads {SCHEMA_VERSION}")
        except BaseException:
            self.close()
            raise

    def _take_lock(self) -> None:
        try:
            import fcntl
        except ImportError:  # pragma: no cover - non-POSIX
            return
        fd = os.open(str(self.path) + ".lock", os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            raise JournalLockedError(f"{self.path}: another writer holds the journal lock") from None
        self._lock_fd = fd

    def _release_lock(self) -> None:
        if self._lock_fd is not None:
            os.close(self._lock_fd)  # closing the descriptor releases the flock
            self._lock_fd = None

    def append(self, client_order_id: str, kind: str, ts: int, payload: str) -> None:
        conn = self._conn
        conn.execute("BEGIN IMMEDIATE")
        try:
            conn.execute("INSERT INTO order_journal (client_order_id, kind, ts, payload) VALUES (?, ?, ?, ?)",
                         (client_order_id, kind, ts, payload))
        except sqlite3.IntegrityError:
            conn.execute("ROLLBACK")
            raise DuplicateClientOrderIdError(f"client_order_id={client_order_id} already journaled") from None
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")

    def records(self) -> Iterator[JournalRecord]:
        cur = self._conn.execute("SELECT seq, client_order_id, kind, ts, payload FROM order_journal ORDER BY seq")
        for row in cur:
            yield JournalRecord(*row)

    def close(self) -> None:
        try:
            if self._conn is not None:
                self._conn.close()
                self._conn = None
        finally:
            self._release_lock()


def _dumps(rec: dict[str, Any]) -> str:
    return json.dumps(rec, sort_keys=True, separators=(",", ":"))


class OrderJournal:
    """Every order's state machine, rebuilt from the store on open and kept in step with it."""

    def __init__(self, store: JournalStore):
        self._store = store
        self._machines: dict[str, OrderStateMachine] = {}
        self._open: dict[str, None] = {}  # non-terminal client ids, in intent order
        self._replay()

    @classmethod
    def in_memory(cls) -> OrderJournal:
        return cls(InMemoryJournalStore())

    @classmethod
    def open_sqlite(cls, path: str | Path) -> OrderJournal:
        store = SqliteJournalStore(path)
        try:
            return cls(store)
        except BaseException:
            store.close()
            raise

    def _replay(self) -> None:
        for rec in self._store.records():
            try:
                data = json.loads(rec.payload)
                if rec.kind == INTENT:
                    order = Order.from_record(data)
                    if order.client_order_id != rec.client_order_id or rec.client_order_id in self._machines:
                        raise OrderValueError("intent client id mismatch or duplicate")
                    self._machines[rec.client_order_id] = OrderStateMachine(order)
                    self._open[rec.client_order_id] = None
                else:
                    event = event_from_record(data)
                    if event.kind.value != rec.kind or event.ts != rec.ts:
                        raise OrderValueError("record kind/ts disagree with its payload")
                    machine = self._machines[rec.client_order_id]
                    if not machine.apply(event):
                        raise OrderValueError("duplicate fill journaled")
                    if machine.is_terminal:
                        self._open.pop(rec.client_order_id, None)
            except JournalCorruptError:
                raise
            except Exception as err:  # any failure to replay is corruption
                raise JournalCorruptError(
                    f"journal record seq={rec.seq} ({rec.kind} of {rec.client_order_id}) does not replay: "
                    f"{type(err).__name__}: {err}") from err

    # --- writing -----------------------------------------------------------------------------
    def record_intent(self, order: Order) -> OrderSnapshot:
        """Durably record a new order (status NEW) before any venue call."""
        if not isinstance(order, Order):
            raise OrderValueError(f"expected an Order, got {type(order).__name__}")
        cid = order.client_order_id
        if cid in self._machines:
            raise DuplicateClientOrderIdError(f"client_order_id={cid} already journaled")
        machine = OrderStateMachine(order)
        self._store.append(cid, INTENT, order.ts_created, _dumps(order.to_record()))
        self._machines[cid] = machine
        self._open[cid] = None
        return machine.snapshot()

    def apply(self, client_order_id: str, event: OrderEvent) -> bool:
        """Apply an event to an order and append it durably. False: a duplicate fill (nothing
        written). A refused event raises its typed error and writes nothing."""
        machine = self._machine(client_order_id)
        planned = machine.plan(event)
        if planned is None:
            return False
        self._store.append(client_order_id, event.kind.value, event.ts, _dumps(event_to_record(event)))
        machine.commit(planned)
        if machine.is_terminal:
            self._open.pop(client_order_id, None)
        return True

    # --- reading -----------------------------------------------------------------------------
    def _machine(self, client_order_id: str) -> OrderStateMachine:
        try:
            return self._machines[client_order_id]
        except KeyError:
            raise UnknownOrderError(f"client_order_id={client_order_id!r}: no such order in the journal") from None

    def get(self, client_order_id: str) -> OrderSnapshot:
        return self._machine(client_order_id).snapshot()

    def __contains__(self, client_order_id: object) -> bool:
        return client_order_id in self._machines

    def __len__(self) -> int:
        return len(self._machines)

    def orders(self) -> list[OrderSnapshot]:
        """Every order, in intent order."""
        return [m.snapshot() for m in self._machines.values()]

    def open_orders(self) -> list[OrderSnapshot]:
        """Every order not in a terminal status (NEW, SUBMITTED, UNKNOWN, ACCEPTED, PARTIALLY_FILLED,
        PENDING_CANCEL), in intent order."""
        return [self._machines[cid].snapshot() for cid in self._open]

    def in_flight(self) -> list[OrderSnapshot]:
        """Orders sent whose outcome the venue has not told us (SUBMITTED, UNKNOWN): ask by client id."""
        return [s for s in self.open_orders() if s.status in (OrderStatus.SUBMITTED, OrderStatus.UNKNOWN)]

    def next_sequence(self, namespace: str, strategy: str) -> int:
        """1 + the highest sequence journaled for (namespace, strategy), 0 if none: where a
        `ClientOrderIdFactory` resumes after a restart."""
        top = -1
        for cid in self._machines:
            try:
                parsed = parse_client_order_id(cid)
            except InvalidClientOrderIdError:
                continue
            if parsed.namespace == namespace and parsed.strategy == strategy:
                top = max(top, parsed.sequence)
        return top + 1

    def close(self) -> None:
        self._store.close()

    def __enter__(self) -> OrderJournal:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
