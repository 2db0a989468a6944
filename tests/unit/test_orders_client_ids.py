"""Client order ids: deterministic, unique over (namespace, strategy, sequence), ≤ 36 chars in
Binance's charset, parsed back exactly; bad inputs refused."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from core.errors import RejectedError
from execution.orders import (
    BINANCE_CLIENT_ID_RE,
    MAX_SEQUENCE,
    ClientOrderId,
    ClientOrderIdFactory,
    InvalidClientOrderIdError,
    format_client_order_id,
    is_our_client_order_id,
    parse_client_order_id,
    run_namespace,
)

namespaces = st.text("ABCXYZabcxyz0189", min_size=1, max_size=10)
strategies_ = st.text("ABab09_-", min_size=1, max_size=14)
sequences = st.integers(0, MAX_SEQUENCE)


def test_known_values():
    assert format_client_order_id("a1", "mom", 0) == "a1.mom.0"
    assert format_client_order_id("a1", "mom", 35) == "a1.mom.z"
    assert format_client_order_id("a1", "mom", 36) == "a1.mom.10"
    longest = format_client_order_id("N" * 10, "s" * 14, MAX_SEQUENCE)
    assert longest == "N" * 10 + "." + "s" * 14 + "." + "z" * 10 and len(longest) == 36
    assert run_namespace("ft", 1_700_000_000_123_456_789) == "ft0s44we8"  # 1700000000 s in base 36, 7 digits
    assert int("0s44we8", 36) == 1_700_000_000


@settings(max_examples=300, deadline=None)
@given(namespaces, strategies_, sequences)
def test_valid_deterministic_round_trip(ns, strat, seq):
    cid = format_client_order_id(ns, strat, seq)
    assert cid == format_client_order_id(ns, strat, seq)
    assert len(cid) <= 36 and BINANCE_CLIENT_ID_RE.match(cid)
    assert parse_client_order_id(cid) == ClientOrderId(ns, strat, seq)
    assert str(parse_client_order_id(cid)) == cid
    assert is_our_client_order_id(cid) and is_our_client_order_id(cid, ns)
    assert not is_our_client_order_id(cid, ns + "x")


@settings(max_examples=300, deadline=None)
@given(st.tuples(namespaces, strategies_, sequences), st.tuples(namespaces, strategies_, sequences))
def test_unique(a, b):
    assert (format_client_order_id(*a) == format_client_order_id(*b)) == (a == b)


def test_factory_continues_a_sequence():
    f = ClientOrderIdFactory("ftabc", "mom", next_sequence=41)
    assert [f.next_id() for _ in range(2)] == ["ftabc.mom.15", "ftabc.mom.16"]
    assert f.next_sequence == 43
    g = ClientOrderIdFactory("ftabc", "mom", next_sequence=MAX_SEQUENCE)
    g.next_id()
    with pytest.raises(InvalidClientOrderIdError):
        g.next_id()


def test_run_namespaces_differ_between_runs():
    a = run_namespace("ft", 1_700_000_000 * 10**9)
    b = run_namespace("ft", 1_700_000_001 * 10**9)
    assert a != b and len(a) == 9
    assert format_client_order_id(a, "mom", 0) != format_client_order_id(b, "mom", 0)


@pytest.mark.parametrize("args", [
    ("", "mom", 0), ("a.b", "mom", 0), ("a" * 11, "mom", 0), ("ns_1", "mom", 0),
    ("ns", "", 0), ("ns", "m.o", 0), ("ns", "s" * 15, 0), ("ns", "mom/1", 0),
    ("ns", "mom", -1), ("ns", "mom", MAX_SEQUENCE + 1), ("ns", "mom", 1.0), ("ns", "mom", True), ("ns", "mom", "1"),
])
def test_bad_parts_rejected(args):
    with pytest.raises(InvalidClientOrderIdError) as info:
        format_client_order_id(*args)
    assert isinstance(info.value, RejectedError)


@pytest.mark.parametrize("text", [
    "", "web_abc123", "a.mom", "a.mom.0.1", "a.mom.01", "a.mom.A", "a.mom.", ".mom.1", "a..1",
    "a.mom." + "1" * 11, "x" * 37, "a.mom.1 ", "a.m@m.1", 12,
])
def test_foreign_or_malformed_ids_do_not_parse(text):
    with pytest.raises(InvalidClientOrderIdError):
        parse_client_order_id(text)
    assert not is_our_client_order_id(text)


@pytest.mark.parametrize("tag,ts", [("", 0), ("abcd", 0), ("a-b", 0), ("ft", -1), ("ft", 36**7 * 10**9), ("ft", 1.0)])
def test_bad_run_namespace_inputs(tag, ts):
    with pytest.raises(InvalidClientOrderIdError):
        run_namespace(tag, ts)
