"""Inputs derived from the sensors for models that need slow context: lag filters and the time of day.

Pure numpy/scipy, shared by training (:func:`linewatch.models.windows.make_windows` over days of history) and
serving (the same function over each asset's ring buffer), so both compute the very same numbers.
"""

from __future__ import annotations

import math
from typing import Final

import numpy as np
import numpy.typing as npt
from scipy.signal import lfilter

from linewatch.core.localtime import UTC_NAME, local_us

F64 = npt.NDArray[np.float64]
#: Lag inputs average over this many time constants before each step (older data weighs e^-2 = 14 % in total).
LAG_HISTORY: Final = 2.0
_DAY_US: Final = 86_400_000_000
#: Up to this many rows asked for (``last``), a weighted sum and a short Python-level recursion beat filtering the
#: whole series; beyond it (training's days of rows) the filter's single C pass does.
_RECURSION_ROWS: Final = 512


def lag_filter(x: npt.ArrayLike, tau_steps: float, history: int, *, axis: int = 0, last: int | None = None) -> F64:
    """First-order lag of each series (time constant ``tau_steps``), restarted ``history`` steps before each row.

    ``y_t = c x_{t-H} + a Σ_{i<H} (1-a)^i x_{t-i}`` with ``a = 1 - e^(-1/τ)``, ``c = (1-a)^H`` (weights sum to 1):
    the reading of a first-order sensor or a thermal mass that had sat at ``x_{t-H}``. Each row depends on rows
    ``t-H .. t`` only, so serving, which keeps ``H`` steps per asset, computes what training computed over days
    of history (equal to rounding: the two paths below add the same terms in a different order). Rows with less
    than ``H`` steps before them are NaN. ``axis`` is the time axis; ``last`` returns only the last rows.

    Two exact evaluations: over a whole series (training), one recursive filter pass; for the last few rows
    (``last`` up to :data:`_RECURSION_ROWS`: serving, every tick), the first of them as one weighted sum over
    its ``H + 1`` steps (a matrix-vector product) and the rest by the recursion
    ``y_t = (1-a) y_{t-1} + a x_t + c (1-a) (x_{t-H} - x_{t-H-1})``, so a tick reads each look-back once
    instead of filtering all of it (1,000 assets x 8 sensors x 1,860 steps, time first: 5 ms instead of 280 ms).
    """
    a = -math.expm1(-1.0 / tau_steps)
    if last is not None and min(last, np.shape(x)[axis]) <= _RECURSION_ROWS:
        data = np.asarray(x, dtype=np.float64)
        shape = list(data.shape)
        shape[axis] = min(last, shape[axis])
        rows = np.full(shape, np.nan)
        if data.shape[axis] > history:  # time first, as views: no copy of the look-back in either layout
            _lag_last_rows(np.moveaxis(data, axis, 0), a, history, np.moveaxis(rows, axis, 0))
        return rows
    arr = np.moveaxis(np.asarray(x, dtype=np.float64), axis, -1)  # time last: lfilter runs along contiguous rows
    n_steps = arr.shape[-1]
    keep = n_steps if last is None else min(last, n_steps)
    out = np.full((*arr.shape[:-1], keep), np.nan)
    if n_steps > history:
        # The full recursion Y; Y_t - c Y_{t-H} leaves exactly the last H terms (its start value cancels), and
        # running it on x - x_0 keeps Y near zero so that difference loses no precision.
        first = arr[..., :1]
        Y = lfilter([a], [1.0, a - 1.0], arr - first, axis=-1)  # the recursion less its start value
        t = np.arange(max(history, n_steps - keep), n_steps)
        past = t - history
        # ``+ first`` only on the rows used.
        now, then = Y[..., t] + first, Y[..., past] + first
        out[..., t - (n_steps - keep)] = now - (1.0 - a) ** history * (then - arr[..., past])
    return np.moveaxis(out, -1, axis)


def _lag_last_rows(arr: F64, a: float, history: int, out: F64) -> None:
    """Fill ``out`` (``(keep, ...)``) with the lag of the last ``keep`` rows of ``arr`` (``(T, ...)``, time first).

    ``arr`` may be a strided view of either layout: the weighted sum is one ``tensordot`` (a BLAS
    matrix-vector product when time or the other axes are contiguous), each recursion step reads three rows.
    """
    n_steps, keep = arr.shape[0], out.shape[0]
    r = 1.0 - a
    c = r**history
    t0 = max(history, n_steps - keep)  # first row with a full look-back among those asked for
    weights = np.empty(history + 1)
    weights[0] = c  # x_{t0-H}, then x_{t0-H+1} .. x_{t0}
    weights[1:] = a * r ** np.arange(history - 1, -1, -1, dtype=np.float64)
    y = np.tensordot(weights, arr[t0 - history : t0 + 1], axes=(0, 0))
    offset = n_steps - keep
    out[t0 - offset] = y
    for t in range(t0 + 1, n_steps):
        y = r * y + a * arr[t] + (c * r) * (arr[t - history] - arr[t - history - 1])
        out[t - offset] = y


def derived_inputs(
    scaled: F64,
    ts_us: npt.NDArray[np.int64],
    lag_steps: float,
    history: int,
    *,
    daily: bool,
    timezone: str = UTC_NAME,
) -> F64:
    """The inputs that follow the scaled sensors ``(T, S)`` in a window: lag inputs ``(T, S)`` (``lag_steps`` > 0),
    then the time of day on the clock of ``timezone`` as ``sin, cos`` ``(T, 2)`` (machines heat and cool with
    the day and the shifts); ``(T, 0)`` for none.

    Lag inputs let a per-step model see what a sensor that follows others with a delay (a bearing temperature
    behind load, 10 minutes and more) should read now, which one step's values cannot tell.
    """
    parts = [np.zeros((scaled.shape[0], 0))]
    if lag_steps:
        parts.append(np.nan_to_num(lag_filter(scaled, lag_steps, history), nan=0.0))
    if daily:
        parts.append(time_of_day(ts_us, timezone))
    return np.hstack(parts)


def time_of_day(ts_us: npt.NDArray[np.int64], timezone: str = UTC_NAME) -> F64:
    """``(..., 2)``: sine and cosine of the time of day on the clock of ``timezone`` at epoch-µs UTC timestamps
    ``(...)``."""
    angle = 2 * np.pi * (local_us(ts_us, timezone) % _DAY_US) / _DAY_US
    return np.stack([np.sin(angle), np.cos(angle)], axis=-1)
