"""Fault schedule, latency jitter, request-weight accounting and the request log of the emulator."""

from __future__ import annotations

import math
import threading
import time
import zlib
from dataclasses import dataclass, replace
from typing import Literal

import numpy as np
from pydantic import Field

from core.config import FrozenConfig
from emulator.config import FaultConfig, FaultRule


@dataclass(frozen=True)
class RequestRecord:
    """One request as the server saw it (`params` without the signature)."""

    n: int  # 1-based over all requests
    method: str
    path: str
    endpoint: str
    params: dict[str, str]
    api_key: str | None
    t: float  # time.monotonic() on arrival
    market_ms: int
    status: int = 0  # 0: no answer was sent (drop / lost_ack)
    code: int | None = None  # Binance error code of an error answer
    fault: str | None = None


@dataclass
class _Installed:
    rule: FaultRule
    first: int  # 1-based index among matching requests (absolute count)


class FaultGate:
    """Decides what each request gets: a scheduled fault, a ban/429 from weight use, or nothing.

    Thread-safe (the test thread installs rules while the server thread admits requests).
    """

    def __init__(self, cfg: FaultConfig, window_s: float = 60.0):
        self.cfg = cfg
        self.window_s = window_s
        self._lock = threading.Lock()
        self._rules: list[_Installed] = []
        self._counts: dict[tuple[str | None, str | None], int] = {}
        self._rng = np.random.default_rng(cfg.seed)
        self._window_start = time.monotonic()
        self._used = 0
        self._backoff_until = 0.0
        self.records: list[RequestRecord] = []
        for r in cfg.rules:
            self.add(r)

    def add(self, rule: FaultRule) -> None:
        """Install `rule`; its `at` counts matching requests from now on."""
        with self._lock:
            seen = self._counts.get((rule.endpoint, rule.method), 0)
            self._rules.append(_Installed(rule, seen + rule.at))

    def clear(self) -> None:
        with self._lock:
            self._rules.clear()
            self._backoff_until = 0.0

    def admit(self, method: str, endpoint: str) -> FaultRule | None:
        """Count the request against every rule key and return the first rule that fires."""
        with self._lock:
            hit = None
            for key in {(None, None), (endpoint, None), (None, method), (endpoint, method)}:
                self._counts[key] = self._counts.get(key, 0) + 1
            for inst in self._rules:
                r = inst.rule
                k = self._counts[(r.endpoint, r.method)] if (r.endpoint in (None, endpoint) and
                                                              r.method in (None, method)) else 0
                if hit is None and inst.first <= k < inst.first + r.times:
                    hit = r
            return hit

    def latency_s(self) -> float:
        """Fixed latency plus seeded uniform jitter, in seconds (one draw per request)."""
        with self._lock:
            jitter = float(self._rng.uniform(0.0, self.cfg.jitter_ms)) if self.cfg.jitter_ms > 0 else 0.0
        return (self.cfg.latency_ms + jitter) / 1000.0

    def banned(self) -> int | None:
        """Seconds left of a back-off (a request now gets 418 and extends nothing), else None."""
        with self._lock:
            left = self._backoff_until - time.monotonic()
            return max(1, math.ceil(left)) if left > 0 else None

    def start_backoff(self, seconds: int) -> None:
        with self._lock:
            self._backoff_until = max(self._backoff_until, time.monotonic() + seconds)

    def charge(self, weight: int) -> tuple[int, int | None, int]:
        """Book `weight`; (200, None, used) or (429, retry_after, used) with a back-off started."""
        with self._lock:
            now = time.monotonic()
            if now - self._window_start >= self.window_s:
                self._window_start = now - ((now - self._window_start) % self.window_s)
                self._used = 0
            if self._used + weight > self.cfg.weight_limit:
                retry = max(1, math.ceil(self._window_start + self.window_s - now))
                self._backoff_until = now + retry
                return 429, retry, self._used
            self._used += weight
            return 200, None, self._used

    def used_weight(self) -> int:
        with self._lock:
            return self._used

    def log(self, rec: RequestRecord) -> RequestRecord:
        with self._lock:
            rec = replace(rec, n=len(self.records) + 1)
            self.records.append(rec)
            return rec

    def finish(self, rec: RequestRecord, status: int, code: int | None, fault: str | None) -> None:
        with self._lock:
            self.records[rec.n - 1] = replace(rec, status=status, code=code, fault=fault)


# -- websocket faults (emulator.ws_market / ws_user) ------------------------------------------------


class WsFaultRule(FrozenConfig):
    """A websocket fault on the messages whose label contains `stream` (None: every message).

    Labels are the stream names ("btcusdt@depth@100ms", "btcusdt@aggTrade", ...) and, for user-data
    messages, "user@<event type>" ("user@executionReport", "user@ORDER_TRADE_UPDATE", ...). Counting is
    per connection from the rule's installation: matching messages number `at`, …, `at + times − 1`
    (times None: all from `at` on) are each hit with `probability` (seeded: one generator per rule,
    connection and label, so a run is reproducible whatever else is connected).

    - drop: the message is not sent (the client sees a gap in update ids / trade ids);
    - delay: the message is sent `delay_s` later (later messages on that connection wait behind it,
      as on one TCP stream);
    - close: the server closes the connection instead of sending the message (close frame 1001, or
      the TCP connection is aborted when `abrupt`).
    """

    kind: Literal["drop", "delay", "close"]
    stream: str | None = None
    probability: float = Field(1.0, ge=0.0, le=1.0)
    at: int = Field(1, ge=1)
    times: int | None = Field(1, ge=1)
    delay_s: float = Field(0.0, ge=0.0, le=60.0)
    abrupt: bool = False


class WsFaultGate:
    """Decides, per connection and message, whether a websocket fault fires (loop thread only)."""

    def __init__(self, rules: tuple[WsFaultRule, ...] = (), seed: int = 0):
        self.seed = seed
        self._rules: list[tuple[int, WsFaultRule]] = []  # (rule id, rule); ids never reused
        self._next_id = 0
        self._seen: dict[tuple[int, int], int] = {}  # (rule id, connection id) → matching messages
        self._rngs: dict[tuple[int, int, str], np.random.Generator] = {}
        self.fired: list[tuple[str, int, str]] = []  # (kind, connection id, label)
        for r in rules:
            self.add(r)

    def add(self, rule: WsFaultRule) -> None:
        """Install `rule`; its `at` counts matching messages from now on."""
        self._rules.append((self._next_id, rule))
        self._next_id += 1

    def clear(self) -> None:
        self._rules.clear()

    def decide(self, conn_id: int, label: str) -> WsFaultRule | None:
        hit = None
        for k, r in self._rules:
            if r.stream is not None and r.stream not in label:
                continue
            n = self._seen.get((k, conn_id), 0) + 1
            self._seen[(k, conn_id)] = n
            if hit is not None or n < r.at or (r.times is not None and n >= r.at + r.times):
                continue
            if r.probability < 1.0:
                key = (k, conn_id, label)
                rng = self._rngs.get(key)
                if rng is None:
                    rng = self._rngs[key] = np.random.default_rng([self.seed, k, conn_id, zlib.crc32(label.encode())])
                if rng.random() >= r.probability:
                    continue
            hit = r
        if hit is not None:
            self.fired.append((hit.kind, conn_id, label))
        return hit
