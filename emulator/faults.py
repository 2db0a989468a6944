"""Fault schedule, latency jitter, request-weight accounting and the request log of the emulator."""

from __future__ import annotations

import math
import threading
import time
from dataclasses import dataclass, replace

import numpy as np

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
