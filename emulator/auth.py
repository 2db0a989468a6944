"""Signed-endpoint checks exactly as Binance does them (HMAC-SHA256, SIGNED endpoints).

totalParams = query string + request body (concatenated as sent, without the `signature`
parameter); signature = hex HMAC-SHA256(secret, totalParams); the API key travels in the
X-MBX-APIKEY header. Then: timestamp mandatory; recvWindow ≤ 60000 (default 5000); accepted when
timestamp < serverTime + 1000 and serverTime − timestamp ≤ recvWindow. serverTime here is the wall
clock (the auth clock), never the replay clock: a client signs with its own clock.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Callable

from emulator import errors as E

_SIG = re.compile(r"(?:^|&)signature=([^&]*)")
_KEY_FORMAT = re.compile(r"^[A-Za-z0-9_\-]{1,128}$")


def _strip_signature(raw: str) -> tuple[str, str | None]:
    m = _SIG.search(raw)
    if m is None:
        return raw, None
    rest = raw[: m.start()] + raw[m.end():]
    if m.start() == 0 and rest.startswith("&"):
        rest = rest[1:]
    return rest, m.group(1)


def check_api_key(api_key: str | None, secrets: dict[str, str]) -> str:
    """Returns the secret of `api_key`; -2014 when missing/malformed, -2015 when unknown (HTTP 401)."""
    if not api_key or not _KEY_FORMAT.match(api_key):
        raise E.err(E.BAD_KEY_FORMAT, 401)
    secret = secrets.get(api_key)
    if secret is None:
        raise E.err(E.BAD_KEY, 401)
    return secret


def verify_signed(query: str, body: str, params: dict[str, str], secret: str, server_ms: int,
                  default_recv_window: int = 5000) -> None:
    """Raise ApiError unless the request's signature and timestamp are valid."""
    q, sig_q = _strip_signature(query)
    b, sig_b = _strip_signature(body)
    signature = sig_q or sig_b
    if not signature:
        raise E.mandatory("signature")
    payload = (q + b).encode()
    expected = hmac.new(secret.encode(), payload, hashlib.sha256).hexdigest()
    if not hmac.compare_digest(expected, signature.lower()):
        raise E.err(E.BAD_SIGNATURE)
    ts_raw = params.get("timestamp")
    if not ts_raw:
        raise E.mandatory("timestamp")
    if not ts_raw.isdigit():
        raise E.illegal("timestamp")
    rw_raw = params.get("recvWindow")
    recv_window = default_recv_window
    if rw_raw is not None:
        if not rw_raw.isdigit():
            raise E.illegal("recvWindow")
        recv_window = int(rw_raw)
        if recv_window > 60_000:
            raise E.err(E.RECV_WINDOW_TOO_LARGE)
    ts = int(ts_raw)
    if ts >= server_ms + 1000:
        raise E.err(E.TS_AHEAD)
    if server_ms - ts > recv_window:
        raise E.err(E.TS_OUTSIDE)


def sign(query: str, secret: str) -> str:
    """The signature a client sends for `query` (helper for tests and tools)."""
    return hmac.new(secret.encode(), query.encode(), hashlib.sha256).hexdigest()


WallClock = Callable[[], int]
