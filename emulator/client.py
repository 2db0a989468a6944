"""A ccxt client pointed at the emulator (or any Binance-compatible base URL).

Builds on `market.ingest.rest.make_binance_client` (every URL rebased, /sapi calls off, ccxt's
blind rate limiter off) and adds one shim: ccxt picks Binance's per-market error tables
(`exceptions['spot'|'linear']`) by the URL's host name (api.binance.com, fapi.binance.com), which
a local URL never matches, so codes such as -2019, -4116, -5022, -2021, -2022 or -4164 would all
surface as a bare `ExchangeError`. The shim selects the table of the client's market instead, so
the emulator's answers raise exactly the exception classes the real hosts would.
"""

from __future__ import annotations

import ccxt

from market.ingest.rest import make_binance_client

_TABLE = {"spot": "spot", "usdm": "linear"}


def make_emulator_client(market: str, base_url: str, api_key: str | None = None,
                         secret: str | None = None) -> ccxt.Exchange:
    client = make_binance_client(market, base_url=base_url, api_key=api_key, secret=secret)
    table = client.exceptions.get(_TABLE[market], {})

    def by_market(url, exact_or_broad):  # noqa: ARG001 — same signature as ccxt's method
        return table.get(exact_or_broad, {})

    client.get_exceptions_by_url = by_market
    return client
