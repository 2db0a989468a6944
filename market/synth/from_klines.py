"""Trades conditioned on real klines: every minute's OHLC, count, volume and taker-buy volume exactly.

All matching happens in integer units of the tick and the lot, so sums are exact; the float64
columns are the units converted once (`market.synth.units.from_units`). Per minute:

1. prices: anchors open (first trade), close (last trade) and, where they differ from both, high
   and low at random interior positions in random order; between anchors a Gaussian random-walk
   bridge scaled to the minute's range, rounded to ticks and kept inside [low, high];
2. sides: the number of buys is drawn around count·taker_buy/volume within what the sizes allow;
   buys go preferentially to trades that print above the previous price (the aggressor lifts the
   ask), sells to those below;
3. sizes: heavy-tailed weights (log-normal + Pareto) turned into integer lots by cumulative
   rounding, separately for buys (summing to taker_buy units) and sells (the rest);
4. times: a Hawkes path (branching 0.7) rescaled into [open_time, open_time + interval).

Each minute draws from its own generator keyed by (seed, open_time), so a minute's trades do not
depend on which other minutes are synthesized with it (only ids, and the first trade's side
preference, which looks at the previous minute's close, do).

Minutes that cannot be matched exactly are never fudged silently: everything that can be
satisfied is, and the minute is listed in `KlineSynthesis.infeasible` with reason codes
(`INFEASIBLE_REASONS`). quote_volume is not a target: it follows from prices × sizes, and matching
it too would over-determine most minutes; `quote_volume_rel_error` reports how far it lands.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import polars as pl
from numba import njit

from core.errors import DataError
from market.schema import AGG_TRADES_SCHEMA, KLINES_SCHEMA, conform
from market.synth.rng import normal_nb, seed_state_nb, splitmix64_nb, uniform_nb, uniform_pos_nb
from market.synth.units import from_units, infer_step, to_units

_NO_TRADES_WITH_VOLUME = 1
_COUNT_BELOW_PRICES = 2
_VOLUME_BELOW_COUNT = 4
_NO_ROOM_FOR_TAKER_SPLIT = 8

INFEASIBLE_REASONS: dict[str, str] = {
    "volume_without_trades": "count is 0 but volume or taker-buy volume is > 0: no trades are generated",
    "count_below_required_prices": "fewer trades than the distinct prices open/high/low/close need "
                                   "(count 1 with open != close, or no interior trade left for an "
                                   "extreme): open and close are kept, extremes that do not fit are dropped "
                                   "(count 1: the single trade prints at the close)",
    "volume_below_count": "volume is fewer lots than count: every trade gets one lot, so the volume "
                          "comes out as count lots (taker-buy volume is still matched)",
    "no_room_for_taker_split": "0 < taker_buy_volume < volume needs a buy and a sell but count is 1: "
                               "the single trade takes the side with the larger volume share",
}
_REASON_BITS = (
    (_NO_TRADES_WITH_VOLUME, "volume_without_trades"),
    (_COUNT_BELOW_PRICES, "count_below_required_prices"),
    (_VOLUME_BELOW_COUNT, "volume_below_count"),
    (_NO_ROOM_FOR_TAKER_SPLIT, "no_room_for_taker_split"),
)

INFEASIBLE_SCHEMA: dict[str, pl.DataType] = {"open_time": pl.Int64, "row": pl.Int64, "reason": pl.Utf8}

# Shape of the synthetic microstructure inside a minute (not user parameters: the minute's
# totals are the data; these only shape how they are spread).
_BRIDGE_SCALE = 0.35  # mid-bridge std as a share of the minute's range
_HAWKES_BRANCHING = 0.7
_BUY_BONUS_UP = 0.5  # side preference scores: uniform + bonus; higher → more likely a buy
_BUY_BONUS_FLAT = 0.25
_SIZE_SIGMA = 1.0
_SIZE_TAIL_PROB = 0.05
_SIZE_TAIL_SCALE = 5.0
_SIZE_TAIL_INDEX = 1.8


@dataclass(frozen=True)
class KlineSynthesis:
    """Result of `synthesize_from_klines`.

    trades: AGG_TRADES_SCHEMA, one row per kline trade (each aggregate trade is a single fill, so
      first_trade_id == last_trade_id and the row count per minute equals the kline's count).
    infeasible: open_time, row (0-based kline row) and reason (comma-separated codes of
      `INFEASIBLE_REASONS`) of every minute that could not be matched exactly.
    minutes: number of input klines. tick_size, lot_size: the grid used (given or inferred).
    quote_volume_rel_error: per kline, synthetic Σ price·qty / kline quote_volume − 1 (NaN where
      the kline has no quote volume).
    """

    trades: pl.DataFrame
    infeasible: pl.DataFrame
    minutes: int
    tick_size: float
    lot_size: float
    quote_volume_rel_error: np.ndarray

    @property
    def n_infeasible(self) -> int:
        return self.infeasible.height


def synthesize_from_klines(
    klines: pl.DataFrame,
    *,
    seed: int,
    tick_size: float | None = None,
    lot_size: float | None = None,
    first_id: int = 1,
    first_fill_id: int = 1,
) -> KlineSynthesis:
    """Trades that reproduce each kline (KLINES_SCHEMA, times in ns) exactly; see the module doc.

    tick_size / lot_size default to the finest decimal step present in the prices / volumes.
    Malformed klines (nulls, NaN, unsorted or overlapping intervals, high below open/close, low
    above them, negative volume, taker-buy volume above volume, prices or sizes off the grid)
    raise DataError naming the row; infeasible-but-well-formed minutes are listed instead.
    """
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise DataError(f"seed must be a non-negative int, got {seed!r}", source="synthesize_from_klines")
    src = "klines"
    df = conform(klines, KLINES_SCHEMA, src)
    m = df.height
    _check_nulls(df, src)
    cols = {c: df.get_column(c).to_numpy() for c in KLINES_SCHEMA}
    prices = np.concatenate([cols[c] for c in ("open", "high", "low", "close")])
    sizes = np.concatenate([cols["volume"], cols["taker_buy_volume"]])
    tick = float(tick_size) if tick_size is not None else (infer_step(prices) if m else 1.0)
    lot = float(lot_size) if lot_size is not None else (infer_step(sizes) if m else 1.0)
    if not (math.isfinite(tick) and tick > 0 and math.isfinite(lot) and lot > 0):
        raise DataError(f"tick_size and lot_size must be positive, got {tick!r}, {lot!r}", source=src)
    o, h, lo, c = (to_units(cols[k], tick, k, src) for k in ("open", "high", "low", "close"))
    vol = to_units(cols["volume"], lot, "volume", src)
    buy = to_units(cols["taker_buy_volume"], lot, "taker_buy_volume", src)
    count = np.ascontiguousarray(cols["trade_count"], dtype=np.int64)
    open_ns = np.ascontiguousarray(cols["open_time"], dtype=np.int64)
    interval = np.ascontiguousarray(cols["close_time"] - cols["open_time"] + 1_000_000, dtype=np.int64)
    _check_rows(open_ns, interval, o, h, lo, c, vol, buy, count, src)

    offsets = np.zeros(m + 1, dtype=np.int64)
    np.cumsum(count, out=offsets[1:])
    total = int(offsets[-1])
    out_ts = np.empty(total, dtype=np.int64)
    out_px = np.empty(total, dtype=np.int64)
    out_qty = np.empty(total, dtype=np.int64)
    out_maker = np.empty(total, dtype=np.bool_)
    flags = np.zeros(m, dtype=np.int64)
    max_n = int(count.max()) if m else 0
    _klines_to_trades_nb(np.uint64(seed & (2**64 - 1)), open_ns, interval, o, h, lo, c, count, vol, buy,
                         offsets, out_ts, out_px, out_qty, out_maker, flags, max_n)

    price = from_units(out_px, tick)
    qty = from_units(out_qty, lot)
    fill_ids = np.arange(first_fill_id, first_fill_id + total, dtype=np.int64)
    trades = pl.DataFrame(
        [
            pl.Series("id", np.arange(first_id, first_id + total, dtype=np.int64), dtype=pl.Int64),
            pl.Series("ts_event", out_ts, dtype=pl.Int64),
            pl.Series("ts_init", out_ts, dtype=pl.Int64),
            pl.Series("price", price, dtype=pl.Float64),
            pl.Series("quantity", qty, dtype=pl.Float64),
            pl.Series("is_buyer_maker", out_maker, dtype=pl.Boolean),
            pl.Series("first_trade_id", fill_ids, dtype=pl.Int64),
            pl.Series("last_trade_id", fill_ids, dtype=pl.Int64),
        ]
    )
    assert dict(trades.schema) == AGG_TRADES_SCHEMA
    return KlineSynthesis(
        trades=trades,
        infeasible=_infeasible_frame(open_ns, flags),
        minutes=m,
        tick_size=tick,
        lot_size=lot,
        quote_volume_rel_error=_quote_volume_error(price * qty, offsets, cols["quote_volume"]),
    )


def _check_nulls(df: pl.DataFrame, src: str) -> None:
    for name in KLINES_SCHEMA:
        s = df.get_column(name)
        bad = s.is_null()
        if s.dtype == pl.Float64:
            bad = bad | ~s.is_finite().fill_null(False)
        if bad.any():
            i = int(bad.arg_max())
            raise DataError(f"kline column {name!r} is null or not finite ({int(bad.sum())} rows)",
                            source=src, line=i + 1)


def _first_bad(mask: np.ndarray, message: str, src: str) -> None:
    if mask.any():
        i = int(np.argmax(mask))
        raise DataError(f"{message} ({int(mask.sum())} rows)", source=src, line=i + 1)


def _check_rows(open_ns, interval, o, h, lo, c, vol, buy, count, src: str) -> None:
    _first_bad(interval <= 0, "close_time is before open_time", src)
    if open_ns.size > 1:
        overlap = np.zeros(open_ns.size, dtype=bool)
        overlap[1:] = open_ns[1:] < open_ns[:-1] + interval[:-1]
        _first_bad(overlap, "kline starts before the previous one ends (unsorted, duplicated or overlapping)", src)
    _first_bad(lo <= 0, "low price is not positive", src)
    _first_bad(h < np.maximum(o, c), "high is below open or close", src)
    _first_bad(lo > np.minimum(o, c), "low is above open or close", src)
    _first_bad(count < 0, "trade_count is negative", src)
    _first_bad(vol < 0, "volume is negative", src)
    _first_bad(buy < 0, "taker_buy_volume is negative", src)
    _first_bad(buy > vol, "taker_buy_volume exceeds volume", src)


def _infeasible_frame(open_ns: np.ndarray, flags: np.ndarray) -> pl.DataFrame:
    rows = np.flatnonzero(flags)
    reasons = [",".join(name for bit, name in _REASON_BITS if f & bit) for f in flags[rows].tolist()]
    return pl.DataFrame(
        {"open_time": open_ns[rows], "row": rows.astype(np.int64), "reason": reasons}, schema=INFEASIBLE_SCHEMA
    )


def _quote_volume_error(notional: np.ndarray, offsets: np.ndarray, quote_volume: np.ndarray) -> np.ndarray:
    csum = np.zeros(notional.size + 1, dtype=np.float64)
    np.cumsum(notional, out=csum[1:])
    synth = csum[offsets[1:]] - csum[offsets[:-1]]
    out = np.full(quote_volume.size, np.nan)
    ok = quote_volume > 0
    out[ok] = synth[ok] / quote_volume[ok] - 1.0
    return out


@njit(cache=True)
def _klines_to_trades_nb(seed, open_ns, interval, o, h, lo, c, count, vol, buy, offsets,
                         out_ts, out_px, out_qty, out_maker, flags, max_n):
    """Fill out_*[offsets[i]:offsets[i+1]] for every kline i; flags[i] gets the infeasibility bits."""
    rng = np.empty(4, dtype=np.uint64)
    spare = np.zeros(2, dtype=np.float64)
    path = np.empty(max_n, dtype=np.int64)
    work = np.empty(max_n + 1, dtype=np.float64)
    score = np.empty(max_n, dtype=np.float64)
    is_buy = np.empty(max_n, dtype=np.bool_)
    size = np.empty(max_n, dtype=np.int64)
    prev_close = np.int64(-1)
    for i in range(open_ns.shape[0]):
        n = count[i]
        v = vol[i]
        b = buy[i]
        if n == 0:
            if v > 0 or b > 0:
                flags[i] |= _NO_TRADES_WITH_VOLUME
            continue
        seed_state_nb(splitmix64_nb(seed ^ splitmix64_nb(np.uint64(open_ns[i]))), rng)
        spare[0] = 0.0
        flags[i] |= _price_path_nb(rng, spare, n, o[i], h[i], lo[i], c[i], path, work)
        flags[i] |= _sides_and_sizes_nb(rng, spare, n, v, b, path, prev_close, score, work, is_buy, size)
        _timestamps_nb(rng, n, open_ns[i], interval[i], work, out_ts[offsets[i]:offsets[i + 1]])
        base = offsets[i]
        for j in range(n):
            out_px[base + j] = path[j]
            out_qty[base + j] = size[j]
            out_maker[base + j] = not is_buy[j]
        prev_close = path[n - 1]


@njit(cache=True)
def _price_path_nb(rng, spare, n, o, h, lo, c, path, work):
    """Tick path of n trades: first = o, last = c, visiting h and lo; returns infeasibility bits."""
    if n == 1:
        path[0] = c
        return 0 if (o == c and h == c and lo == c) else _COUNT_BELOW_PRICES
    flag = 0
    ex0 = np.int64(0)
    ex1 = np.int64(0)
    k = 0
    if h != o and h != c:
        ex0 = h
        k = 1
    if lo != o and lo != c:
        if k == 0:
            ex0 = lo
        else:
            ex1 = lo
        k += 1
    if k == 2 and uniform_nb(rng) < 0.5:
        ex0, ex1 = ex1, ex0
    slots = n - 2
    if k > slots:
        flag = _COUNT_BELOW_PRICES
        k = slots
    pos0 = np.int64(0)
    pos1 = np.int64(0)
    if k >= 1:
        pos0 = 1 + np.int64(uniform_nb(rng) * slots)
    if k == 2:
        pos1 = 1 + np.int64(uniform_nb(rng) * (slots - 1))
        if pos1 >= pos0:
            pos1 += 1
        if pos1 < pos0:
            pos0, pos1 = pos1, pos0
    # Anchors in index order: (0, o), extremes, (n - 1, c).
    a_pos = np.empty(4, dtype=np.int64)
    a_px = np.empty(4, dtype=np.int64)
    a_pos[0] = 0
    a_px[0] = o
    na = 1
    if k >= 1:
        a_pos[na] = pos0
        a_px[na] = ex0
        na += 1
    if k == 2:
        a_pos[na] = pos1
        a_px[na] = ex1
        na += 1
    a_pos[na] = n - 1
    a_px[na] = c
    na += 1
    span = float(h - lo)
    for s in range(na - 1):
        ia = a_pos[s]
        ib = a_pos[s + 1]
        pa = float(a_px[s])
        pb = float(a_px[s + 1])
        steps = ib - ia
        path[ia] = a_px[s]
        if steps > 1:
            scale = _BRIDGE_SCALE * span / math.sqrt(steps)
            walk = 0.0
            for j in range(1, steps):
                walk += normal_nb(rng, spare)
                work[j] = walk
            end = walk + normal_nb(rng, spare)
            for j in range(1, steps):
                frac = j / steps
                x = pa + (pb - pa) * frac + scale * (work[j] - frac * end)
                p = np.int64(math.floor(x + 0.5))
                if p > h:
                    p = h
                elif p < lo:
                    p = lo
                path[ia + j] = p
    path[n - 1] = c
    return flag


@njit(cache=True)
def _partition_nb(rng, spare, total, positions_mask, want, n, weight, size):
    """Split `total` lots over the trades j with positions_mask[j] == want: each >= 1, exact sum.

    Cumulative rounding of heavy-tailed weights: size_j = 1 + floor(E·W_j/W) − floor(E·W_{j-1}/W)
    with E = total − k; the telescoping sum is exactly E + k = total.
    """
    k = 0
    wsum = 0.0
    for j in range(n):
        if positions_mask[j] == want:
            if uniform_nb(rng) < _SIZE_TAIL_PROB:
                w = _SIZE_TAIL_SCALE * uniform_pos_nb(rng) ** (-1.0 / _SIZE_TAIL_INDEX)
            else:
                w = math.exp(_SIZE_SIGMA * normal_nb(rng, spare))
            weight[j] = w
            wsum += w
            k += 1
    if k == 0:
        return
    extra = total - k
    acc = 0.0
    prev = np.int64(0)
    seen = 0
    for j in range(n):
        if positions_mask[j] == want:
            seen += 1
            acc += weight[j]
            if seen == k:
                cum = extra
            else:
                cum = np.int64(math.floor(extra * (acc / wsum)))
                if cum > extra:
                    cum = extra
                if cum < prev:
                    cum = prev
            size[j] = 1 + cum - prev
            prev = cum


@njit(cache=True)
def _sides_and_sizes_nb(rng, spare, n, v, b, path, prev_close, score, work, is_buy, size):
    """Choose buys (count and positions) and integer sizes; returns infeasibility bits."""
    flag = 0
    if v < n:
        flag |= _VOLUME_BELOW_COUNT
        n_buy = b  # b <= v < n: b one-lot buys still match the taker-buy volume exactly
    elif b == 0:
        n_buy = 0
    elif b == v:
        n_buy = n
    elif n == 1:
        flag |= _NO_ROOM_FOR_TAKER_SPLIT
        n_buy = 1 if 2 * b >= v else 0
    else:
        lo_b = max(1, n - (v - b))
        hi_b = min(b, n - 1)
        p = b / v
        target = n * p + math.sqrt(n * p * (1.0 - p)) * normal_nb(rng, spare)
        n_buy = np.int64(math.floor(target + 0.5))
        n_buy = min(max(n_buy, lo_b), hi_b)
    prev = path[0] if prev_close < 0 else prev_close
    for j in range(n):
        px = path[j]
        bonus = _BUY_BONUS_UP if px > prev else (_BUY_BONUS_FLAT if px == prev else 0.0)
        score[j] = uniform_nb(rng) + bonus
        prev = px
    order = np.argsort(score[:n])
    for r in range(n):
        is_buy[order[r]] = r >= n - n_buy
    if v < n:
        for j in range(n):
            size[j] = 1
    elif n == 1:
        size[0] = v
    else:
        _partition_nb(rng, spare, b, is_buy, True, n, work, size)
        _partition_nb(rng, spare, v - b, is_buy, False, n, work, size)
    return flag


@njit(cache=True)
def _timestamps_nb(rng, n, open_ns, interval, gaps, out):
    """n non-decreasing ns times in [open_ns, open_ns + interval): a Hawkes path rescaled to fit."""
    beta = 1.0
    alpha = _HAWKES_BRANCHING * beta
    lam = 0.0
    total = 0.0
    for j in range(n + 1):  # n + 1 gaps: before the first trade, between trades, after the last
        tau = -math.log(uniform_pos_nb(rng))  # baseline intensity 1
        if lam > 1e-300:
            d = 1.0 + beta * math.log(uniform_pos_nb(rng)) / lam
            if d > 0.0:
                tau = min(tau, -math.log(d) / beta)
        lam = lam * math.exp(-beta * tau) + alpha
        gaps[j] = tau
        total += tau
    acc = 0.0
    last = open_ns + interval - 1
    for j in range(n):
        acc += gaps[j]
        t = open_ns + np.int64(interval * (acc / total))
        out[j] = t if t < last else last
