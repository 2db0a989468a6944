"""Memory layout of the bar builder's carried state, parameters and output (see `kernels`).

Kernels index small int64 / float64 arrays with these constants (numba freezes them at compile
time), which keeps the state a handful of numpy arrays that are cheap to carry between chunks.
"""

from __future__ import annotations

import numpy as np

from core.time import NS_PER_DAY  # noqa: F401  (used by the kernels through this module)

NO_DAY = np.iinfo(np.int64).min  # "no such day / no bucket yet" sentinel

# Bar kinds (params_i[P_MODE]).
MODE_TIME = 0
MODE_TICK = 1
MODE_VOLUME = 2
MODE_DOLLAR = 3
MODE_DYNAMIC = 4

# params_i
P_MODE = 0
P_TICKS = 1  # tick bars: trades per bar
P_EVERY = 2  # time bars: bucket length, ns
P_LOOKBACK = 3  # dynamic: lookback days
P_TARGET = 4  # dynamic: target bars per day
P_LARGE_WINDOW = 5  # 0 = large-trade columns disabled
P_LARGE_REFRESH = 6
P_HAS_INITIAL = 7  # dynamic: 1 when initial_threshold is set
N_PARAMS_I = 8
# params_f
P_THRESHOLD = 0  # volume / dollar threshold
P_INITIAL = 1  # dynamic initial threshold
P_QUANTILE = 2
N_PARAMS_F = 3

# state_i
I_TRADES = 0  # global count of trades consumed
I_COUNT = 1  # trades in the open bar (0 = no open bar)
I_TS_OPEN = 2
I_TS_CLOSE = 3
I_FIRST_ID = 4
I_LAST_ID = 5
I_BUY_COUNT = 6
I_SELL_COUNT = 7
I_UP = 8
I_DOWN = 9
I_LARGE_COUNT = 10
I_PREV_CLOSE = 11  # ts_close of the last emitted bar
I_HAS_PREV = 12
I_TICK_DIR = 13  # last non-zero tick direction: -1, 0 (none yet), +1
I_LAST_TS = 14
I_BUCKET_END = 15  # time bars: end of the open bucket (NO_DAY before the first trade)
I_CLOSED_END = 16  # time bars: end of the last bucket closed by the clock; earlier trades are late
I_RING_POS = 17
I_NEXT_REFRESH = 18  # trade number at which the large-trade threshold is next recomputed
I_CUR_DAY = 19  # dynamic: UTC day being accumulated (NO_DAY before the first trade)
I_DAY_END = 20
I_LAST_HIST_DAY = 21  # dynamic: latest day recorded in hist_day (NO_DAY if none)
N_STATE_I = 22
# state_f
F_OPEN = 0
F_HIGH = 1
F_LOW = 2
F_CLOSE = 3
F_VOL = 4
F_QUOTE = 5
F_BUY_VOL = 6
F_SELL_VOL = 7
F_BUY_QUOTE = 8
F_SELL_QUOTE = 9
F_RV = 10
F_LARGE_VOL = 11
F_LAST_PRICE = 12
F_LARGE_THR = 13
F_DYN_THR = 14  # dynamic: threshold of the current day
F_DAY_VOL = 15  # dynamic: volume of the current day so far
N_STATE_F = 16

# out_i columns
OI_TS_EVENT = 0
OI_TS_OPEN = 1
OI_TS_CLOSE = 2
OI_DURATION = 3
OI_FIRST_ID = 4
OI_LAST_ID = 5
OI_COUNT = 6
OI_BUY_COUNT = 7
OI_SELL_COUNT = 8
OI_UP = 9
OI_DOWN = 10
OI_LARGE_COUNT = 11
N_OUT_I = 12
# out_f columns
OF_OPEN = 0
OF_HIGH = 1
OF_LOW = 2
OF_CLOSE = 3
OF_VOL = 4
OF_QUOTE = 5
OF_BUY_VOL = 6
OF_SELL_VOL = 7
OF_VWAP = 8
OF_BUY_VWAP = 9
OF_SELL_VWAP = 10
OF_RV = 11
OF_LARGE_VOL = 12
OF_THRESHOLD = 13
N_OUT_F = 14

# validate_trades_nb result codes
OK = 0
ERR_TS_ORDER = 1
ERR_PRICE = 2
ERR_QTY = 3
ERR_NO_HISTORY = 4


def new_state(window: int, lookback: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Fresh (state_i, state_f, ring, hist_day, hist_vol) for a builder that has seen nothing."""
    state_i = np.zeros(N_STATE_I, dtype=np.int64)
    state_f = np.zeros(N_STATE_F, dtype=np.float64)
    state_i[I_LAST_TS] = NO_DAY
    state_i[I_BUCKET_END] = NO_DAY
    state_i[I_CLOSED_END] = NO_DAY
    state_i[I_NEXT_REFRESH] = window
    state_i[I_CUR_DAY] = NO_DAY
    state_i[I_DAY_END] = NO_DAY
    state_i[I_LAST_HIST_DAY] = NO_DAY
    state_f[F_LARGE_THR] = np.nan
    state_f[F_DYN_THR] = np.nan
    ring = np.zeros(max(window, 1), dtype=np.float64)
    hist_day = np.full(max(lookback, 1), NO_DAY, dtype=np.int64)
    hist_vol = np.zeros(max(lookback, 1), dtype=np.float64)
    return state_i, state_f, ring, hist_day, hist_vol
