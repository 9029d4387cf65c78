"""The model's windows from serving's binned readings: what ``Preprocessor.transform`` builds in training.

:class:`~linewatch.serving.buffers.BufferSet` keeps the recent bins of every asset; these functions turn each
asset's latest bins (and, for lag inputs, their scaled look-back) into :class:`~linewatch.models.windows.Windows`
by calling the very code training uses (:func:`~linewatch.models.windows.make_windows` and
:mod:`linewatch.models.derived`), so serving cannot drift from the bundle's preprocessing.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import numpy.typing as npt

from linewatch.models.derived import lag_filter, time_of_day
from linewatch.models.windows import Preprocessor, Windows, WindowSpec, make_windows

F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]
Bools = npt.NDArray[np.bool_]


def to_model_windows(
    values: F64,
    observed: Bools,
    end_ts: I64,
    preprocessor: Preprocessor,
    spec: WindowSpec | None = None,
    *,
    time_major: bool = False,
) -> Windows:
    """What ``preprocessor.transform`` gives for each asset's latest window, from :meth:`BufferSet.latest`
    (``(n, L, S)``) or, with ``time_major``, :meth:`BufferSet.latest_time_major` (``(L, n, S)``).

    ``values`` hold ``length + history_steps`` bins per asset (the window and its lag inputs' look-back). The
    windows' last ``length`` bins are laid end to end as one series and cut by :func:`make_windows` with stride
    ``length`` (one window per asset) and no further filling (``latest`` filled each series, with look-back,
    already; filling the joined series would carry one asset's values into the next one's window), so scaling,
    masks, ``raw``, ``last_raw`` and coverage are computed by the very code training uses. The derived inputs
    are computed over each asset's whole series, as in training (:mod:`linewatch.models.derived`), but only
    for the window's rows.
    """
    spec = spec or preprocessor.spec
    steps_in, n_s = values.shape[0 if time_major else 1], values.shape[2]
    history = spec.history_steps
    if steps_in != spec.length + history or n_s != len(preprocessor.sensors_) or observed.shape != values.shape:
        raise ValueError(
            f"windows shaped {values.shape} do not fit length {spec.length} + history {history} and "
            f"{len(preprocessor.sensors_)} sensors"
        )
    tm_values = values if time_major else values.transpose(1, 0, 2)
    tm_observed = observed if time_major else observed.transpose(1, 0, 2)
    scaled = scale_lookback(tm_values, preprocessor) if spec.lag_s else None
    return windows_from_lookback(tm_values, tm_observed, end_ts, scaled, preprocessor, spec)


def scale_lookback(values: F64, preprocessor: Preprocessor) -> F64:
    """Time-first bins ``(T, n, S)`` scaled by the preprocessor, NaN as 0: what the lag inputs filter.

    Time-first order keeps each step's (asset, sensor) block contiguous, which the lag filter's weighted sum and
    recursion read; this array spans every asset's look-back, the bulk of a tick's memory traffic.
    """
    stats = preprocessor.stats
    scaled = np.empty(values.shape)
    np.subtract(values, stats.median, out=scaled)
    scaled /= stats.scale
    scaled[np.isnan(scaled)] = 0.0
    return scaled


def windows_from_lookback(
    values: F64,
    observed: Bools,
    end_ts: I64,
    scaled: F64 | None,
    preprocessor: Preprocessor,
    spec: WindowSpec | None = None,
) -> Windows:
    """The model windows from time-first filled bins ending at ``end_ts`` (at least the window's ``length``; only
    the last ``length`` are read) and, for lag inputs, the scaled look-back ``scaled`` (:func:`scale_lookback` of
    the window and its ``history_steps`` bins), which serving keeps up to date bin by bin
    (:class:`linewatch.serving.lookback.Lookback`) instead of rescaling it every tick.
    """
    spec = spec or preprocessor.spec
    stats = preprocessor.stats
    steps_in, n, n_s = values.shape
    length, history = spec.length, spec.history_steps
    if steps_in < length or n_s != len(preprocessor.sensors_) or observed.shape != values.shape:
        raise ValueError(
            f"windows shaped {values.shape} do not hold {length} steps of {len(preprocessor.sensors_)} sensors"
        )
    ts = np.asarray(end_ts, dtype=np.int64)[:, None] - spec.cadence_us * np.arange(length - 1, -1, -1)[None, :]
    cut = replace(spec, stride=length, max_gap_steps=0, lag_s=0.0, daily=False)
    windows = make_windows(  # only the window's rows are needed asset-first
        values[steps_in - length :].transpose(1, 0, 2).reshape(n * length, n_s),
        observed[steps_in - length :].transpose(1, 0, 2).reshape(n * length, n_s),
        ts.reshape(n * length),
        cut,
        center=stats.median,
        scale=stats.scale,
        sensors=preprocessor.sensors_,
    )
    if spec.n_inputs(n_s) == n_s:
        return replace(windows, spec=spec)
    parts = []
    if spec.lag_s:  # over each asset's whole series, as in training; only the window's rows are needed
        if scaled is None or scaled.shape != (length + history, n, n_s):
            raise ValueError(f"lag inputs need the scaled look-back of {length + history} steps")
        lagged = lag_filter(scaled, spec.lag_steps, history, axis=0, last=length)
        lagged[np.isnan(lagged)] = 0.0
        parts.append(lagged.transpose(1, 0, 2))
    if spec.daily:
        parts.append(time_of_day(ts, spec.timezone))
    X = np.concatenate([windows.X, *(p.astype(np.float32) for p in parts)], axis=2)
    return replace(windows, X=X, spec=spec)
