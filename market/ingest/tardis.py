"""Reader for Tardis.dev `trades` CSV files (exchange, symbol, timestamp, local_timestamp, id, side, price, amount).

`timestamp` is the exchange time and `local_timestamp` Tardis' receive time, both µs epochs:
``ts_event = timestamp``, ``ts_init = local_timestamp``. `side` is the *taker* side, so
``side == 'sell'`` means the buyer was the maker (``is_buyer_maker = True``); Tardis writes
``unknown`` when the venue did not say, which becomes a null ``is_buyer_maker`` (not provided,
never guessed). A file must hold one exchange and one symbol: the frame has no column for them.
"""

from __future__ import annotations

from pathlib import Path

import polars as pl

from core.errors import DataError
from core.time import NS_PER_MS, NS_PER_US
from market.ingest.parsed import (
    LINE,
    OnError,
    ParsedData,
    cast_checked,
    check_on_error,
    epochs_to_ns,
    finish,
    read_delimited,
)
from market.schema import TRADES_SCHEMA

TARDIS_TRADES_LAYOUTS: dict[int, tuple[str, ...]] = {
    8: ("exchange", "symbol", "timestamp", "local_timestamp", "id", "side", "price", "amount"),
}
_SIDES = ("buy", "sell", "unknown")


def read_tardis_trades(path: str | Path, *, on_error: OnError = "raise") -> ParsedData:
    """Tardis trades CSV (plain or single-member zip) → TRADES_SCHEMA with ``ts_init = local_timestamp``."""
    check_on_error(on_error)
    text = read_delimited(path, TARDIS_TRADES_LAYOUTS)
    typed, rj_cast = cast_checked(text.rows, [
        ("exchange", "str", False), ("symbol", "str", False), ("timestamp", "int", False),
        ("local_timestamp", "int", False), ("id", "int", False), ("side", "str", False),
        ("price", "float", False), ("amount", "float", False),
    ])
    bad_side = ~pl.col("side").is_in(_SIDES)
    rj_side = typed.filter(bad_side).select(
        pl.col(LINE).alias("line"),
        pl.concat_str(pl.lit("side: '"), pl.col("side").str.slice(0, 60),
                      pl.lit("' is not buy/sell/unknown")).alias("reason"),
    )
    typed = typed.filter(~bad_side)
    typed, rj_time = epochs_to_ns(typed, ["timestamp", "local_timestamp"], allowed=(NS_PER_MS, NS_PER_US, 1))
    for col in ("exchange", "symbol"):
        seen = typed[col].unique(maintain_order=True).to_list()
        if len(seen) > 1:
            raise DataError(f"file mixes several {col} values {seen[:5]}; split it per {col}", source=text.source)
    frame = typed.select(
        LINE, "id", pl.col("timestamp").alias("ts_event"), pl.col("local_timestamp").alias("ts_init"), "price",
        pl.col("amount").alias("quantity"),
        pl.when(pl.col("side") == "unknown").then(None).otherwise(pl.col("side") == "sell").alias("is_buyer_maker"),
    )
    return finish(text, frame, [rj_cast, rj_side, rj_time], TRADES_SCHEMA, on_error)
