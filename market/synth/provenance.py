"""Marking synthetic data: the metadata the catalog stores beside every synthetic dataset.

Values are strings because Parquet key-value metadata is string to string.
`GENERATOR_VERSION` changes whenever the same config would produce different trades, so that a
stored dataset can always be traced to the code that made it.
"""

from __future__ import annotations

import json

from market.synth.config import SynthConfig

GENERATOR_VERSION = "1"

SYNTHETIC_PROVENANCE: dict[str, str] = {
    "synthetic": "true",
    "generator": "flowtrader.market.synth",
    "generator_version": GENERATOR_VERSION,
}


def provenance(config_or_seed: SynthConfig | int) -> dict[str, str]:
    """Catalog metadata for synthetic data made from a `SynthConfig` or (kline synthesis) a seed.

    A config contributes its seed, symbol, hash and full resolved JSON, enough to regenerate the
    data bit for bit with the same `generator_version`.
    """
    out = dict(SYNTHETIC_PROVENANCE)
    if isinstance(config_or_seed, SynthConfig):
        cfg = config_or_seed
        out.update(
            method="generate_trades",
            seed=str(cfg.seed),
            symbol=cfg.symbol,
            config_hash=cfg.config_hash(),
            config=json.dumps(cfg.model_dump(mode="json"), sort_keys=True, separators=(",", ":")),
        )
    elif isinstance(config_or_seed, int) and not isinstance(config_or_seed, bool):
        out.update(method="synthesize_from_klines", seed=str(config_or_seed))
    else:
        raise TypeError(f"provenance() takes a SynthConfig or an int seed, got {type(config_or_seed).__name__}")
    return out
