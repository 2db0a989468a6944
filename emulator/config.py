"""Configuration of the exchange emulator: market, symbols, accounts, fill/fee models and faults.

Everything is a frozen pydantic model (`core.config.FrozenConfig`: unknown keys rejected, bad values
raise `ConfigError`). `EmulatorConfig.for_symbols(...)` builds a ready default for the CLI and tests.

The replayed market (`EmulatorConfig.source`) is the seeded synthetic generator (`SyntheticSource`,
default), a catalog dataset (`StoreSource`: `market.catalog.Catalog`) or a recorded websocket capture
(`CaptureSource`: `market.ingest.ws_capture.read_ws_capture`); `emulator.replay.build_tape` loads it.
"""

from __future__ import annotations

import zlib
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, field_validator, model_validator

from core.config import FrozenConfig
from core.enums import Market
from core.instrument import Instrument
from core.time import parse_duration, parse_time
from execution.fees import FeeConfig
from execution.fill_model import FillModelConfig

# Default terms of the symbols the emulator knows by name; anything else gets the generic row.
# (initial price, tick, lot, synthetic median trade size)
_KNOWN: dict[str, tuple[float, float, float, float]] = {
    "BTCUSDT": (40_000.0, 0.1, 0.001, 0.2),
    "ETHUSDT": (2_000.0, 0.01, 0.001, 2.0),
    "SOLUSDT": (100.0, 0.01, 0.01, 5.0),
    "BNBUSDT": (300.0, 0.01, 0.01, 1.0),
}
_GENERIC = (100.0, 0.01, 0.01, 5.0)
QUOTE_ASSETS = ("USDT", "USDC", "FDUSD", "BTC")


def split_symbol(symbol: str) -> tuple[str, str]:
    """'BTCUSDT' → ('BTC', 'USDT'): the longest known quote suffix wins."""
    for q in QUOTE_ASSETS:
        if symbol.endswith(q) and len(symbol) > len(q):
            return symbol[: -len(q)], q
    raise ValueError(f"symbol {symbol!r}: quote asset not one of {QUOTE_ASSETS}")


class SymbolConfig(FrozenConfig):
    """One replayed symbol: its trading terms (the exchangeInfo filters) and its synthetic market."""

    instrument: Instrument
    initial_price: float = Field(gt=0)
    median_trade_size: float = Field(gt=0, description="median synthetic trade size, base units")
    base_rate: float = Field(5.0, gt=0, le=1e5, description="mean synthetic trades per second")
    max_qty: float = Field(9000.0, gt=0, description="LOT_SIZE maxQty")
    max_market_qty: float = Field(100.0, gt=0, description="MARKET_LOT_SIZE maxQty")
    min_price: float = Field(0.0, ge=0)
    max_price: float = Field(10_000_000.0, gt=0)


class AccountConfig(FrozenConfig):
    """An API key pair and its starting balances (asset → amount; usdm: the USDT wallet)."""

    api_key: str = Field(min_length=1, max_length=128)
    secret: str = Field(min_length=1)
    balances: dict[str, float] = Field(default_factory=lambda: {"USDT": 10_000.0})
    leverage: float = Field(10.0, ge=1, le=125, description="usdm: default leverage of every symbol")


FaultKind = Literal["server_error", "rate_limit", "ban", "drop", "lost_ack", "delay"]


class FaultRule(FrozenConfig):
    """A scheduled fault: the `at`-th (1-based) request matching (endpoint, method), and the
    `times − 1` following matching ones, get `kind`:

    - server_error: HTTP `status` (5xx) with an HTML body, nothing processed;
    - rate_limit: 429 + Retry-After; requests inside the Retry-After window then get 418 (as Binance);
    - ban: 418 + Retry-After, and every request until it expires gets 418;
    - drop: the connection is closed before the request is processed;
    - lost_ack: the request IS processed (an order is stored) and then the connection is closed
      without an answer;
    - delay: answered normally after `delay_s`.

    `endpoint` is the last path segment ("order", "account", ...) or None for any; counting starts
    when the rule is installed.
    """

    kind: FaultKind
    endpoint: str | None = None
    method: str | None = None
    at: int = Field(1, ge=1)
    times: int = Field(1, ge=1)
    status: int = Field(503, ge=500, le=599)
    retry_after_s: int = Field(1, ge=0, le=3600)
    delay_s: float = Field(0.0, ge=0.0, le=60.0)


class FaultConfig(FrozenConfig):
    """Faults and latency: scheduled rules plus a seeded uniform latency jitter on every request."""

    rules: tuple[FaultRule, ...] = ()
    latency_ms: float = Field(0.0, ge=0.0, le=10_000.0, description="fixed extra latency per request")
    jitter_ms: float = Field(0.0, ge=0.0, le=10_000.0, description="plus uniform [0, jitter_ms) seeded")
    seed: int = Field(0, ge=0)
    weight_limit: int = Field(6000, ge=1, description="request weight per minute before 429")


TradeKind = Literal["agg_trades", "trades"]


class SyntheticSource(FrozenConfig):
    """The seeded synthetic market (`market.synth.generate_trades`): `EmulatorConfig.start`, `duration` or
    `n_trades`, `seed`, and each symbol's initial price / median trade size."""

    type: Literal["synthetic"] = "synthetic"


class StoreSource(FrozenConfig):
    """A catalog dataset per symbol: `<root>/exchange=<exchange>/market=<market>/symbol=<S>/kind=<kind>`,
    rows with start <= ts_event < end (None = unbounded). `market` None = the emulator's market."""

    type: Literal["store"] = "store"
    root: str = Field(min_length=1)
    exchange: str = "binance"
    market: str | None = None
    kind: TradeKind = "agg_trades"
    start: int | None = Field(None, description="first instant (ISO or ns), inclusive")
    end: int | None = Field(None, description="last instant (ISO or ns), exclusive")

    @field_validator("start", "end", mode="before")
    @classmethod
    def _parse_time(cls, v):
        return parse_time(v) if isinstance(v, str) else v

    @model_validator(mode="after")
    def _check(self) -> StoreSource:
        if self.start is not None and self.end is not None and self.end <= self.start:
            raise ValueError(f"store source: end {self.end} <= start {self.start}")
        return self


class CaptureSource(FrozenConfig):
    """A recorded Binance websocket capture file: its `trade` (kind trades, MARKET trades only) or
    `aggTrade` (kind agg_trades) messages of each configured symbol."""

    type: Literal["capture"] = "capture"
    path: str = Field(min_length=1)
    kind: TradeKind = "trades"

    @model_validator(mode="after")
    def _check(self) -> CaptureSource:
        if not Path(self.path).is_file():
            raise ValueError(f"capture source: no such file {self.path!r}")
        return self


MarketSource = Annotated[SyntheticSource | StoreSource | CaptureSource, Field(discriminator="type")]


class EmulatorConfig(FrozenConfig):
    """The whole emulator. `speed` = market seconds per wall second (replay clock);
    `manual_clock` = market time moves only when the caller advances it (tests)."""

    market: Market = Market.USDM
    symbols: tuple[SymbolConfig, ...] = Field(min_length=1)
    seed: int = Field(7, ge=0, lt=2**63)
    start: int = Field(default="2024-01-01", description="first synthetic instant (ISO or ns)")
    duration: int = Field(default="6h", description="length of the synthetic market per symbol")
    n_trades: int | None = Field(None, gt=0, description="instead of duration: trades per symbol "
                                                           "(store/capture: at most the first n_trades)")
    warmup: int = Field(default="5m", description="market time already elapsed when the server starts")
    source: MarketSource = Field(SyntheticSource(), description="what is replayed: synthetic, store or capture")
    speed: float = Field(1.0, gt=0, le=1e6)
    manual_clock: bool = False
    accounts: tuple[AccountConfig, ...] = (AccountConfig(api_key="emulator-key", secret="emulator-secret"),)
    fill: FillModelConfig = Field(
        FillModelConfig(participation_rate=1.0),
        description="the backtest fill model; one trade is the emulator's bar, so participation caps each "
                    "fill at participation_rate × that trade's quantity (1.0: up to the whole trade)")
    fees: FeeConfig | None = Field(None, description="None: Binance VIP 0 of the market")
    market_buy_reserve: float = Field(0.05, ge=0, le=1, description="spot: quote locked above last price for market buys")
    default_recv_window_ms: int = Field(5000, ge=1, le=60_000)
    faults: FaultConfig = FaultConfig()

    @field_validator("start", mode="before")
    @classmethod
    def _parse_start(cls, v):
        return parse_time(v) if isinstance(v, str) else v

    @field_validator("duration", "warmup", mode="before")
    @classmethod
    def _parse_duration(cls, v):
        return parse_duration(v) if isinstance(v, str) else v

    @model_validator(mode="after")
    def _check(self) -> EmulatorConfig:
        names = [s.instrument.symbol for s in self.symbols]
        if len(set(names)) != len(names):
            raise ValueError(f"symbols: duplicates in {names}")
        for s in self.symbols:
            if s.instrument.market != self.market:
                raise ValueError(f"symbol {s.instrument.symbol}: instrument market {s.instrument.market.value} "
                                 f"!= emulator market {self.market.value}")
            split_symbol(s.instrument.symbol)
        keys = [a.api_key for a in self.accounts]
        if len(set(keys)) != len(keys):
            raise ValueError("accounts: duplicate api_key")
        return self

    def fee_config(self) -> FeeConfig:
        if self.fees is not None:
            return self.fees
        if self.market == Market.SPOT:
            return FeeConfig(venue="binance_spot", maker_rate=0.001, taker_rate=0.001)
        return FeeConfig(venue="binance_usdm", maker_rate=0.0002, taker_rate=0.0004)

    def symbol_seed(self, symbol: str) -> int:
        """Per-symbol synthetic seed: stable in the symbol's name, so adding a symbol changes no other."""
        return (self.seed * 1_000_003 + zlib.crc32(symbol.encode())) % (2**63)

    @classmethod
    def for_symbols(cls, symbols: list[str] | tuple[str, ...], market: str | Market = Market.USDM,
                    **overrides) -> EmulatorConfig:
        """Default config for `symbols` with known terms (BTCUSDT, ETHUSDT, ...) or generic ones."""
        m = Market(market)
        rows = []
        for sym in symbols:
            price, tick, lot, median = _KNOWN.get(sym, _GENERIC)
            inst = Instrument(symbol=sym, market=m, tick_size=tick, step_size=lot, min_qty=lot,
                              min_notional=5.0, max_leverage=1.0 if m == Market.SPOT else 125.0)
            rows.append(SymbolConfig(instrument=inst, initial_price=price, median_trade_size=median))
        return cls(market=m, symbols=tuple(rows), **overrides)
