"""The project's error hierarchy, split by what the caller should do next.

- `RetryableError`: transient; the same call may succeed later (network, 5xx, rate limit).
- `RejectedError`: the input is wrong; retrying the same input will fail again.
- `HaltError`: a component must stop taking new work (a strategy, a feed).
- `FatalError`: the process must stop.

Vendor exceptions (ccxt, sockets, SQL) are translated into these at the edge.
"""

from __future__ import annotations


class TradingError(Exception):
    """Base of every error raised on purpose by this project."""


class RetryableError(TradingError):
    """Transient failure: the same call may succeed later."""


class RateLimitedError(RetryableError):
    """The venue asked us to slow down (HTTP 429/418). `retry_after` is in seconds."""

    def __init__(self, message: str, retry_after: float | None = None, banned: bool = False):
        super().__init__(message)
        self.retry_after = retry_after
        self.banned = banned


class RejectedError(TradingError):
    """The input is invalid; repeating it will fail again."""


class ConfigError(RejectedError):
    """A configuration is invalid. The message names the key, the value and what was expected."""


class DataError(RejectedError):
    """Market data is invalid or cannot be parsed.

    `source` names the file / stream, `line` the 1-based line (or row) number where known,
    so that the user can find the problem.
    """

    def __init__(self, message: str, source: str | None = None, line: int | None = None):
        where = ""
        if source is not None:
            where = f" [{source}" + (f":{line}" if line is not None else "") + "]"
        super().__init__(message + where)
        self.source = source
        self.line = line
        self.reason = message


class SchemaError(DataError):
    """Columns or dtypes do not match what a reader or kernel expects."""


class HaltError(TradingError):
    """A component must stop taking new work."""


class FatalError(TradingError):
    """The process must stop."""
