"""The seeded synthetic trade generator: `generate_trades(config) -> AGG_TRADES_SCHEMA frame`.

Model (each piece documented with its parameters in docs/synthesis.md):

- arrivals: a Hawkes process with exponential kernel on top of a baseline that is constant
  within each UTC minute: base_rate · (1 − α/β) · hour_profile[UTC hour] · rate_multiplier[regime].
  Simulated exactly (Dassios & Zhao 2013): the next event is the earlier of a baseline arrival and
  an excitation arrival; a candidate past the minute boundary is discarded (memorylessness makes
  that exact) and the process restarts at the boundary with the new baseline.
- regimes: a Markov chain stepped at every UTC minute boundary; each regime has a daily volatility
  of the diffusive part of the log mid and a rate multiplier.
- signs: metaorders with Pareto lengths (long-memory order flow) mixed with independent flips.
- sizes: log-normal body + Pareto tail, rounded to lots (>= 1 lot); extra maker fills per
  aggregate trade grow with sqrt(size).
- price: log mid = diffusion (regime vol) + permanent impact + transient impact (exponential
  decay in trade time); impact per trade = impact_bps·1e-4·sign·sqrt(size/median), of which the
  permanent share applies to the sign's surprise (sign − its expectation given the metaorder). Buys print at the ask, sells
  at the bid, the bid being the mid minus half the spread rounded to the tick.

The kernel is resumable: all state lives in arrays owned by the caller, so generating in chunks
gives exactly the trades of one run (tested). That is how `duration` mode grows its output.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import polars as pl
from numba import njit

from core.time import NS_PER_MIN
from market.schema import AGG_TRADES_SCHEMA
from market.synth.config import SynthConfig
from market.synth.rng import normal_nb, seed_state, uniform_nb, uniform_pos_nb
from market.synth.units import grid_divisor

# Indices into the float parameter vector `pf`.
_P_MU_SCALE, _P_ALPHA, _P_BETA, _P_P0, _P_TICK, _P_INV_TICK, _P_LOT, _P_INV_LOT = 0, 1, 2, 3, 4, 5, 6, 7
_P_MEDIAN, _P_SIGMA, _P_TAIL_PROB, _P_TAIL_XMIN, _P_TAIL_INDEX, _P_EXTRA_FILLS = 8, 9, 10, 11, 12, 13
_P_IMPACT, _P_PERM, _P_DECAY, _P_META_SHARE, _P_META_MIN, _P_META_TAIL = 14, 15, 16, 17, 18, 19
_P_HALF_SPREAD, _P_T_END, _NP = 20, 21, 22
# Float state `sf`.
_S_T, _S_LAM, _S_FUND, _S_TRANS, _S_T_DIFF, _S_SEG_END, _S_MU, _S_SPARE0, _S_SPARE1, _NSF = 0, 1, 2, 3, 4, 5, 6, 7, 8, 9
# Int state `si`.
_I_REGIME, _I_MINUTE, _I_META_SIDE, _I_META_LEFT, _I_DONE, _I_FINISHED, _I_SPREAD, _I_START, _I_FILL_ID = (
    0, 1, 2, 3, 4, 5, 6, 7, 8)
_NSI = 9

# Kernel return codes.
_DONE, _TRADES_FULL, _MINUTES_FULL, _BELOW_ONE_TICK = 0, 1, 2, -1
_SECONDS_PER_DAY = 86400.0
_CHUNK = 4_000_000  # trades per output buffer when the count is not known in advance


@dataclass(frozen=True)
class SyntheticMarket:
    """A generated market: the trades and the regime path (ground truth for regime research).

    `regimes` has one row per UTC minute segment: `ts_start` (ns; the first row is the config's
    start), `regime` (index into `regime_names`) and `regime_name`.
    """

    trades: pl.DataFrame
    regimes: pl.DataFrame
    regime_names: tuple[str, ...]


def generate_trades(config: SynthConfig) -> pl.DataFrame:
    """Seeded synthetic aggregate trades with exactly AGG_TRADES_SCHEMA.

    Same config → bit-identical frame. ids are consecutive from `config.first_id`, `ts_init` =
    `ts_event` (non-decreasing), prices on the tick grid, quantities on the lot grid (>= 1 lot),
    `first_trade_id`..`last_trade_id` contiguous across rows starting at `config.first_fill_id`.
    """
    return generate_market(config).trades


def generate_market(config: SynthConfig) -> SyntheticMarket:
    """Like `generate_trades`, also returning the per-minute regime path."""
    pf, profile, mult, vol, trans_cum = _parameters(config)
    sf = np.zeros(_NSF, dtype=np.float64)
    si = np.zeros(_NSI, dtype=np.int64)
    rng = seed_state(config.seed)
    _init_state(config, pf, profile, mult, sf, si)
    n_target = config.n_trades if config.n_trades is not None else np.iinfo(np.int64).max

    trade_chunks: list[tuple[np.ndarray, ...]] = []
    minute_chunks: list[tuple[np.ndarray, np.ndarray]] = []
    counts = np.zeros(2, dtype=np.int64)
    tbuf = _trade_buffers(_expected_trades(config))
    mbuf = _minute_buffers(_expected_minutes(config))
    mbuf[0][0] = config.start  # the first regime segment starts at `start`, not on a minute boundary
    mbuf[1][0] = si[_I_REGIME]
    counts[1] = 1
    while True:
        code = _generate_nb(pf, profile, mult, vol, trans_cum, sf, si, rng, n_target, *tbuf, *mbuf, counts)
        if code == _BELOW_ONE_TICK:
            raise _below_one_tick(config, si)
        if code in (_DONE, _TRADES_FULL):
            if counts[0]:
                trade_chunks.append(tuple(a[: counts[0]] for a in tbuf))
            counts[0] = 0
            if code == _TRADES_FULL:
                tbuf = _trade_buffers(_CHUNK)
        if code in (_DONE, _MINUTES_FULL):
            minute_chunks.append(tuple(a[: counts[1]] for a in mbuf))
            counts[1] = 0
            if code == _MINUTES_FULL:
                mbuf = _minute_buffers(len(mbuf[0]))
        if code == _DONE:
            break
    trades = _frame(config, trade_chunks)
    regimes = _regime_frame(config, minute_chunks)
    return SyntheticMarket(trades=trades, regimes=regimes, regime_names=config.regimes.names)


def _trade_buffers(n: int) -> tuple[np.ndarray, ...]:
    return (np.empty(n, dtype=np.int64), np.empty(n, dtype=np.float64), np.empty(n, dtype=np.float64),
            np.empty(n, dtype=np.bool_), np.empty(n, dtype=np.int64), np.empty(n, dtype=np.int64))


def _minute_buffers(n: int) -> tuple[np.ndarray, np.ndarray]:
    return np.empty(n, dtype=np.int64), np.empty(n, dtype=np.int64)


def _parameters(cfg: SynthConfig):
    pf = np.zeros(_NP, dtype=np.float64)
    branching = cfg.hawkes_alpha / cfg.hawkes_beta
    pf[_P_MU_SCALE] = cfg.base_rate * (1.0 - branching)
    pf[_P_ALPHA] = cfg.hawkes_alpha
    pf[_P_BETA] = cfg.hawkes_beta
    pf[_P_P0] = cfg.initial_price
    pf[_P_TICK] = cfg.tick_size
    pf[_P_INV_TICK] = grid_divisor(cfg.tick_size)
    pf[_P_LOT] = cfg.lot_size
    pf[_P_INV_LOT] = grid_divisor(cfg.lot_size)
    s = cfg.sizes
    pf[_P_MEDIAN] = s.median
    pf[_P_SIGMA] = s.sigma
    pf[_P_TAIL_PROB] = s.tail_prob
    pf[_P_TAIL_XMIN] = s.median * s.tail_scale
    pf[_P_TAIL_INDEX] = s.tail_index
    pf[_P_EXTRA_FILLS] = s.mean_extra_fills
    f = cfg.flow
    pf[_P_IMPACT] = f.impact_bps * 1e-4
    pf[_P_PERM] = f.impact_permanent
    pf[_P_DECAY] = math.exp(-1.0 / f.impact_decay_trades)
    pf[_P_META_SHARE] = f.metaorder_share
    pf[_P_META_MIN] = f.metaorder_min_len
    pf[_P_META_TAIL] = f.metaorder_tail_index
    pf[_P_HALF_SPREAD] = cfg.spread_ticks / 2.0
    pf[_P_T_END] = math.inf if cfg.duration is None else cfg.duration / 1e9
    prof = np.asarray(cfg.hour_profile, dtype=np.float64)
    profile = prof / prof.mean()  # relative weights: the day-average baseline is base_rate
    mult = np.asarray(cfg.regimes.rate_multiplier, dtype=np.float64)
    vol = np.asarray(cfg.regimes.daily_vol, dtype=np.float64)
    trans_cum = np.cumsum(np.asarray(cfg.regimes.transition_per_minute, dtype=np.float64), axis=1)
    trans_cum[:, -1] = 1.0  # rows sum to 1 within 1e-9 (validated); make the last bin catch everything
    return pf, profile, mult, vol, np.ascontiguousarray(trans_cum)


def _init_state(cfg: SynthConfig, pf, profile, mult, sf, si) -> None:
    regime = cfg.regimes.names.index(cfg.regimes.initial)
    minute = cfg.start // NS_PER_MIN
    si[_I_REGIME] = regime
    si[_I_MINUTE] = minute
    si[_I_START] = cfg.start
    si[_I_SPREAD] = cfg.spread_ticks
    si[_I_FILL_ID] = cfg.first_fill_id
    sf[_S_SEG_END] = ((minute + 1) * NS_PER_MIN - cfg.start) / 1e9
    sf[_S_MU] = pf[_P_MU_SCALE] * profile[(minute // 60) % 24] * mult[regime]


def _expected_trades(cfg: SynthConfig) -> int:
    if cfg.n_trades is not None:
        return cfg.n_trades
    rate = cfg.base_rate * float(np.dot(cfg.regimes.stationary(), cfg.regimes.rate_multiplier))
    expected = rate * cfg.duration / 1e9
    return int(min(expected * 1.3 + 10_000, _CHUNK * 4))


def _expected_minutes(cfg: SynthConfig) -> int:
    if cfg.duration is not None:
        return int(cfg.duration // NS_PER_MIN + 2)
    rate = cfg.base_rate * min(cfg.regimes.rate_multiplier[i] for i in range(len(cfg.regimes.names))
                               if cfg.regimes.rate_multiplier[i] > 0)
    return int(min(cfg.n_trades / rate / 60 * 1.5 + 100, 1_000_000))


def _below_one_tick(cfg: SynthConfig, si) -> Exception:
    from core.errors import ConfigError

    return ConfigError(
        f"the synthetic mid-price of {cfg.symbol} fell below one tick ({cfg.tick_size}) after "
        f"{int(si[_I_DONE])} trades: lower regimes.daily_vol / flow.impact_bps or raise initial_price"
    )


@njit(cache=True)
def _generate_nb(pf, profile, mult, vol, trans_cum, sf, si, rng, n_target,
                 o_ts, o_price, o_qty, o_maker, o_first, o_last, m_ts, m_reg, counts):
    """Advance the market until done or an output buffer is full; returns a status code.

    Writes trades at o_*[counts[0]:] and regime-segment starts at m_*[counts[1]:]. Buffers are
    checked before any random draw so that stopping and resuming never changes the stream.
    """
    alpha = pf[_P_ALPHA]
    beta = pf[_P_BETA]
    t_end = pf[_P_T_END]
    p0 = pf[_P_P0]
    tick = pf[_P_TICK]
    inv_tick = pf[_P_INV_TICK]
    lot = pf[_P_LOT]
    inv_lot = pf[_P_INV_LOT]
    median = pf[_P_MEDIAN]
    sigma = pf[_P_SIGMA]
    tail_prob = pf[_P_TAIL_PROB]
    tail_xmin = pf[_P_TAIL_XMIN]
    inv_tail = 1.0 / pf[_P_TAIL_INDEX]
    extra_fills = pf[_P_EXTRA_FILLS]
    impact = pf[_P_IMPACT]
    perm = pf[_P_PERM]
    decay = pf[_P_DECAY]
    meta_share = pf[_P_META_SHARE]
    meta_min = pf[_P_META_MIN]
    inv_meta_tail = 1.0 / pf[_P_META_TAIL]
    half_spread = pf[_P_HALF_SPREAD]
    spread = si[_I_SPREAD]
    start = si[_I_START]
    spare = sf[_S_SPARE0:_S_SPARE1 + 1]
    n_regimes = mult.shape[0]

    t = sf[_S_T]
    lam = sf[_S_LAM]
    fund = sf[_S_FUND]
    trans = sf[_S_TRANS]
    t_diff = sf[_S_T_DIFF]
    seg_end = sf[_S_SEG_END]
    mu = sf[_S_MU]
    regime = si[_I_REGIME]
    minute = si[_I_MINUTE]
    meta_side = si[_I_META_SIDE]
    meta_left = si[_I_META_LEFT]
    done = si[_I_DONE]
    fill_id = si[_I_FILL_ID]
    n = counts[0]
    nm = counts[1]
    code = _DONE
    while True:
        if si[_I_FINISHED] != 0 or done >= n_target:
            break
        if n >= o_ts.shape[0]:
            code = _TRADES_FULL
            break
        if nm >= m_ts.shape[0]:
            code = _MINUTES_FULL
            break
        s1 = math.inf
        if mu > 0.0:
            s1 = -math.log(uniform_pos_nb(rng)) / mu
        s2 = math.inf
        if lam > 1e-300:
            d = 1.0 + beta * math.log(uniform_pos_nb(rng)) / lam
            if d > 0.0:
                s2 = -math.log(d) / beta
        tc = t + min(s1, s2)
        if tc >= seg_end and seg_end < t_end:
            # Minute boundary: decay, diffuse up to it in the old regime, then step the chain.
            lam *= math.exp(-beta * (seg_end - t))
            fund += vol[regime] * math.sqrt((seg_end - t_diff) / _SECONDS_PER_DAY) * normal_nb(rng, spare)
            t_diff = seg_end
            t = seg_end
            minute += 1
            u = uniform_nb(rng)
            k = 0
            while k < n_regimes - 1 and u >= trans_cum[regime, k]:
                k += 1
            regime = k
            mu = pf[_P_MU_SCALE] * profile[(minute // 60) % 24] * mult[regime]
            seg_end = ((minute + 1) * 60_000_000_000 - start) / 1e9
            m_ts[nm] = minute * 60_000_000_000
            m_reg[nm] = regime
            nm += 1
            continue
        if tc >= t_end:
            si[_I_FINISHED] = 1
            break
        dt = tc - t
        lam = lam * math.exp(-beta * dt) + alpha
        t = tc
        fund += vol[regime] * math.sqrt((t - t_diff) / _SECONDS_PER_DAY) * normal_nb(rng, spare)
        t_diff = t
        trans *= decay  # transient impact decays in trade time (a propagator kernel, Bouchaud et al.)

        if meta_left <= 0:
            meta_side = 1 if uniform_nb(rng) < 0.5 else -1
            length = math.ceil(meta_min * uniform_pos_nb(rng) ** (-inv_meta_tail))
            meta_left = np.int64(min(length, 1e12))
        if uniform_nb(rng) < meta_share:
            side = meta_side
            meta_left -= 1
        else:
            side = 1 if uniform_nb(rng) < 0.5 else -1

        if uniform_nb(rng) < tail_prob:
            q = tail_xmin * uniform_pos_nb(rng) ** (-inv_tail)
        else:
            q = median * math.exp(sigma * normal_nb(rng, spare))
        q_lots = max(1.0, min(math.floor(q / lot + 0.5), 1e15))
        root = math.sqrt(q_lots * lot / median)
        # Extra maker fills: uniform on [0, 2·mean·root) (mean `extra_fills`·root), at most one per lot.
        nf = min(1.0 + math.floor(uniform_nb(rng) * 2.0 * extra_fills * root), q_lots)

        mid_ticks = p0 * math.exp(fund + trans) / tick
        bid = math.floor(mid_ticks - half_spread + 0.5)
        if bid < 1.0:
            si[_I_DONE] = done
            return _BELOW_ONE_TICK
        px = bid + spread if side > 0 else bid
        # Permanent impact only for the unpredictable part of the sign (Madhavan-Richardson-Roomans):
        # with long-memory flow, permanent impact of the full sign would make prices superdiffusive.
        fund += perm * impact * root * (side - meta_share * meta_side)
        trans += (1.0 - perm) * impact * side * root

        o_ts[n] = start + np.int64(t * 1e9)
        o_price[n] = px / inv_tick if inv_tick > 0.0 else px * tick
        o_qty[n] = q_lots / inv_lot if inv_lot > 0.0 else q_lots * lot
        o_maker[n] = side < 0
        o_first[n] = fill_id
        fill_id += np.int64(nf)
        o_last[n] = fill_id - 1
        n += 1
        done += 1

    sf[_S_T] = t
    sf[_S_LAM] = lam
    sf[_S_FUND] = fund
    sf[_S_TRANS] = trans
    sf[_S_T_DIFF] = t_diff
    sf[_S_SEG_END] = seg_end
    sf[_S_MU] = mu
    si[_I_REGIME] = regime
    si[_I_MINUTE] = minute
    si[_I_META_SIDE] = meta_side
    si[_I_META_LEFT] = meta_left
    si[_I_DONE] = done
    si[_I_FILL_ID] = fill_id
    counts[0] = n
    counts[1] = nm
    return code


def _frame(cfg: SynthConfig, chunks) -> pl.DataFrame:
    if not chunks:
        return pl.DataFrame(schema=AGG_TRADES_SCHEMA)
    if len(chunks) == 1:
        ts, price, qty, maker, first, last = chunks[0]
    else:
        ts, price, qty, maker, first, last = (np.concatenate([c[i] for c in chunks]) for i in range(6))
    n = ts.shape[0]
    # polars wraps these numpy buffers without copying; ts_init shares ts_event's buffer.
    return pl.DataFrame(
        [
            pl.int_range(cfg.first_id, cfg.first_id + n, dtype=pl.Int64, eager=True).alias("id"),
            pl.Series("ts_event", ts, dtype=pl.Int64),
            pl.Series("price", price, dtype=pl.Float64),
            pl.Series("quantity", qty, dtype=pl.Float64),
            pl.Series("is_buyer_maker", maker, dtype=pl.Boolean),
            pl.Series("first_trade_id", first, dtype=pl.Int64),
            pl.Series("last_trade_id", last, dtype=pl.Int64),
        ]
    ).select(
        "id", "ts_event", pl.col("ts_event").alias("ts_init"), "price", "quantity", "is_buyer_maker",
        "first_trade_id", "last_trade_id",
    )


def _regime_frame(cfg: SynthConfig, chunks) -> pl.DataFrame:
    ts = np.concatenate([c[0] for c in chunks]) if chunks else np.empty(0, dtype=np.int64)
    reg = np.concatenate([c[1] for c in chunks]) if chunks else np.empty(0, dtype=np.int64)
    names = np.asarray(cfg.regimes.names, dtype=object)
    return pl.DataFrame(
        [
            pl.Series("ts_start", ts, dtype=pl.Int64),
            pl.Series("regime", reg, dtype=pl.Int64),
            pl.Series("regime_name", names[reg].tolist() if reg.size else [], dtype=pl.Utf8),
        ]
    )
