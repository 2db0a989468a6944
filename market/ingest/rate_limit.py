"""Client-side, weight-aware rate limiter for the Binance REST API.

Binance meters every IP by request *weight* (not request count): spot allows 6000 weight per
minute, USD-M futures 2400 (`REQUEST_WEIGHT` / 1 MINUTE in exchangeInfo). Exceeding it returns
HTTP 429 with `Retry-After`; continuing while told to back off returns 418 (an IP ban that grows
from minutes to days). ccxt's own limiter sleeps a fixed interval per call regardless of weight
(DESIGN §8), so we disable it and use this one instead.

`WeightLimiter` keeps a log of the weight it granted and lets a request through only if the weight
granted in the last `window_s` seconds plus the new weight fits the budget. A sliding log (not a
fixed minute bucket) is used because it bounds the weight in *every* window of `window_s` seconds,
including windows that straddle the server's minute boundary; that is the stronger guarantee and
costs nothing at these request rates. The server's own count (`X-MBX-USED-WEIGHT-1M`) wins when it
is higher, since other processes on the same IP spend the same budget.

Time is injected: `clock()` returns monotonic nanoseconds and `sleeper(seconds)` blocks, so tests
run the limiter in virtual time. The limiter is thread-safe: one instance may be shared by every
thread that talks to the same venue from the same IP.
"""

from __future__ import annotations

import math
import random
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from pydantic import Field, model_validator

from core.config import FrozenConfig
from core.errors import ConfigError, RateLimitedError
from core.time import NS_PER_S

USED_WEIGHT_HEADER = "x-mbx-used-weight-1m"
RETRY_AFTER_HEADER = "retry-after"

# Documented Binance REQUEST_WEIGHT budgets per minute.
SPOT_WEIGHT_PER_MINUTE = 6000
USDM_WEIGHT_PER_MINUTE = 2400

# Fixed endpoint weights; fapi klines depends on `limit` and is handled in `endpoint_weight`.
_FIXED_WEIGHTS: dict[tuple[str, str], int] = {
    ("spot", "aggTrades"): 4,
    ("spot", "klines"): 2,
    ("spot", "exchangeInfo"): 20,
    ("spot", "time"): 1,
    ("spot", "ping"): 1,
    ("usdm", "aggTrades"): 20,
    ("usdm", "exchangeInfo"): 1,
    ("usdm", "time"): 1,
    ("usdm", "ping"): 1,
}


def endpoint_weight(market: str, endpoint: str, limit: int | None = None) -> int:
    """Request weight Binance charges for `endpoint` ("aggTrades", "klines", "exchangeInfo",
    "time", "ping") on `market` ("spot" or "usdm").

    USD-M klines weigh by `limit` (Binance default 500): 1-99 → 1, 100-499 → 2, 500-1000 → 5,
    above 1000 → 10. Unknown pairs raise `ConfigError` rather than guessing a weight.
    """
    if market == "usdm" and endpoint == "klines":
        n = 500 if limit is None else int(limit)
        if n < 1:
            raise ConfigError(f"klines limit must be >= 1, got {n}")
        if n < 100:
            return 1
        if n < 500:
            return 2
        if n <= 1000:
            return 5
        return 10
    try:
        return _FIXED_WEIGHTS[(market, endpoint)]
    except KeyError:
        known = sorted({e for _, e in _FIXED_WEIGHTS} | {"klines"})
        raise ConfigError(
            f"no request weight known for endpoint {endpoint!r} on market {market!r}; "
            f"markets: ['spot', 'usdm'], endpoints: {known}"
        ) from None


def header_value(headers: Mapping[str, str] | None, name: str) -> str | None:
    """Case-insensitive header lookup that works on plain dicts as well as requests' headers."""
    if not headers:
        return None
    lname = name.lower()
    for key, value in headers.items():
        if key.lower() == lname:
            return value
    return None


def retry_after_from_headers(headers: Mapping[str, str] | None) -> float | None:
    """`Retry-After` in seconds, or None when absent or not a non-negative number.

    Binance sends integer seconds; an HTTP-date form is not used by Binance and is treated as
    absent (the caller then falls back to exponential backoff).
    """
    raw = header_value(headers, RETRY_AFTER_HEADER)
    if raw is None:
        return None
    try:
        value = float(raw)
    except ValueError:
        return None
    if not math.isfinite(value) or value < 0:
        return None
    return value


class RateLimitConfig(FrozenConfig):
    """Budget and back-off settings of a `WeightLimiter`."""

    weight_limit: int = Field(SPOT_WEIGHT_PER_MINUTE, gt=0, description="weight allowed per window")
    window_s: float = Field(60.0, gt=0)
    backoff_base_s: float = Field(1.0, gt=0, description="first back-off delay without Retry-After")
    backoff_max_s: float = Field(60.0, gt=0)
    jitter: float = Field(0.25, ge=0, le=1, description="delay is multiplied by 1 + jitter * U[0,1)")
    seed: int = 0
    max_block_s: float = Field(
        600.0, gt=0, description="a block longer than this raises RateLimitedError instead of sleeping"
    )

    @model_validator(mode="after")
    def _backoff_order(self) -> "RateLimitConfig":
        if self.backoff_max_s < self.backoff_base_s:
            raise ValueError(f"backoff_max_s ({self.backoff_max_s}) < backoff_base_s ({self.backoff_base_s})")
        return self

    @classmethod
    def for_market(cls, market: str, **overrides) -> "RateLimitConfig":
        """Binance's documented budget for `market` ("spot" or "usdm"), with optional overrides."""
        limits = {"spot": SPOT_WEIGHT_PER_MINUTE, "usdm": USDM_WEIGHT_PER_MINUTE}
        if market not in limits:
            raise ConfigError(f"unknown market {market!r}; expected one of {sorted(limits)}")
        return cls(**{"weight_limit": limits[market], **overrides})


@dataclass(frozen=True)
class LimiterStats:
    """Counters for metrics (snapshot)."""

    granted_weight: int
    acquires: int
    waits: int
    waited_s: float
    rate_limited: int
    bans: int
    headroom: float


class WeightLimiter:
    """Blocks callers until their request weight fits the rolling budget (thread-safe).

    Call `acquire(weight)` before each request, `record_response(headers)` after each response that
    carries headers, and `on_rate_limited(retry_after, banned=...)` on 429/418.
    """

    def __init__(
        self,
        config: RateLimitConfig | None = None,
        *,
        clock: Callable[[], int] = time.monotonic_ns,
        sleeper: Callable[[float], None] = time.sleep,
    ):
        self.config = config if config is not None else RateLimitConfig()
        self._clock = clock
        self._sleeper = sleeper
        self._lock = threading.Lock()
        self._window_ns = int(round(self.config.window_s * NS_PER_S))
        self._log: deque[tuple[int, int]] = deque()  # (granted at ns, weight), oldest first
        self._in_window = 0  # sum of weights in _log
        self._blocked_until_ns = 0
        self._consecutive_limited = 0
        self._rng = random.Random(self.config.seed)
        self._granted = 0
        self._acquires = 0
        self._waits = 0
        self._waited_ns = 0
        self._rate_limited = 0
        self._bans = 0
        self.banned_until_ns: int | None = None

    # -- budget -------------------------------------------------------------------------------

    def _expire(self, now: int) -> None:
        cutoff = now - self._window_ns
        while self._log and self._log[0][0] <= cutoff:
            self._in_window -= self._log.popleft()[1]

    def _wait_needed_ns(self, now: int, weight: int) -> int:
        """0 if `weight` may go now, else how long until it might (lock held)."""
        if now < self._blocked_until_ns:
            return self._blocked_until_ns - now
        self._expire(now)
        if self._in_window + weight <= self.config.weight_limit:
            return 0
        # Oldest entries expire first; find when enough of them have left the window.
        excess = self._in_window + weight - self.config.weight_limit
        freed = 0
        for ts, w in self._log:
            freed += w
            if freed >= excess:
                return ts + self._window_ns - now + 1
        raise AssertionError("unreachable: weight <= limit is checked in acquire")

    def acquire(self, weight: int) -> float:
        """Block until `weight` fits the budget, then record it. Returns the seconds waited.

        Raises `ConfigError` if `weight` can never fit and `RateLimitedError` (with `banned` set
        after a 418) if the required wait exceeds `config.max_block_s`.
        """
        if weight <= 0 or weight > self.config.weight_limit:
            raise ConfigError(f"request weight {weight} must be in 1..{self.config.weight_limit}")
        start: int | None = None
        while True:
            with self._lock:
                now = self._clock()
                if start is None:
                    start = now
                wait = self._wait_needed_ns(now, weight)
                if wait == 0:
                    self._log.append((now, weight))
                    self._in_window += weight
                    self._granted += weight
                    self._acquires += 1
                    self._waited_ns += now - start
                    return (now - start) / NS_PER_S
                if wait > self.config.max_block_s * NS_PER_S:
                    banned = self.banned_until_ns is not None and now < self.banned_until_ns
                    raise RateLimitedError(
                        f"rate limiter would block {wait / NS_PER_S:.1f} s "
                        f"(> max_block_s {self.config.max_block_s})" + (" after an IP ban (418)" if banned else ""),
                        retry_after=wait / NS_PER_S,
                        banned=banned,
                    )
                if now == start:
                    self._waits += 1
            # Sleep outside the lock so other threads can record responses meanwhile.
            self._sleeper(wait / NS_PER_S)

    # -- feedback from the server -------------------------------------------------------------

    def record_response(self, headers: Mapping[str, str] | None) -> None:
        """Sync with `X-MBX-USED-WEIGHT-1M` from a successful response.

        When the server counts more than we granted in the window (other clients on the IP, or a
        window we cannot see), the difference is booked now, so it stays counted for a full window;
        that over-estimates the server's fixed-minute bucket, which is the safe side. A success also
        resets the back-off sequence.
        """
        raw = header_value(headers, USED_WEIGHT_HEADER)
        with self._lock:
            self._consecutive_limited = 0
            if raw is None:
                return
            try:
                used = int(raw)
            except ValueError:
                return
            now = self._clock()
            self._expire(now)
            if used > self._in_window:
                self._log.append((now, used - self._in_window))
                self._in_window = used

    def on_rate_limited(self, retry_after: float | None, *, banned: bool = False) -> float:
        """Block every caller after a 429 (or a 418 ban when `banned`). Returns the block in seconds.

        With `retry_after` (seconds) the block lasts exactly that long; without it, exponential
        back-off with seeded jitter over the consecutive rate-limit responses.
        """
        with self._lock:
            self._rate_limited += 1
            if retry_after is None:
                delay = self._backoff_locked(self._consecutive_limited)
            else:
                delay = float(retry_after)
            self._consecutive_limited += 1
            now = self._clock()
            until = now + int(math.ceil(delay * NS_PER_S))
            self._blocked_until_ns = max(self._blocked_until_ns, until)
            if banned:
                self._bans += 1
                self.banned_until_ns = max(self.banned_until_ns or 0, until)
            return delay

    def _backoff_locked(self, attempt: int) -> float:
        cfg = self.config
        base = min(cfg.backoff_max_s, cfg.backoff_base_s * (2.0 ** min(attempt, 62)))
        return min(cfg.backoff_max_s, base * (1.0 + cfg.jitter * self._rng.random()))

    def backoff_delay(self, attempt: int) -> float:
        """Back-off in seconds before retry number `attempt` (0-based) of a transient failure."""
        with self._lock:
            return self._backoff_locked(attempt)

    def sleep(self, seconds: float) -> None:
        """Sleep through the injected sleeper (only the calling thread waits)."""
        if seconds > 0:
            self._sleeper(seconds)

    # -- metrics ------------------------------------------------------------------------------

    def headroom(self) -> float:
        """Fraction of the budget left in the current window (0.0 while blocked by a 429/418)."""
        with self._lock:
            now = self._clock()
            if now < self._blocked_until_ns:
                return 0.0
            self._expire(now)
            return max(0.0, 1.0 - self._in_window / self.config.weight_limit)

    def used_weight(self) -> int:
        """Weight counted in the current window."""
        with self._lock:
            self._expire(self._clock())
            return self._in_window

    @property
    def bans(self) -> int:
        return self._bans

    def stats(self) -> LimiterStats:
        headroom = self.headroom()
        with self._lock:
            return LimiterStats(
                granted_weight=self._granted,
                acquires=self._acquires,
                waits=self._waits,
                waited_s=self._waited_ns / NS_PER_S,
                rate_limited=self._rate_limited,
                bans=self._bans,
                headroom=headroom,
            )
