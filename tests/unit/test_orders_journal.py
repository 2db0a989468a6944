"""Order journal: intent before anything else, refused events write nothing, replay rebuilds every
state machine exactly (in memory and SQLite, hypothesis), in_flight/open_orders, crash safety
(object dropped without close, subprocess killed mid-append), single writer, corruption detected."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import tempfile
import textwrap
from decimal import Decimal
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from core.errors import TradingError
from execution.orders import (
    Accepted,
    DuplicateClientOrderIdError,
    FillReceived,
    InMemoryJournalStore,
    InvalidTransitionError,
    JournalCorruptError,
    JournalLockedError,
    OrderJournal,
    OrderStateMachine,
    OrderStatus,
    Submitted,
    TimedOut,
    UnknownOrderError,
    format_client_order_id,
)
from tests.support.orders import T0, event_specs, make_order, pool_fill, timed_events

REPO = Path(__file__).resolve().parents[2]
S = OrderStatus
_TMP = "/dev/shm" if os.path.isdir("/dev/shm") else None


def cid(i: int, ns: str = "acct01") -> str:
    return format_client_order_id(ns, "mom", i)


@pytest.fixture(params=["memory", "sqlite"])
def journal(request, tmp_path):
    j = OrderJournal.in_memory() if request.param == "memory" else OrderJournal.open_sqlite(tmp_path / "j.db")
    yield j
    j.close()


def test_intent_first_then_events(journal):
    snap = journal.record_intent(make_order(cid(0)))
    assert snap.status is S.NEW and journal.open_orders() == [snap] and journal.in_flight() == []
    assert journal.apply(cid(0), Submitted(T0 + 1)) is True
    assert [s.client_order_id for s in journal.in_flight()] == [cid(0)]
    journal.apply(cid(0), Accepted(T0 + 2, "v1"))
    assert journal.in_flight() == [] and journal.get(cid(0)).status is S.ACCEPTED
    with pytest.raises(DuplicateClientOrderIdError):
        journal.record_intent(make_order(cid(0)))
    with pytest.raises(UnknownOrderError):
        journal.apply(cid(9), Submitted(T0))
    with pytest.raises(UnknownOrderError):
        journal.get(cid(9))


def count_records(j: OrderJournal) -> int:
    return sum(1 for _ in j._store.records())


def test_refused_and_duplicate_events_write_nothing(journal):
    journal.record_intent(make_order(cid(0)))
    journal.apply(cid(0), Submitted(T0 + 1))
    journal.apply(cid(0), FillReceived(T0 + 2, pool_fill(2)))
    n = count_records(journal)
    before = journal.get(cid(0))
    assert journal.apply(cid(0), FillReceived(T0 + 3, pool_fill(2))) is False  # duplicate trade
    with pytest.raises(InvalidTransitionError):
        journal.apply(cid(0), Submitted(T0 + 4))
    assert count_records(journal) == n and journal.get(cid(0)) == before


def test_memory_never_runs_ahead_of_the_store():
    class FailingStore(InMemoryJournalStore):
        fail = False

        def append(self, *a):
            if self.fail:
                raise OSError("disk full")
            super().append(*a)

    store = FailingStore()
    j = OrderJournal(store)
    j.record_intent(make_order(cid(0)))
    store.fail = True
    with pytest.raises(OSError):
        j.apply(cid(0), Submitted(T0 + 1))
    assert j.get(cid(0)).status is S.NEW
    with pytest.raises(OSError):
        j.record_intent(make_order(cid(1)))
    assert cid(1) not in j and len(j) == 1


def test_next_sequence_resumes_after_restart(tmp_path):
    path = tmp_path / "j.db"
    with OrderJournal.open_sqlite(path) as j:
        assert j.next_sequence("acct01", "mom") == 0
        for i in (0, 1, 40):
            j.record_intent(make_order(cid(i)))
        j.record_intent(make_order(cid(99, "other")))
    with OrderJournal.open_sqlite(path) as j:
        assert j.next_sequence("acct01", "mom") == 41
        assert j.next_sequence("other", "mom") == 100
        assert j.next_sequence("acct01", "rev") == 0
        with pytest.raises(DuplicateClientOrderIdError):
            j.record_intent(make_order(cid(40)))


def test_one_writer(tmp_path):
    path = tmp_path / "j.db"
    j = OrderJournal.open_sqlite(path)
    with pytest.raises(JournalLockedError):
        OrderJournal.open_sqlite(path)
    j.close()
    OrderJournal.open_sqlite(path).close()


def test_wal_and_full_sync(tmp_path):
    with OrderJournal.open_sqlite(tmp_path / "j.db") as j:
        conn = j._store._conn
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert conn.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL


def test_corrupt_record_is_detected(tmp_path):
    path = tmp_path / "j.db"
    with OrderJournal.open_sqlite(path) as j:
        j.record_intent(make_order(cid(0)))
    conn = sqlite3.connect(path)
    conn.execute("INSERT INTO order_journal (client_order_id, kind, ts, payload) VALUES (?, 'accepted', 5, '{')",
                 (cid(0),))
    conn.commit()
    conn.close()
    with pytest.raises(JournalCorruptError, match=r"seq=2 \(accepted"):
        OrderJournal.open_sqlite(path)
    with pytest.raises(JournalCorruptError):  # not JournalLockedError: the failed open released its lock
        OrderJournal.open_sqlite(path)


def test_dropped_without_close_keeps_the_intent(tmp_path):
    path = tmp_path / "j.db"
    code = textwrap.dedent(f"""
        import os, sys
        from execution.orders import OrderJournal, Submitted
        from tests.support.orders import make_order, T0
        j = OrderJournal.open_sqlite({str(path)!r})
        j.record_intent(make_order("acct01.mom.0"))
        j.record_intent(make_order("acct01.mom.1"))
        j.apply("acct01.mom.1", Submitted(T0 + 1))
        os._exit(3)  # no close, no flush, no atexit: as abrupt as it gets without a signal
    """)
    rc = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120,
                        check=False)
    assert rc.returncode == 3, rc.stderr
    with OrderJournal.open_sqlite(path) as j:
        assert j.get("acct01.mom.0").status is S.NEW  # never sent: safe to cancel locally
        assert [s.client_order_id for s in j.in_flight()] == ["acct01.mom.1"]  # ask the venue first
        assert [s.client_order_id for s in j.open_orders()] == ["acct01.mom.0", "acct01.mom.1"]


_WRITER = textwrap.dedent("""
    import sys
    from execution.orders import Accepted, FillReceived, OrderJournal, Submitted, format_client_order_id
    from tests.support.orders import make_order, pool_fill, T0
    j = OrderJournal.open_sqlite(sys.argv[1])
    seq = j.next_sequence("crash", "mom")
    print("ready", flush=True)
    while True:
        cid = format_client_order_id("crash", "mom", seq)
        j.record_intent(make_order(cid, ts=T0 + seq)); print("intent", cid, flush=True)
        j.apply(cid, Submitted(T0 + seq)); print("submitted", cid, flush=True)
        j.apply(cid, Accepted(T0 + seq, "v%d" % seq)); print("accepted", cid, flush=True)
        j.apply(cid, FillReceived(T0 + seq, pool_fill(seq % 8))); print("fill", cid, flush=True)
        seq += 1
""")
_PROGRESS = {"intent": 0, "submitted": 1, "accepted": 2, "fill": 3}
_STATUS_PROGRESS = {S.NEW: 0, S.SUBMITTED: 1, S.ACCEPTED: 2, S.PARTIALLY_FILLED: 3}


def test_killed_mid_append_loses_nothing_acknowledged(tmp_path):
    path = tmp_path / "j.db"
    acked: dict[str, int] = {}
    for round_, n_lines in enumerate((37, 53, 21)):
        proc = subprocess.Popen([sys.executable, "-c", _WRITER, str(path)], cwd=REPO, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)
        try:
            assert proc.stdout.readline().strip() == "ready", proc.stderr.read()
            for _ in range(n_lines):
                kind, c = proc.stdout.readline().split()
                acked[c] = max(acked.get(c, 0), _PROGRESS[kind])
            os.kill(proc.pid, signal.SIGKILL)  # mid-loop: often inside an append
        finally:
            proc.wait(timeout=60)
            proc.stdout.close()
            proc.stderr.close()
        conn = sqlite3.connect(path)
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        conn.close()
        with OrderJournal.open_sqlite(path) as j:  # replays every record: nothing half-written
            for c, progress in acked.items():
                assert _STATUS_PROGRESS[j.get(c).status] >= progress, (round_, c)
            for snap in j.orders():
                assert snap.status in _STATUS_PROGRESS
                replay = OrderStateMachine.replay(snap.order, [t.event for t in snap.history])
                assert replay.snapshot() == snap
    assert len(acked) > 20


def _drive(journals, specs_per_order):
    """Apply the same random events to every journal; return the events each order accepted."""
    for k, specs in enumerate(specs_per_order):
        for j in journals:
            j.record_intent(make_order(cid(k), ts=T0 + k))
        for event in timed_events(specs):
            outcomes = []
            for j in journals:
                try:
                    outcomes.append(j.apply(cid(k), event))
                except TradingError as err:
                    outcomes.append(type(err))
            assert len(set(outcomes)) == 1, outcomes


@settings(max_examples=60, deadline=None)
@given(st.lists(event_specs, min_size=1, max_size=4))
def test_sqlite_replay_equals_the_live_state(specs_per_order):
    with tempfile.TemporaryDirectory(dir=_TMP) as d:
        path = Path(d) / "j.db"
        mem = OrderJournal.in_memory()
        live = OrderJournal.open_sqlite(path)
        _drive([mem, live], specs_per_order)
        expected = mem.orders()
        assert live.orders() == expected
        live.close()
        with OrderJournal.open_sqlite(path) as reopened:
            assert reopened.orders() == expected
            assert reopened.open_orders() == mem.open_orders()
            assert reopened.in_flight() == mem.in_flight()
        # and the in-memory store replays to the same state as well
        assert OrderJournal(mem._store).orders() == expected


@settings(max_examples=150, deadline=None)
@given(st.lists(event_specs, min_size=1, max_size=5))
def test_in_flight_is_exactly_the_orders_whose_outcome_is_unknown(specs_per_order):
    j = OrderJournal.in_memory()
    _drive([j], specs_per_order)
    everything = j.orders()
    assert j.in_flight() == [s for s in everything if s.status in (S.SUBMITTED, S.UNKNOWN)]
    assert j.open_orders() == [s for s in everything if not s.status.is_terminal]
    for s in j.in_flight():
        # sent (a Submitted event is in its history) and no venue answer since the last submit/timeout
        kinds = [t.event.kind.value for t in s.history]
        assert "submitted" in kinds and set(kinds) <= {"submitted", "timeout"}


def test_timeout_keeps_the_order_in_flight_until_the_venue_answers(journal):
    journal.record_intent(make_order(cid(0)))
    journal.apply(cid(0), Submitted(T0 + 1))
    journal.apply(cid(0), TimedOut(T0 + 2))
    assert [s.status for s in journal.in_flight()] == [S.UNKNOWN]
    journal.apply(cid(0), FillReceived(T0 + 3, pool_fill(0)))  # a stream report settles it
    assert journal.in_flight() == [] and journal.get(cid(0)).filled_qty == Decimal("0.1")
