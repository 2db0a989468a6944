"""A local Binance-compatible exchange (spot or USD-M) for demos, tests and fault drills.

It replays a seeded synthetic market (`market.synth`) in accelerated or manual time and matches
orders with the backtest's fill model (`execution.fill_model`, `execution.fees`,
`execution.ledger`). It imports market code, which `execution/` may not: hence its own top-level
package. See docs/emulator.md.
"""

from emulator.config import AccountConfig, EmulatorConfig, FaultConfig, FaultRule, SymbolConfig
from emulator.server import EmulatorServer

__all__ = ["AccountConfig", "EmulatorConfig", "EmulatorServer", "FaultConfig", "FaultRule", "SymbolConfig"]
