"""Helpers for tests of code that talks to the emulator: manual-clock servers and expected fills
computed independently from the replayed tape and the fill model parameters."""

from __future__ import annotations

import math

from emulator import AccountConfig, EmulatorConfig, EmulatorServer
from execution.fill_model import market_fill_price_nb

KEY, SECRET = "test-key", "test-secret"
N_TRADES = 4000
BTC = "BTCUSDT"


def make_server(market: str, balances: dict[str, float] | None = None, **overrides) -> EmulatorServer:
    acct = AccountConfig(api_key=KEY, secret=SECRET, balances=balances or {"USDT": 10_000.0})
    cfg = EmulatorConfig.for_symbols([BTC, "ETHUSDT"], market, manual_clock=True, n_trades=N_TRADES, seed=7,
                                     accounts=(acct,), **overrides)
    return EmulatorServer(cfg).start()


def market_price(emu: EmulatorServer, side: int, qty: float, trade_price: float) -> float:
    """The fill model's market fill price at a trade (slippage adverse to the side, no impact)."""
    return round(float(market_fill_price_nb(emu.engine.fill_params, side, qty, trade_price, 0.0)), 8)


def lots_down(x: float, step: float) -> float:
    units = math.floor(x / step + 1e-9)
    return round(units * step, 8)


def expected_market_fills(emu: EmulatorServer, symbol: str, side: int, qty: float) -> list[tuple[float, float]]:
    """[(price, qty)] a market order of `qty` placed now gets: the next trades in order, each giving
    at most its own quantity (participation 1.0) rounded down to the lot step."""
    step = emu.engine.symbols[symbol].instrument.step_size
    out, left, k = [], qty, 0
    while left > 1e-12:
        p, q, _ = emu.next_trade(symbol, k)
        fq = min(left, lots_down(q, step))
        if fq > 0:
            out.append((market_price(emu, side, fq, p), round(fq, 8)))
            left = round(left - fq, 8)
        k += 1
    return out


def first_trade_index(emu: EmulatorServer, symbol: str, pred, start: int = 0, limit: int = 3000) -> int:
    """Offset (from the cursor) of the first future trade whose price satisfies `pred`."""
    for k in range(start, limit):
        p, _, _ = emu.next_trade(symbol, k)
        if pred(p):
            return k
    raise AssertionError("no such trade in the tape window")
