"""Bars from trades: time, tick, volume, dollar and dynamic volume bars, batch and streaming alike.

One implementation (`market.bars.kernels.build_bars_nb`) consumes chunks of trades with a carried
state; `build_bars` is one call over all trades and `BarBuilder.update` is successive calls, so the
two give bit-identical bars by construction. Output columns are `market.schema.BAR_SCHEMA`.

Decisions (they are part of the contract):

- Trades are atomic: a trade is never split between bars. A volume (dollar) bar closes on the
  trade that brings its cumulative volume (quote notional) to >= the threshold, and that trade's
  whole size stays in the closing bar; the overshoot is not carried into the next bar. A trade is
  one aggressor event at one price and time; splitting it would invent trades and corrupt counts
  and buy/sell attribution. A tick bar closes on its Nth trade.
- Dynamic volume bars: the threshold applied to a trade is that of the trade's UTC day, equal to
  the mean daily volume of the previous `lookback_days` calendar days divided by
  `target_bars_per_day`, from past days only. Days without trades are left out of the mean (a
  halted market does not halve the next day's bars). A day with no trading day in its window uses
  `initial_threshold`; when that is None (and no `daily_volumes` seed covers it) the trade opening
  the day raises `DataError` (at update time, not at construction: whether history exists depends
  on the data). The `threshold` column is the threshold the closing trade was checked against.
- Time bars: bucket = floor(ts / every) on the UTC epoch; a bar closes when a trade of a later
  bucket arrives or when `close_until(ts)` says the clock passed the bucket end; `ts_event` is the
  bucket end (start + every). Empty buckets produce no bar (no invented flat bars: the consumer
  sees the gap in `ts_event`). For trade-driven bars `ts_event` = the closing trade's ts.
- Large trades: size >= the `quantile` (numpy's default linear interpolation, exact) of the
  sizes of the previous `window` trades, recomputed before global trade number k whenever
  k >= window and (k - window) % refresh == 0, so the first threshold exists as soon as `window`
  trades have been seen and the result does not depend on chunking. Before that no trade is
  large. `LargeTradeConfig(window=0)` disables it (large columns 0) and costs nothing.
- Tick rule: a trade above (below) the previous trade's price is an uptick (downtick); an
  unchanged price inherits the last non-zero direction; the very first trade, and zero ticks
  before any price change, are unclassified. `realized_var` sums squared log returns
  log(p_i / p_{i-1}) of the bar's trades, the first one's taken from the previous bar's last
  trade, so the sum over bars is the whole series' value.
"""

from market.bars.builder import BarBuilder, build_bars
from market.bars.spec import (
    BarSpec,
    DollarBars,
    DynamicVolumeBars,
    LargeTradeConfig,
    TickBars,
    TimeBars,
    VolumeBars,
    bar_spec_from_dict,
    bar_spec_label,
    parse_bar_spec,
)

__all__ = [
    "BarBuilder",
    "BarSpec",
    "DollarBars",
    "DynamicVolumeBars",
    "LargeTradeConfig",
    "TickBars",
    "TimeBars",
    "VolumeBars",
    "bar_spec_from_dict",
    "bar_spec_label",
    "build_bars",
    "parse_bar_spec",
]
