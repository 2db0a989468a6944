"""Deterministic client order ids: `{namespace}.{strategy}.{sequence in base 36}`.

Binance accepts `^[.A-Z:/a-z0-9_-]{1,36}$` (spot and futures). The parts are capped so that every
id fits: namespace ≤ 10 characters `[A-Za-z0-9]`, strategy tag ≤ 14 characters `[A-Za-z0-9_-]`,
sequence 0 … 36¹⁰−1 written in lowercase base 36 without leading zeros, so that
`format_client_order_id(*parse_client_order_id(x)) == x` for every id we issue.

Uniqueness has two guards: (1) the journal continues the sequence after a restart
(`OrderJournal.next_sequence`) and refuses a duplicate intent before any venue call; (2) the
namespace names the account and the run (`run_namespace`), so that even a lost or fresh journal
never reissues an id that an earlier run sent.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from execution.orders.errors import InvalidClientOrderIdError

BINANCE_CLIENT_ID_RE = re.compile(r"^[.A-Z:/a-z0-9_-]{1,36}$")
MAX_CLIENT_ID_LENGTH = 36
NAMESPACE_RE = re.compile(r"^[A-Za-z0-9]{1,10}$")
STRATEGY_TAG_RE = re.compile(r"^[A-Za-z0-9_-]{1,14}$")
ACCOUNT_TAG_RE = re.compile(r"^[A-Za-z0-9]{1,3}$")
SEQUENCE_DIGITS = 10
MAX_SEQUENCE = 36**SEQUENCE_DIGITS - 1
_SEQUENCE_RE = re.compile(r"^(0|[1-9a-z][0-9a-z]{0,9})$")
_DIGITS = "0123456789abcdefghijklmnopqrstuvwxyz"
_SEP = "."


def _base36(n: int, width: int = 1) -> str:
    out = []
    while n:
        n, r = divmod(n, 36)
        out.append(_DIGITS[r])
    return "".join(reversed(out)).rjust(width, "0") or "0"


def _check_namespace(namespace: str) -> None:
    if not isinstance(namespace, str) or not NAMESPACE_RE.match(namespace):
        raise InvalidClientOrderIdError(
            f"namespace={namespace!r}: must be 1-10 characters of [A-Za-z0-9]")


def _check_strategy(strategy: str) -> None:
    if not isinstance(strategy, str) or not STRATEGY_TAG_RE.match(strategy):
        raise InvalidClientOrderIdError(
            f"strategy={strategy!r}: must be 1-14 characters of [A-Za-z0-9_-] (map long strategy ids to a short tag)")


def _check_sequence(sequence: int) -> None:
    if isinstance(sequence, bool) or not isinstance(sequence, int) or not 0 <= sequence <= MAX_SEQUENCE:
        raise InvalidClientOrderIdError(f"sequence={sequence!r}: must be an int in [0, {MAX_SEQUENCE}]")


@dataclass(frozen=True, slots=True)
class ClientOrderId:
    """The parts of one of our client order ids."""

    namespace: str
    strategy: str
    sequence: int

    def __post_init__(self) -> None:
        _check_namespace(self.namespace)
        _check_strategy(self.strategy)
        _check_sequence(self.sequence)

    def __str__(self) -> str:
        return _SEP.join((self.namespace, self.strategy, _base36(self.sequence)))


def format_client_order_id(namespace: str, strategy: str, sequence: int) -> str:
    """The id of order number `sequence` of `strategy` in `namespace`; ≤ 36 chars, Binance charset."""
    return str(ClientOrderId(namespace, strategy, sequence))


def parse_client_order_id(text: str) -> ClientOrderId:
    """Inverse of `format_client_order_id`; raises `InvalidClientOrderIdError` for any other string
    (e.g. ids of orders placed by hand in the venue's UI)."""
    if not isinstance(text, str) or not BINANCE_CLIENT_ID_RE.match(text):
        raise InvalidClientOrderIdError(f"client_order_id={text!r}: not a valid Binance client order id")
    parts = text.split(_SEP)
    if len(parts) != 3 or not _SEQUENCE_RE.match(parts[2]):
        raise InvalidClientOrderIdError(
            f"client_order_id={text!r}: expected namespace.strategy.sequence (base 36, no leading zeros)")
    return ClientOrderId(parts[0], parts[1], int(parts[2], 36))


def is_our_client_order_id(text: str, namespace: str | None = None) -> bool:
    """True if `text` parses as one of our ids (in `namespace`, when given)."""
    try:
        cid = parse_client_order_id(text)
    except InvalidClientOrderIdError:
        return False
    return namespace is None or cid.namespace == namespace


def run_namespace(account_tag: str, run_started_ns: int) -> str:
    """Namespace of one run of one account: the tag (1-3 chars) and the run's start second in base 36
    (7 digits, valid until year 4453). Two runs of the same account must start in different seconds;
    the journal's sequence continuity is the other guard."""
    if not isinstance(account_tag, str) or not ACCOUNT_TAG_RE.match(account_tag):
        raise InvalidClientOrderIdError(f"account_tag={account_tag!r}: must be 1-3 characters of [A-Za-z0-9]")
    if isinstance(run_started_ns, bool) or not isinstance(run_started_ns, int) or run_started_ns < 0:
        raise InvalidClientOrderIdError(f"run_started_ns={run_started_ns!r}: must be a non-negative int (UTC ns)")
    seconds = run_started_ns // 1_000_000_000
    if seconds >= 36**7:
        raise InvalidClientOrderIdError(f"run_started_ns={run_started_ns}: beyond the 7-digit base-36 range")
    return account_tag + _base36(seconds, 7)


class ClientOrderIdFactory:
    """Issues the ids of one strategy in one namespace, in sequence order. Start it at
    `OrderJournal.next_sequence(namespace, strategy)` after a restart."""

    def __init__(self, namespace: str, strategy: str, next_sequence: int = 0):
        _check_namespace(namespace)
        _check_strategy(strategy)
        _check_sequence(next_sequence)
        self.namespace = namespace
        self.strategy = strategy
        self._next = next_sequence

    @property
    def next_sequence(self) -> int:
        return self._next

    def next_id(self) -> str:
        cid = format_client_order_id(self.namespace, self.strategy, self._next)
        self._next += 1
        return cid
