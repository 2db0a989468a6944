"""WeightLimiter in virtual time: budget, server sync, 429/418 blocks, back-off, thread safety."""

from __future__ import annotations

import random
import threading

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from core.errors import ConfigError, RateLimitedError
from market.ingest.rate_limit import (
    RateLimitConfig,
    WeightLimiter,
    endpoint_weight,
    header_value,
    retry_after_from_headers,
)

S = 1_000_000_000


class VirtualTime:
    """Monotonic ns clock that only moves when someone sleeps (thread-safe)."""

    def __init__(self, start_ns: int = 1_000 * S):
        self.now = start_ns
        self.sleeps: list[float] = []
        self._lock = threading.Lock()

    def clock(self) -> int:
        with self._lock:
            return self.now

    def sleep(self, seconds: float) -> None:
        with self._lock:
            self.sleeps.append(seconds)
            self.now += int(round(seconds * S))


def make(limit=10, window_s=60.0, **kw):
    vt = VirtualTime()
    lim = WeightLimiter(RateLimitConfig(weight_limit=limit, window_s=window_s, **kw), clock=vt.clock, sleeper=vt.sleep)
    return lim, vt


def test_endpoint_weights_match_binance_table():
    assert endpoint_weight("spot", "aggTrades") == 4
    assert endpoint_weight("spot", "klines", 1000) == 2
    assert endpoint_weight("spot", "exchangeInfo") == 20
    assert endpoint_weight("usdm", "aggTrades", 1000) == 20
    assert endpoint_weight("usdm", "exchangeInfo") == 1
    got = [endpoint_weight("usdm", "klines", n) for n in (1, 99, 100, 499, 500, 1000, 1001, 1500)]
    assert got == [1, 1, 2, 2, 5, 5, 10, 10]
    assert endpoint_weight("usdm", "klines") == 5  # Binance default limit 500
    with pytest.raises(ConfigError, match="depth"):
        endpoint_weight("spot", "depth")
    with pytest.raises(ConfigError, match="coinm"):
        endpoint_weight("coinm", "aggTrades")


def test_market_presets_and_bad_config():
    assert RateLimitConfig.for_market("spot").weight_limit == 6000
    assert RateLimitConfig.for_market("usdm").weight_limit == 2400
    assert RateLimitConfig.for_market("usdm", weight_limit=1200).weight_limit == 1200
    with pytest.raises(ConfigError):
        RateLimitConfig.for_market("coinm")
    with pytest.raises(ConfigError, match="backoff_max_s"):
        RateLimitConfig(backoff_base_s=10, backoff_max_s=1)
    with pytest.raises(ConfigError, match="weight_limt = 5: unknown key"):
        RateLimitConfig(weight_limt=5)


def test_headers_are_case_insensitive():
    assert header_value({"X-MBX-USED-WEIGHT-1M": "7"}, "x-mbx-used-weight-1m") == "7"
    assert retry_after_from_headers({"retry-after": "3"}) == 3.0
    assert retry_after_from_headers({"Retry-After": "soon"}) is None
    assert retry_after_from_headers({"Retry-After": "-1"}) is None
    assert retry_after_from_headers(None) is None


def test_acquire_waits_until_oldest_weight_leaves_window():
    lim, vt = make(limit=10)
    assert lim.acquire(6) == 0.0
    vt.sleep(10)  # t = 10 s
    assert lim.acquire(4) == 0.0
    assert lim.headroom() == 0.0
    waited = lim.acquire(5)  # needs the 6 granted at t=0 to expire: at t = 60 s (+1 ns)
    assert waited == pytest.approx(50.0, abs=1e-6)
    assert lim.used_weight() == 9  # 4 (t=10) + 5 (t=60)
    assert lim.headroom() == pytest.approx(0.1)
    st_ = lim.stats()
    assert (st_.acquires, st_.waits, st_.granted_weight) == (3, 1, 15)


def test_bad_weights_rejected():
    lim, _ = make(limit=10)
    for w in (0, -1, 11):
        with pytest.raises(ConfigError, match="weight"):
            lim.acquire(w)


def test_server_count_wins_when_higher():
    lim, vt = make(limit=100)
    lim.acquire(5)
    lim.record_response({"X-MBX-USED-WEIGHT-1M": "95"})  # another process on our IP used 90
    assert lim.used_weight() == 95
    lim.record_response({"x-mbx-used-weight-1m": "20"})  # lower: ours stays
    assert lim.used_weight() == 95
    assert lim.acquire(5) == 0.0
    assert lim.acquire(1) == pytest.approx(60.0, abs=1e-6)  # everything booked at t0 must expire


def test_retry_after_blocks_everyone_for_exactly_that_long():
    lim, vt = make(limit=100)
    t0 = vt.now
    assert lim.on_rate_limited(7.0) == 7.0
    assert lim.headroom() == 0.0
    assert lim.acquire(1) == pytest.approx(7.0)
    assert vt.now - t0 == 7 * S
    assert lim.bans == 0


def test_ban_is_recorded_and_long_block_raises_without_sleeping():
    lim, vt = make(limit=100, max_block_s=30)
    lim.on_rate_limited(120, banned=True)
    assert lim.bans == 1 and lim.banned_until_ns == vt.now + 120 * S
    with pytest.raises(RateLimitedError) as ei:
        lim.acquire(1)
    assert ei.value.banned is True and ei.value.retry_after == pytest.approx(120.0)
    assert vt.sleeps == []
    vt.sleep(120)
    assert lim.acquire(1) == 0.0


def test_backoff_without_retry_after_is_exponential_with_seeded_jitter():
    lim, vt = make(limit=100, backoff_base_s=1.0, backoff_max_s=20.0, jitter=0.5, seed=42)
    rng = random.Random(42)
    expected = [min(20.0, min(20.0, 2.0**n) * (1 + 0.5 * rng.random())) for n in range(7)]
    got = [lim.on_rate_limited(None) for _ in range(7)]
    assert got == expected
    assert got[0] < 1.5 and 8.0 <= got[3] < 12.0 and got[6] == 20.0
    lim.record_response({})  # a success resets the sequence
    assert lim.on_rate_limited(None) < 1.5


ops = st.lists(
    st.one_of(
        st.tuples(st.just("acquire"), st.integers(1, 50)),
        st.tuples(st.just("idle"), st.floats(0, 90)),
        st.tuples(st.just("server"), st.integers(0, 120)),
        st.tuples(st.just("429"), st.one_of(st.none(), st.floats(0, 5))),
    ),
    max_size=80,
)


@settings(max_examples=150, deadline=None)
@given(ops=ops, limit=st.integers(50, 120))
def test_weight_in_any_window_never_exceeds_budget(ops, limit):
    lim, vt = make(limit=limit, window_s=60.0, backoff_max_s=5.0)
    grants: list[tuple[int, int]] = []
    for kind, arg in ops:
        if kind == "acquire":
            lim.acquire(arg)
            grants.append((vt.now, arg))
        elif kind == "idle":
            vt.sleep(arg)
        elif kind == "server":
            lim.record_response({"X-MBX-USED-WEIGHT-1M": str(arg)})
        else:
            lim.on_rate_limited(arg)
    # The heaviest 60 s window starts at some grant: check every one.
    for t, _ in grants:
        inside = sum(w for s, w in grants if t <= s < t + 60 * S)
        assert inside <= limit
    assert lim.used_weight() <= limit + 120  # server bookings may exceed ours, never unbounded


class RecordingLimiter(WeightLimiter):
    """Records each grant under the limiter's lock (the grant happens in the same lock hold)."""

    grants: list

    def _wait_needed_ns(self, now, weight):
        wait = super()._wait_needed_ns(now, weight)
        if wait == 0:
            self.grants.append((now, weight))
        return wait


def test_threads_share_one_budget():
    vt = VirtualTime()
    lim = RecordingLimiter(RateLimitConfig(weight_limit=20, window_s=1.0), clock=vt.clock, sleeper=vt.sleep)
    lim.grants = []

    def worker():
        for _ in range(30):
            lim.acquire(3)

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert len(lim.grants) == 120
    for t, _ in lim.grants:
        assert sum(w for s, w in lim.grants if t <= s < t + S) <= 20
