"""The risk gate: every account rule, Kelly, sizing and the trading state composed into the calls
the engine makes per bar, per entry and per closed trade.

Call order per bar (backtest kernel and live actor alike):

1. `on_bar_nb` at the bar close (rolls the UTC day, updates drawdown, liquidity and the trading
   state). Then the engine handles FLATTEN (close everything) and stops.
2. For an entry signal: `size_entry_nb` (or `pre_entry_check_nb` + Kelly + sizing separately); the
   caller rounds the quantity down to the lot step and checks the venue minimums.
3. `on_entry_nb` when the entry is actually made; `on_trade_closed_nb` when a position closes.

`pre_entry_check_nb` reads state only, in this fixed order (the first refusal wins; cheapest and
most severe first):

1. trading state not ACTIVE            -> STATE_NOT_ACTIVE
2. daily loss limit hit this UTC day   -> DAILY_LOSS_LIMIT
3. consecutive-loss pause              -> CONSECUTIVE_LOSSES_PAUSE
4. liquidity pause                     -> LIQUIDITY_PAUSE
5. entry interval / 24h entry budget   -> ENTRY_INTERVAL / MAX_ENTRIES_24H
6. fee hurdle (per unit; qty cancels)  -> FEE_HURDLE (INVALID_INPUT for bad price/atr/fee)
then the size multiplier = drawdown multiplier x consecutive-loss multiplier, reported as
DRAWDOWN_THROTTLE if the drawdown throttle is on, else CONSECUTIVE_LOSSES_HALF if that applies,
else NONE.

Arrays (see `RiskArrays`): one concatenated float64 `params` (sub-vectors at the `OFF_*` offsets)
and one state array per rule, each in its own module's layout.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import NamedTuple

import numpy as np
from numba import njit
from pydantic import model_validator

from core.config import FrozenConfig, load_yaml_config
from core.enums import Reason, TradingState
from risk import kelly as _kelly
from risk import sizing as _sizing
from risk import state as _state
from risk import stops as _stops
from risk.kelly import KellyConfig, kelly_factor_nb, kelly_record_nb
from risk.rules import consecutive_losses as _losses
from risk.rules import daily_loss as _daily
from risk.rules import drawdown as _drawdown
from risk.rules import entry_throttle as _throttle
from risk.rules import fee_hurdle as _fee
from risk.rules import liquidity as _liquidity
from risk.rules.consecutive_losses import ConsecutiveLossesConfig, losses_check_nb, losses_on_trade_closed_nb
from risk.rules.daily_loss import DailyLossConfig, daily_halted_nb, daily_on_bar_nb, daily_on_trade_closed_nb
from risk.rules.drawdown import DrawdownThrottleConfig, drawdown_check_nb, drawdown_on_bar_nb
from risk.rules.entry_throttle import EntryThrottleConfig, throttle_check_nb, throttle_record_nb
from risk.rules.fee_hurdle import FeeHurdleConfig, fee_hurdle_nb
from risk.rules.liquidity import LiquidityPauseConfig, liquidity_on_bar_nb, liquidity_paused_nb
from risk.sizing import SizingConfig, position_size_nb
from risk.state import (
    TradingStateConfig, StateChange, log_changes, sm_on_bar_nb, sm_set_daily_halt_nb, sm_set_kill_switch_nb,
)
from risk.stops import PositionStops, StopConfig

OFF_SIZING = 0
OFF_KELLY = OFF_SIZING + _sizing.N_PARAMS
OFF_STOPS = OFF_KELLY + _kelly.N_PARAMS
OFF_DAILY = OFF_STOPS + _stops.N_PARAMS
OFF_LOSSES = OFF_DAILY + _daily.N_PARAMS
OFF_DRAWDOWN = OFF_LOSSES + _losses.N_PARAMS
OFF_LIQUIDITY = OFF_DRAWDOWN + _drawdown.N_PARAMS
OFF_THROTTLE = OFF_LIQUIDITY + _liquidity.N_PARAMS
OFF_FEE = OFF_THROTTLE + _throttle.N_PARAMS
OFF_STATE = OFF_FEE + _fee.N_PARAMS
N_PARAMS = OFF_STATE + _state.N_PARAMS

_NONE = int(Reason.NONE)
_INVALID = int(Reason.INVALID_INPUT)
_NOT_ACTIVE = int(Reason.STATE_NOT_ACTIVE)
_DAILY = int(Reason.DAILY_LOSS_LIMIT)
_PAUSE = int(Reason.CONSECUTIVE_LOSSES_PAUSE)
_LIQUIDITY = int(Reason.LIQUIDITY_PAUSE)
_KELLY_NON_POSITIVE = int(Reason.KELLY_NON_POSITIVE)
_ACTIVE = int(TradingState.ACTIVE)


class RiskConfig(FrozenConfig):
    """Every risk sub-config (YAML: `configs/risk.yaml`)."""

    sizing: SizingConfig = SizingConfig()
    kelly: KellyConfig = KellyConfig()
    stops: StopConfig = StopConfig()
    daily_loss: DailyLossConfig = DailyLossConfig()
    consecutive_losses: ConsecutiveLossesConfig = ConsecutiveLossesConfig()
    drawdown: DrawdownThrottleConfig = DrawdownThrottleConfig()
    liquidity: LiquidityPauseConfig = LiquidityPauseConfig()
    entry_throttle: EntryThrottleConfig = EntryThrottleConfig()
    fee_hurdle: FeeHurdleConfig = FeeHurdleConfig()
    trading_state: TradingStateConfig = TradingStateConfig()

    @model_validator(mode="after")
    def _check(self) -> RiskConfig:
        # The loss-at-stop cap must be computed against the stop that will actually be placed.
        if self.sizing.stop_atr_multiple != self.stops.l1_atr:
            raise ValueError(f"sizing.stop_atr_multiple ({self.sizing.stop_atr_multiple}) must equal "
                             f"stops.l1_atr ({self.stops.l1_atr}): sizing assumes the L1 stop distance")
        return self

    def to_params(self) -> np.ndarray:
        """All parameters, each sub-config's vector at its `OFF_*` offset."""
        return np.concatenate([
            self.sizing.to_params(), self.kelly.to_params(), self.stops.to_params(),
            self.daily_loss.to_params(), self.consecutive_losses.to_params(), self.drawdown.to_params(),
            self.liquidity.to_params(), self.entry_throttle.to_params(), self.fee_hurdle.to_params(),
            self.trading_state.to_params(),
        ]).astype(np.float64)


def load_risk_config(path: str | Path) -> RiskConfig:
    """Load and validate a risk YAML (`ConfigError` names the file, key path and value)."""
    return load_yaml_config(RiskConfig, path)


class RiskArrays(NamedTuple):
    """The arrays the gate kernels take, in their argument order."""

    params: np.ndarray  # float64 (N_PARAMS,)
    daily: np.ndarray  # float64, risk.rules.daily_loss layout
    losses: np.ndarray  # int64, risk.rules.consecutive_losses layout
    drawdown: np.ndarray  # float64, risk.rules.drawdown layout
    liquidity: np.ndarray  # float64, risk.rules.liquidity layout
    entries: np.ndarray  # int64, risk.rules.entry_throttle layout
    kelly: np.ndarray  # float64 2-D, risk.kelly layout
    sm: np.ndarray  # int64, risk.state layout
    sm_log: np.ndarray  # int64 (capacity, 4), risk.state log layout


def new_arrays(config: RiskConfig) -> RiskArrays:
    """Parameters and initial state of every rule."""
    return RiskArrays(
        config.to_params(), _daily.new_state(), _losses.new_state(), _drawdown.new_state(config.drawdown),
        _liquidity.new_state(config.liquidity), _throttle.new_state(config.entry_throttle),
        _kelly.new_state(config.kelly), _state.new_state(), _state.new_log(config.trading_state),
    )


@njit(cache=True)
def on_bar_nb(params, daily, drawdown, liquidity, sm, sm_log, ts, equity, trade_intensity, margin_ratio,
              extreme):
    """Bar close at `ts` (ns): account `equity` (quote), the bar's `trade_intensity` (trades/ms),
    `margin_ratio` (maintenance margin / margin balance; NaN = unknown), `extreme` (the strategy's
    extreme-regime flag). Rolls the UTC day, updates the drawdown throttle, the liquidity pause and
    the trading state. Returns the trading state (int)."""
    daily_on_bar_nb(params[OFF_DAILY:OFF_LOSSES], daily, ts, equity)
    drawdown_on_bar_nb(params[OFF_DRAWDOWN:OFF_LIQUIDITY], drawdown, ts, equity)
    liquidity_on_bar_nb(params[OFF_LIQUIDITY:OFF_THROTTLE], liquidity, trade_intensity)
    return sm_on_bar_nb(params[OFF_STATE:N_PARAMS], sm, sm_log, ts, margin_ratio, extreme,
                        daily_halted_nb(daily, ts))


@njit(cache=True)
def pre_entry_check_nb(params, daily, losses, drawdown, liquidity, entries, sm, ts, price, atr, taker_fee):
    """(allowed, size_multiplier, reason) for an entry at `ts` at `price` with `atr` (quote) and the
    account's `taker_fee` rate. Reads state only; order in the module docstring."""
    if sm[_state.S_STATE] != _ACTIVE:
        return False, 0.0, _NOT_ACTIVE
    if daily_halted_nb(daily, ts):
        return False, 0.0, _DAILY
    ok, loss_mult, loss_reason = losses_check_nb(params[OFF_LOSSES:OFF_DRAWDOWN], losses, ts)
    if not ok:
        return False, 0.0, loss_reason
    if liquidity_paused_nb(liquidity):
        return False, 0.0, _LIQUIDITY
    r = throttle_check_nb(params[OFF_THROTTLE:OFF_FEE], entries, ts)
    if r != _NONE:
        return False, 0.0, r
    r = fee_hurdle_nb(params[OFF_FEE:OFF_STATE], price, atr, 1.0, taker_fee)
    if r != _NONE:
        return False, 0.0, r
    dd_mult, dd_reason = drawdown_check_nb(params[OFF_DRAWDOWN:OFF_LIQUIDITY], drawdown)
    reason = dd_reason if dd_reason != _NONE else loss_reason
    return True, dd_mult * loss_mult, reason


@njit(cache=True)
def size_entry_nb(params, daily, losses, drawdown, liquidity, entries, kelly, sm, ts, signal_id, side, equity,
                  price, atr, regime_factor, strength, same_dir_notional, total_abs_notional, taker_fee):
    """Full entry decision: (qty in base units >= 0, unrounded; reason).

    pre_entry_check -> Kelly factor of `signal_id` -> position_size_nb with the rules' multiplier.
    reason: the refusal (qty 0), KELLY_NON_POSITIVE (qty 0), the binding sizing cap, INVALID_INPUT,
    else the scaling rule that applied (DRAWDOWN_THROTTLE / CONSECUTIVE_LOSSES_HALF) or NONE.
    Arguments as in `pre_entry_check_nb` and `risk.sizing.position_size_nb`.
    """
    allowed, mult, reason = pre_entry_check_nb(params, daily, losses, drawdown, liquidity, entries, sm, ts,
                                               price, atr, taker_fee)
    if not allowed:
        return 0.0, reason
    kf, kr = kelly_factor_nb(params[OFF_KELLY:OFF_STOPS], kelly, signal_id)
    if kr != _NONE and kr != _KELLY_NON_POSITIVE:
        return 0.0, kr
    if not (kf > 0.0):
        return 0.0, _KELLY_NON_POSITIVE
    qty, sr = position_size_nb(params[OFF_SIZING:OFF_KELLY], side, equity, price, atr, regime_factor, strength,
                               kf, mult, same_dir_notional, total_abs_notional, taker_fee)
    if sr != _NONE:
        return qty, sr
    if kr == _KELLY_NON_POSITIVE:  # sized at the probe factor
        return qty, kr
    return qty, reason


@njit(cache=True)
def on_entry_nb(params, entries, ts):
    """Record an entry made at `ts` (ns) for the entry throttle."""
    throttle_record_nb(params[OFF_THROTTLE:OFF_FEE], entries, ts)


@njit(cache=True)
def on_trade_closed_nb(params, daily, losses, kelly, sm, sm_log, ts, pnl, ret, signal_id, equity):
    """A position closed at `ts` (ns): net `pnl` (quote, fees included), `ret` = pnl / entry notional,
    the `signal_id` that opened it (risk.kelly.SIGNAL_*), `equity` after the close.

    Updates the daily loss (HALTED at once when the limit is hit), the consecutive-loss run and the
    Kelly statistics. Returns DAILY_LOSS_LIMIT or CONSECUTIVE_LOSSES_PAUSE when this trade triggered
    one, INVALID_INPUT (nothing changed) for non-finite numbers or an unknown signal id, else NONE.
    """
    if not (math.isfinite(pnl) and math.isfinite(ret) and math.isfinite(equity)
            and 0 <= signal_id < kelly.shape[0]):
        return _INVALID
    r_daily = daily_on_trade_closed_nb(params[OFF_DAILY:OFF_LOSSES], daily, ts, pnl, equity)
    if r_daily == _DAILY:
        sm_set_daily_halt_nb(sm, sm_log, ts, True)
    r_losses = losses_on_trade_closed_nb(params[OFF_LOSSES:OFF_DRAWDOWN], losses, ts, pnl)
    kelly_record_nb(params[OFF_KELLY:OFF_STOPS], kelly, signal_id, ret)
    if r_daily == _DAILY:
        return _DAILY
    if r_losses == _PAUSE:
        return _PAUSE
    return _NONE


@njit(cache=True)
def set_kill_switch_nb(sm, sm_log, ts, engaged):
    """Engage (FLATTEN now) or release the kill switch at `ts`. Returns the trading state."""
    return sm_set_kill_switch_nb(sm, sm_log, ts, engaged)


class EntryVerdict(NamedTuple):
    allowed: bool
    size_multiplier: float
    reason: Reason


class RiskEngine:
    """The account's risk state for live code and tests: a readable face over the gate kernels."""

    def __init__(self, config: RiskConfig | None = None):
        self.config = config or RiskConfig()
        self.arrays = new_arrays(self.config)
        self.stop_params = self.config.stops.to_params()

    @property
    def state(self) -> TradingState:
        return TradingState(int(self.arrays.sm[_state.S_STATE]))

    def on_bar(self, ts: int, equity: float, trade_intensity: float, margin_ratio: float = 0.0,
               extreme: bool = False) -> TradingState:
        a = self.arrays
        return TradingState(on_bar_nb(a.params, a.daily, a.drawdown, a.liquidity, a.sm, a.sm_log, int(ts),
                                      float(equity), float(trade_intensity), float(margin_ratio), bool(extreme)))

    def pre_entry_check(self, ts: int, price: float, atr: float, taker_fee: float) -> EntryVerdict:
        a = self.arrays
        allowed, mult, reason = pre_entry_check_nb(a.params, a.daily, a.losses, a.drawdown, a.liquidity, a.entries,
                                                   a.sm, int(ts), float(price), float(atr), float(taker_fee))
        return EntryVerdict(bool(allowed), float(mult), Reason(reason))

    def size_entry(self, ts: int, signal_id: int, side: int, equity: float, price: float, atr: float, *,
                   regime_factor: float = 1.0, strength: float = 1.0, same_dir_notional: float = 0.0,
                   total_abs_notional: float = 0.0, taker_fee: float = 0.0) -> tuple[float, Reason]:
        """(unrounded qty in base units, Reason); see `size_entry_nb`."""
        a = self.arrays
        qty, reason = size_entry_nb(a.params, a.daily, a.losses, a.drawdown, a.liquidity, a.entries, a.kelly,
                                    a.sm, int(ts), int(signal_id), int(side), float(equity), float(price),
                                    float(atr), float(regime_factor), float(strength), float(same_dir_notional),
                                    float(total_abs_notional), float(taker_fee))
        return float(qty), Reason(reason)

    def on_entry(self, ts: int) -> None:
        on_entry_nb(self.arrays.params, self.arrays.entries, int(ts))

    def on_trade_closed(self, ts: int, pnl: float, ret: float, signal_id: int, equity: float) -> Reason:
        a = self.arrays
        return Reason(on_trade_closed_nb(a.params, a.daily, a.losses, a.kelly, a.sm, a.sm_log, int(ts),
                                         float(pnl), float(ret), int(signal_id), float(equity)))

    def set_kill_switch(self, ts: int, engaged: bool) -> TradingState:
        return TradingState(set_kill_switch_nb(self.arrays.sm, self.arrays.sm_log, int(ts), bool(engaged)))

    def kelly_factor(self, signal_id: int) -> tuple[float, Reason]:
        f, r = kelly_factor_nb(self.arrays.params[OFF_KELLY:OFF_STOPS], self.arrays.kelly, int(signal_id))
        return float(f), Reason(r)

    def state_changes(self, since: int | None = None) -> list[StateChange]:
        """Logged trading-state changes, oldest first: all still in the log (since=None), or those with
        sequence number >= since (`RejectedError` if some of them were already overwritten)."""
        if since is None:
            since = max(0, int(self.arrays.sm[_state.S_LOG_COUNT]) - self.arrays.sm_log.shape[0])
        return log_changes(self.arrays.sm, self.arrays.sm_log, since)

    def new_stops(self) -> PositionStops:
        """Stops for a new position with this config's `StopConfig`."""
        return PositionStops(self.config.stops)
