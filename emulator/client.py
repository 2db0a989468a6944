"""A ccxt client pointed at the emulator (or any Binance-compatible base URL).

Builds on `market.ingest.rest.make_binance_client` (every URL rebased, /sapi calls off, ccxt's
blind rate limiter off) and adds one shim: ccxt picks Binance's per-market error tables
(`exceptions['spot'|'linear']`) by the URL's host name (api.binance.com, fapi.binance.com), which
a local URL never matches, so codes such as -2019, -4116, -5022, -2021, -2022 or -4164 would all
surface as a bare `ExchangeError`. The shim selects the table of the client's market instead, so
the emulator's answers raise exactly the exception classes the real hosts would.
"""

from __future__ import annotations

from urllib.parse import urlsplit

import ccxt
import ccxt.pro

from market.ingest.rest import _rebase_tree, make_binance_client

_TABLE = {"spot": "spot", "usdm": "linear"}


def make_emulator_client(market: str, base_url: str, api_key: str | None = None,
                         secret: str | None = None) -> ccxt.Exchange:
    client = make_binance_client(market, base_url=base_url, api_key=api_key, secret=secret)
    table = client.exceptions.get(_TABLE[market], {})

    def by_market(url, exact_or_broad):  # noqa: ARG001 — same signature as ccxt's method
        return table.get(exact_or_broad, {})

    client.get_exceptions_by_url = by_market
    return client


def make_emulator_pro_client(market: str, base_url: str, api_key: str | None = None,
                             secret: str | None = None) -> ccxt.pro.Exchange:
    """The async ccxt.pro client (ccxt.pro.binance / binanceusdm) with the same set-up as
    `make_emulator_client`: every URL rebased (websockets included: ws://host/ws, /ws-api/v3, ...),
    /sapi calls off, ccxt's limiter off, the market's error table. Close it with `await ex.close()`."""
    classes = {"spot": ccxt.pro.binance, "usdm": ccxt.pro.binanceusdm}
    params: dict = {"enableRateLimit": False}
    if api_key is not None:
        params["apiKey"] = api_key
    if secret is not None:
        params["secret"] = secret
    client = classes[market](params)
    client.options["fetchMarkets"] = {**client.options.get("fetchMarkets", {}),
                                      "types": ["spot"] if market == "spot" else ["linear"]}
    client.urls["api"] = _rebase_tree(client.urls["api"], urlsplit(base_url))
    client.options["fetchCurrencies"] = False
    client.options["fetchMargins"] = False
    table = client.exceptions.get(_TABLE[market], {})

    def by_market(url, exact_or_broad):  # same signature as ccxt's method
        return table.get(exact_or_broad, {})

    client.get_exceptions_by_url = by_market
    return client
